//! [`Error`], the crate's one error type, and [`LostReason`], why a connection ended.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong when starting the master or using a [`crate::WorkerConnection`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address as configured.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection this handle belongs to has ended (the worker may have reconnected since:
    /// ask the registry for the new connection).
    #[error("worker {worker} is not connected ({reason})")]
    Disconnected {
        /// The worker's name.
        worker: String,
        /// Why the connection ended, when known.
        reason: LostReason,
    },
    /// The worker did not answer a request in time.
    #[error("worker {worker} did not answer {op} within {after:?}")]
    Timeout {
        /// The worker's name.
        worker: String,
        /// The request's op.
        op: &'static str,
        /// The timeout in force.
        after: Duration,
    },
    /// The worker answered a request with an exception.
    #[error("worker {worker} refused {op}: {message}")]
    Refused {
        /// The worker's name.
        worker: String,
        /// The request's op.
        op: &'static str,
        /// The worker's error text.
        message: String,
    },
    /// The worker's answer had an unexpected shape (e.g. `get_worker_info` not a map).
    #[error("worker {worker} answered {op} unexpectedly: {detail}")]
    BadAnswer {
        /// The worker's name.
        worker: String,
        /// The request's op.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A master-side file of a transfer could not be opened or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A relative path would leave the directory it must stay in.
    #[error("{path:?} is not a relative path inside {}", root.display())]
    EscapingPath {
        /// The offending path.
        path: String,
        /// The directory it must stay in.
        root: PathBuf,
    },
    /// The build store could not be opened or prepared at start.
    #[error("the build store: {0}")]
    Store(#[from] abo_store::Error),
    /// The build runner could not be prepared (artifacts directory, ...).
    #[error("{0}")]
    Setup(String),
    /// `run` was given a transfer command: those need a master-side file, so use
    /// `upload_file`, `upload_directory` or `download_file`.
    #[error("{kind} needs a master-side file: use the WorkerConnection method of that name")]
    TransferThroughRun {
        /// The command's kind.
        kind: abo_proto::CommandKind,
    },
}

/// Why a worker connection ended. Every command still running on it ends as
/// [`crate::End::Lost`] with this reason (the stock worker keeps running them, unseen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// The worker closed the connection (close frame, EOF, reset), e.g. after `shutdown`.
    Closed,
    /// Nothing, not even a pong, arrived for the configured `lost_after`.
    Silent(Duration),
    /// A new connection authenticated under the same name and took over.
    Replaced,
    /// The worker sent a frame over `max_frame_bytes` (refused from its header).
    FrameTooLarge(String),
    /// The worker broke the protocol (a frame that does not decode, an unanswered setup
    /// request, ...).
    Protocol(String),
    /// Reading or writing the socket failed.
    Io(String),
    /// The master is shutting down.
    Shutdown,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Closed => f.write_str("the worker closed the connection"),
            LostReason::Silent(d) => write!(f, "no sign of life for {:.1} s", d.as_secs_f64()),
            LostReason::Replaced => f.write_str("replaced by a new connection of the same worker"),
            LostReason::FrameTooLarge(why) => write!(f, "frame refused: {why}"),
            LostReason::Protocol(why) => write!(f, "protocol error: {why}"),
            LostReason::Io(why) => write!(f, "connection error: {why}"),
            LostReason::Shutdown => f.write_str("the master is shutting down"),
        }
    }
}
