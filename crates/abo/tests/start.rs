//! `abo start`, run for real: a bad configuration exits 1 with its diagnostics; a good one
//! listens on the ports it logs, lists its workers on the API, accepts `abo worker`, and
//! stops cleanly (exit 0) on SIGTERM and with `abo stop` / `abo worker stop`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn abo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_abo"));
    c.env_remove("RUST_LOG");
    c
}

/// A child process killed (by pid) if the test fails before it is stopped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `abo init` with the ports replaced by free ones and short liveness intervals.
fn master_dir(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("master");
    let o = abo().arg("init").arg(&dir).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let toml = dir.join("master.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("\"0.0.0.0:9989\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:8010\"", "\"127.0.0.1:0\"");
    std::fs::write(
        &toml,
        format!("{text}\nworker-ping-interval = 1\nworker-lost-after = 3\n"),
    )
    .unwrap();
    dir
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// Reads the master's log lines until both addresses were logged.
fn addresses(lines: &mpsc::Receiver<String>) -> (SocketAddr, SocketAddr) {
    let (mut workers, mut http) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers.is_none() || http.is_none() {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("abo start logs its addresses");
        if let Some((_, a)) = line.split_once("listening for workers on ") {
            workers = a.trim().parse().ok();
        }
        if let Some((_, a)) = line.split_once("serving the API on http://") {
            http = a.trim().parse().ok();
        }
    }
    (workers.unwrap(), http.unwrap())
}

/// `abo start DIR`, its log lines sent to a channel as they come, and the whole log once
/// it exits.
fn start_master(
    dir: &Path,
) -> (
    Proc,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut master = Proc(
        abo()
            .arg("start")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stderr = master.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (master, lines, reader)
}

#[test]
fn a_bad_configuration_is_reported_and_nothing_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = master_dir(tmp.path());
    let toml = dir.join("master.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("worker-lost-after = 3", "worker-lost-after = 0.5");
    std::fs::write(&toml, text).unwrap();
    let o = abo().arg("start").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("master.toml:"), "{err}");
    assert!(err.contains("worker-lost-after"), "{err}");
}

#[test]
fn start_serve_a_worker_and_stop_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = master_dir(tmp.path());
    let (mut master, lines, reader) = start_master(&dir);
    let (worker_addr, http_addr) = addresses(&lines);

    let (status, body) = get(http_addr, "/api/v1/workers");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["name"], "local");
    assert_eq!(list[0]["connected"], false);
    assert_eq!(list[0]["capabilities"][0]["version"], "15");

    let wdir = tmp.path().join("worker");
    let worker_process = start_worker(&wdir, worker_addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let worker = loop {
        let (_, body) = get(http_addr, "/api/v1/workers");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        if list[0]["connected"] == true {
            break list[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the worker never connected: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(worker["version"].is_string(), "{worker}");
    assert!(worker["connected_since"].is_string(), "{worker}");
    assert!(!worker.to_string().contains("change-me"));
    // The binary brings its own `pow` and `log` (src/libm_shim.rs): no libm is mapped.
    for pid in [master.0.id(), worker_process.0.id()] {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        assert!(maps.contains("libc.so"), "{maps}");
        assert!(!maps.contains("libm.so"), "{maps}");
    }

    // SIGTERM: a clean stop, exit status 0.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(master.0.id() as i32, libc::SIGTERM);
    }
    let status = exited(&mut master.0, "abo start");
    let log = reader.join().unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(!log.contains("change-me"), "{log}");
}

/// `abo worker create` and `abo worker start` in `wdir`, for the worker `local`.
fn start_worker(wdir: &Path, master: SocketAddr) -> Proc {
    let o = abo()
        .args(["worker", "create"])
        .arg(wdir)
        .args(["--master", &master.to_string()])
        .args(["--name", "local", "--password", "change-me"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Proc(
        abo()
            .args(["worker", "start"])
            .arg(wdir)
            .arg("--allow-root")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits for a child to exit on its own.
fn exited(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn abo_stop_and_abo_worker_stop_find_their_process_and_wait_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = master_dir(tmp.path());
    let (mut master, lines, _log) = start_master(&dir);
    let (worker_addr, _http) = addresses(&lines);
    // A second master on the same directory is refused (it would share the database).
    let o = abo().arg("start").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a master already runs") && err.contains("abo stop"),
        "{err}"
    );
    let wdir = tmp.path().join("worker");
    let mut worker = start_worker(&wdir, worker_addr);
    // The file is created before it is locked: only its pid says the worker holds it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = worker.0.id().to_string();
    while !std::fs::read_to_string(wdir.join("worker.pid")).is_ok_and(|p| p.trim() == pid) {
        assert!(Instant::now() < deadline, "no worker.pid with pid {pid}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nor two workers in one directory.
    let o = abo()
        .args(["worker", "start"])
        .arg(&wdir)
        .arg("--allow-root")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("a worker already runs"), "{err}");

    let o = abo().args(["worker", "stop"]).arg(&wdir).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("worker stopped"), "{out}");
    // `abo worker stop` returned only once the process was gone.
    assert!(
        worker.0.try_wait().unwrap().is_some(),
        "`abo worker stop` returned before the worker exited"
    );
    assert!(!wdir.join("worker.pid").exists());

    let o = abo().arg("stop").arg(&dir).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("master stopped"));
    assert!(exited(&mut master.0, "the master").success());
    assert!(!dir.join("abo.pid").exists());

    // Nothing running: a clear error, exit status 2.
    let o = abo().arg("stop").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no running master") && err.contains("abo start"),
        "{err}"
    );

    // A stale pid file whose number now belongs to another program: nothing is signalled.
    let mut stranger = Proc(Command::new("sleep").arg("30").spawn().unwrap());
    std::fs::write(dir.join("abo.pid"), format!("{}\n", stranger.0.id())).unwrap();
    let o = abo().arg("stop").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sleep 30") && err.contains("nothing was signalled"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        stranger.0.try_wait().unwrap().is_none(),
        "sleep was signalled"
    );
}
