//! abo's store: every SQL statement of abo lives in this crate. An SQLite file in the master
//! directory (WAL mode) holds build requests, builds, steps, logs, changes, pollers' last
//! seen revisions, scheduler timers and users; migrations are embedded, versioned and
//! applied when the store opens.
//!
//! # Principal types
//!
//! - [`Store`]: the handle (cheap to clone) with one async method per operation. Statements
//!   run on tokio's blocking pool: one writer connection (writes are short transactions,
//!   serialized in-process) and a few pooled reader connections (WAL lets them read while
//!   a write is in progress).
//! - Build requests ([`NewRequest`], [`BuildRequest`]): `queued → claimed → complete`.
//!   [`Store::claim_request`] is atomic (one of two claimers wins), a claim carries a
//!   [`Lease`], and builds, steps and logs are written only with the lease of their build
//!   ([`Error::StaleLease`] otherwise). [`Store::finish_build`] completes the build's
//!   requests in the same transaction, and [`Store::mark_interrupted_builds`] (at master
//!   start) finishes what a crash left running and puts its requests back in the queue.
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
mod error;
mod logs;
mod requests;
mod sqlite;
mod types;
mod users;
mod views;

pub use builds::{
    Build, BuildDetails, BuilderSummary, Interrupted, Step, StepDetails, StepOutcome, StepUrl,
    MAX_PAGE,
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

/// Migrations: the embedded list and how to apply it, for tooling and tests.
pub mod migrations {
    pub use crate::sqlite::{
        latest_version, migrate_file, schema_version, Migration, DEFAULT_FILE_NAME, MIGRATIONS,
    };
}

use sqlite::Db;
use std::path::Path;
use std::sync::Arc;

/// The handle to abo's database. Clones share the connections.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Store {
    /// Opens (creating it if needed) the database named by `url_or_path` and applies the
    /// pending migrations. Accepted: a file path, a directory (the file
    /// [`migrations::DEFAULT_FILE_NAME`] in it, the master directory's default), or
    /// `sqlite:PATH` / `sqlite://PATH`. `postgres://` URLs are refused with
    /// [`Error::UnsupportedDatabase`] until that backend exists.
    pub async fn open(url_or_path: &str) -> Result<Store> {
        let path = sqlite::resolve_location(url_or_path)?;
        let db = blocking(move || Db::open(path)).await?;
        Ok(Store { db: Arc::new(db) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Runs `f` in a write transaction on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.write(f)).await
    }

    /// Runs `f` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.read(f)).await
    }
}

/// Runs blocking work (SQLite, compression) off the async threads.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}
