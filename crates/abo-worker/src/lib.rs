//! abo's worker: connects out to the master and runs its remote commands, speaking
//! Buildbot's msgpack worker protocol as buildbot-worker 4.3.0 does (through `abo-proto`,
//! the only crate that knows the wire format), but stricter: it answers keepalives and
//! pings, kills its commands' process groups when the connection drops, and cuts long
//! output lines without losing a character.
//!
//! # Principal types
//!
//! - [`Settings`]: `worker.toml` ([`settings::create`] writes one, mode 0600).
//! - [`run`]: the worker itself, until the master sends `shutdown` ([`Exit::Shutdown`]) or
//!   the caller's stop token fires ([`Exit::Stopped`]); reconnects with [`backoff`].
//! - `commands` (private): one task per remote command. `shell` runs its process as the
//!   leader of a new process group; output goes through [`lines::LineSplitter`] (newlines,
//!   long lines) and [`output::OutputBuffer`] (batching, bounded) to the master.
//! - [`mod@env`] and [`paths`]: how the master's `env` and paths are applied, as pure functions.
//! - [`detect`]: `abo worker detect`, this machine's capability lines for `workers.cfg`.
//! - [`Error`]: the one error type.
//!
//! The worker depends on no other abo crate than `abo-proto`: it knows nothing of
//! configurations, plans or the database, only the protocol.

#![warn(missing_docs)]

mod buffers;
mod commands;
mod conn;
pub mod detect;
pub mod env;
mod error;
pub mod info;
pub mod lines;
pub mod output;
pub mod paths;
pub mod settings;

pub use conn::{backoff, run, Exit};
pub use error::Error;
pub use settings::{MasterAddr, NewWorker, Password, Settings};

/// Whether the process runs with effective user id 0.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}
