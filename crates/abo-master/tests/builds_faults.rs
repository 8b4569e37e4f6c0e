//! Faults: a worker lost mid-build (killed, or stopped and resumed after its build was
//! given to another), and a master killed mid-build and restarted. Nothing is lost, nothing
//! runs twice at once, late writes of a worker that lost its build are refused.

mod builds_support;

use std::time::{Duration, Instant};

use builds_support::{free_port, Master, MasterDir};

const WAIT: Duration = Duration::from_secs(60);

/// Long enough for the test to start a second worker and act while it runs.
const SLOW_TOML: &str = r#"
[[step-sets.slow]]
name = "work"
command = ["sh", "-c", "echo first-%(workername)s; sleep 8; echo late-%(workername)s"]
"#;

/// Long the first time (the master is killed meanwhile), quick when run again.
const RESTART_TOML: &str = r#"
[[step-sets.slow]]
name = "work"
command = ["sh", "-c", "if [ -e ../../ran-once ]; then echo again; else touch ../../ran-once; echo first-%(workername)s; sleep 60; fi"]
"#;

const TWO_WORKERS: &str = "[w1]\npassword = pw-one\n\n[w2]\npassword = pw-two\n";

fn manifest() -> String {
    "[slow]\nsteps = slow\nbuild-for = postgresql not-used\n".into()
}

/// The first build of request `r`, once it exists.
fn first_build(master: &Master, r: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let req = master.get_json(&format!("/api/v1/requests/{r}"));
        if let Some(id) = req["builds"][0].as_u64() {
            return id;
        }
        assert!(Instant::now() < deadline, "no build for request {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_killed_mid_build_makes_it_retry_on_another() {
    let m = MasterDir::new(SLOW_TOML, &manifest(), TWO_WORKERS);
    let master = m.start();
    let mut w1 = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &w1);
    let r = master.force("slow", &[]);
    let b1 = first_build(&master, r);
    master.wait_build(b1, WAIT, |_| {
        master.log(b1, 0, "stdio").contains("first-w1")
    });
    let w2 = m.worker(&master, "w2", "pw-two");
    master.wait_connected("w2", &w2);
    w1.kill();
    let req = master.wait_request(r, WAIT);
    assert_eq!(req["result"], "success", "{req}");
    let builds = req["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2, "{req}");
    let first = master.get_json(&format!("/api/v1/builds/{b1}"));
    assert_eq!(first["result"], "retry");
    assert_eq!(first["worker"], "w1");
    let second = master.get_json(&format!("/api/v1/builds/{}", builds[1]));
    assert_eq!(second["result"], "success");
    assert_eq!(second["worker"], "w2");
}

#[test]
fn a_worker_that_comes_back_late_writes_nothing() {
    let m = MasterDir::new(SLOW_TOML, &manifest(), TWO_WORKERS);
    let master = m.start();
    let w1 = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &w1);
    let r = master.force("slow", &[]);
    let b1 = first_build(&master, r);
    master.wait_build(b1, WAIT, |_| {
        master.log(b1, 0, "stdio").contains("first-w1")
    });
    let w2 = m.worker(&master, "w2", "pw-two");
    master.wait_connected("w2", &w2);
    // Frozen: silent past worker-lost-after (2 s), its build goes to w2.
    w1.signal(libc::SIGSTOP);
    let req = master.wait_request(r, WAIT);
    assert_eq!(req["result"], "success", "{req}");
    // Resumed after its command printed its last line: that line must not land anywhere.
    std::thread::sleep(Duration::from_secs(8));
    w1.signal(libc::SIGCONT);
    master.wait_connected("w1", &w1);
    std::thread::sleep(Duration::from_secs(1));
    let first = master.get_json(&format!("/api/v1/builds/{b1}"));
    assert_eq!(first["result"], "retry");
    let log = master.log(b1, 0, "stdio");
    assert!(log.lines().any(|l| l == "first-w1"), "{log}");
    assert!(
        !log.lines().any(|l| l == "late-w1"),
        "a late write was accepted: {log}"
    );
    let second = req["builds"][1].as_u64().unwrap();
    let log2 = master.log(second, 0, "stdio");
    assert!(log2.lines().any(|l| l == "late-w2"), "{log2}");
}

#[test]
fn a_master_killed_mid_build_marks_it_interrupted_and_runs_it_again() {
    let port = free_port();
    let toml = format!("worker-listen = \"127.0.0.1:{port}\"\n{RESTART_TOML}");
    let m = MasterDir::new(&toml, &manifest(), TWO_WORKERS);
    let mut master = m.start();
    let w1 = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &w1);
    let r = master.force("slow", &[]);
    let b1 = first_build(&master, r);
    master.wait_build(b1, WAIT, |_| {
        master.log(b1, 0, "stdio").contains("first-w1")
    });
    master.kill();
    drop(master);
    let restarted_at = Instant::now();
    let master = Master::start(&m.dir);
    let first = master.get_json(&format!("/api/v1/builds/{b1}"));
    assert_eq!(first["result"], "retry", "{first}");
    assert!(
        first["description"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{first}"
    );
    // The worker reconnects on its own; the request runs again and succeeds.
    let deadline = Duration::from_secs(10);
    let b2 = loop {
        let req = master.get_json(&format!("/api/v1/requests/{r}"));
        if let Some(b) = req["builds"][1].as_u64() {
            break b;
        }
        assert!(
            restarted_at.elapsed() < deadline,
            "not dispatched again: {req}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let dispatched = restarted_at.elapsed();
    let req = master.wait_request(r, WAIT);
    assert_eq!(req["result"], "success", "{req}");
    let done = restarted_at.elapsed();
    assert!(
        done < deadline,
        "dispatched after {dispatched:?}, done after {done:?}"
    );
    eprintln!("dispatched again {dispatched:?} after the restart, succeeded after {done:?}");
    assert_eq!(
        master.get_json(&format!("/api/v1/builds/{b2}"))["result"],
        "success"
    );
}
