//! abo's store: every SQL statement of abo lives in this crate. A database holds build
//! requests, builds, steps, logs, changes, pollers' last seen revisions, scheduler timers
//! and users: an SQLite file in the master directory (WAL mode; the default), or a
//! PostgreSQL database (`postgresql://` URL) when one master is not enough or the database
//! should live elsewhere. Migrations are embedded per backend (same versions), versioned and
//! applied when the store opens.
//!
//! # Backends
//!
//! Every query is written once, with `?N` placeholders, against a thin neutral layer
//! (`db::Tx`: `execute`, `query_one/opt/all/each`, rows with typed `get`) that runs it on
//! SQLite or, with the placeholders turned into `$N` and the statement prepared once per
//! connection, on PostgreSQL. The SQL sticks to what both accept (`ON CONFLICT`,
//! `RETURNING`, `TRUE`/`FALSE`, `EXISTS`).
//!
//! - SQLite: one writer connection (writes are short transactions, serialized in-process,
//!   IMMEDIATE so that two processes on one file queue) and a few pooled reader connections
//!   (WAL lets them read while a write is in progress).
//! - PostgreSQL: a small pool of connections; writes are SERIALIZABLE transactions, run
//!   again when the server reports a serialization failure or a deadlock, so that every
//!   read-then-write (a claim, a lease check, a build number) stays atomic between several
//!   masters; reads are read-only REPEATABLE READ snapshots. [`Store::open`] takes libpq-style
//!   URLs as the `postgres` crate parses them: `postgresql://user:password@host:port/db`,
//!   a Unix socket directory as `postgresql://user@%2Frun%2Fpostgresql/db` or
//!   `postgresql://user@/db?host=/run/postgresql`, and parameters such as `port`,
//!   `connect_timeout`, `application_name`, `options`. TLS is not supported (connect over a
//!   Unix socket, a private network or a tunnel). Messages show the URL with its password
//!   masked ([`Store::location`]).
//!
//! # Principal types
//!
//! - [`Store`]: the handle (cheap to clone) with one async method per operation. Statements
//!   run on tokio's blocking pool.
//! - Build requests ([`NewRequest`], [`BuildRequest`]): `queued → claimed → complete`.
//!   [`Store::claim_request`] is atomic (one of two claimers wins), a claim carries a
//!   [`Lease`], [`Store::start_build`] (the master's dispatch) claims, merges and creates
//!   the build in one transaction, and builds, steps and logs are written only with the
//!   lease of their build ([`Error::StaleLease`] otherwise). [`Store::finish_build`]
//!   completes the build's requests in the same transaction, and
//!   [`Store::mark_interrupted_builds`] (at master start) finishes what a crash left
//!   running and puts its requests back in the queue.
//! - Builds and steps ([`Build`], [`Step`], [`BuildDetails`], [`BuilderSummary`]) and the
//!   queries the API pages on ([`Store::list_builds`] by id, newest first).
//! - Logs: [`LogWriter`] appends output as it arrives in compressed chunks of at most
//!   [`CHUNK_BYTES`], masks secrets ([`Masker`]) and caps the stored size with a visible
//!   marker; [`LogReader`] reads byte ranges, pages of lines, text pages without the stream
//!   letters ([`LogReader::read_text`]), or a stream of chunks, also
//!   while the log is being written. No whole log is ever in memory.
//! - Changes ([`NewChange`], [`Change`]), poller state and [`SchedulerTimer`]s.
//! - Users (argon2 PHC hash strings, hashed by the caller) and settings.
//!
//! # Log format
//!
//! A log is a byte stream, stored as consecutive chunks. A [`LogKind::Text`] log stores the
//! bytes written, unchanged (apart from masking and the cap). A [`LogKind::Stdio`] log
//! stores one line per record, each starting with its stream's letter (`o` stdout, `e`
//! stderr, `h` header, Buildbot's `s` log encoding) and ending with `\n`: output is split
//! into lines per stream, so stdout and stderr interleave line by line, never inside a line.
//! A stream's unterminated last line is ended with `\n` when the log finishes, and a line
//! longer than [`MAX_LINE_BYTES`] is stored as several records of the same stream (no byte
//! is lost). Lines are numbered from 0; [`LogReader::read_lines`] returns them without the
//! letter and the newline.
//!
//! When a log reaches its cap ([`LogOptions::cap_bytes`], 100 MB by default) the writer
//! stores one line `[abo: log truncated after N bytes]` (a header line in a stdio log) and
//! from then on counts the bytes it drops ([`LogInfo::dropped_bytes`]) without storing
//! them. Secrets are masked as `***` before anything else, so neither the cap nor a chunk
//! boundary can expose part of one, and a secret split across two writes is still masked.

#![deny(missing_docs)]

/// Seeding a store with a large history for benchmarks (not for production use).
#[doc(hidden)]
pub mod bench_seed;
mod builds;
mod changes;
mod db;
mod error;
mod logs;
mod pg;
mod requests;
mod schema;
mod sqlite;
mod types;
mod users;
mod views;

pub use builds::{
    Build, BuildDetails, BuilderSummary, Interrupted, Properties, StartedBuild, Step, StepDetails,
    StepOutcome, StepUrl, MAX_PAGE,
};
pub use changes::{Change, NewChange, PollerMark, PushRecord, SchedulerTimer};
pub use error::{Error, Result};
pub use logs::{
    text_len, LinesPage, LogInfo, LogLine, LogOptions, LogPiece, LogReader, LogWriter, Masker,
    TextPage, CHUNK_BYTES, DEFAULT_LOG_CAP_BYTES, MASK, MAX_LINE_BYTES, MAX_READ_BYTES,
};
pub use requests::{BuildRequest, NewRequest};
pub use types::{
    BuildId, BuildResult, ChangeId, Lease, LogId, LogKind, RequestId, RequestState, StepId, Stream,
    Timestamp, UnknownWord,
};
pub use users::User;
pub use views::StatusStamp;

/// Migrations: the embedded lists and how to apply them, for tooling and tests.
pub mod migrations {
    pub use crate::schema::{latest_version, Migration, MIGRATIONS, POSTGRES_MIGRATIONS};
    pub use crate::sqlite::{migrate_file, schema_version, DEFAULT_FILE_NAME};
    use crate::{blocking, Location, Result};

    /// Applies the migrations up to `target` (all when `None`) to the database named by
    /// `url_or_path` (what [`Store::open`](crate::Store::open) accepts), in one
    /// transaction; returns the version reached. Prepares a database at an older version.
    pub async fn migrate(url_or_path: &str, target: Option<u32>) -> Result<u32> {
        match Location::parse(url_or_path)? {
            Location::Sqlite(path) => blocking(move || migrate_file(&path, target)).await,
            Location::Postgres(url) => blocking(move || crate::pg::migrate_url(&url, target)).await,
        }
    }

    /// The schema version of the database named by `url_or_path`, without migrating it (0
    /// for a new one).
    pub async fn version(url_or_path: &str) -> Result<u32> {
        match Location::parse(url_or_path)? {
            Location::Sqlite(path) => blocking(move || schema_version(&path)).await,
            Location::Postgres(url) => blocking(move || crate::pg::schema_version_url(&url)).await,
        }
    }
}

use db::Tx;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`Store::open`] was given, parsed.
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    fn parse(url_or_path: &str) -> Result<Location> {
        if pg::is_url(url_or_path) {
            Ok(Location::Postgres(url_or_path.to_owned()))
        } else if pg::is_scheme(url_or_path) {
            // `postgres:db` without `//` is a mistake, not a file to create.
            Err(Error::UnsupportedDatabase(url_or_path.to_owned()))
        } else {
            sqlite::resolve_location(url_or_path).map(Location::Sqlite)
        }
    }
}

/// `url_or_path` as messages may show it: a PostgreSQL URL with its password masked
/// (`postgresql://abo:***@db/abo`), anything else unchanged.
pub fn masked_location(url_or_path: &str) -> String {
    if pg::is_url(url_or_path) {
        pg::mask_url(url_or_path)
    } else {
        url_or_path.to_owned()
    }
}

/// The open database, on one backend or the other.
enum Backend {
    Sqlite(sqlite::Db),
    Postgres(pg::Db),
}

impl Backend {
    /// Runs `f` in a write transaction and commits if it returns `Ok`. `FnMut`: PostgreSQL
    /// may run it again after a serialization failure, so it must not consume its captures.
    fn write<T>(&self, f: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        match self {
            Backend::Sqlite(db) => db.write(f),
            Backend::Postgres(db) => db.write(f),
        }
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match self {
            Backend::Sqlite(db) => db.read(f),
            Backend::Postgres(db) => db.read(f),
        }
    }
}

/// The handle to abo's database. Clones share the connections.
#[derive(Clone)]
pub struct Store {
    db: Arc<Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location())
            .finish()
    }
}

impl Store {
    /// Opens (creating it if needed) the database named by `url_or_path` and applies the
    /// pending migrations. Accepted: a file path, a directory (the file
    /// [`migrations::DEFAULT_FILE_NAME`] in it, the master directory's default),
    /// `sqlite:PATH` / `sqlite://PATH`, or a `postgres://` / `postgresql://` URL of an
    /// existing database (see the crate documentation, "Backends"). Anything else is
    /// [`Error::UnsupportedDatabase`]; a server that cannot be reached is
    /// [`Error::Connect`].
    pub async fn open(url_or_path: &str) -> Result<Store> {
        let db = match Location::parse(url_or_path)? {
            Location::Sqlite(path) => {
                Backend::Sqlite(blocking(move || sqlite::Db::open(path)).await?)
            }
            Location::Postgres(url) => {
                Backend::Postgres(blocking(move || pg::Db::open(&url)).await?)
            }
        };
        Ok(Store { db: Arc::new(db) })
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &*self.db {
            Backend::Sqlite(db) => Some(db.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the database is, for messages: the SQLite file, or the PostgreSQL URL with its
    /// password masked.
    pub fn location(&self) -> String {
        match &*self.db {
            Backend::Sqlite(db) => db.path().display().to_string(),
            Backend::Postgres(db) => db.location().to_owned(),
        }
    }

    /// Empties the page caches of the connections not in use (SQLite; nothing on
    /// PostgreSQL, whose caches are the server's). A burst of builds leaves them full:
    /// 1.0 MB of pages between the writer and the pooled readers, kept while the master
    /// idles; the pages stay in the system's page cache, microseconds away. Also frees the
    /// log compressors kept for reuse when none was used since the previous call.
    pub async fn release_memory(&self) -> Result<()> {
        logs::release_idle_compressors();
        let db = self.db.clone();
        blocking(move || match &*db {
            Backend::Sqlite(db) => db.release_memory(),
            Backend::Postgres(_) => Ok(()),
        })
        .await
    }

    /// Runs `f` in a write transaction on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.write(f)).await
    }

    /// Runs `f` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.read(f)).await
    }
}

/// Runs blocking work (database calls, compression) off the async threads.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}
