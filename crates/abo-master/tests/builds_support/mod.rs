//! Shared by the `builds_*` tests: a master directory on disk, `abo start` and `abo worker`
//! as real processes (killed by pid when dropped), and a small HTTP client for the API.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `abo` binary of this build (cargo builds it with the workspace's tests), or `ABO_BIN`.
pub fn abo_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ABO_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("abo"))
        .expect("the test binary is in target/<profile>/deps");
    assert!(
        path.is_file(),
        "the abo binary is not at {}: build it (cargo build -p abo) or set ABO_BIN",
        path.display()
    );
    path
}

pub const USER: &str = "alice";
pub const USER_PASSWORD: &str = "alice-pw-Zq9";

/// A master directory: master.toml (loopback ports chosen by the system, fast liveness),
/// a manifest and a workers file.
pub struct MasterDir {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl MasterDir {
    /// `toml` is appended to the base settings; `manifest` and `workers` are written as is.
    pub fn new(toml: &str, manifest: &str, workers: &str) -> MasterDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("master");
        std::fs::create_dir_all(dir.join("buildouts")).unwrap();
        // A test that restarts the master fixes the worker port itself (workers reconnect
        // to the address they were created with).
        let listen = if toml.contains("worker-listen") {
            ""
        } else {
            "worker-listen = \"127.0.0.1:0\"\n"
        };
        let base = format!(
            "{listen}http-listen = \"127.0.0.1:0\"\n\
             worker-ping-interval = 0.5\nworker-lost-after = 2\n"
        );
        std::fs::write(dir.join("master.toml"), format!("{base}{toml}")).unwrap();
        std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
        std::fs::write(dir.join("workers.cfg"), workers).unwrap();
        let out = Command::new(abo_bin())
            .args(["user", "add"])
            .arg(&dir)
            .arg(USER)
            .arg("--password-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{USER_PASSWORD}\n").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "abo user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        MasterDir { tmp, dir }
    }

    /// Starts `abo start` on this directory.
    pub fn start(&self) -> Master {
        Master::start(&self.dir)
    }

    /// Creates and starts a worker `name` in `<tmp>/<name>` connecting to `master`.
    pub fn worker(&self, master: &Master, name: &str, password: &str) -> Worker {
        let dir = self.tmp.path().join(name);
        if !dir.join("worker.toml").exists() {
            let out = Command::new(abo_bin())
                .args(["worker", "create"])
                .arg(&dir)
                .args(["--master", &master.worker_addr.to_string()])
                .args(["--name", name, "--password", password])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "abo worker create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = self.tmp.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(abo_bin())
            .args(["worker", "start"])
            .arg(&dir)
            .arg("--allow-root")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Worker {
            child,
            dir,
            log,
            name: name.to_owned(),
        }
    }
}

/// A loopback port free now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A process killed (by pid) when dropped.
pub struct Worker {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub name: String,
}

impl Worker {
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn kill(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `abo start` running; its stderr is kept for assertions.
pub struct Master {
    pub child: Child,
    pub worker_addr: SocketAddr,
    pub http: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Master {
    pub fn start(dir: &Path) -> Master {
        let mut child = Command::new(abo_bin())
            .arg("start")
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut all = keep.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
                drop(all);
                let _ = tx.send(line);
            }
        });
        let (mut workers, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while workers.is_none() || http.is_none() {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!("abo start logs its addresses: {}", log.lock().unwrap())
                });
            if let Some((_, a)) = line.split_once("listening for workers on ") {
                workers = a.trim().parse().ok();
            }
            if let Some((_, a)) = line.split_once("serving the API on http://") {
                http = a.trim().parse().ok();
            }
        }
        Master {
            child,
            worker_addr: workers.unwrap(),
            http: http.unwrap(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The master's resident memory and its peak, in bytes (`/proc`).
    pub fn rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "abo start did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http(self.http, "GET", path, None, None)
    }

    /// GET as JSON; with the test user's credentials when the master wants a reader
    /// (`[web] public = false`).
    pub fn get_json(&self, path: &str) -> Value {
        let mut r = self.get(path);
        if r.status == 401 {
            r = http(self.http, "GET", path, Some((USER, USER_PASSWORD)), None);
        }
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// POST with the test user's credentials.
    pub fn post(&self, path: &str, body: &str) -> Response {
        http(
            self.http,
            "POST",
            path,
            Some((USER, USER_PASSWORD)),
            Some(body),
        )
    }

    /// Forces a build of `builder` with properties; the request id.
    pub fn force(&self, builder: &str, props: &[(&str, &str)]) -> u64 {
        let props: BTreeMap<&str, &str> = props.iter().copied().collect();
        let body = serde_json::json!({"properties": props, "reason": "test"}).to_string();
        let r = self.post(&format!("/api/v1/builders/{builder}/force"), &body);
        assert_eq!(r.status, 201, "force: {}", r.text());
        r.json()["request"].as_u64().unwrap()
    }

    /// Waits until `GET workers` shows `name` connected.
    pub fn wait_connected(&self, name: &str, worker: &Worker) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = self.get_json("/api/v1/workers");
            let connected = list
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["name"] == name && w["connected"] == true);
            if connected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker {name} never connected: {}",
                std::fs::read_to_string(&worker.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until request `id` is complete; its builds.
    pub fn wait_request(&self, id: u64, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.get_json(&format!("/api/v1/requests/{id}"));
            if r["state"] == "complete" {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} not complete within {limit:?}: {r}\nmaster log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `f(build)` holds for build `id`; the build.
    pub fn wait_build(&self, id: u64, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.get(&format!("/api/v1/builds/{id}"));
            if r.status == 200 {
                let b = r.json();
                if f(&b) {
                    return b;
                }
                assert!(
                    Instant::now() < deadline,
                    "build {id} not as expected within {limit:?}: {b}\nmaster log:\n{}",
                    self.log_text()
                );
            } else {
                assert!(Instant::now() < deadline, "build {id}: {}", r.text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The whole text of a log, read page by page (empty while the log does not exist).
    pub fn log(&self, build: u64, step: usize, name: &str) -> String {
        let mut out = Vec::new();
        loop {
            let r = self.get(&format!(
                "/api/v1/builds/{build}/steps/{step}/logs/{name}?offset={}",
                out.len()
            ));
            if r.status == 404 && out.is_empty() {
                break;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            if r.body.is_empty() {
                break;
            }
            out.extend_from_slice(&r.body);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), chunked bodies
/// decoded.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<&str>,
) -> Response {
    use base64::Engine as _;
    let token = auth.map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(token) = &token {
        headers.push(("Authorization", token));
    }
    if method != "GET" {
        headers.push(("Content-Type", "application/json"));
    }
    send_raw(addr, method, path, &headers, body.unwrap_or(""))
}

/// [`http`] with any headers (cookies, a form's content type); a `Content-Length` is added
/// to every request but a GET.
pub fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Response {
        status,
        headers,
        body,
    }
}
