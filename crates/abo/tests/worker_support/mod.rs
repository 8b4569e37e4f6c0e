//! Test support for `tests/worker.rs`: a minimal master (a real WebSocket server on
//! 127.0.0.1 speaking the protocol through `abo-proto`) and the real `abo worker` binary as a
//! child process.
//!
//! The master answers every worker request the way a correct master must (file chunks for
//! downloads, nil for the rest), records what a command sent, and lets a test act between
//! frames (interrupt, drop the connection).

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use abo_proto::{
    decode, encode, Command, CommandId, LineInfo, MasterEvent, MasterSession, Message, Outcome,
    Reply, Sent, SeqNumber, StatResult, UpdateEntry, WorkerInfo, WorkerRequest,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;

pub const NAME: &str = "w1";
pub const PASSWORD: &str = "s3cret:pass";

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

fn abo() -> &'static str {
    env!("CARGO_BIN_EXE_abo")
}

/// A listening master.
pub struct Master {
    listener: TcpListener,
    pub port: u16,
}

impl Master {
    pub async fn bind() -> Master {
        Master::bind_port(0).await
    }

    /// Binds `port` (0 for any), retrying while a previous listener's port is released.
    pub async fn bind_port(port: u16) -> Master {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => {
                    let port = listener.local_addr().unwrap().port();
                    return Master { listener, port };
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("bind {port}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("bind {port}: {e}"),
            }
        }
    }

    /// Accepts the next worker connection with the right credentials, refusing others with
    /// 401; returns the number of refused attempts too.
    pub async fn accept(&self) -> Conn {
        loop {
            if let Ok(conn) = self.accept_once().await {
                return conn;
            }
        }
    }

    /// One connection attempt: `Err(())` if it was refused (wrong credentials).
    pub async fn accept_once(&self) -> Result<Conn, ()> {
        let (tcp, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("no worker connected in time")
            .unwrap();
        let expected = format!(
            "Basic {}",
            base64_encode(format!("{NAME}:{PASSWORD}").as_bytes())
        );
        // The callback's signature is tokio-tungstenite's.
        #[allow(clippy::result_large_err)]
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            // The worker must offer no subprotocol (spec §3.2).
            assert!(req.headers().get("sec-websocket-protocol").is_none());
            if auth == Some(expected.as_str()) {
                Ok(resp)
            } else {
                let mut refuse = ErrorResponse::new(Some("Unauthorized".into()));
                *refuse.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refuse)
            }
        };
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(64 << 20);
        config.max_frame_size = Some(64 << 20);
        match tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(config)).await {
            Ok(ws) => Ok(Conn {
                ws,
                session: MasterSession::new(),
                info: None,
            }),
            Err(_) => Err(()),
        }
    }
}

/// Standard base64, so the test checks the header independently of the worker's encoder.
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Receives stdout text instead of [`Run`] keeping it (for outputs of 100 MB and more).
pub type StdoutSink = Box<dyn FnMut(&str) + Send>;

/// What a command sent, as recorded by [`Conn::run`].
#[derive(Default)]
pub struct Run {
    pub id: Option<CommandId>,
    pub entries: Vec<UpdateEntry>,
    /// `complete`'s args: `Some(None)` for nil.
    pub complete: Option<Option<String>>,
    pub start_reply: Option<Reply>,
    pub uploaded: Vec<u8>,
    pub upload_writes: usize,
    pub closed: bool,
    pub unpacked: bool,
    pub utime: Option<(f64, f64)>,
    /// What `download_file` reads from.
    pub download: Vec<u8>,
    pub download_pos: usize,
    pub read_requests: Vec<u64>,
    /// Updates received.
    pub updates: usize,
    /// Largest number of stdout bytes in one update.
    pub max_update_bytes: usize,
    /// When set, stdout text is given to it instead of being kept.
    pub stdout_sink: Option<StdoutSink>,
}

impl Run {
    pub fn done(&self) -> bool {
        self.complete.is_some() && self.start_reply.is_some()
    }

    fn lines(&self, pick: impl Fn(&UpdateEntry) -> Option<&LineInfo>) -> String {
        self.entries
            .iter()
            .filter_map(pick)
            .map(|l| l.text.as_str())
            .collect()
    }

    pub fn stdout(&self) -> String {
        self.lines(|e| match e {
            UpdateEntry::Stdout(l) => Some(l),
            _ => None,
        })
    }

    pub fn stderr(&self) -> String {
        self.lines(|e| match e {
            UpdateEntry::Stderr(l) => Some(l),
            _ => None,
        })
    }

    pub fn header(&self) -> String {
        self.lines(|e| match e {
            UpdateEntry::Header(l) => Some(l),
            _ => None,
        })
    }

    pub fn log(&self, name: &str) -> String {
        self.lines(|e| match e {
            UpdateEntry::Log { name: n, lines } if n == name => Some(lines),
            _ => None,
        })
    }

    pub fn rc(&self) -> Option<i64> {
        self.entries.iter().find_map(|e| match e {
            UpdateEntry::Rc(rc) => Some(*rc),
            _ => None,
        })
    }

    pub fn has_elapsed(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, UpdateEntry::Elapsed(_)))
    }

    pub fn failure_reason(&self) -> Option<String> {
        self.entries.iter().find_map(|e| match e {
            UpdateEntry::FailureReason(r) => Some(r.as_str().to_owned()),
            _ => None,
        })
    }

    pub fn files(&self) -> Option<Vec<String>> {
        self.entries.iter().find_map(|e| match e {
            UpdateEntry::Files(f) => Some(f.clone()),
            _ => None,
        })
    }

    pub fn stat(&self) -> Option<StatResult> {
        self.entries.iter().find_map(|e| match e {
            UpdateEntry::Stat(s) => Some(*s),
            _ => None,
        })
    }

    /// Everything, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "rc={:?} complete={:?} start={:?}\n--header--\n{}--stdout--\n{}--stderr--\n{}",
            self.rc(),
            self.complete,
            self.start_reply,
            self.header(),
            truncate(&self.stdout()),
            truncate(&self.stderr())
        )
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(4000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One accepted worker connection.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    pub session: MasterSession,
    pub info: Option<WorkerInfo>,
}

/// What one frame from the worker was, for tests that drive the loop themselves.
#[derive(Debug)]
pub enum Got {
    Answered(SeqNumber, Sent, Reply),
    Request,
    Ping,
    Pong,
    Closed,
}

impl Conn {
    pub async fn send(&mut self, msg: &Message) {
        self.ws.send(Ws::Binary(encode(msg).into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, frame: Ws) {
        self.ws.send(frame).await.unwrap();
    }

    /// Reads the next binary frame and decodes it without the session (for exchanges the
    /// session cannot produce, such as an unknown op).
    pub async fn recv_raw(&mut self) -> Message {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("valid");
            if let Ws::Binary(d) = frame {
                return decode(&d).unwrap();
            }
        }
    }

    /// Reads one frame and handles it: answers worker requests (recording them in `run`),
    /// returns answers to the master's requests.
    pub async fn pump(&mut self, run: &mut Run) -> Got {
        let frame = match tokio::time::timeout(PATIENCE, self.ws.next()).await {
            Err(_) => panic!("the worker sent nothing for {PATIENCE:?}"),
            Ok(None) | Ok(Some(Err(_))) => return Got::Closed,
            Ok(Some(Ok(f))) => f,
        };
        let data = match frame {
            Ws::Binary(d) => d,
            Ws::Ping(_) => return Got::Ping,
            Ws::Pong(_) => return Got::Pong,
            Ws::Close(_) => return Got::Closed,
            other => panic!("unexpected frame {other:?}"),
        };
        let msg = decode(&data).expect("the worker sent a valid frame");
        match self
            .session
            .receive(msg)
            .expect("the worker respects the session")
        {
            MasterEvent::Answered {
                seq,
                request,
                reply,
            } => {
                if let (Sent::StartCommand(id), Some(mine)) = (&request, &run.id) {
                    if id == mine {
                        run.start_reply = Some(reply.clone());
                    }
                }
                Got::Answered(seq, request, reply)
            }
            MasterEvent::UnknownOp { op, .. } => panic!("the worker sent unknown op {op}"),
            MasterEvent::Request { token, request } => {
                let outcome = record(run, request);
                let answer = self.session.respond(token, outcome).expect("owed");
                self.send(&answer).await;
                Got::Request
            }
        }
    }

    /// Sends a master request and returns its answer, handling worker requests meanwhile.
    pub async fn ask(&mut self, msg: Message) -> Reply {
        let seq = msg.seq();
        self.send(&msg).await;
        let mut scratch = Run::default();
        loop {
            match self.pump(&mut scratch).await {
                Got::Answered(s, _, reply) if s == seq => return reply,
                Got::Closed => panic!("connection closed while waiting for {seq}"),
                _ => {}
            }
        }
    }

    /// `get_worker_info`, kept in `self.info`.
    pub async fn hello(&mut self) -> WorkerInfo {
        let msg = self.session.get_worker_info();
        match self.ask(msg).await {
            Reply::WorkerInfo(info) => {
                self.info = Some((*info).clone());
                *info
            }
            other => panic!("get_worker_info answered {other:?}"),
        }
    }

    pub fn basedir(&self) -> PathBuf {
        PathBuf::from(
            self.info
                .as_ref()
                .and_then(|i| i.basedir.clone())
                .expect("hello() first"),
        )
    }

    /// Starts `command` (for builder `b1`) and records it into `run`.
    pub async fn start(&mut self, command: Command, run: &mut Run) {
        let (id, msg) = self.session.start_command(Some("b1".into()), command);
        run.id = Some(id);
        self.send(&msg).await;
    }

    /// Runs `command` to its `complete`.
    pub async fn run(&mut self, command: Command) -> Run {
        let mut run = Run::default();
        self.run_into(command, &mut run).await;
        run
    }

    /// Runs `command` to its `complete`, recording into a prepared `run`.
    pub async fn run_into(&mut self, command: Command, run: &mut Run) {
        self.start(command, run).await;
        while !run.done() {
            if let Got::Closed = self.pump(run).await {
                panic!("connection closed during the command: {}", run.describe());
            }
        }
    }

    /// Drops the connection without a close frame (as a crashed master would).
    pub fn drop_hard(self) {
        drop(self.ws);
    }

    pub async fn interrupt(&mut self, run: &Run, why: &str) {
        let id = run.id.clone().unwrap();
        let msg = self
            .session
            .interrupt_command(&id, why, Some("b1".into()))
            .expect("the command is active");
        self.send(&msg).await;
    }
}

fn record(run: &mut Run, request: WorkerRequest) -> Outcome {
    match request {
        WorkerRequest::Update { entries, .. } => {
            run.updates += 1;
            for e in entries {
                if let UpdateEntry::Stdout(l) = &e {
                    run.max_update_bytes = run.max_update_bytes.max(l.text.len());
                    assert_eq!(l.newline_idx.len(), l.line_times.len());
                    assert!(l.text.ends_with('\n'));
                    if let Some(sink) = run.stdout_sink.as_mut() {
                        sink(&l.text);
                        continue;
                    }
                }
                run.entries.push(e);
            }
            Outcome::nil()
        }
        WorkerRequest::Complete { failure, .. } => {
            run.complete = Some(failure);
            Outcome::nil()
        }
        WorkerRequest::UploadFileWrite { data, .. }
        | WorkerRequest::UploadDirectoryWrite { data, .. } => {
            run.upload_writes += 1;
            run.uploaded.extend(data);
            Outcome::nil()
        }
        WorkerRequest::UploadFileClose { .. } => {
            run.closed = true;
            Outcome::nil()
        }
        WorkerRequest::UploadFileUtime {
            access_time,
            modified_time,
            ..
        } => {
            run.utime = Some((access_time, modified_time));
            Outcome::nil()
        }
        WorkerRequest::UploadDirectoryUnpack { .. } => {
            run.unpacked = true;
            Outcome::nil()
        }
        WorkerRequest::ReadFile { length, .. } => {
            run.read_requests.push(length);
            let end = (run.download_pos + length as usize).min(run.download.len());
            let chunk = run.download[run.download_pos..end].to_vec();
            run.download_pos = end;
            Outcome::data(chunk)
        }
        WorkerRequest::ReadFileClose { .. } => {
            run.closed = true;
            Outcome::nil()
        }
    }
}

/// The real `abo worker` process.
pub struct Worker {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub log: PathBuf,
}

/// Runs `abo worker create` in a fresh directory.
pub fn create(port: u16, password: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wdir = dir.path().join("worker");
    let out = Process::new(abo())
        .args(["worker", "create"])
        .arg(&wdir)
        .args(["--master", &format!("127.0.0.1:{port}")])
        .args(["--name", NAME, "--password", password])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    if !extra.is_empty() {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(wdir.join("worker.toml"))
            .unwrap();
        f.write_all(extra.as_bytes()).unwrap();
    }
    dir
}

impl Worker {
    /// Creates a worker for `port` and starts it.
    pub fn start(port: u16) -> Worker {
        Worker::start_with(create(port, PASSWORD, ""))
    }

    pub fn start_with(dir: tempfile::TempDir) -> Worker {
        let log = dir.path().join("worker.log");
        let child = Process::new(abo())
            .args(["worker", "start"])
            .arg(dir.path().join("worker"))
            .arg("--allow-root")
            .env("RUST_LOG", "abo_worker=debug,info")
            .env("ABO_TEST_SECRET_ENV", "do-not-log-me")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Worker {
            dir,
            child: Some(child),
            log,
        }
    }

    pub fn worker_dir(&self) -> PathBuf {
        self.dir.path().join("worker")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident memory of the worker process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// CPU time (user + system) the worker process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the worker to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in the log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // Field 3 is the state; Z = zombie, X = dead.
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
    }
}

/// Waits until `path` exists and holds a pid; returns it.
pub async fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `pid` is gone.
pub async fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
