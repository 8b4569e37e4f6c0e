//! [`Error`]: everything that stops the worker from starting or running.
//!
//! What goes wrong *inside* a remote command is not an `Error`: it is reported to the master
//! (`rc`, `stderr`, a failure text in `complete`), as the protocol expects. Connection
//! failures are retried, not returned.

use std::path::PathBuf;

/// Why a worker could not be created or could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// `abo worker create` found a settings file already there.
    #[error("{0} already exists: refusing to overwrite it")]
    Exists(PathBuf),
    /// The settings file is not valid.
    #[error("{path}: {message}")]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// What is wrong, and what would be right.
        message: String,
    },
    /// A setting's value is not valid (from the command line or the file).
    #[error("{0}")]
    Invalid(String),
    /// The worker was asked to run as root without `--allow-root`.
    #[error(
        "refusing to run as root: the master can run any command on this worker, so run it as \
         a dedicated unprivileged user (or pass --allow-root if you really mean it)"
    )]
    Root,
    /// The async runtime or a signal handler could not be set up.
    #[error("cannot start the worker runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
