//! abo's master runtime: the worker port, live worker connections, and the JSON API.
//!
//! Workers (abo's own, or a stock `buildbot-worker` 4.3.0 created with
//! `--protocol msgpack_experimental_v7`) connect over WebSocket and speak Buildbot's msgpack
//! protocol; [`abo_proto`] knows the wire format, this crate does the I/O around it.
//!
//! # Principal types
//!
//! - [`start`] binds `worker-listen` (and `http-listen`) from a [`MasterConfig`] and returns a
//!   [`RunningMaster`], which owns every task and shuts them down cleanly.
//! - [`WorkerRegistry`]: the configured workers, who is connected since when, what each said
//!   in `get_worker_info` (environment excluded), [`RegistryEvent`]s when that changes.
//! - [`WorkerConnection`]: a cheap, clonable handle on one live connection, for the build
//!   runner: [`run`](WorkerConnection::run) a command and read its [`RunningCommand`] (a
//!   stream of update entries, then a [`CommandResult`]), transfer files
//!   ([`upload_file`](WorkerConnection::upload_file),
//!   [`upload_directory`](WorkerConnection::upload_directory),
//!   [`download_file`](WorkerConnection::download_file)), interrupt, and the fs commands.
//! - [`Error`], and [`LostReason`] for why a connection ended.
//!
//! # Rules the connections follow
//!
//! - **Authentication** happens in the WebSocket upgrade (HTTP Basic). Passwords are
//!   compared in constant time (as SHA-256 digests, so lengths do not leak either); an
//!   unknown worker or a wrong password gets `401` and a log line naming the worker and the
//!   peer, never the password.
//! - **Duplicates**: a newly authenticated connection replaces the registered one, whose
//!   commands end as lost (see [`WorkerRegistry`] for why).
//! - **Liveness**: a WebSocket ping every `ping_interval` (15 s); a worker that sends nothing
//!   for `lost_after` (45 s) is lost.
//! - **Frames** over `max_frame_bytes` are refused by the WebSocket layer from their header,
//!   before any payload is read; a frame that does not decode is answered with an exception
//!   when it was a request whose seq_number could be read, else it closes the connection.
//!   Either way only that connection pays. A worker can only address its own commands and
//!   transfers ([`abo_proto::MasterSession`] enforces it).
//! - **Backpressure**: each command's updates go through a bounded queue
//!   ([`handle::UPDATE_QUEUE`]); when its consumer lags, the connection stops reading.
//! - **Transfers** stream to and from disk, one block at a time; uploads are installed only
//!   when the worker reports success, and never outside their destination.
//!
//! ```no_run
//! # async fn example() -> Result<(), abo_master::Error> {
//! use abo_master::{MasterConfig, WorkerAccount};
//! use abo_proto::{Command, CommandLine, ShellArgs, UpdateEntry};
//!
//! let account = WorkerAccount { name: "w1".into(), password: "secret".into(), capabilities: vec![] };
//! let master = abo_master::start(MasterConfig::new("127.0.0.1:9989", vec![account])).await?;
//! let worker = master.registry().wait_for("w1").await;
//! let basedir = worker.info().basedir.clone().unwrap_or_default();
//! let shell = ShellArgs::new(basedir, CommandLine::Argv(vec!["echo".into(), "hi".into()]));
//! let mut cmd = worker.run(Command::Shell(Box::new(shell))).await?;
//! while let Some(entry) = cmd.next().await {
//!     if let UpdateEntry::Stdout(lines) = entry {
//!         print!("{}", lines.text);
//!     }
//! }
//! let result = cmd.result().await;
//! assert!(result.is_success());
//! master.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod api;
mod changes_api;
mod config;
mod connection;
mod error;
pub mod handle;
mod http;
mod login_throttle;
mod master_api;
mod registry;
mod runner;
mod scheduling;
mod server;
mod transfer;
mod web;
mod webhook;

pub use abo_vcs::PollerOptions;
pub use api::{hash_password, verify_password, AUTH_CACHE_FOR};
pub use config::{
    BuildSetup, Capability, MasterConfig, Timing, Webhooks, WorkerAccount,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LOST_AFTER, DEFAULT_MAX_LINE_LENGTH, DEFAULT_PING_INTERVAL,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use error::{Error, LostReason};
pub use handle::{
    CommandResult, DownloadFile, End, Interrupter, RunningCommand, UploadDirectory, UploadFile,
    WorkerConnection,
};
pub use http::router;
pub use registry::{ConnectionStatus, PublicInfo, RegistryEvent, WorkerRegistry, WorkerStatus};
pub use server::{start, RunningMaster};
pub use transfer::{confine, TransferReport};
