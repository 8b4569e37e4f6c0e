//! Everything specific to SQLite: opening a file, its pragmas, the connections (one writer,
//! a small pool of readers), the embedded migrations and how they are applied, and how the
//! store's newtypes convert to SQLite values. The query modules use plain rusqlite calls
//! with SQL written to run unchanged on PostgreSQL where that costs nothing (`RETURNING`,
//! standard types, `?N` placeholders that map one to one to `$N`).

use crate::error::{Error, Result};
use crate::types::{
    BuildId, BuildResult, ChangeId, Lease, LogId, LogKind, RequestId, RequestState, StepId,
    Timestamp,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// File name of the database when `Store::open` is given a directory (the master directory).
pub const DEFAULT_FILE_NAME: &str = "abo.sqlite";

/// How long a statement waits for another connection's write lock before failing. Writes are
/// short (one chunk, one row), so this is only reached when something is badly wrong.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle read connections kept open. Reads beyond that open a connection for the call.
const MAX_IDLE_READERS: usize = 4;

/// One migration: a version (its position, from 1), a name, and the SQL run to apply it.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version once applied.
    pub version: u32,
    /// A short name, stored with the version.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// The migrations, in order. Append-only: a released migration is never edited (the
/// checksum stored with each applied version catches it); a change to the schema is a new
/// entry. New `NOT NULL` columns need a `DEFAULT`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "builds",
        sql: include_str!("../migrations/sqlite/0001_builds.sql"),
    },
    Migration {
        version: 2,
        name: "logs",
        sql: include_str!("../migrations/sqlite/0002_logs.sql"),
    },
    Migration {
        version: 3,
        name: "changes",
        sql: include_str!("../migrations/sqlite/0003_changes.sql"),
    },
    Migration {
        version: 4,
        name: "users",
        sql: include_str!("../migrations/sqlite/0004_users.sql"),
    },
    Migration {
        version: 5,
        name: "web_indexes",
        sql: include_str!("../migrations/sqlite/0005_web_indexes.sql"),
    },
];

/// The schema version this abo migrates to.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

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
    let lower = url_or_path.to_ascii_lowercase();
    if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
        return Err(Error::UnsupportedDatabase(url_or_path.to_owned()));
    }
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
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read transaction (one consistent snapshot for several queries) on a
    /// pooled read connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_connection(&self.path)?;
                // A reader's page cache holds what one query touches: 512 KiB instead of
                // SQLite's 2 MiB per connection (the file's pages stay in the system's
                // page cache, a few microseconds away), so the pooled readers do not grow
                // to several MB between them.
                c.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -512;")?;
                c
            }
        };
        let out = {
            let tx = conn.transaction()?;
            let out = f(&tx);
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
}

/// Locks a mutex, also after a panic in another holder: the connection behind it is still
/// usable, because a panicking transaction is rolled back when its guard drops.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// FNV-1a of a migration's text, stored with its version to detect an edited migration.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn migrate(conn: &mut Connection, target: u32) -> Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT    NOT NULL,
             checksum   TEXT    NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let applied: Vec<(u32, String)> = {
        let mut stmt =
            tx.prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut current = 0;
    for (version, sum) in &applied {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(Error::SchemaTooNew {
                found: applied.last().map_or(*version, |a| a.0),
                known: latest_version(),
            });
        };
        if *sum != checksum(m.sql) {
            return Err(Error::MigrationChanged {
                version: m.version,
                name: m.name,
            });
        }
        current = current.max(*version);
    }
    let pending: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
        .collect();
    for m in pending {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, checksum(m.sql), Timestamp::now()],
        )?;
        current = m.version;
    }
    tx.commit()?;
    Ok(current)
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

// --- conversions -----------------------------------------------------------------------

/// SQLite integers are signed: ids and times above `i64::MAX` cannot be stored.
fn int_out(v: u64) -> rusqlite::Result<ToSqlOutput<'static>> {
    i64::try_from(v)
        .map(ToSqlOutput::from)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn int_in(v: ValueRef<'_>) -> FromSqlResult<u64> {
    let i = v.as_i64()?;
    u64::try_from(i).map_err(|_| FromSqlError::OutOfRange(i))
}

macro_rules! int_newtype_sql {
    ($($t:ident),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                int_out(self.0)
            }
        }
        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                int_in(v).map($t)
            }
        }
    )+};
}
int_newtype_sql!(RequestId, BuildId, StepId, LogId, ChangeId, Lease, Timestamp);

macro_rules! word_sql {
    ($($t:ident),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}
word_sql!(BuildResult, RequestState, LogKind);

/// A JSON document stored as TEXT.
pub(crate) fn json_out(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("unserializable JSON: {e}")))
}

/// Reads a TEXT column holding JSON; a malformed document is a conversion failure (and so
/// [`Error::Corrupt`]), not a panic.
pub(crate) fn json_in<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Reads an INTEGER column into a `u32` (build numbers, step indexes).
pub(crate) fn u32_in(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let v: i64 = row.get(idx)?;
    u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// Reads an INTEGER column into a `u64` (byte and line counts).
pub(crate) fn u64_in(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// A `u64` count as an SQLite integer.
pub(crate) fn i64_of(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("{v} does not fit in the database")))
}
