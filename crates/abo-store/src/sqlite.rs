//! Everything specific to SQLite: opening a file, its pragmas, the connections (one writer,
//! a small pool of readers) and migrating a file. The queries themselves are written once,
//! against [`Tx`](crate::db::Tx).

use crate::db::Tx;
use crate::error::{Error, Result};
use crate::schema::{apply, latest_version, MIGRATIONS};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// File name of the database when `Store::open` is given a directory (the master directory).
pub const DEFAULT_FILE_NAME: &str = "abo.sqlite";

/// How long a statement waits for another connection's write lock before failing. Writes are
/// short (one chunk, one row), so this is only reached when something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Compiled statements kept per connection. rusqlite's default, 16, is fewer than a build
/// runs through the writer (claim, build, steps, logs, chunks, results), so each was
/// evicted before its next use and compiled again: compiling was 14% of the master's CPU
/// in the dispatch benchmark, 1.7% with 32, for about 0.2 MB more between the connections.
const STATEMENT_CACHE: usize = 32;

/// Idle read connections kept open. Reads beyond that open a connection for the call.
const MAX_IDLE_READERS: usize = 4;

/// Applies the migrations up to `target` (all when `None`) to the SQLite database at
/// `path`, creating the file if needed, in one transaction; returns the version reached.
/// [`Store::open`](crate::Store::open) does this; the CLI and the migration tests use it to
/// prepare a database at an older version.
pub fn migrate_file(path: &Path, target: Option<u32>) -> Result<u32> {
    let mut conn = open_connection(path)?;
    migrate(&mut conn, target.unwrap_or_else(latest_version))
}

/// The parsed form of what `Store::open` accepts.
pub(crate) fn resolve_location(url_or_path: &str) -> Result<PathBuf> {
    let rest = if let Some(rest) = url_or_path.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url_or_path.strip_prefix("sqlite:") {
        rest
    } else if url_or_path.contains("://") {
        return Err(Error::UnsupportedDatabase(url_or_path.to_owned()));
    } else {
        url_or_path
    };
    // An in-memory database would give each connection its own empty database.
    if rest.is_empty() || rest == ":memory:" || rest.contains('?') {
        return Err(Error::UnsupportedDatabase(url_or_path.to_owned()));
    }
    let path = PathBuf::from(rest);
    Ok(if path.is_dir() {
        path.join(DEFAULT_FILE_NAME)
    } else {
        path
    })
}

fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The query planner's stability guarantee: a statement's plan does not depend on the
    // values bound to it. Without it SQLite marks a statement whose `LIMIT ?N` (or LIKE
    // pattern) is a parameter to be compiled again whenever that parameter is bound, that
    // is at every execution of a cached statement: parsing and planning were half the
    // time of a web page's queries. Our queries' plans come from their indexes, not from
    // the values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL: readers (the web UI, log readers) never block the writer nor wait for it.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Invalid(format!(
            "{}: SQLite refused WAL mode (journal_mode is {mode}); is the file on a network filesystem?",
            path.display()
        )));
    }
    // NORMAL in WAL mode: a commit survives a crash of abo (the write is in the WAL file),
    // not necessarily a power loss; FULL would fsync every log chunk.
    // journal_size_limit: after a burst of log output the WAL file is truncated back to
    // 64 MiB at the next checkpoint instead of keeping its largest size on disk.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 67108864;",
    )?;
    Ok(conn)
}

/// The connections to one database file. Statements run on tokio's blocking pool; the
/// writer connection is behind a mutex, so the process has one writer at a time, which is
/// what SQLite allows anyway, and no `SQLITE_BUSY` between our own writers.
pub(crate) struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Db {
    pub(crate) fn open(path: PathBuf) -> Result<Db> {
        let mut writer = open_connection(&path)?;
        // The writer's page cache holds the pages its writes touch again and again (the
        // upper levels of tables and indexes, the latest rows): 256 KiB instead of SQLite's
        // 2 MiB; other pages are in the system's page cache, microseconds away. Measured
        // with the dispatch benchmark (2,000 builds): 1 MiB → 256 KiB, with the readers',
        // took 1.2–1.5 MB off the master's peak, same builds per second.
        writer.execute_batch("PRAGMA cache_size = -256;")?;
        migrate(&mut writer, latest_version())?;
        Ok(Db {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an IMMEDIATE transaction on the writer connection and commits if it
    /// returns `Ok`. IMMEDIATE takes the write lock at BEGIN, so two processes on one file
    /// queue on the busy timeout instead of failing at their first write.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&Tx::Sqlite(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read transaction (one consistent snapshot for several queries) on a
    /// pooled read connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_connection(&self.path)?;
                // A reader's page cache holds what one query touches: 256 KiB instead of
                // SQLite's 2 MiB per connection (the file's pages stay in the system's
                // page cache, a few microseconds away), so the pooled readers do not grow
                // to several MB between them.
                c.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -256;")?;
                c
            }
        };
        let out = {
            let tx = conn.transaction()?;
            let out = f(&Tx::Sqlite(&tx));
            // A read transaction has nothing to commit; ending it releases the snapshot so
            // that checkpoints can progress.
            tx.rollback()?;
            out
        };
        let mut pool = lock(&self.readers);
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    /// Frees the cached pages of the writer and of the idle readers (`shrink_memory`: only
    /// pages no statement holds).
    pub(crate) fn release_memory(&self) -> Result<()> {
        lock(&self.writer).execute_batch("PRAGMA shrink_memory;")?;
        for reader in lock(&self.readers).iter() {
            reader.execute_batch("PRAGMA shrink_memory;")?;
        }
        Ok(())
    }
}

/// Locks a mutex, also after a panic in another holder: the connection behind it is still
/// usable, because a panicking transaction is rolled back when its guard drops.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn migrate(conn: &mut Connection, target: u32) -> Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = apply(&Tx::Sqlite(&tx), MIGRATIONS, target)?;
    tx.commit()?;
    Ok(version)
}

/// Reads the schema version of a database file without migrating it (0 for a new file).
pub fn schema_version(path: &Path) -> Result<u32> {
    let conn = open_connection(path)?;
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// A cached statement runs as compiled, whatever is bound to its `LIMIT` parameter;
    /// without the planner's stability guarantee SQLite compiled it again at every run.
    #[test]
    fn cached_statements_are_not_compiled_again_when_their_limit_changes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("t.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b TEXT);
             CREATE INDEX t_b ON t (b, id);
             INSERT INTO t (b) VALUES ('x'), ('x'), ('y'), ('x');",
        )
        .unwrap();
        for limit in [1u32, 2, 3, 1, 50] {
            let mut st = conn
                .prepare_cached(
                    "SELECT id FROM t WHERE b = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                )
                .unwrap();
            let ids: Vec<i64> = st
                .query_map(rusqlite::params!["x", 100, limit], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(ids, [4, 2, 1][..limit.min(3) as usize]);
            assert_eq!(st.get_status(StatementStatus::RePrepare), 0);
        }
    }
}
