//! Remote commands: one task per `start_command`, talking to the connection through a
//! [`Ctx`].
//!
//! A command task owns everything about its command (processes, files, buffered output) and
//! ends by sending `complete`, unless the connection was lost, in which case it kills what
//! it started and returns quietly (nobody is left to tell). Output goes out through
//! [`Ctx::update`], which keeps at most [`UPDATE_WINDOW`] updates unanswered per command:
//! that window, together with the bounded [`crate::output::OutputBuffer`], is the worker's
//! backpressure. A slow master slows the command's reads, so the process blocks on its
//! full pipe instead of the worker's memory growing.

mod fs;
mod process;
mod shell;
mod transfer;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use abo_proto::{Command, CommandId, UpdateEntry, WorkerReply, WorkerRequest};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::buffers::Buffers;
use crate::output::OutputBuffer;

/// Updates a command may have sent and not yet seen answered before it waits.
pub const UPDATE_WINDOW: usize = 8;

/// What a command task asks of the connection.
#[derive(Debug)]
pub(crate) struct ToConn {
    pub(crate) request: WorkerRequest,
    /// Where the master's answer goes; `None` when nobody waits for it.
    pub(crate) reply: Option<oneshot::Sender<WorkerReply>>,
}

/// The connection is gone: the command must stop without reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost;

/// Output settings in force for commands started now (`set_worker_settings` changes them
/// for later commands only, as with the stock worker).
#[derive(Debug, Clone)]
pub(crate) struct OutputSettings {
    pub(crate) buffer_size: usize,
    pub(crate) buffer_timeout: Duration,
    pub(crate) max_line: usize,
    /// The connection's buffers, which gathered output text is taken from.
    pub(crate) buffers: Arc<Buffers>,
}

impl OutputSettings {
    pub(crate) fn buffer(&self) -> OutputBuffer {
        OutputBuffer::new(self.buffer_size, self.buffer_timeout).recycling(&self.buffers)
    }
}

/// What every command of a session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) basedir: PathBuf,
    /// The worker's own environment, for `${VAR}` expansion and headers (non-UTF-8
    /// variables are left out here, but still inherited by processes).
    pub(crate) worker_env: BTreeMap<String, String>,
    pub(crate) kill_grace: Duration,
}

/// A command task's link to the connection.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) id: CommandId,
    tx: mpsc::UnboundedSender<ToConn>,
    in_flight: VecDeque<oneshot::Receiver<WorkerReply>>,
    /// Cancelled when the connection is lost or the worker stops.
    pub(crate) lost: CancellationToken,
    /// Cancelled by `interrupt_command`.
    pub(crate) interrupt: CancellationToken,
    pub(crate) output: OutputSettings,
    pub(crate) shared: Arc<Shared>,
}

impl Ctx {
    pub(crate) fn new(
        id: CommandId,
        tx: mpsc::UnboundedSender<ToConn>,
        lost: CancellationToken,
        interrupt: CancellationToken,
        output: OutputSettings,
        shared: Arc<Shared>,
    ) -> Ctx {
        Ctx {
            id,
            tx,
            in_flight: VecDeque::new(),
            lost,
            interrupt,
            output,
            shared,
        }
    }

    /// Sends an `update`, waiting first if [`UPDATE_WINDOW`] updates are unanswered.
    pub(crate) async fn update(&mut self, entries: Vec<UpdateEntry>) -> Result<(), Lost> {
        if entries.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= UPDATE_WINDOW {
            let Some(oldest) = self.in_flight.pop_front() else {
                break;
            };
            let reply = tokio::select! {
                r = oldest => r.map_err(|_| Lost)?,
                _ = self.lost.cancelled() => return Err(Lost),
            };
            if let WorkerReply::Exception(text) = reply {
                // The stock worker only logs these too: the output is gone either way.
                tracing::warn!(command = %self.id, "the master refused an update: {text}");
            }
        }
        let (tx, rx) = oneshot::channel();
        self.send(
            WorkerRequest::Update {
                command_id: self.id.clone(),
                entries,
            },
            Some(tx),
        )?;
        self.in_flight.push_back(rx);
        Ok(())
    }

    /// Sends everything buffered in `out`.
    pub(crate) async fn flush(&mut self, out: &mut OutputBuffer) -> Result<(), Lost> {
        let entries = out.take();
        self.update(entries).await
    }

    /// Sends a request and waits for its answer (transfer chunks: stop-and-wait).
    pub(crate) async fn call(&mut self, request: WorkerRequest) -> Result<WorkerReply, Lost> {
        let (tx, rx) = oneshot::channel();
        self.send(request, Some(tx))?;
        tokio::select! {
            r = rx => r.map_err(|_| Lost),
            _ = self.lost.cancelled() => Err(Lost),
        }
    }

    /// Sends `complete`: nothing more will come for this command.
    pub(crate) fn complete(self, failure: Option<String>) {
        let _ = self.send(
            WorkerRequest::Complete {
                command_id: self.id.clone(),
                failure,
            },
            None,
        );
    }

    fn send(
        &self,
        request: WorkerRequest,
        reply: Option<oneshot::Sender<WorkerReply>>,
    ) -> Result<(), Lost> {
        if self.lost.is_cancelled() {
            return Err(Lost);
        }
        self.tx.send(ToConn { request, reply }).map_err(|_| Lost)
    }
}

/// Seconds since the Unix epoch, for `line_times` and `utime`.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs one command to its end. Returns the command id, so the connection can forget it.
pub(crate) async fn run(command: Command, ctx: Ctx) -> CommandId {
    let id = ctx.id.clone();
    let kind = command.kind();
    tracing::debug!(command = %id, "{kind} started");
    match command {
        Command::Shell(args) => shell::run(*args, ctx).await,
        Command::UploadFile(args) => transfer::upload_file(args, ctx).await,
        Command::UploadDirectory(args) => transfer::upload_directory(args, ctx).await,
        Command::DownloadFile(args) => transfer::download_file(args, ctx).await,
        Command::Mkdir { paths } => fs::mkdir(paths, ctx).await,
        Command::Rmdir(args) => fs::rmdir(args, ctx).await,
        Command::Cpdir(args) => fs::cpdir(args, ctx).await,
        Command::Stat { path } => fs::stat(path, ctx).await,
        Command::Glob { path } => fs::glob(path, ctx).await,
        Command::Listdir { path } => fs::listdir(path, ctx).await,
        Command::Rmfile { path } => fs::rmfile(path, ctx).await,
    }
    tracing::debug!(command = %id, "{kind} finished");
    id
}

/// The text of an OS error the way Python's `strerror` gives it (`No such file or
/// directory`), and the errno for `rc`.
pub(crate) fn os_error(e: &std::io::Error) -> (String, i64) {
    match e.raw_os_error() {
        Some(code) => (
            nix::errno::Errno::from_raw(code).desc().to_owned(),
            i64::from(code),
        ),
        None => (e.to_string(), 1),
    }
}
