//! The store's one error type.

use crate::types::{BuildId, Lease, LogId, RequestId, RequestState};
use std::path::PathBuf;

/// Everything a store operation can fail with. Refusals that the runtime acts on (a request
/// already claimed, a stale lease) have their own variants; database trouble is
/// [`Error::Database`]; a stored value this abo cannot read is [`Error::Corrupt`], never a
/// panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite database file could not be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        /// The database URL, its password masked.
        url: String,
        /// What the client said.
        source: postgres::Error,
    },
    /// A database URL abo does not know how to open.
    #[error("unsupported database {0:?}: give a file path, a sqlite:PATH URL or a postgresql://USER@HOST/DB URL")]
    UnsupportedDatabase(String),
    /// SQLite refused or failed a statement.
    #[error("database error: {0}")]
    Database(rusqlite::Error),
    /// PostgreSQL refused or failed a statement (a constraint, a lost connection, ...).
    #[error("PostgreSQL error: {}", postgres_message(.0))]
    Postgres(postgres::Error),
    /// The database was migrated by a newer abo.
    #[error("the database schema is at version {found}, newer than this abo knows ({known}); use a newer abo")]
    SchemaTooNew {
        /// The highest version applied to the database.
        found: u32,
        /// The highest version this abo has.
        known: u32,
    },
    /// A migration applied to the database is not the one this abo has under that version:
    /// migrations are append-only, an edited one would leave schemas that differ silently.
    #[error("migration {version} ({name}) applied to this database differs from this abo's")]
    MigrationChanged {
        /// The migration's version.
        version: u32,
        /// Its name in this abo.
        name: &'static str,
    },
    /// A value read from the database that this abo cannot interpret.
    #[error("unreadable value in the database: {0}")]
    Corrupt(String),
    /// No build request with this id.
    #[error("build request {0} does not exist")]
    RequestNotFound(RequestId),
    /// The request is not in the state the operation needs (claiming one already claimed,
    /// completing one already complete).
    #[error("build request {id} is {state}, not {expected}")]
    RequestState {
        /// The request.
        id: RequestId,
        /// Its state.
        state: RequestState,
        /// What the operation needed.
        expected: &'static str,
    },
    /// The request was claimed with another lease than the one presented.
    #[error("build request {id} is claimed with lease {claimed:?}, not {presented}")]
    RequestLease {
        /// The request.
        id: RequestId,
        /// The lease it holds.
        claimed: Option<Lease>,
        /// The lease presented.
        presented: Lease,
    },
    /// The request still has a build running: requeueing it would run it twice at once.
    #[error("build request {id} has build {build} running")]
    BuildRunning {
        /// The request.
        id: RequestId,
        /// Its unfinished build.
        build: BuildId,
    },
    /// No build with this id.
    #[error("build {0} does not exist")]
    BuildNotFound(BuildId),
    /// A write about a build with a lease that is not the build's, or after the build
    /// finished (the dispatch it belonged to is over): the write is not made.
    #[error("stale lease {lease} for build {build}")]
    StaleLease {
        /// The build.
        build: BuildId,
        /// The lease presented.
        lease: Lease,
    },
    /// No step with this index in the build.
    #[error("build {build} has no step {index}")]
    StepNotFound {
        /// The build.
        build: BuildId,
        /// The step's index.
        index: u32,
    },
    /// A step with this index already exists in the build.
    #[error("build {build} already has a step {index}")]
    StepExists {
        /// The build.
        build: BuildId,
        /// The step's index.
        index: u32,
    },
    /// The step already has a log of this name.
    #[error("step {index} of build {build} already has a log {name:?}")]
    LogExists {
        /// The build.
        build: BuildId,
        /// The step's index.
        index: u32,
        /// The log's name.
        name: String,
    },
    /// No log with this id.
    #[error("log {0} does not exist")]
    LogNotFound(LogId),
    /// Something the caller passed that the store will not keep (a password that is not an
    /// argon2 hash, a name that is empty, ...).
    #[error("{0}")]
    Invalid(String),
    /// A user of this name already exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// Compressing or decompressing a log chunk failed.
    #[error("log chunk compression: {0}")]
    Compression(std::io::Error),
    /// The blocking task running the statement did not finish (the runtime is shutting
    /// down, or the task panicked).
    #[error("store task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            // A column whose value does not convert: the row was written by something else
            // than this abo. Named so, rather than as a database failure.
            rusqlite::Error::FromSqlConversionFailure(col, ty, inner) => {
                Error::Corrupt(format!("column {col} ({ty}): {inner}"))
            }
            rusqlite::Error::IntegralValueOutOfRange(col, v) => {
                Error::Corrupt(format!("column {col}: {v} is out of range"))
            }
            other => Error::Database(other),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

impl Error {
    /// Whether the database refused the statement for a constraint (a foreign key, a unique
    /// key): the same question on both backends.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Error::Database(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            Error::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }
}

/// The server's message with its detail, rather than the client's bare "db error".
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!(
                "{} ({}; SQLSTATE {})",
                db.message(),
                detail,
                db.code().code()
            ),
            None => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
