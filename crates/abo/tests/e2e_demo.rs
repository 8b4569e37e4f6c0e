//! `abo demo`, run for real: it finds this machine's PostgreSQL (Debian's 15, plus the npm
//! 17 of testsupport given with --pg-bin), starts a cluster of each as an unprivileged user
//! (the tests run as root), writes a master directory, starts `abo start` and `abo worker
//! start`, builds, and stops everything. Also `--keep` then `--stop`, and Ctrl-C.
//!
//! The demos of this binary run one at a time: each takes the default ports when free.

mod e2e_support;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn demo(args: &[&str]) -> Command {
    let mut c = Command::new(abo_bin());
    c.arg("demo")
        .args(args)
        .env_remove("ABO_MASTER")
        .env_remove("ABO_USER")
        .env_remove("ABO_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pid_alive(pid: i64) -> bool {
    // A zombie is as good as gone.
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
}

/// No PostgreSQL server left in the demo directory, and no process working in it.
fn assert_all_stopped(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let servers: Vec<_> = ["13", "15", "17"]
            .iter()
            .map(|v| dir.join(format!("pg/{v}/data/postmaster.pid")))
            .filter(|p| p.exists())
            .collect();
        let mut busy = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            if std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c.starts_with(dir)) {
                busy.push(e.file_name());
            }
        }
        if servers.is_empty() && busy.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left running: servers {servers:?}, processes {busy:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pg17_bin() -> String {
    let fx = fixtures();
    fx.bindirs
        .iter()
        .find(|(v, _)| v == "17")
        .map(|(_, d)| d.display().to_string())
        .expect("ABO_PG_BINDIRS names PostgreSQL 17")
}

#[test]
fn the_demo_builds_on_each_postgresql_and_stops_everything() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("abo-e2e-demo.");
    let dir = tmp.path().join("demo");
    let t = Instant::now();
    let o = demo(&["--dir", dir.to_str().unwrap(), "--pg-bin", &pg17_bin()])
        .output()
        .unwrap();
    let out = show(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    say(&format!("e2e demo: {:.1}s", t.elapsed().as_secs_f64()));
    // Every phase, then the builds: psql and the stand-in buildout on 15 and 17.
    for phase in 1..=6 {
        assert!(out.contains(&format!("[{phase}/6]")), "{out}");
    }
    for builder in [
        "demo-psql-postgresql-15",
        "demo-psql-postgresql-17",
        "demo-buildout-postgresql-15",
        "demo-buildout-postgresql-17",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(builder) && l.contains("abo log"))
            .unwrap_or_else(|| panic!("no summary line for {builder}:\n{out}"));
        assert!(line.contains("success"), "{line}\n{out}");
    }
    assert!(
        out.contains("PostgreSQL 15.") && out.contains("PostgreSQL 17."),
        "{out}"
    );
    assert!(out.contains("analyze") && out.contains("testing"), "{out}");
    assert!(out.contains("Where to look next"), "{out}");
    assert!(
        !dir.join("demo.json").exists(),
        "the state of a stopped demo stays"
    );
    assert_all_stopped(&dir);
    // The directory is a master directory that checks.
    let o = Command::new(abo_bin())
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));

    // Run again in the same directory: the previous demo is replaced.
    let o = demo(&["--dir", dir.to_str().unwrap(), "--no-postgresql"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(show(&o).contains("demo-shell"), "{}", show(&o));
    assert!(!dir.join("pg").exists());
    // A directory that is not a demo's is left alone.
    let other = tmp.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let o = demo(&["--dir", other.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        show(&o).contains("was not made by abo demo"),
        "{}",
        show(&o)
    );
    assert!(other.join("notes.txt").exists());
}

#[test]
fn keep_leaves_it_running_and_stop_stops_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("abo-e2e-demo.");
    let dir = tmp.path().join("demo");
    let o = demo(&[
        "--dir",
        dir.to_str().unwrap(),
        "--keep",
        "--pg-bin",
        &pg17_bin(),
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(show(&o).contains("abo demo --stop --dir"), "{}", show(&o));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
    let (master, worker) = (
        state["master_pid"].as_i64().unwrap(),
        state["worker_pid"].as_i64().unwrap(),
    );
    assert!(pid_alive(master) && pid_alive(worker), "{state:#}");
    // The CLI against the kept demo, with the credentials it printed.
    let o = Command::new(abo_bin())
        .args(["builds", "--json"])
        .env("ABO_MASTER", state["http"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let builds: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(builds.as_array().unwrap().len(), 4, "{builds:#}");
    let o = Command::new(abo_bin())
        .args(["force", "demo-psql", "--wait"])
        .env("ABO_MASTER", state["http"].as_str().unwrap())
        .env("ABO_USER", state["user"].as_str().unwrap())
        .env("ABO_PASSWORD", state["password"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // Another demo in the same directory is refused while this one runs.
    let o = demo(&["--dir", dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("still running"), "{}", show(&o));

    let o = demo(&["--dir", dir.to_str().unwrap(), "--stop"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(!pid_alive(master) && !pid_alive(worker));
    assert_all_stopped(&dir);
    let o = demo(&["--dir", dir.to_str().unwrap(), "--stop"])
        .output()
        .unwrap();
    assert!(show(&o).contains("no demo left running"), "{}", show(&o));
}

#[test]
fn ctrl_c_stops_everything() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = TempDir::new("abo-e2e-demo.");
    let dir = tmp.path().join("demo");
    let log = tmp.path().join("demo.out");
    let mut child = demo(&["--dir", dir.to_str().unwrap()])
        // The tests of the buildout build hang: Ctrl-C comes while builds run.
        .env("ABO_STANDIN_SLEEP", "60")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("started on demo-worker") {
            if let Ok(s) = std::fs::read_to_string(dir.join("demo.json")) {
                break serde_json::from_str::<Value>(&s).unwrap();
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the demo ended ({status}) before its builds:\n{text}");
        }
        assert!(Instant::now() < deadline, "no build started:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the demo did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted: stopping"), "{text}");
    say(&format!(
        "e2e demo: Ctrl-C to stopped in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    for key in ["master_pid", "worker_pid"] {
        assert!(!pid_alive(state[key].as_i64().unwrap()), "{key} alive");
    }
    assert_all_stopped(&dir);
}
