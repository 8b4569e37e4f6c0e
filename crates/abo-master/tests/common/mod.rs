//! Shared by the integration tests and the benchmark: start an in-process master, start a
//! real worker process of either kind against it, and small helpers to run commands.
//!
//! A worker kind is a [`Peer`]; every scenario takes one, so a scenario written once runs
//! against each kind (see the `peers!` macro).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use abo_master::{
    CommandResult, MasterConfig, RunningCommand, RunningMaster, Timing, WorkerAccount,
    WorkerConnection,
};
use abo_proto::{Command, CommandLine, EnvValue, ShellArgs, UpdateEntry};

/// A variable every worker process gets, to test `${VAR}` expansion on the worker side.
pub const WORKER_VAR: (&str, &str) = ("ABO_TEST_WORKER_VAR", "from-the-worker");
/// A secret in every worker's environment, which must never show in the API.
pub const WORKER_SECRET: (&str, &str) = ("ABO_TEST_SECRET", "s3cr3t-value-never-shown");

/// Runs one scenario function per peer: `peers!(scenario_a, scenario_b)` makes
/// `stock::scenario_a`, `abo::scenario_a`, ... Each scenario is `async fn(Peer)`.
#[macro_export]
macro_rules! peers {
    ($($scenario:ident),* $(,)?) => {
        mod stock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Peer::Stock).await
                }
            )*
        }
        mod abo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Peer::Abo).await
                }
            )*
        }
    };
}

/// The workspace root (two levels above this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The stock worker's `buildbot-worker` script, installed by `scripts/test`.
pub fn buildbot_worker_bin() -> PathBuf {
    let path = match std::env::var_os("ABO_BUILDBOT_WORKER") {
        Some(p) => PathBuf::from(p),
        None => workspace().join(".cache/buildbot-worker-venv/bin/buildbot-worker"),
    };
    assert!(
        path.is_file(),
        "the stock buildbot-worker 4.3.0 is not installed at {}: run ./scripts/test (it \
         installs it into $ABO_CACHE_DIR/buildbot-worker-venv), or set ABO_BUILDBOT_WORKER to \
         a buildbot-worker 4.3.0 script",
        path.display()
    );
    path
}

/// The `abo` binary of this build (cargo builds it with the workspace's tests), or
/// `ABO_BIN`.
pub fn abo_bin() -> PathBuf {
    let path = match std::env::var_os("ABO_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            // target/<profile>/deps/<test> → target/<profile>/abo
            let exe = std::env::current_exe().expect("the test binary has a path");
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("abo"))
                .expect("the test binary is in target/<profile>/deps")
        }
    };
    assert!(
        path.is_file(),
        "the abo binary is not at {}: build it (cargo build -p abo) or set ABO_BIN",
        path.display()
    );
    path
}

/// A kind of worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// buildbot-worker 4.3.0 from PyPI, `--protocol msgpack_experimental_v7`, run by twistd.
    Stock,
    /// `abo worker`.
    Abo,
}

/// A worker process, killed (by pid) when dropped.
pub struct WorkerProcess {
    child: Child,
    /// The worker's base directory.
    pub dir: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

fn run_ok(cmd: &mut Process) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Peer {
    /// Creates a worker directory `dir` for `name`/`password` connecting to `master`.
    pub fn create(self, dir: &Path, master: SocketAddr, name: &str, password: &str) {
        match self {
            Peer::Stock => {
                run_ok(
                    Process::new(buildbot_worker_bin())
                        .args(["create-worker", "--protocol", "msgpack_experimental_v7"])
                        .arg(dir)
                        .arg(master.to_string())
                        .args([name, password]),
                );
                // The stock worker logs every frame, command output included, unless told
                // not to: 100 MB of output would go to its log too.
                let tac = dir.join("buildbot.tac");
                let mut text = std::fs::read_to_string(&tac).expect("buildbot.tac");
                text.push_str(
                    "\nfrom buildbot_worker.msgpack import BuildbotWebSocketClientProtocol\n\
                     BuildbotWebSocketClientProtocol.debug = False\n",
                );
                std::fs::write(&tac, text).expect("buildbot.tac");
            }
            Peer::Abo => run_ok(
                Process::new(abo_bin())
                    .args(["worker", "create"])
                    .arg(dir)
                    .args(["--master", &master.to_string()])
                    .args(["--name", name, "--password", password]),
            ),
        }
    }

    /// Starts the worker created in `dir`; its output goes to `log`.
    pub fn spawn(self, dir: &Path, log: &Path) -> WorkerProcess {
        let out = std::fs::File::create(log).expect("worker log");
        let err = out.try_clone().expect("worker log");
        let mut cmd = match self {
            Peer::Stock => {
                let twistd = buildbot_worker_bin().with_file_name("twistd");
                let mut c = Process::new(twistd);
                c.args(["--nodaemon", "--pidfile=", "-y", "buildbot.tac"]);
                c
            }
            Peer::Abo => {
                let mut c = Process::new(abo_bin());
                c.args(["worker", "start"]).arg(dir).arg("--allow-root");
                c
            }
        };
        let child = cmd
            .current_dir(dir)
            .env(WORKER_VAR.0, WORKER_VAR.1)
            .env(WORKER_SECRET.0, WORKER_SECRET.1)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {self:?} worker: {e}"));
        WorkerProcess {
            child,
            dir: dir.to_owned(),
            log: log.to_owned(),
        }
    }
}

impl WorkerProcess {
    /// The worker's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to the worker process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own child; no memory is involved.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The end of the worker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_owned()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Timing for tests: fast liveness so that loss is noticed in seconds.
pub fn fast_timing() -> Timing {
    Timing {
        ping_interval: Duration::from_millis(500),
        lost_after: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(20),
    }
}

/// A master with one worker account, on loopback, with a free port.
pub fn master_config(accounts: &[(&str, &str)]) -> MasterConfig {
    let accounts = accounts
        .iter()
        .map(|(name, password)| WorkerAccount {
            name: (*name).into(),
            password: (*password).into(),
            capabilities: vec![],
        })
        .collect();
    let mut config = MasterConfig::new("127.0.0.1:0", accounts);
    config.timing = fast_timing();
    config
}

/// A master, one worker process of kind `peer` connected to it, and the connection.
pub struct Fixture {
    pub peer: Peer,
    pub master: RunningMaster,
    pub worker: WorkerProcess,
    pub conn: WorkerConnection,
    /// The worker's base directory, as the worker reported it.
    pub basedir: String,
    pub tmp: tempfile::TempDir,
}

pub const NAME: &str = "w1";
pub const PASSWORD: &str = "pass:word";

/// How long a worker may take to start and connect (twistd imports a lot of Python).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a worker of kind `peer` in `tmp/<dir>` and waits for its connection.
pub async fn connect_worker(
    peer: Peer,
    master: &RunningMaster,
    tmp: &Path,
    dir: &str,
    name: &str,
    password: &str,
) -> (WorkerProcess, WorkerConnection) {
    let wdir = tmp.join(dir);
    peer.create(&wdir, master.worker_addr(), name, password);
    let worker = peer.spawn(&wdir, &tmp.join(format!("{dir}.log")));
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, master.registry().wait_for(name)).await {
        Ok(c) => c,
        Err(_) => panic!(
            "the {peer:?} worker did not connect within {CONNECT_TIMEOUT:?}; its log:\n{}",
            worker.log_tail()
        ),
    };
    (worker, conn)
}

/// A master with the default test account and one connected worker.
pub async fn fixture_with(peer: Peer, config: MasterConfig) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let master = abo_master::start(config).await.expect("master starts");
    let (worker, conn) = connect_worker(peer, &master, tmp.path(), "worker", NAME, PASSWORD).await;
    let basedir = conn
        .info()
        .basedir
        .clone()
        .expect("the worker reports its basedir");
    Fixture {
        peer,
        master,
        worker,
        conn,
        basedir,
        tmp,
    }
}

pub async fn fixture(peer: Peer) -> Fixture {
    fixture_with(peer, master_config(&[(NAME, PASSWORD)])).await
}

impl Fixture {
    /// An absolute worker path under the worker's base directory.
    pub fn wpath(&self, rel: &str) -> String {
        format!("{}/{rel}", self.basedir)
    }

    /// The same path, as this (same) machine sees it.
    pub fn local(&self, rel: &str) -> PathBuf {
        PathBuf::from(self.wpath(rel))
    }

    pub async fn stop(self) {
        let Fixture {
            master, mut worker, ..
        } = self;
        master.shutdown().await;
        worker.kill();
    }
}

/// A shell command running an argument vector in `workdir`.
pub fn argv(workdir: &str, args: &[&str]) -> ShellArgs {
    let mut a = ShellArgs::new(
        workdir,
        CommandLine::Argv(args.iter().map(|s| s.to_string()).collect()),
    );
    a.log_environ = Some(false);
    a
}

/// A shell command running a `/bin/sh -c` script in `workdir`.
pub fn script(workdir: &str, text: &str) -> ShellArgs {
    let mut a = ShellArgs::new(workdir, CommandLine::Shell(text.into()));
    a.log_environ = Some(false);
    a
}

pub fn shell(args: ShellArgs) -> Command {
    Command::Shell(Box::new(args))
}

pub fn set(v: &str) -> EnvValue {
    EnvValue::Set(v.into())
}

/// Everything a small command printed, and its result.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub header: String,
    pub logs: BTreeMap<String, String>,
    pub result: CommandResult,
}

/// Reads a command to its end, keeping its output (small commands only).
pub async fn collect(mut cmd: RunningCommand) -> Output {
    let (mut stdout, mut stderr, mut header) = (String::new(), String::new(), String::new());
    let mut logs: BTreeMap<String, String> = BTreeMap::new();
    while let Some(entry) = cmd.next().await {
        match entry {
            UpdateEntry::Stdout(l) => stdout.push_str(&l.text),
            UpdateEntry::Stderr(l) => stderr.push_str(&l.text),
            UpdateEntry::Header(l) => header.push_str(&l.text),
            UpdateEntry::Log { name, lines } => logs.entry(name).or_default().push_str(&lines.text),
            _ => {}
        }
    }
    Output {
        stdout,
        stderr,
        header,
        logs,
        result: cmd.result().await,
    }
}

/// Runs a command to its end (bounded by 60 s).
pub async fn run(conn: &WorkerConnection, command: Command) -> Output {
    let cmd = conn.run(command).await.expect("command starts");
    within(Duration::from_secs(60), collect(cmd)).await
}

/// Awaits `f`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

/// This process's resident memory, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Deterministic bytes covering every byte value, for binary transfers.
pub fn binary_blob(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| {
            // xorshift, mixed with the index so that every value appears early on.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i < 256 {
                i as u8
            } else {
                (x >> 7) as u8
            }
        })
        .collect()
}
