//! One worker connection: a task that owns the WebSocket and the [`MasterSession`], serves
//! requests from [`WorkerConnection`] handles, answers the worker's requests, routes command
//! updates to their [`crate::RunningCommand`]s and runs transfer I/O.
//!
//! The task is the only place that reads or writes the socket, so frames are handled in
//! order and the session's bookkeeping needs no lock. It ends when the worker goes away,
//! stays silent past `lost_after`, breaks the protocol, is replaced by a new connection under
//! its name, or the master shuts down; then every running command ends as lost and every
//! waiting request fails.
//!
//! Liveness: a WebSocket ping every `ping_interval`; any frame (the pong included) counts as
//! a sign of life. While the task waits for a slow command consumer it does not read, so that
//! wait does not count as the worker's silence.
//!
//! Output is the hot path: an `update` frame is decoded with its text shared, not copied
//! (`decode_bytes`), and answers to the worker are buffered and flushed together once no
//! frame is waiting to be read, so a worker streaming output gets one write per burst of
//! answers rather than one per update.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use abo_proto::{
    decode_bytes, encode, Command, CommandId, DecodeError, Limits, MasterEvent, MasterSession,
    Message, Outcome, Reply, ReplyToken, Sent, SeqNumber, UpdateEntry, Value, WorkerInfo,
    WorkerRequest, WorkerSettings,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::config::Timing;
use crate::error::{Error, LostReason};
use crate::handle::{End, Inner, WorkerConnection};
use crate::registry::{Attached, PublicInfo, WorkerRegistry};
use crate::transfer::{DownloadSource, TransferReport, UploadSink};

/// Requests handles may queue before `send` waits.
const REQUEST_QUEUE: usize = 32;
/// A worker whose requests were refused this many times on one connection is not confused
/// once but broken: the connection is closed.
const MAX_REFUSED_REQUESTS: u32 = 100;
/// How long the close handshake may take when the master closes a connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a handle asks of the connection.
pub(crate) enum Request {
    /// A request answered by the worker with a value.
    Call {
        call: Call,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
    /// Start a command.
    Start(Box<StartRequest>),
    /// Interrupt a command (answered at once if it is not running).
    Interrupt {
        id: CommandId,
        why: String,
        reply: oneshot::Sender<Result<Reply, Error>>,
    },
}

/// A command to start; its id is sent on `started` once the command is registered.
pub(crate) struct StartRequest {
    pub(crate) builder: Option<String>,
    pub(crate) command: Command,
    pub(crate) transfer: Option<TransferEnd>,
    pub(crate) updates: mpsc::Sender<Vec<UpdateEntry>>,
    pub(crate) done: oneshot::Sender<Finished>,
    pub(crate) started: oneshot::Sender<CommandId>,
}

/// The requests that are a single op with an answer.
pub(crate) enum Call {
    Print(String),
    Keepalive,
    GetWorkerInfo,
    SetWorkerSettings(WorkerSettings),
    Shutdown,
}

/// The master's end of a transfer command.
#[derive(Debug)]
pub(crate) enum TransferEnd {
    Upload(UploadSink),
    Download(DownloadSource),
}

/// A command's end, sent once on its `done` channel.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) end: End,
    pub(crate) transfer: Option<TransferReport>,
}

/// Who is waiting for the answer to one of the master's requests.
enum Waiter {
    /// A handle.
    Call {
        op: &'static str,
        reply: oneshot::Sender<Result<Reply, Error>>,
        deadline: Instant,
    },
    /// A `start_command`: the command itself.
    Start { id: CommandId, deadline: Instant },
    /// The connection's own setup (`get_worker_info`, `set_worker_settings`).
    Setup { op: &'static str, deadline: Instant },
}

impl Waiter {
    fn deadline(&self) -> Instant {
        match self {
            Waiter::Call { deadline, .. }
            | Waiter::Start { deadline, .. }
            | Waiter::Setup { deadline, .. } => *deadline,
        }
    }
}

/// Where a transfer's master end is.
enum Slot {
    /// Not a transfer.
    None,
    /// Ready for the next operation.
    Idle(TransferEnd),
    /// On the blocking pool.
    Busy,
}

struct CommandState {
    updates: Option<mpsc::Sender<Vec<UpdateEntry>>>,
    done: Option<oneshot::Sender<Finished>>,
    /// The worker has shown the command exists (answered the start, or sent about it).
    started: bool,
    rc: Option<i64>,
    transfer: Slot,
    /// `complete` came while a transfer operation was on the blocking pool.
    completed: Option<Option<String>>,
}

/// One transfer operation to run on the blocking pool.
enum TransferOp {
    Write(Vec<u8>),
    Close,
    Utime(f64, f64),
    Read(u64),
}

/// What comes back from the blocking pool.
enum IoDone {
    /// An operation that owes the worker an answer.
    Op {
        id: CommandId,
        token: ReplyToken,
        outcome: Outcome,
        end: TransferEnd,
    },
    /// A transfer installed (or discarded) after `complete`.
    Finalized {
        id: CommandId,
        failure: Option<String>,
        report: TransferReport,
    },
}

/// An update that the command's consumer has no room for yet.
struct Stalled {
    tx: mpsc::Sender<Vec<UpdateEntry>>,
    entries: Vec<UpdateEntry>,
    token: ReplyToken,
}

/// What the connection needs from the server.
pub(crate) struct Setup {
    pub(crate) name: String,
    pub(crate) peer: SocketAddr,
    pub(crate) attached: Attached,
    pub(crate) registry: Arc<WorkerRegistry>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) timing: Timing,
    pub(crate) limits: Limits,
    pub(crate) connect_settings: Option<WorkerSettings>,
}

struct Conn {
    name: String,
    generation: u64,
    peer: SocketAddr,
    since: SystemTime,
    ws: WebSocketStream<TcpStream>,
    session: MasterSession,
    limits: Limits,
    timing: Timing,
    registry: Arc<WorkerRegistry>,
    shutdown: CancellationToken,
    replaced: CancellationToken,
    /// Kept to hand out to the [`WorkerConnection`] once the worker has introduced itself.
    requests_tx: mpsc::Sender<Request>,
    ended: CancellationToken,
    lost: Arc<OnceLock<LostReason>>,
    ready: bool,
    commands: HashMap<CommandId, CommandState>,
    waiters: HashMap<SeqNumber, Waiter>,
    io: JoinSet<IoDone>,
    stalled: Option<Stalled>,
    last_heard: Instant,
    refused: u32,
    /// Answers were buffered (`feed`) and not yet flushed to the socket.
    unflushed: bool,
}

/// What woke the connection up.
enum Wake {
    Shutdown,
    Replaced,
    Silent,
    Ping,
    Housekeeping,
    Io(Result<IoDone, tokio::task::JoinError>),
    Unstall(Result<mpsc::OwnedPermit<Vec<UpdateEntry>>, mpsc::error::SendError<()>>),
    Request(Option<Request>),
    Frame(Option<Result<WsMessage, tungstenite::Error>>),
    /// Nothing else to do: time to send the buffered answers.
    Flush,
}

/// Serves one authenticated connection until it ends.
pub(crate) async fn serve(ws: WebSocketStream<TcpStream>, setup: Setup) {
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let mut conn = Conn {
        name: setup.name,
        generation: setup.attached.generation,
        peer: setup.peer,
        since: setup.attached.since,
        ws,
        session: MasterSession::new(),
        limits: setup.limits,
        timing: setup.timing,
        registry: setup.registry,
        shutdown: setup.shutdown,
        replaced: setup.attached.replaced,
        requests_tx,
        ended: CancellationToken::new(),
        lost: Arc::new(OnceLock::new()),
        ready: false,
        commands: HashMap::new(),
        waiters: HashMap::new(),
        io: JoinSet::new(),
        stalled: None,
        last_heard: Instant::now(),
        refused: 0,
        unflushed: false,
    };
    let reason = match conn.introduce(setup.connect_settings).await {
        Ok(()) => conn.run(requests).await,
        Err(reason) => reason,
    };
    conn.wind_down(reason).await;
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    // A close frame's reason must fit in 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }
}

/// Maps a socket error to why the connection ended.
fn ws_error(e: tungstenite::Error) -> LostReason {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            LostReason::Closed
        }
        tungstenite::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            LostReason::Closed
        }
        tungstenite::Error::Io(io) => LostReason::Io(io.to_string()),
        tungstenite::Error::Capacity(c) => LostReason::FrameTooLarge(c.to_string()),
        other => LostReason::Protocol(other.to_string()),
    }
}

impl Conn {
    /// Sends a protocol message, giving up if the worker does not take it within
    /// `lost_after` (it stopped reading) or the connection must close.
    async fn write(&mut self, msg: &Message) -> Result<(), LostReason> {
        self.write_ws(WsMessage::Binary(encode(msg).into())).await
    }

    async fn write_ws(&mut self, msg: WsMessage) -> Result<(), LostReason> {
        let lost_after = self.timing.lost_after;
        let sent = tokio::select! {
            r = self.ws.send(msg) => r.map_err(ws_error),
            _ = tokio::time::sleep(lost_after) => Err(LostReason::Silent(lost_after)),
            _ = self.shutdown.cancelled() => Err(LostReason::Shutdown),
            _ = self.replaced.cancelled() => Err(LostReason::Replaced),
        };
        // `send` flushes what was buffered before it too.
        self.unflushed = false;
        sent
    }

    /// Buffers an answer; [`Conn::run`] flushes once no frame is waiting (tungstenite also
    /// writes by itself when its buffer passes `write_buffer_size`). With the same timeouts
    /// as [`Conn::write_ws`], since a full buffer makes `feed` write.
    async fn feed(&mut self, msg: &Message) -> Result<(), LostReason> {
        let lost_after = self.timing.lost_after;
        let frame = WsMessage::Binary(encode(msg).into());
        self.unflushed = true;
        tokio::select! {
            r = self.ws.feed(frame) => r.map_err(ws_error),
            _ = tokio::time::sleep(lost_after) => Err(LostReason::Silent(lost_after)),
            _ = self.shutdown.cancelled() => Err(LostReason::Shutdown),
            _ = self.replaced.cancelled() => Err(LostReason::Replaced),
        }
    }

    async fn flush(&mut self) -> Result<(), LostReason> {
        let lost_after = self.timing.lost_after;
        let flushed = tokio::select! {
            r = self.ws.flush() => r.map_err(ws_error),
            _ = tokio::time::sleep(lost_after) => Err(LostReason::Silent(lost_after)),
            _ = self.shutdown.cancelled() => Err(LostReason::Shutdown),
            _ = self.replaced.cancelled() => Err(LostReason::Replaced),
        };
        self.unflushed = false;
        flushed
    }

    /// Answers one of the worker's requests. Buffered: see [`Conn::feed`].
    async fn respond(&mut self, token: ReplyToken, outcome: Outcome) -> Result<(), LostReason> {
        // `None` only for a token of another session, which this connection never holds.
        match self.session.respond(token, outcome) {
            Some(msg) => self.feed(&msg).await,
            None => Ok(()),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timing.request_timeout
    }

    /// Sends the setup requests; the connection becomes ready when `get_worker_info` is
    /// answered. Settings go first: the worker applies them to commands started later.
    async fn introduce(&mut self, settings: Option<WorkerSettings>) -> Result<(), LostReason> {
        if let Some(settings) = settings {
            let msg = self.session.set_worker_settings(settings);
            let deadline = self.deadline();
            self.waiters.insert(
                msg.seq(),
                Waiter::Setup {
                    op: "set_worker_settings",
                    deadline,
                },
            );
            self.write(&msg).await?;
        }
        let msg = self.session.get_worker_info();
        let deadline = self.deadline();
        self.waiters.insert(
            msg.seq(),
            Waiter::Setup {
                op: "get_worker_info",
                deadline,
            },
        );
        self.write(&msg).await
    }

    async fn run(&mut self, mut requests: mpsc::Receiver<Request>) -> LostReason {
        let mut ping = tokio::time::interval(self.timing.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let tick = self.timing.request_timeout.min(Duration::from_secs(1));
        let mut housekeeping = tokio::time::interval(tick);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let silent_at = self.last_heard + self.timing.lost_after;
            let stalled_tx = self.stalled.as_ref().map(|s| s.tx.clone());
            let stalled = stalled_tx.is_some();
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Wake::Shutdown,
                _ = self.replaced.cancelled() => Wake::Replaced,
                _ = tokio::time::sleep_until(silent_at), if !stalled => Wake::Silent,
                _ = ping.tick() => Wake::Ping,
                _ = housekeeping.tick() => Wake::Housekeeping,
                Some(done) = self.io.join_next(), if !self.io.is_empty() => Wake::Io(done),
                permit = async {
                    match stalled_tx {
                        Some(tx) => tx.reserve_owned().await,
                        None => std::future::pending().await,
                    }
                }, if stalled => Wake::Unstall(permit),
                request = requests.recv() => Wake::Request(request),
                frame = self.ws.next(), if !stalled => Wake::Frame(frame),
                // Last of a biased select: only when nothing above is ready.
                _ = std::future::ready(()), if self.unflushed => Wake::Flush,
            };
            let step = match wake {
                Wake::Shutdown => Err(LostReason::Shutdown),
                Wake::Replaced => Err(LostReason::Replaced),
                Wake::Silent => Err(LostReason::Silent(self.timing.lost_after)),
                Wake::Ping => self.write_ws(WsMessage::Ping(Default::default())).await,
                Wake::Housekeeping => self.housekeeping().await,
                Wake::Io(Ok(done)) => self.on_io(done).await,
                Wake::Io(Err(e)) => Err(LostReason::Io(format!("transfer task failed: {e}"))),
                Wake::Unstall(permit) => self.unstall(permit).await,
                // The connection holds a sender itself, so the queue never closes.
                Wake::Request(None) => Ok(()),
                Wake::Request(Some(request)) => self.on_request(request).await,
                Wake::Frame(None) => Err(LostReason::Closed),
                Wake::Frame(Some(Err(e))) => Err(ws_error(e)),
                Wake::Frame(Some(Ok(frame))) => {
                    self.last_heard = Instant::now();
                    self.on_ws_message(frame).await
                }
                Wake::Flush => self.flush().await,
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn on_ws_message(&mut self, frame: WsMessage) -> Result<(), LostReason> {
        match frame {
            WsMessage::Binary(bytes) => self.on_frame(&bytes).await,
            WsMessage::Text(_) => {
                // The protocol has no text frames; the stock worker ignores them too.
                tracing::warn!(worker = %self.name, "ignored a text frame");
                Ok(())
            }
            // tungstenite answers pings itself; pongs only count as signs of life.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Ok(()),
            WsMessage::Close(_) => Err(LostReason::Closed),
        }
    }

    async fn on_frame(&mut self, bytes: &tungstenite::Bytes) -> Result<(), LostReason> {
        let event = decode_bytes(bytes, &self.limits).and_then(|msg| self.session.receive(msg));
        match event {
            Ok(MasterEvent::Answered {
                seq,
                request,
                reply,
            }) => self.on_answer(seq, request, reply).await,
            Ok(MasterEvent::Request { token, request }) => {
                self.on_worker_request(token, request).await
            }
            Ok(MasterEvent::UnknownOp { token, op }) => {
                tracing::warn!(worker = %self.name, op = %op.escape_debug(), "unknown op; answered with an exception");
                self.respond(token, Outcome::unknown_op(&op)).await
            }
            Err(e) => self.refuse(e).await,
        }
    }

    /// A frame that does not decode, or that the session refused. A request whose seq_number
    /// could be read is answered with an exception and the connection goes on; anything
    /// else leaves the stream in doubt, so the connection is closed.
    async fn refuse(&mut self, e: DecodeError) -> Result<(), LostReason> {
        match self.session.reject(&e) {
            Some(answer) => {
                tracing::warn!(worker = %self.name, "refused a request: {e}");
                self.write(&answer).await?;
                self.refused += 1;
                if self.refused >= MAX_REFUSED_REQUESTS {
                    return Err(LostReason::Protocol(format!(
                        "{} requests refused, the last: {e}",
                        self.refused
                    )));
                }
                Ok(())
            }
            None => Err(LostReason::Protocol(e.to_string())),
        }
    }

    async fn on_answer(
        &mut self,
        seq: SeqNumber,
        request: Sent,
        reply: Reply,
    ) -> Result<(), LostReason> {
        let waiter = self.waiters.remove(&seq);
        if let Sent::StartCommand(id) = &request {
            match reply {
                Reply::Exception(text) => {
                    tracing::warn!(worker = %self.name, command = %id, "start_command refused: {text}");
                    self.finish(id, End::Refused(text), None);
                }
                Reply::Ok(_) | Reply::WorkerInfo(_) => {
                    if let Some(state) = self.commands.get_mut(id) {
                        state.started = true;
                    }
                }
            }
            return Ok(());
        }
        match waiter {
            Some(Waiter::Call { op, reply: tx, .. }) => {
                let _ = tx.send(match reply {
                    Reply::Exception(message) => Err(Error::Refused {
                        worker: self.name.clone(),
                        op,
                        message,
                    }),
                    other => Ok(other),
                });
                Ok(())
            }
            Some(Waiter::Setup { op, .. }) => match (request, reply) {
                (Sent::GetWorkerInfo, Reply::WorkerInfo(info)) => self.become_ready(*info),
                (Sent::GetWorkerInfo, other) => Err(LostReason::Protocol(format!(
                    "get_worker_info failed: {other:?}"
                ))),
                (_, Reply::Exception(text)) => {
                    tracing::warn!(worker = %self.name, "{op} refused: {text}");
                    Ok(())
                }
                _ => Ok(()),
            },
            // An answer after its waiter timed out, or to a best-effort interrupt.
            Some(Waiter::Start { .. }) | None => Ok(()),
        }
    }

    fn become_ready(&mut self, info: WorkerInfo) -> Result<(), LostReason> {
        let public = PublicInfo::from_info(&info);
        let handle = WorkerConnection::new(Inner {
            name: self.name.clone(),
            generation: self.generation,
            peer: self.peer,
            since: self.since,
            info,
            requests: self.requests_tx.clone(),
            ended: self.ended.clone(),
            lost: self.lost.clone(),
        });
        if !self.registry.publish(&handle) {
            return Err(LostReason::Replaced);
        }
        self.ready = true;
        tracing::info!(
            worker = %self.name,
            generation = self.generation,
            "connected from {}: {} {}, {}",
            self.peer,
            if public.version.is_some() { "worker" } else { "unknown worker" },
            public.version.as_deref().unwrap_or(""),
            public.os.as_deref().unwrap_or("unknown OS"),
        );
        Ok(())
    }

    async fn on_worker_request(
        &mut self,
        token: ReplyToken,
        request: WorkerRequest,
    ) -> Result<(), LostReason> {
        match request {
            WorkerRequest::Update {
                command_id,
                entries,
            } => self.on_update(token, command_id, entries).await,
            WorkerRequest::Complete {
                command_id,
                failure,
            } => {
                self.respond(token, Outcome::nil()).await?;
                self.on_complete(command_id, failure);
                Ok(())
            }
            WorkerRequest::UploadFileWrite { command_id, data }
            | WorkerRequest::UploadDirectoryWrite { command_id, data } => {
                self.transfer_op(token, command_id, TransferOp::Write(data))
                    .await
            }
            WorkerRequest::UploadFileClose { command_id }
            | WorkerRequest::UploadDirectoryUnpack { command_id } => {
                self.transfer_op(token, command_id, TransferOp::Close).await
            }
            WorkerRequest::UploadFileUtime {
                command_id,
                access_time,
                modified_time,
            } => {
                let op = TransferOp::Utime(access_time, modified_time);
                self.transfer_op(token, command_id, op).await
            }
            WorkerRequest::ReadFile { command_id, length } => {
                self.transfer_op(token, command_id, TransferOp::Read(length))
                    .await
            }
            WorkerRequest::ReadFileClose { .. } => self.respond(token, Outcome::nil()).await,
        }
    }

    async fn on_update(
        &mut self,
        token: ReplyToken,
        id: CommandId,
        entries: Vec<UpdateEntry>,
    ) -> Result<(), LostReason> {
        let Some(state) = self.commands.get_mut(&id) else {
            // A command the master stopped following (unanswered start): acknowledge, drop.
            return self.respond(token, Outcome::nil()).await;
        };
        state.started = true;
        for entry in &entries {
            if let UpdateEntry::Rc(rc) = entry {
                state.rc = Some(*rc);
            }
        }
        if let Some(tx) = &state.updates {
            match tx.try_send(entries) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(entries)) => {
                    // Answered once the consumer has room: an abo worker that waits for
                    // answers slows down to the consumer's pace.
                    self.stalled = Some(Stalled {
                        tx: tx.clone(),
                        entries,
                        token,
                    });
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => state.updates = None,
            }
        }
        self.respond(token, Outcome::nil()).await
    }

    async fn unstall(
        &mut self,
        permit: Result<mpsc::OwnedPermit<Vec<UpdateEntry>>, mpsc::error::SendError<()>>,
    ) -> Result<(), LostReason> {
        let Some(stalled) = self.stalled.take() else {
            return Ok(());
        };
        if let Ok(permit) = permit {
            permit.send(stalled.entries);
        }
        // The socket was not read while waiting: the worker's silence starts now.
        self.last_heard = Instant::now();
        self.respond(stalled.token, Outcome::nil()).await
    }

    fn on_complete(&mut self, id: CommandId, failure: Option<String>) {
        let Some(state) = self.commands.get_mut(&id) else {
            return;
        };
        state.started = true;
        match std::mem::replace(&mut state.transfer, Slot::Busy) {
            Slot::None => self.finish(&id, End::Complete { failure }, None),
            Slot::Busy => state.completed = Some(failure),
            Slot::Idle(end) => {
                let worker_ok = failure.is_none() && state.rc == Some(0);
                self.io.spawn_blocking(move || {
                    let report = match end {
                        TransferEnd::Upload(sink) => sink.finish(worker_ok),
                        TransferEnd::Download(source) => source.report(None),
                    };
                    IoDone::Finalized {
                        id,
                        failure,
                        report,
                    }
                });
            }
        }
    }

    async fn transfer_op(
        &mut self,
        token: ReplyToken,
        id: CommandId,
        op: TransferOp,
    ) -> Result<(), LostReason> {
        let Some(state) = self.commands.get_mut(&id) else {
            let why = "the master no longer follows this command";
            return self.respond(token, Outcome::Exception(why.into())).await;
        };
        let end = match std::mem::replace(&mut state.transfer, Slot::Busy) {
            Slot::Idle(end) => end,
            other => {
                state.transfer = other;
                let why = "a transfer operation of this command is already in progress";
                return self.respond(token, Outcome::Exception(why.into())).await;
            }
        };
        state.started = true;
        self.io.spawn_blocking(move || {
            let mut end = end;
            let outcome = match (&mut end, op) {
                (TransferEnd::Upload(sink), TransferOp::Write(data)) => {
                    sink.write(&data).map(|()| Value::Nil)
                }
                (TransferEnd::Upload(sink), TransferOp::Close) => sink.close().map(|()| Value::Nil),
                (TransferEnd::Upload(sink), TransferOp::Utime(a, m)) => {
                    sink.set_times(a, m);
                    Ok(Value::Nil)
                }
                (TransferEnd::Download(source), TransferOp::Read(length)) => {
                    source.read(length).map(Value::Bin)
                }
                // The session checks that transfer ops match the command's kind.
                (TransferEnd::Upload(_), TransferOp::Read(_))
                | (
                    TransferEnd::Download(_),
                    TransferOp::Write(_) | TransferOp::Close | TransferOp::Utime(..),
                ) => Err("this operation does not apply to this transfer".to_owned()),
            };
            IoDone::Op {
                id,
                token,
                outcome: match outcome {
                    Ok(v) => Outcome::Ok(v),
                    Err(e) => Outcome::Exception(e),
                },
                end,
            }
        });
        Ok(())
    }

    async fn on_io(&mut self, done: IoDone) -> Result<(), LostReason> {
        match done {
            IoDone::Op {
                id,
                token,
                outcome,
                end,
            } => {
                if let Outcome::Exception(e) = &outcome {
                    tracing::warn!(worker = %self.name, command = %id, "transfer refused: {e}");
                }
                self.respond(token, outcome).await?;
                if let Some(state) = self.commands.get_mut(&id) {
                    state.transfer = Slot::Idle(end);
                    if let Some(failure) = state.completed.take() {
                        self.on_complete(id, failure);
                    }
                }
                Ok(())
            }
            IoDone::Finalized {
                id,
                failure,
                report,
            } => {
                if let Some(e) = &report.error {
                    tracing::warn!(worker = %self.name, command = %id, path = %report.path.display(), "transfer: {e}");
                }
                self.finish(&id, End::Complete { failure }, Some(report));
                Ok(())
            }
        }
    }

    async fn on_request(&mut self, request: Request) -> Result<(), LostReason> {
        let deadline = self.deadline();
        match request {
            Request::Call { call, reply } => {
                let (op, msg) = match call {
                    Call::Print(message) => ("print", self.session.print(message)),
                    Call::Keepalive => ("keepalive", self.session.keepalive()),
                    Call::GetWorkerInfo => ("get_worker_info", self.session.get_worker_info()),
                    Call::SetWorkerSettings(s) => {
                        ("set_worker_settings", self.session.set_worker_settings(s))
                    }
                    Call::Shutdown => ("shutdown", self.session.shutdown()),
                };
                self.waiters.insert(
                    msg.seq(),
                    Waiter::Call {
                        op,
                        reply,
                        deadline,
                    },
                );
                self.write(&msg).await
            }
            Request::Start(start) => {
                let StartRequest {
                    builder,
                    command,
                    transfer,
                    updates,
                    done,
                    started,
                } = *start;
                let kind = command.kind();
                // The session registers the id before the frame exists: fast commands
                // report before the worker answers start_command.
                let (id, msg) = self.session.start_command(builder, command);
                self.commands.insert(
                    id.clone(),
                    CommandState {
                        updates: Some(updates),
                        done: Some(done),
                        started: false,
                        rc: None,
                        transfer: transfer.map_or(Slot::None, Slot::Idle),
                        completed: None,
                    },
                );
                self.waiters.insert(
                    msg.seq(),
                    Waiter::Start {
                        id: id.clone(),
                        deadline,
                    },
                );
                tracing::debug!(worker = %self.name, command = %id, "start {}", kind.name());
                let _ = started.send(id);
                self.write(&msg).await
            }
            Request::Interrupt { id, why, reply } => {
                match self.session.interrupt_command(&id, why, None) {
                    None => {
                        let _ = reply.send(Ok(Reply::Ok(Value::Nil)));
                        Ok(())
                    }
                    Some(msg) => {
                        self.waiters.insert(
                            msg.seq(),
                            Waiter::Call {
                                op: "interrupt_command",
                                reply,
                                deadline,
                            },
                        );
                        self.write(&msg).await
                    }
                }
            }
        }
    }

    /// Fails requests that have waited too long.
    async fn housekeeping(&mut self) -> Result<(), LostReason> {
        let now = Instant::now();
        let expired: Vec<SeqNumber> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline() <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let after = self.timing.request_timeout;
        for seq in expired {
            match self.waiters.remove(&seq) {
                Some(Waiter::Call { op, reply, .. }) => {
                    tracing::warn!(worker = %self.name, "no answer to {op} within {after:?}");
                    let _ = reply.send(Err(Error::Timeout {
                        worker: self.name.clone(),
                        op,
                        after,
                    }));
                }
                // A command the worker has shown signs of is running: its start answer is
                // merely late.
                Some(Waiter::Start { id, .. })
                    if self.commands.get(&id).is_some_and(|s| !s.started) =>
                {
                    tracing::warn!(worker = %self.name, command = %id, "no answer to start_command within {after:?}; interrupting it");
                    self.finish(&id, End::Unanswered, None);
                    if let Some(msg) =
                        self.session
                            .interrupt_command(&id, "start_command unanswered", None)
                    {
                        self.write(&msg).await?;
                    }
                }
                Some(Waiter::Start { .. }) | None => {}
                Some(Waiter::Setup { op, .. }) => {
                    return Err(LostReason::Protocol(format!(
                        "no answer to {op} within {after:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, id: &CommandId, end: End, transfer: Option<TransferReport>) {
        if let Some(mut state) = self.commands.remove(id) {
            if let Some(done) = state.done.take() {
                let _ = done.send(Finished { end, transfer });
            }
        }
    }

    async fn wind_down(mut self, reason: LostReason) {
        let _ = self.lost.set(reason.clone());
        self.ended.cancel();
        self.stalled = None;
        for (_, waiter) in self.waiters.drain() {
            if let Waiter::Call { reply, .. } = waiter {
                let _ = reply.send(Err(Error::Disconnected {
                    worker: self.name.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        let lost = self.commands.len();
        for (_, mut state) in self.commands.drain() {
            if let Some(done) = state.done.take() {
                let _ = done.send(Finished {
                    end: End::Lost(reason.clone()),
                    transfer: None,
                });
            }
        }
        let frame = match &reason {
            LostReason::Closed | LostReason::Silent(_) | LostReason::Io(_) => None,
            LostReason::Replaced => Some(close_frame(
                CloseCode::Normal,
                "replaced by a new connection",
            )),
            LostReason::Shutdown => {
                Some(close_frame(CloseCode::Away, "the master is shutting down"))
            }
            LostReason::FrameTooLarge(why) => Some(close_frame(CloseCode::Size, why)),
            LostReason::Protocol(why) => Some(close_frame(CloseCode::Protocol, why)),
        };
        if let Some(frame) = frame {
            let drain_raw = matches!(
                reason,
                LostReason::Protocol(_) | LostReason::FrameTooLarge(_)
            );
            let ws = &mut self.ws;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async move {
                ws.close(Some(frame)).await?;
                if drain_raw {
                    // The peer may still be sending (the rest of an oversized frame):
                    // closing with unread data would reset the connection and lose the
                    // close frame, so read and discard until the peer closes.
                    let tcp = ws.get_mut();
                    let mut buf = vec![0u8; 64 * 1024];
                    while !matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)) {}
                } else {
                    // The close handshake: wait for the peer's answer.
                    while let Some(Ok(_)) = ws.next().await {}
                }
                Ok::<(), tungstenite::Error>(())
            })
            .await;
        }
        self.registry.detach(&self.name, self.generation, &reason);
        match &reason {
            LostReason::Shutdown | LostReason::Replaced => {
                tracing::info!(worker = %self.name, generation = self.generation, lost_commands = lost, "disconnected: {reason}");
            }
            _ if !self.ready => {
                tracing::warn!(worker = %self.name, peer = %self.peer, "connection ended before the worker introduced itself: {reason}");
            }
            _ => {
                tracing::warn!(worker = %self.name, generation = self.generation, lost_commands = lost, "lost: {reason}");
            }
        }
        // Dropping the JoinSet detaches transfer operations still on the blocking pool; their
        // temporary files are removed when they finish.
    }
}
