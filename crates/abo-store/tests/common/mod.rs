//! Helpers shared by the store's tests: a fresh database on either backend, times, builds.
//!
//! Most tests run twice, on SQLite (a file in a temporary directory) and on PostgreSQL (a
//! fresh database on a throw-away server that testsupport/pg.sh starts once per test
//! binary, over a Unix socket, stopped when the binary exits). [`on_both!`] declares the two
//! test functions for a test written as `async fn name(backend: Backend)`.
#![allow(dead_code)]

use abo_store::{BuildId, Lease, NewRequest, RequestId, Store, Timestamp};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Declares `mod NAME { sqlite, postgres }` tests that run `async fn NAME(Backend)` on each
/// backend, with the given tokio test attribute.
#[macro_export]
macro_rules! on_both {
    ($flavor:meta => $($name:ident),+ $(,)?) => {$(
        mod $name {
            use super::*;
            #[$flavor]
            async fn sqlite() {
                super::$name(common::Backend::Sqlite).await
            }
            #[$flavor]
            async fn postgres() {
                super::$name(common::Backend::Postgres).await
            }
        }
    )+};
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: an SQLite file in a temporary directory, or a new database on
/// the shared PostgreSQL server. Nothing to clean up for the latter: the server's data
/// directory is removed with it at exit.
pub struct TestDb {
    pub backend: Backend,
    /// What `Store::open` takes.
    pub url: String,
    dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir
                    .path()
                    .join("abo.sqlite")
                    .to_str()
                    .expect("utf-8 temp path")
                    .to_owned();
                TestDb {
                    backend,
                    url,
                    dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = fresh_pg_database().await;
                TestDb {
                    backend,
                    url,
                    dir: None,
                }
            }
        }
    }

    /// Opens (and migrates) a store on it; call again for a second handle, as a second
    /// master or a restarted one would have.
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// The SQLite file (SQLite only).
    pub fn sqlite_path(&self) -> &Path {
        assert_eq!(self.backend, Backend::Sqlite);
        Path::new(&self.url)
    }

    /// Runs statements directly, bypassing the store (to tamper with stored values, to
    /// seed old schemas).
    pub async fn sql(&self, sql: &str) {
        let (url, sql, backend) = (self.url.clone(), sql.to_owned(), self.backend);
        tokio::task::spawn_blocking(move || match backend {
            Backend::Sqlite => rusqlite::Connection::open(&url)
                .unwrap()
                .execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Backend::Postgres => {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                c.batch_execute(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            }
        })
        .await
        .unwrap();
    }

    /// The first column of each row of `sql`, as text (PostgreSQL: cast it in the query).
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let (url, sql, backend) = (self.url.clone(), sql.to_owned(), self.backend);
        tokio::task::spawn_blocking(move || match backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&url).unwrap();
                let mut stmt = conn.prepare(&sql).unwrap();
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .unwrap()
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .unwrap();
                rows
            }
            Backend::Postgres => {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                c.query(&sql, &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect()
            }
        })
        .await
        .unwrap()
    }
}

/// A fresh database and a store on it.
pub async fn store_on(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await;
    let store = db.open().await;
    (db, store)
}

/// A store on a fresh SQLite file in a temporary directory (kept alive by the guard).
pub async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().to_str().expect("utf-8 temp path"))
        .await
        .expect("open store");
    (dir, store)
}

// --- the PostgreSQL server ------------------------------------------------------------------

struct PgServer {
    /// The cluster directory (data, log, Unix socket).
    dir: PathBuf,
    port: u16,
    user: String,
}

impl PgServer {
    fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{}@/{database}?host={}&port={}",
            self.user,
            self.dir.display(),
            self.port
        )
    }
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static TO_STOP: Mutex<Option<PathBuf>> = Mutex::new(None);
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

fn pg_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsupport/pg.sh")
}

extern "C" fn stop_server() {
    let Ok(dir) = TO_STOP.lock() else { return };
    if let Some(dir) = dir.as_ref() {
        let _ = Command::new(pg_sh())
            .arg("stop")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::env::var_os("ABO_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The oldest PostgreSQL the test environment has (`ABO_PG_VERSIONS`), so that the schema
/// and queries are checked against the oldest supported server.
fn pg_version() -> String {
    let bindirs = std::env::var("ABO_PG_BINDIRS").unwrap_or_default();
    if bindirs.is_empty() {
        panic!(
            "ABO_PG_BINDIRS is not set: the PostgreSQL variants of the store's tests need the \
             servers of testsupport/setup.sh. Run ./scripts/test, or `source \
             testsupport/setup.sh` in this shell before cargo test (testsupport/README.md)."
        );
    }
    let versions = std::env::var("ABO_PG_VERSIONS").unwrap_or_default();
    let mut known: Vec<u32> = versions
        .split_whitespace()
        .chain(
            bindirs
                .split(':')
                .filter_map(|e| e.split_once('=').map(|p| p.0)),
        )
        .filter_map(|v| v.parse().ok())
        .collect();
    known.sort_unstable();
    known.first().expect("a PostgreSQL version").to_string()
}

fn server() -> &'static PgServer {
    SERVER.get_or_init(|| {
        let version = pg_version();
        let dir = tempfile::Builder::new()
            .prefix("abo-store-pg.")
            .tempdir()
            .expect("temp dir")
            .keep();
        // As root, the server runs as another user, which must reach the directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        *TO_STOP.lock().unwrap() = Some(dir.clone());
        // SAFETY: registering a plain extern "C" function to run at exit.
        unsafe {
            libc::atexit(stop_server);
        }
        let port = 5432;
        let out = Command::new(pg_sh())
            .arg("start")
            .arg(&version)
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("run pg.sh");
        assert!(
            out.status.success(),
            "pg.sh start {version} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = std::env::var("ABO_PG_SUPERUSER").unwrap_or_else(|_| {
            let out = Command::new("id").arg("-un").output().expect("id -un");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        });
        PgServer { dir, port, user }
    })
}

/// Creates a new database on the shared server; returns its URL.
async fn fresh_pg_database() -> String {
    tokio::task::spawn_blocking(|| {
        let server = server();
        let name = format!("abo_test_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        let mut admin =
            postgres::Client::connect(&server.url("postgres"), postgres::NoTls).expect("connect");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        server.url(&name)
    })
    .await
    .unwrap()
}

/// A time, in seconds, as the store's milliseconds.
pub fn t(secs: u64) -> Timestamp {
    Timestamp(secs * 1000)
}

/// Submits, claims and starts a build of `builder`, with `lease`.
pub async fn running_build(store: &Store, builder: &str, lease: u64) -> (RequestId, BuildId) {
    let req = store
        .submit_request(NewRequest::new(builder, t(1)))
        .await
        .unwrap();
    store.claim_request(req, Lease(lease), t(2)).await.unwrap();
    let (build, _) = store
        .create_build(req, "w1", Lease(lease), t(3))
        .await
        .unwrap();
    (req, build)
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
