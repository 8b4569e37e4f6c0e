//! [`WorkerConnection`]: the build runner's handle on one live worker connection, and
//! [`RunningCommand`]: one remote command's updates and result.
//!
//! A handle only sends requests to the connection's task, which owns the socket and the
//! protocol session; every answer comes back through a channel. When the connection ends,
//! every method fails with [`Error::Disconnected`] and every running command ends as
//! [`End::Lost`].

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use abo_proto::{
    Command, CommandId, CommandKind, Compression, CpdirArgs, FailureReason, Reply, RmdirArgs,
    StatResult, UpdateEntry, WorkerInfo, WorkerSettings,
};
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::connection::{Call, Finished, Request, StartRequest, TransferEnd};
use crate::error::{Error, LostReason};
use crate::transfer::{DownloadSource, SinkKind, TransferReport, UploadSink};

/// How many `update` messages of one command may wait for its consumer. Each is at most
/// the worker's buffer size (64 KiB by default), so a command that outputs faster than its
/// consumer reads holds a few MiB at most; beyond that the connection stops reading the
/// socket until the consumer catches up.
pub const UPDATE_QUEUE: usize = 16;

/// Default block size of uploads and downloads: the stock master's FileUpload size.
pub const DEFAULT_BLOCKSIZE: u64 = 256 * 1024;

/// How much header and stderr text [`RunningCommand::result`] keeps for
/// [`CommandResult::messages`].
const MESSAGES_CAP: usize = 64 * 1024;

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) generation: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) since: SystemTime,
    pub(crate) info: WorkerInfo,
    pub(crate) requests: mpsc::Sender<Request>,
    /// Cancelled when the connection task has ended.
    pub(crate) ended: CancellationToken,
    /// Why it ended, set just before `ended` is cancelled.
    pub(crate) lost: Arc<OnceLock<LostReason>>,
}

/// A handle on one live worker connection. Cheap to clone; every clone talks to the same
/// connection task. It never reconnects: when the worker comes back, the registry holds a
/// new `WorkerConnection` with a higher [`generation`](WorkerConnection::generation).
#[derive(Clone)]
pub struct WorkerConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConnection")
            .field("name", &self.inner.name)
            .field("generation", &self.inner.generation)
            .field("peer", &self.inner.peer)
            .finish()
    }
}

/// Arguments of [`WorkerConnection::upload_file`].
#[derive(Debug, Clone)]
pub struct UploadFile {
    /// Absolute path of the file on the worker.
    pub worker_path: String,
    /// Master path it is installed at (parents are created; see [`crate::confine`] to build
    /// it from untrusted parts).
    pub dest: PathBuf,
    /// Refuse (and do not install) more than this many bytes.
    pub maxsize: Option<u64>,
    /// Bytes per block.
    pub blocksize: u64,
    /// Keep the worker file's access and modification times.
    pub keepstamp: bool,
}

impl UploadFile {
    /// An upload with the default block size, no size limit, no times kept.
    pub fn new(worker_path: impl Into<String>, dest: impl Into<PathBuf>) -> UploadFile {
        UploadFile {
            worker_path: worker_path.into(),
            dest: dest.into(),
            maxsize: None,
            blocksize: DEFAULT_BLOCKSIZE,
            keepstamp: false,
        }
    }
}

/// Arguments of [`WorkerConnection::upload_directory`].
#[derive(Debug, Clone)]
pub struct UploadDirectory {
    /// Absolute path of the directory on the worker.
    pub worker_path: String,
    /// Master directory the tree is extracted into (created; archive members that would
    /// leave it are refused).
    pub dest: PathBuf,
    /// Refuse (and do not extract) a tar stream longer than this.
    pub maxsize: Option<u64>,
    /// Bytes per block.
    pub blocksize: u64,
    /// Compression of the tar stream.
    pub compress: Option<Compression>,
}

impl UploadDirectory {
    /// An uncompressed upload with the default block size and no size limit.
    pub fn new(worker_path: impl Into<String>, dest: impl Into<PathBuf>) -> UploadDirectory {
        UploadDirectory {
            worker_path: worker_path.into(),
            dest: dest.into(),
            maxsize: None,
            blocksize: DEFAULT_BLOCKSIZE,
            compress: None,
        }
    }
}

/// Arguments of [`WorkerConnection::download_file`].
#[derive(Debug, Clone)]
pub struct DownloadFile {
    /// Master file to send (opened before the command starts).
    pub src: PathBuf,
    /// Absolute path the worker writes (it creates the parents).
    pub worker_path: String,
    /// The worker stops (and fails) after this many bytes.
    pub maxsize: Option<u64>,
    /// Bytes per block.
    pub blocksize: u64,
    /// Permission bits of the worker file.
    pub mode: Option<u32>,
}

impl DownloadFile {
    /// A download with the default block size, no size limit and the worker's default mode.
    pub fn new(src: impl Into<PathBuf>, worker_path: impl Into<String>) -> DownloadFile {
        DownloadFile {
            src: src.into(),
            worker_path: worker_path.into(),
            maxsize: None,
            blocksize: DEFAULT_BLOCKSIZE,
            mode: None,
        }
    }
}

async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })
    })
}

impl WorkerConnection {
    pub(crate) fn new(inner: Inner) -> WorkerConnection {
        WorkerConnection {
            inner: Arc::new(inner),
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This connection's number for the worker: 1 for its first connection since the
    /// master started, then 2, ...
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The worker's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    /// When the connection opened.
    pub fn since(&self) -> SystemTime {
        self.inner.since
    }

    /// What the worker answered to `get_worker_info` when it connected. Its `environ` is the
    /// worker's whole environment: use single variables (e.g. `HOME` to expand `~`), never
    /// show it whole.
    pub fn info(&self) -> &WorkerInfo {
        &self.inner.info
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.ended.is_cancelled()
    }

    /// Waits until the connection has ended, and says why.
    pub async fn closed(&self) -> LostReason {
        self.inner.ended.cancelled().await;
        self.lost_reason()
    }

    fn lost_reason(&self) -> LostReason {
        self.inner
            .lost
            .get()
            .cloned()
            .unwrap_or_else(|| LostReason::Io("the connection task ended".into()))
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            worker: self.inner.name.clone(),
            reason: self.lost_reason(),
        }
    }

    async fn send(&self, request: Request) -> Result<(), Error> {
        self.inner
            .requests
            .send(request)
            .await
            .map_err(|_| self.disconnected())
    }

    async fn call(&self, call: Call) -> Result<Reply, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Call { call, reply }).await?;
        answer.await.map_err(|_| self.disconnected())?
    }

    /// Asks the worker to log a message.
    pub async fn print(&self, message: impl Into<String>) -> Result<(), Error> {
        self.call(Call::Print(message.into())).await.map(drop)
    }

    /// An application-level keepalive (liveness uses WebSocket pings; this checks that the
    /// worker's protocol layer answers).
    pub async fn keepalive(&self) -> Result<(), Error> {
        self.call(Call::Keepalive).await.map(drop)
    }

    /// Asks the worker about itself again.
    pub async fn get_worker_info(&self) -> Result<WorkerInfo, Error> {
        match self.call(Call::GetWorkerInfo).await? {
            Reply::WorkerInfo(info) => Ok(*info),
            other => Err(Error::BadAnswer {
                worker: self.inner.name.clone(),
                op: "get_worker_info",
                detail: format!("{other:?}"),
            }),
        }
    }

    /// Output buffering and line splitting for commands started afterwards.
    pub async fn set_worker_settings(&self, settings: WorkerSettings) -> Result<(), Error> {
        self.call(Call::SetWorkerSettings(settings)).await.map(drop)
    }

    /// Asks the worker process to exit for good (it does not reconnect).
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.call(Call::Shutdown).await.map(drop)
    }

    /// Interrupts a running command: the worker flushes its output, then kills the process
    /// group (shell) or stops at the next block (transfers). Nothing happens if the command
    /// is no longer running.
    pub async fn interrupt(
        &self,
        command: &CommandId,
        why: impl Into<String>,
    ) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Interrupt {
            id: command.clone(),
            why: why.into(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| self.disconnected())?.map(drop)
    }

    async fn start(
        &self,
        builder: Option<String>,
        command: Command,
        transfer: Option<TransferEnd>,
    ) -> Result<RunningCommand, Error> {
        let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
        let (done_tx, done) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        self.send(Request::Start(Box::new(StartRequest {
            builder,
            command,
            transfer,
            updates: updates_tx,
            done: done_tx,
            started: started_tx,
        })))
        .await?;
        let id = started.await.map_err(|_| self.disconnected())?;
        Ok(RunningCommand {
            worker: self.clone(),
            id,
            updates,
            queue: VecDeque::new(),
            done,
            finished: None,
            seen: Seen::default(),
        })
    }

    /// Starts a command that needs no master-side file: `shell`, `mkdir`, `rmdir`, `cpdir`,
    /// `stat`, `glob`, `listdir`, `rmfile`. Transfers have their own methods.
    pub async fn run(&self, command: Command) -> Result<RunningCommand, Error> {
        self.run_for(None, command).await
    }

    /// [`run`](WorkerConnection::run), naming the builder in the worker's log.
    pub async fn run_for(
        &self,
        builder: Option<&str>,
        command: Command,
    ) -> Result<RunningCommand, Error> {
        match command.kind() {
            kind @ (CommandKind::UploadFile
            | CommandKind::UploadDirectory
            | CommandKind::DownloadFile) => Err(Error::TransferThroughRun { kind }),
            CommandKind::Shell
            | CommandKind::Mkdir
            | CommandKind::Rmdir
            | CommandKind::Cpdir
            | CommandKind::Stat
            | CommandKind::Glob
            | CommandKind::Listdir
            | CommandKind::Rmfile => self.start(builder.map(str::to_owned), command, None).await,
        }
    }

    /// Starts sending a worker file to the master. The file is written to a temporary file
    /// beside `dest` and renamed into place only if the worker completes with rc 0 and
    /// `maxsize` was respected.
    pub async fn upload_file(&self, req: UploadFile) -> Result<RunningCommand, Error> {
        let dest = req.dest.clone();
        let maxsize = req.maxsize;
        let sink = blocking(&req.dest, move || {
            UploadSink::create(SinkKind::File, dest, maxsize)
        })
        .await?;
        let command = Command::UploadFile(abo_proto::UploadFileArgs {
            path: req.worker_path,
            blocksize: req.blocksize.max(1),
            maxsize: req.maxsize,
            keepstamp: Some(req.keepstamp),
        });
        self.start(None, command, Some(TransferEnd::Upload(sink)))
            .await
    }

    /// Starts sending a worker directory to the master as a tar stream, spooled to disk and
    /// extracted into `dest` only if the worker completes with rc 0 and `maxsize` was
    /// respected.
    pub async fn upload_directory(&self, req: UploadDirectory) -> Result<RunningCommand, Error> {
        let dest = req.dest.clone();
        let (maxsize, compress) = (req.maxsize, req.compress);
        let sink = blocking(&req.dest, move || {
            UploadSink::create(SinkKind::Directory(compress), dest, maxsize)
        })
        .await?;
        let command = Command::UploadDirectory(abo_proto::UploadDirectoryArgs {
            path: req.worker_path,
            blocksize: req.blocksize.max(1),
            maxsize: req.maxsize,
            compress: req.compress,
        });
        self.start(None, command, Some(TransferEnd::Upload(sink)))
            .await
    }

    /// Starts sending a master file to the worker, block by block as the worker asks.
    pub async fn download_file(&self, req: DownloadFile) -> Result<RunningCommand, Error> {
        let src = req.src.clone();
        let blocksize = req.blocksize.max(1);
        let source = blocking(&req.src, move || DownloadSource::open(src, blocksize)).await?;
        let command = Command::DownloadFile(abo_proto::DownloadFileArgs {
            path: req.worker_path,
            blocksize,
            maxsize: req.maxsize,
            mode: req.mode,
        });
        self.start(None, command, Some(TransferEnd::Download(source)))
            .await
    }

    /// Runs `mkdir` (each path with its parents) and waits for the result.
    pub async fn mkdir(&self, paths: Vec<String>) -> Result<CommandResult, Error> {
        Ok(self.run(Command::Mkdir { paths }).await?.result().await)
    }

    /// Runs `rmdir` (whole trees) and waits for the result.
    pub async fn rmdir(&self, paths: Vec<String>) -> Result<CommandResult, Error> {
        let args = RmdirArgs {
            paths,
            log_environ: Some(false),
            timeout: None,
            max_time: None,
        };
        Ok(self.run(Command::Rmdir(args)).await?.result().await)
    }

    /// Runs `cpdir` and waits for the result.
    pub async fn cpdir(
        &self,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> Result<CommandResult, Error> {
        let args = CpdirArgs {
            from_path: from.into(),
            to_path: to.into(),
            log_environ: Some(false),
            timeout: None,
            max_time: None,
        };
        Ok(self.run(Command::Cpdir(args)).await?.result().await)
    }

    /// Runs `stat`; the result's [`CommandResult::stat`] holds the answer.
    pub async fn stat(&self, path: impl Into<String>) -> Result<CommandResult, Error> {
        let path = path.into();
        Ok(self.run(Command::Stat { path }).await?.result().await)
    }

    /// Runs `glob`; the result's [`CommandResult::files`] holds the matches.
    pub async fn glob(&self, pattern: impl Into<String>) -> Result<CommandResult, Error> {
        let path = pattern.into();
        Ok(self.run(Command::Glob { path }).await?.result().await)
    }

    /// Runs `listdir`; the result's [`CommandResult::files`] holds the entry names.
    pub async fn listdir(&self, path: impl Into<String>) -> Result<CommandResult, Error> {
        let path = path.into();
        Ok(self.run(Command::Listdir { path }).await?.result().await)
    }

    /// Runs `rmfile` and waits for the result.
    pub async fn rmfile(&self, path: impl Into<String>) -> Result<CommandResult, Error> {
        let path = path.into();
        Ok(self.run(Command::Rmfile { path }).await?.result().await)
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The worker sent `complete`; `failure` is its error text when the command raised
    /// (a failed shell command still completes without one: look at `rc`).
    Complete {
        /// The worker's failure text.
        failure: Option<String>,
    },
    /// The worker refused to start the command (`start_command` answered with an exception).
    Refused(String),
    /// The connection ended first; the command may still be running on the worker.
    Lost(LostReason),
    /// The worker never answered `start_command` and sent nothing about it within the
    /// request timeout; the master sent an interrupt and stopped following it.
    Unanswered,
}

/// What a command did: how it ended, its last `rc`, and the results it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    /// How it ended.
    pub end: End,
    /// The last `rc` (exit code, errno for fs commands, 1 for failed transfers, -1 when
    /// killed); `None` if the worker sent none.
    pub rc: Option<i64>,
    /// `elapsed`, when the command was not interrupted.
    pub elapsed: Option<f64>,
    /// Why the worker killed a shell command.
    pub failure_reason: Option<FailureReason>,
    /// `files` of `listdir` and `glob`.
    pub files: Option<Vec<String>>,
    /// `stat` of `stat`.
    pub stat: Option<StatResult>,
    /// The master's side of a transfer.
    pub transfer: Option<TransferReport>,
    /// Header and stderr text, the first 64 KiB (filled by [`RunningCommand::result`] from
    /// updates not consumed before).
    pub messages: String,
}

impl CommandResult {
    /// Completed without a failure, with rc 0, and the master's side of a transfer (if any)
    /// succeeded.
    pub fn is_success(&self) -> bool {
        self.end == End::Complete { failure: None }
            && self.rc == Some(0)
            && self.transfer.as_ref().is_none_or(|t| t.error.is_none())
    }
}

#[derive(Debug, Default)]
struct Seen {
    rc: Option<i64>,
    elapsed: Option<f64>,
    failure_reason: Option<FailureReason>,
    files: Option<Vec<String>>,
    stat: Option<StatResult>,
}

impl Seen {
    fn observe(&mut self, entry: &UpdateEntry) {
        match entry {
            UpdateEntry::Rc(rc) => self.rc = Some(*rc),
            UpdateEntry::Elapsed(s) => self.elapsed = Some(*s),
            UpdateEntry::FailureReason(r) => self.failure_reason = Some(r.clone()),
            UpdateEntry::Files(f) => self.files = Some(f.clone()),
            UpdateEntry::Stat(s) => self.stat = Some(*s),
            UpdateEntry::Header(_)
            | UpdateEntry::Stdout(_)
            | UpdateEntry::Stderr(_)
            | UpdateEntry::Log { .. }
            | UpdateEntry::Other { .. } => {}
        }
    }
}

/// One remote command in flight: a [`Stream`] of its update entries (stdout, stderr, header,
/// log lines, rc, ...) in the order the worker produced them, then a [`CommandResult`].
///
/// Updates wait in a bounded queue: a consumer that stops reading makes the connection stop
/// reading the socket (the stock worker then buffers on its side). Dropping the
/// `RunningCommand` does not stop the command (use [`RunningCommand::interrupt`]); its later
/// output is discarded.
pub struct RunningCommand {
    worker: WorkerConnection,
    id: CommandId,
    updates: mpsc::Receiver<Vec<UpdateEntry>>,
    queue: VecDeque<UpdateEntry>,
    done: oneshot::Receiver<Finished>,
    finished: Option<Finished>,
    seen: Seen,
}

impl std::fmt::Debug for RunningCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningCommand")
            .field("worker", &self.worker.name())
            .field("id", &self.id)
            .finish()
    }
}

/// A clonable way to interrupt one command from another task.
#[derive(Debug, Clone)]
pub struct Interrupter {
    worker: WorkerConnection,
    id: CommandId,
}

impl Interrupter {
    /// See [`WorkerConnection::interrupt`].
    pub async fn interrupt(&self, why: impl Into<String>) -> Result<(), Error> {
        self.worker.interrupt(&self.id, why).await
    }
}

impl RunningCommand {
    /// The command's id on its connection.
    pub fn id(&self) -> &CommandId {
        &self.id
    }

    /// The connection it runs on.
    pub fn worker(&self) -> &WorkerConnection {
        &self.worker
    }

    /// The next update entry, or `None` once the command has ended.
    pub async fn next(&mut self) -> Option<UpdateEntry> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Interrupts the command (see [`WorkerConnection::interrupt`]).
    pub async fn interrupt(&self, why: impl Into<String>) -> Result<(), Error> {
        self.worker.interrupt(&self.id, why).await
    }

    /// A handle to interrupt the command while this one is being read.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            worker: self.worker.clone(),
            id: self.id.clone(),
        }
    }

    /// Waits for the end, reading (and discarding, except for the first 64 KiB of header and
    /// stderr text) the updates not consumed yet.
    pub async fn result(mut self) -> CommandResult {
        let mut messages = String::new();
        while let Some(entry) = self.next().await {
            if let UpdateEntry::Header(l) | UpdateEntry::Stderr(l) = &entry {
                let room = MESSAGES_CAP.saturating_sub(messages.len());
                let mut take = room.min(l.text.len());
                while !l.text.is_char_boundary(take) {
                    take -= 1;
                }
                messages.push_str(&l.text[..take]);
            }
        }
        let finished = self.finished.take().unwrap_or_else(|| Finished {
            end: End::Lost(self.worker.lost_reason()),
            transfer: None,
        });
        CommandResult {
            end: finished.end,
            rc: self.seen.rc,
            elapsed: self.seen.elapsed,
            failure_reason: self.seen.failure_reason,
            files: self.seen.files,
            stat: self.seen.stat,
            transfer: finished.transfer,
            messages,
        }
    }
}

impl Stream for RunningCommand {
    type Item = UpdateEntry;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<UpdateEntry>> {
        let this = self.get_mut();
        loop {
            if let Some(entry) = this.queue.pop_front() {
                this.seen.observe(&entry);
                return Poll::Ready(Some(entry));
            }
            if this.finished.is_some() {
                return Poll::Ready(None);
            }
            match this.updates.poll_recv(cx) {
                Poll::Ready(Some(batch)) => this.queue.extend(batch),
                // The connection sends the result before it lets go of the update queue.
                Poll::Ready(None) => match Pin::new(&mut this.done).poll(cx) {
                    Poll::Ready(result) => {
                        this.finished = Some(result.unwrap_or_else(|_| Finished {
                            end: End::Lost(this.worker.lost_reason()),
                            transfer: None,
                        }));
                    }
                    Poll::Pending => return Poll::Pending,
                },
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
