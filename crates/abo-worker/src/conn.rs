//! The connection: connect out to the master, run one protocol session, reconnect.
//!
//! [`run`] loops until the master sends `shutdown` or the caller's `stop` token fires:
//! 1. connect to `ws://host:port/path` with `Authorization: Basic` (spec §3.2), no
//!    subprotocol, no extension;
//! 2. run a session: decode each binary frame, feed it to [`WorkerSession`], answer the
//!    master's requests, spawn one task per command, and send what command tasks ask
//!    (updates, transfer chunks, `complete`);
//! 3. when the connection ends, kill every running command's process group (TERM, then KILL
//!    after `kill-grace`), wait for the command tasks, and reconnect after a back-off.
//!
//! The session loop never blocks on writing: frames go to a writer task through an
//! unbounded channel, which stays small because each command keeps a bounded number of
//! updates unanswered ([`crate::commands::UPDATE_WINDOW`]) and transfers are stop-and-wait.
//! So the loop always reads, and answers `keepalive` and pings promptly even while a command
//! floods output.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use abo_proto::{
    decode_with, encode_into, CommandId, DecodeError, Limits, MasterRequest, Message, Outcome,
    SeqNumber, UpdateEntry, WorkerEvent, WorkerReply, WorkerRequest, WorkerSession, WorkerSettings,
};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::buffers::Buffers;
use crate::commands::{self, Ctx, OutputSettings, Shared, ToConn};
use crate::settings::Settings;

/// Time allowed for TCP connect plus the WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest back-off between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Shortest wait after the master refused the name or password: a wrong password will not
/// fix itself in 2 s, and retrying that fast only fills the master's log.
const UNAUTHORIZED_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long counts as successful even if the master sent nothing.
const GOOD_SESSION: Duration = Duration::from_secs(30);
/// Largest frame accepted from the master (its file chunks for downloads).
const MAX_FRAME: usize = 64 << 20;
/// Most bytes read from the socket at once. The master's frames are mostly answers of a few
/// dozen bytes, and tungstenite zero-fills this much of its buffer before every read: its
/// default (128 KiB) made that fill cost more than the reads while output streams. Large
/// frames (download chunks) take a few more reads.
const READ_BUFFER: usize = 32 << 10;

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The master sent `shutdown`.
    Shutdown,
    /// The `stop` token fired (SIGTERM, SIGINT).
    Stopped,
}

/// The delay before reconnection attempt `attempt` (0-based): 1 s × 1.5^attempt, at most
/// 60 s, plus `jitter` (0..1 s), as the stock worker's Twisted `backoffPolicy`.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 1.5f64
        .powi(attempt.min(64) as i32)
        .min(MAX_BACKOFF.as_secs_f64());
    Duration::from_secs_f64(base + jitter.clamp(0.0, 1.0))
}

/// How a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// HTTP 401: the master does not know this name/password.
    Unauthorized,
    /// Anything else (refused, timed out, other HTTP status).
    Other(String),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(settings: &Settings) -> Result<Ws, ConnectError> {
    let url = settings.master.url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Other(format!("bad URL {url}: {e}")))?;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        settings.name,
        settings.password.expose()
    ));
    let auth = HeaderValue::from_str(&format!("Basic {credentials}"))
        .map_err(|e| ConnectError::Other(format!("credentials: {e}")))?;
    request.headers_mut().insert("Authorization", auth);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_FRAME);
    config.max_frame_size = Some(MAX_FRAME);
    config.read_buffer_size = READ_BUFFER;
    let attempt = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => Err(ConnectError::Other("timed out".into())),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
            if response.status() == StatusCode::UNAUTHORIZED =>
        {
            Err(ConnectError::Unauthorized)
        }
        Ok(Err(e)) => Err(ConnectError::Other(e.to_string())),
    }
}

/// Runs the worker until the master sends `shutdown` or `stop` fires. Running commands are
/// killed before it returns.
pub async fn run(settings: Settings, stop: CancellationToken) -> Exit {
    let url = settings.master.url();
    let worker_env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let shared = Arc::new(Shared {
        basedir: settings.basedir.clone(),
        worker_env,
        kill_grace: settings.kill_grace,
    });
    let mut attempt: u32 = 0;
    info!(
        master = %url, name = %settings.name, basedir = %settings.basedir.display(),
        "abo worker {} starting", crate::info::version()
    );
    loop {
        let mut floor = Duration::ZERO;
        let connected = tokio::select! {
            r = connect(&settings) => r,
            _ = stop.cancelled() => return Exit::Stopped,
        };
        match connected {
            Ok(ws) => {
                info!(master = %url, "connected");
                let began = Instant::now();
                let end = session(ws, &settings, &shared, &stop).await;
                match end.reason {
                    End::Shutdown => {
                        info!("the master asked the worker to shut down");
                        return Exit::Shutdown;
                    }
                    End::Stopped => return Exit::Stopped,
                    End::Lost(why) => warn!(master = %url, "connection lost: {why}"),
                }
                if end.heard_master || began.elapsed() >= GOOD_SESSION {
                    attempt = 0;
                }
            }
            Err(ConnectError::Unauthorized) => {
                error!(
                    master = %url, name = %settings.name,
                    "the master refused the worker (HTTP 401): wrong name or password; \
                     check worker.toml against the master's workers.cfg"
                );
                floor = UNAUTHORIZED_BACKOFF;
            }
            Err(ConnectError::Other(why)) => {
                warn!(master = %url, "cannot connect: {why}");
            }
        }
        let delay = backoff(attempt, fastrand::f64()).max(floor);
        attempt = attempt.saturating_add(1);
        info!("reconnecting in {:.1} s", delay.as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Exit::Stopped,
        }
    }
}

enum End {
    Shutdown,
    Stopped,
    Lost(String),
}

struct SessionEnd {
    reason: End,
    /// The master sent at least one request: the credentials and the protocol work.
    heard_master: bool,
}

/// One command running on this connection.
struct Running {
    interrupt: CancellationToken,
}

/// The state of one connection.
struct Session<'a> {
    proto: WorkerSession,
    writer: mpsc::UnboundedSender<WsMessage>,
    /// Our requests' answers, to the command waiting for them.
    waiting: HashMap<SeqNumber, oneshot::Sender<WorkerReply>>,
    running: HashMap<CommandId, Running>,
    tasks: JoinSet<CommandId>,
    to_conn: mpsc::UnboundedSender<ToConn>,
    lost: CancellationToken,
    output: OutputSettings,
    shared: &'a Arc<Shared>,
    max_line_bytes: usize,
    limits: Limits,
    /// Output text and encoded frames go back here once sent (see [`Buffers`]).
    buffers: Arc<Buffers>,
}

impl Session<'_> {
    fn send(&self, msg: &Message) {
        let mut frame = self.buffers.take(0);
        encode_into(msg, &mut frame);
        // A closed writer means the connection is ending; the reader sees it too.
        let _ = self.writer.send(WsMessage::Binary(frame.into()));
    }

    fn refuse(&mut self, err: &DecodeError) {
        warn!("refused a frame from the master: {err}");
        if let Some(answer) = self.proto.reject(err) {
            self.send(&answer);
        }
    }

    /// Handles one binary frame; returns `true` when the master asked to shut down.
    fn frame(&mut self, data: &[u8]) -> bool {
        let msg = match decode_with(data, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(&e);
                return false;
            }
        };
        match self.proto.receive(msg) {
            Err(e) => {
                self.refuse(&e);
                false
            }
            Ok(WorkerEvent::Answered { seq, reply, .. }) => {
                if let Some(waiter) = self.waiting.remove(&seq) {
                    let _ = waiter.send(reply);
                }
                false
            }
            Ok(WorkerEvent::UnknownOp { token, op }) => {
                debug!("unknown op {op:?} from the master");
                if let Some(answer) = self.proto.respond(token, Outcome::unknown_op(&op)) {
                    self.send(&answer);
                }
                false
            }
            Ok(WorkerEvent::Request { token, request }) => {
                let shutdown = matches!(request, MasterRequest::Shutdown);
                let outcome = self.request(request);
                if let Some(answer) = self.proto.respond(token, outcome) {
                    self.send(&answer);
                }
                shutdown
            }
        }
    }

    fn request(&mut self, request: MasterRequest) -> Outcome {
        match request {
            MasterRequest::Print { message } => {
                info!("message from the master: {message}");
                Outcome::nil()
            }
            MasterRequest::Keepalive => {
                debug!("keepalive");
                Outcome::nil()
            }
            MasterRequest::GetWorkerInfo => {
                let info = crate::info::collect(&self.shared.basedir, &self.shared.worker_env);
                Outcome::Ok(info.to_value())
            }
            MasterRequest::SetWorkerSettings(s) => {
                self.apply_settings(&s);
                Outcome::nil()
            }
            MasterRequest::StartCommand {
                command_id,
                builder_name,
                command,
            } => {
                debug!(command = %command_id, builder = ?builder_name, "start {}", command.kind());
                let interrupt = CancellationToken::new();
                let ctx = Ctx::new(
                    command_id.clone(),
                    self.to_conn.clone(),
                    self.lost.clone(),
                    interrupt.clone(),
                    self.output.clone(),
                    Arc::clone(self.shared),
                );
                self.tasks.spawn(commands::run(command, ctx));
                self.running.insert(command_id, Running { interrupt });
                Outcome::nil()
            }
            MasterRequest::InterruptCommand {
                command_id, why, ..
            } => {
                match self.running.get(&command_id) {
                    Some(r) => {
                        info!(command = %command_id, "interrupted by the master: {why}");
                        r.interrupt.cancel();
                    }
                    None => debug!(command = %command_id, "interrupt for a command not running"),
                }
                Outcome::nil()
            }
            MasterRequest::Shutdown => Outcome::nil(),
        }
    }

    fn apply_settings(&mut self, s: &WorkerSettings) {
        if s.newline_re != WorkerSettings::DEFAULT_NEWLINE_RE {
            // The pattern is a Python regex; abo applies the stock default as a state
            // machine (see lines.rs) and cannot run arbitrary ones.
            warn!("the master's newline_re differs from the default; using the default");
        }
        let max_line = usize::try_from(s.max_line_length).unwrap_or(usize::MAX);
        self.output = OutputSettings {
            buffer_size: usize::try_from(s.buffer_size)
                .unwrap_or(usize::MAX)
                .clamp(1, 16 << 20),
            buffer_timeout: Duration::try_from_secs_f64(s.buffer_timeout.0)
                .unwrap_or(Duration::from_secs(5))
                .min(Duration::from_secs(3600)),
            max_line: max_line.clamp(64, self.max_line_bytes),
            buffers: Arc::clone(&self.buffers),
        };
        debug!(?self.output, "worker settings");
    }

    fn outgoing(&mut self, out: ToConn) {
        let Some(msg) = self.proto.send(out.request) else {
            // Not an active command (cannot happen: commands end with their complete).
            return;
        };
        if let Some(reply) = out.reply {
            self.waiting.insert(msg.seq(), reply);
        }
        self.send(&msg);
        // The output text is in the frame now: its buffer can gather the next update.
        if let Message::FromWorker {
            request: WorkerRequest::Update { entries, .. },
            ..
        } = msg
        {
            for entry in entries {
                match entry {
                    UpdateEntry::Header(l) | UpdateEntry::Stdout(l) | UpdateEntry::Stderr(l) => {
                        self.buffers.give_bytes(l.text.into_bytes())
                    }
                    UpdateEntry::Log { lines, .. } => {
                        self.buffers.give_bytes(lines.text.into_bytes())
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Writes frames until the channel closes or the socket fails; closes the socket politely.
///
/// Frames queued together go out together: each is buffered (`feed`), and the socket is
/// flushed once nothing more is waiting, so a burst of small answers costs one write. Once
/// flushed, the frames' buffers go back to `buffers` (not before: the split sink may still
/// hold the last frame fed).
async fn writer(
    mut sink: futures_util::stream::SplitSink<Ws, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<WsMessage>,
    buffers: Arc<Buffers>,
) {
    let mut sent = Vec::new();
    while let Some(mut msg) = rx.recv().await {
        loop {
            if let WsMessage::Binary(payload) = &msg {
                sent.push(payload.clone());
            }
            if let Err(e) = sink.feed(msg).await {
                debug!("write failed: {e}");
                return;
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        if let Err(e) = sink.flush().await {
            debug!("write failed: {e}");
            return;
        }
        for payload in sent.drain(..) {
            buffers.give_bytes(payload);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
}

async fn session(
    ws: Ws,
    settings: &Settings,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> SessionEnd {
    let (sink, mut stream) = ws.split();
    let (wtx, wrx) = mpsc::unbounded_channel();
    let buffers = Buffers::shared();
    let writer = tokio::spawn(writer(sink, wrx, Arc::clone(&buffers)));
    let (to_conn, mut from_commands) = mpsc::unbounded_channel();
    let defaults = WorkerSettings::default();
    let mut s = Session {
        proto: WorkerSession::new(),
        writer: wtx,
        waiting: HashMap::new(),
        running: HashMap::new(),
        tasks: JoinSet::new(),
        to_conn,
        lost: CancellationToken::new(),
        output: OutputSettings {
            buffer_size: defaults.buffer_size as usize,
            buffer_timeout: Duration::from_secs_f64(defaults.buffer_timeout.0),
            max_line: (defaults.max_line_length as usize).min(settings.max_line_bytes),
            buffers: Arc::clone(&buffers),
        },
        shared,
        max_line_bytes: settings.max_line_bytes,
        limits: Limits {
            max_frame_bytes: MAX_FRAME,
            ..Limits::default()
        },
        buffers,
    };
    let mut heard_master = false;
    let mut last_heard = Instant::now();
    let keepalive = settings.keepalive;
    let mut tick = tokio::time::interval(keepalive.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();

    let reason = loop {
        tokio::select! {
            _ = stop.cancelled() => break End::Stopped,
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    None => break End::Lost("the master closed the connection".into()),
                    Some(Err(e)) => break End::Lost(e.to_string()),
                    Some(Ok(WsMessage::Binary(data))) => {
                        heard_master = true;
                        if s.frame(&data) {
                            break End::Shutdown;
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) => {
                        break End::Lost("the master closed the connection".into())
                    }
                    // Text frames are ignored, as by the stock worker; tungstenite answers
                    // pings by itself.
                    Some(Ok(_)) => {}
                }
            }
            Some(out) = from_commands.recv() => s.outgoing(out),
            Some(done) = s.tasks.join_next() => {
                match done {
                    Ok(id) => { s.running.remove(&id); }
                    Err(e) => {
                        // A command task panicked: a bug, but the worker goes on.
                        error!("a command task failed: {e}");
                    }
                }
            }
            _ = tick.tick(), if keepalive.is_some() => {
                let period = keepalive.unwrap_or_default();
                if last_heard.elapsed() > period * 2 {
                    break End::Lost(format!(
                        "nothing from the master for {} s", last_heard.elapsed().as_secs()
                    ));
                }
                if last_heard.elapsed() >= period {
                    let _ = s.writer.send(WsMessage::Ping(Vec::new().into()));
                }
            }
        }
    };

    // Teardown: commands kill their process groups and return without reporting.
    if !s.running.is_empty() {
        info!(
            "killing {} running command(s) (TERM, then KILL after {} s)",
            s.running.len(),
            settings.kill_grace.as_secs()
        );
    }
    s.lost.cancel();
    s.waiting.clear();
    let wait = settings.kill_grace + Duration::from_secs(15);
    let drained = tokio::time::timeout(wait, async {
        loop {
            tokio::select! {
                done = s.tasks.join_next() => if done.is_none() { break },
                // Keep draining so no command blocks on a full channel while it dies.
                Some(_) = from_commands.recv() => {}
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("some commands did not stop in time; abandoning them");
        s.tasks.abort_all();
    }
    drop(s);
    // The writer ends once every sender is gone: the shutdown answer goes out first.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    SessionEnd {
        reason,
        heard_master,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_half_and_caps_at_a_minute() {
        let secs: Vec<f64> = (0..12).map(|n| backoff(n, 0.0).as_secs_f64()).collect();
        assert_eq!(&secs[..4], [1.0, 1.5, 2.25, 3.375]);
        assert_eq!(secs[11], 60.0);
        assert!((backoff(3, 0.5).as_secs_f64() - 3.875).abs() < 1e-9);
        assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(61));
    }
}
