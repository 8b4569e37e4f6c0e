//! Shared by the end-to-end tests (`tests/e2e_*.rs`) and the dispatch benchmark: the
//! fixtures of testsupport/ (PostgreSQL clusters, a test master directory), `abo start` and
//! worker processes of either kind, the CLI, the JSON API, and waiting with deadlines.
//!
//! Everything is real: processes on loopback, the servers of testsupport/pg.sh, the
//! buildouts of testsupport/buildouts run by zc.buildout. A test that needs the fixtures
//! fails, with what to do, when `scripts/test` (or `source testsupport/setup.sh`) did not
//! set them up.

#![allow(dead_code)] // each test binary uses a different part

pub mod changes;
pub mod changes_bench;
pub mod dispatch;

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `abo` binary under test.
pub fn abo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_abo"))
}

/// The master's or a worker's long-lived `abo` process (`role`: `MASTER` or `WORKER`),
/// started through the program named by `ABO_TEST_WRAP_MASTER` / `ABO_TEST_WRAP_WORKER`
/// when that is set, with the binary's path as its first argument: how
/// `scripts/symbol-order` records the functions a master and a worker execute.
pub fn abo_process(role: &str) -> Command {
    match std::env::var_os(format!("ABO_TEST_WRAP_{role}")) {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.arg(abo_bin());
            c
        }
        None => Command::new(abo_bin()),
    }
}

/// A line on the test's real stderr (not captured by the test harness): timings show in
/// the suite's output.
pub fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The fixtures' environment, or a failure saying how to get it.
pub struct Fixtures {
    pub testsupport: PathBuf,
    pub bindirs: Vec<(String, PathBuf)>,
    pub buildout_venv: PathBuf,
}

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: the end-to-end fixtures (PostgreSQL 13/15/17, zc.buildout, the \
             stand-in OpenERP) are not set up. Run ./scripts/test, or `source \
             testsupport/setup.sh` in this shell before cargo test (testsupport/README.md)."
        ),
    }
}

pub fn fixtures() -> Fixtures {
    let testsupport = PathBuf::from(required("ABO_TESTSUPPORT_DIR"));
    let bindirs = required("ABO_PG_BINDIRS")
        .split(':')
        .filter_map(|e| e.split_once('='))
        .map(|(v, d)| (v.to_owned(), PathBuf::from(d)))
        .collect();
    let buildout_venv = PathBuf::from(required("ABO_BUILDOUT_VENV"));
    required("ABO_STANDIN_DIR");
    assert!(
        testsupport.join("pg.sh").is_file(),
        "ABO_TESTSUPPORT_DIR={} has no pg.sh",
        testsupport.display()
    );
    Fixtures {
        testsupport,
        bindirs,
        buildout_venv,
    }
}

/// The stock worker's `buildbot-worker` script, installed by `scripts/test`.
pub fn buildbot_worker_bin() -> PathBuf {
    let path = match std::env::var_os("ABO_BUILDBOT_WORKER") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/buildbot-worker-venv/bin/buildbot-worker"),
    };
    assert!(
        path.is_file(),
        "the stock buildbot-worker 4.3.0 is not installed at {}: run ./scripts/test (it \
         installs it into $ABO_CACHE_DIR/buildbot-worker-venv), or set ABO_BUILDBOT_WORKER",
        path.display()
    );
    path
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh directory under /tmp, mode 755 (the servers run as abo-pg, which must reach
/// it), short enough for Unix socket paths. Removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("a temporary directory")
            .keep();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("ABO_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// PostgreSQL clusters started once per test binary by testsupport/pg.sh, shared by its
/// tests (each test master uses its own database names), stopped when the binary exits.
pub struct Clusters {
    pub base: PathBuf,
    /// (major version, cluster directory)
    pub clusters: Vec<(String, PathBuf)>,
    /// `pg.sh capability` of each.
    pub capabilities: Vec<String>,
}

static CLUSTERS: OnceLock<Clusters> = OnceLock::new();
static CLUSTERS_TO_STOP: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_clusters() {
    let Ok(list) = CLUSTERS_TO_STOP.lock() else {
        return;
    };
    for (pg_sh, dir) in list.iter() {
        let _ = Command::new(pg_sh)
            .arg("stop")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if std::env::var_os("ABO_E2E_KEEP").is_none() {
        if let Some(c) = CLUSTERS.get() {
            let _ = std::fs::remove_dir_all(&c.base);
        }
    }
}

/// The shared clusters of PostgreSQL 13, 15 and 17, all running at once.
pub fn clusters() -> &'static Clusters {
    CLUSTERS.get_or_init(|| {
        let fx = fixtures();
        let pg_sh = fx.testsupport.join("pg.sh");
        let base = {
            let t = TempDir::new("abo-e2e-pg.");
            let p = t.path().to_owned();
            std::mem::forget(t); // removed at exit, by stop_clusters
            p
        };
        let t = Instant::now();
        let mut clusters = Vec::new();
        let mut capabilities = Vec::new();
        // SAFETY: registering a plain extern "C" function to run at exit.
        unsafe {
            libc::atexit(stop_clusters);
        }
        for (i, v) in ["13", "15", "17"].into_iter().enumerate() {
            let dir = base.join(format!("pg{v}"));
            CLUSTERS_TO_STOP
                .lock()
                .unwrap()
                .push((pg_sh.clone(), dir.clone()));
            run_ok(
                Command::new(&pg_sh)
                    .arg("start")
                    .arg(v)
                    .arg(&dir)
                    .arg((25513 + i).to_string()),
            );
            let cap = run_ok(Command::new(&pg_sh).arg("capability").arg(&dir));
            capabilities.push(cap.trim().to_owned());
            clusters.push((v.to_owned(), dir));
        }
        say(&format!(
            "e2e: PostgreSQL 13, 15, 17 started in {:.1}s ({})",
            t.elapsed().as_secs_f64(),
            base.display()
        ));
        Clusters {
            base,
            clusters,
            capabilities,
        }
    })
}

/// The credentials of the API user every test master gets.
pub const API_USER: &str = "e2e";
pub const API_PASSWORD: &str = "e2e-api-secret";

/// A worker account of a test master.
pub struct Account {
    pub name: String,
    pub password: String,
}

/// Lays out a test master in `dir` with testsupport/mkmaster.sh, then writes its own
/// `workers.cfg` (each account offers every shared cluster), manifest and settings, and
/// adds the API user.
pub fn make_master(
    dir: &Path,
    accounts: &[Account],
    db_prefix: &str,
    manifest: &str,
    extra_toml: &str,
) {
    let fx = fixtures();
    let c = clusters();
    let mut mk = Command::new(fx.testsupport.join("mkmaster.sh"));
    mk.arg(dir).args([
        "--worker-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    for (_, d) in &c.clusters {
        mk.arg(d);
    }
    run_ok(&mut mk);
    let mut workers = String::new();
    for a in accounts {
        workers.push_str(&format!(
            "[{}]\npassword = {}\nmax_builds = 2\ndb_prefix = {db_prefix}\ncapability = {}\n\n",
            a.name,
            a.password,
            c.capabilities.join("\n             ")
        ));
    }
    std::fs::write(dir.join("workers.cfg"), workers).unwrap();
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
    let toml = dir.join("master.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("worker-ping-interval = 1\nworker-lost-after = 5\n");
    text.push_str(extra_toml);
    std::fs::write(&toml, text).unwrap();
    add_user(dir, API_USER, API_PASSWORD);
}

/// `abo user add DIR NAME --password-stdin`.
pub fn add_user(dir: &Path, name: &str, password: &str) {
    let mut child = Command::new(abo_bin())
        .args(["user", "add"])
        .arg(dir)
        .args([name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("abo user add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "abo user add failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The end of a file, for failure messages.
pub fn tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_owned()
}

/// `abo start DIR`, its log in DIR/master-N.log.
pub struct Master {
    pub dir: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
    pub http: SocketAddr,
    pub workers: SocketAddr,
    starts: u32,
}

impl Master {
    /// Starts the master and waits until it serves the API. The first start reads the
    /// ports it chose (`:0`) and writes them into master.toml, so a restart and the
    /// workers find it again.
    pub fn start(dir: &Path) -> Master {
        let mut m = Master {
            dir: dir.to_owned(),
            child: None,
            log: PathBuf::new(),
            http: "127.0.0.1:1".parse().unwrap(),
            workers: "127.0.0.1:1".parse().unwrap(),
            starts: 0,
        };
        m.spawn();
        let toml = dir.join("master.toml");
        let text = std::fs::read_to_string(&toml)
            .unwrap()
            .replace(
                "worker-listen = \"127.0.0.1:0\"",
                &format!("worker-listen = \"{}\"", m.workers),
            )
            .replace(
                "http-listen = \"127.0.0.1:0\"",
                &format!("http-listen = \"{}\"", m.http),
            );
        std::fs::write(toml, text).unwrap();
        m
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.log = self.dir.join(format!("master-{}.log", self.starts));
        let file = std::fs::File::create(&self.log).unwrap();
        let t = Instant::now();
        let child = abo_process("MASTER")
            .arg("start")
            .arg(&self.dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("abo start");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut workers, mut http) = (None, None);
        while workers.is_none() || http.is_none() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            for line in text.lines() {
                if let Some((_, a)) = line.split_once("listening for workers on ") {
                    workers = a.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                if let Some((_, a)) = line.split_once("serving the API on http://") {
                    http = a.split_whitespace().next().and_then(|a| a.parse().ok());
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("abo start exited ({status}):\n{}", tail(&self.log, 4000));
            }
            assert!(
                Instant::now() < deadline,
                "abo start did not log its addresses:\n{}",
                tail(&self.log, 4000)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.workers = workers.unwrap();
        self.http = http.unwrap();
        let d = Instant::now() + Duration::from_secs(30);
        while get(self.http, "workers").is_err() {
            assert!(Instant::now() < d, "the API does not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        say(&format!(
            "e2e: master ready in {:.2}s (start {})",
            t.elapsed().as_secs_f64(),
            self.starts
        ));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = c.try_wait() {
                    assert!(status.success(), "abo start exited with {status}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "abo start did not stop on SIGTERM:\n{}",
                        tail(&self.log, 3000)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts it again on the same directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 6000)
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A kind of worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `abo worker`.
    Abo,
    /// buildbot-worker 4.3.0 from PyPI, `--protocol msgpack_experimental_v7`, run by twistd.
    Stock,
}

/// A worker process in its own process group: dropping it kills the group (the commands
/// a stock worker or a killed worker left behind too).
pub struct WorkerProcess {
    pub peer: Peer,
    pub name: String,
    child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl WorkerProcess {
    /// Creates the worker directory `dir` and starts it; `env` goes into its environment
    /// (e.g. `ABO_STANDIN_SLEEP`).
    pub fn start(
        peer: Peer,
        dir: &Path,
        master: SocketAddr,
        account: &Account,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        if !dir.exists() {
            match peer {
                Peer::Stock => {
                    run_ok(
                        Command::new(buildbot_worker_bin())
                            .args(["create-worker", "--protocol", "msgpack_experimental_v7"])
                            .arg(dir)
                            .arg(master.to_string())
                            .args([&account.name, &account.password]),
                    );
                    let tac = dir.join("buildbot.tac");
                    let mut text = std::fs::read_to_string(&tac).unwrap();
                    text.push_str(
                        "\nfrom buildbot_worker.msgpack import BuildbotWebSocketClientProtocol\n\
                         BuildbotWebSocketClientProtocol.debug = False\n",
                    );
                    std::fs::write(&tac, text).unwrap();
                }
                Peer::Abo => {
                    run_ok(
                        Command::new(abo_bin())
                            .args(["worker", "create"])
                            .arg(dir)
                            .args(["--master", &master.to_string()])
                            .args(["--name", &account.name, "--password", &account.password]),
                    );
                }
            }
        }
        let log = dir.with_file_name(format!(
            "{}.log",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = match peer {
            Peer::Stock => {
                let mut c = Command::new(buildbot_worker_bin().with_file_name("twistd"));
                c.args(["--nodaemon", "--pidfile=", "-y", "buildbot.tac"]);
                c
            }
            Peer::Abo => {
                let mut c = abo_process("WORKER");
                c.args(["worker", "start"]).arg(dir).arg("--allow-root");
                c
            }
        };
        cmd.current_dir(dir)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().expect("starting a worker");
        WorkerProcess {
            peer,
            name: account.name.clone(),
            child,
            dir: dir.to_owned(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL to the worker process alone (what it started goes on, orphaned).
    pub fn kill_process(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 4000)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we created for this worker.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_strays(&self.dir);
    }
}

/// Kills the processes working under `dir`: the commands a killed worker left running
/// (each command is its own process group, out of reach of the worker's).
pub fn kill_strays(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
            // SAFETY: kill(2); the process works in our test's temporary directory.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .proxy(None)
        .build()
        .into()
}

/// `GET /api/v1/PATH` as JSON; an error for a failed connection or a status other than 200.
pub fn get(http: SocketAddr, path: &str) -> Result<Value, String> {
    let url = format!("http://{http}/api/v1/{path}");
    let mut r = agent().get(&url).call().map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("GET {url}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
}

/// `GET` that must succeed.
pub fn api(http: SocketAddr, path: &str) -> Value {
    get(http, path).unwrap_or_else(|e| panic!("{e}"))
}

/// A step log's text (`GET builds/ID/steps/N/logs/NAME`).
pub fn log_text(http: SocketAddr, build: u64, step: u64, name: &str) -> String {
    let url = format!("http://{http}/api/v1/builds/{build}/steps/{step}/logs/{name}");
    let mut r = agent().get(&url).call().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap()
}

/// `POST builders/NAME/force` as the API user: the request id.
pub fn force(http: SocketAddr, builder: &str) -> u64 {
    let url = format!("http://{http}/api/v1/builders/{builder}/force");
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{API_USER}:{API_PASSWORD}")
        )
    );
    let mut r = agent()
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(r#"{"properties": {}, "reason": "e2e"}"#)
        .unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(status, 201, "POST {url}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["request"].as_u64().expect("a request id")
}

/// The CLI against a master, as the API user.
pub fn cli(master: &Master, args: &[&str]) -> Output {
    Command::new(abo_bin())
        .args(args)
        .env("ABO_MASTER", master.url())
        .env("ABO_USER", API_USER)
        .env("ABO_PASSWORD", API_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("running abo")
}

/// Polls `check` every 100 ms until it gives a value, or fails after `limit` with `what`
/// and the master's log.
pub fn wait_until<T>(
    master: &Master,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; the master's log:\n{}",
            master.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the worker `name` is connected.
pub fn wait_connected(master: &Master, worker: &WorkerProcess) {
    let t = Instant::now();
    let name = worker.name.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = get(master.http, "workers").is_ok_and(|ws| {
            ws.as_array()
                .into_iter()
                .flatten()
                .any(|w| w["name"] == name.as_str() && w["connected"] == true)
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {name} ({:?}) did not connect; its log:\n{}\nthe master's log:\n{}",
            worker.peer,
            worker.log_tail(),
            master.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    say(&format!(
        "e2e: {:?} worker {name} connected in {:.1}s",
        worker.peer,
        t.elapsed().as_secs_f64()
    ));
}

/// Waits until request `id` is complete; returns it.
pub fn wait_request(master: &Master, id: u64, limit: Duration) -> Value {
    wait_until(master, limit, &format!("request {id} to complete"), || {
        let r = get(master.http, &format!("requests/{id}")).ok()?;
        (r["state"] == "complete").then_some(r)
    })
}

/// Seconds since the epoch of an API time (RFC 3339, fractions allowed).
pub fn time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    parse_time(s).unwrap_or_else(|| panic!("not an RFC 3339 time: {s}"))
}

pub fn parse_time(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let k = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = format!("0.{}", &r[..k]).parse().ok()?;
        rest = &r[k..];
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = rest[1..].split_once(':')?;
            sign * (hh.parse::<i64>().ok()? * 3600 + mm.parse::<i64>().ok()? * 60)
        }
    };
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    Some((days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac)
}

/// The step named `name` of a build (`GET builds/ID`).
pub fn step<'a>(build: &'a Value, name: &str) -> &'a Value {
    build["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {build:#}"))
}

/// The text of the log `log` of step `name` of a build.
pub fn step_log(http: SocketAddr, build: &Value, name: &str, log: &str) -> String {
    let s = step(build, name);
    log_text(
        http,
        build["id"].as_u64().unwrap(),
        s["index"].as_u64().unwrap(),
        log,
    )
}

/// The `p` quantile (0 to 1) of figures sorted ascending; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`); 0 when it cannot be read.
pub fn status_kib(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
