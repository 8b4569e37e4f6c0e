//! End-to-end: `abo start` and real worker processes on loopback, PostgreSQL 13, 15 and 17
//! running at once (testsupport/pg.sh, shared by every test of this binary), the buildouts
//! of testsupport/buildouts bootstrapped and run by zc.buildout, whose `bin/test_openerp`
//! is the stand-in OpenERP: it connects to the testing database through the capability
//! environment and writes a real-format log.
//!
//! Each scenario runs with abo's worker and with the stock buildbot-worker 4.3.0:
//!
//! - `matrix`: `build-for` picks the right servers; every build talks to the server of its
//!   version (its test log names it); a test that fails while its program exits 0 (the 7.0
//!   series) fails the build through the log analysis; the `buildout` lock serialises the
//!   buildout steps of concurrent builds on one worker; `abo force --wait` exit statuses,
//!   `abo builds`, `abo log`.
//! - `killed_worker`: a worker killed mid-build gives `retry`, then success on another.
//! - `master_restart`: a master killed with builds running and queued loses nothing: the
//!   finished builds and their logs stay, every request ends in success, and no request
//!   has two builds at once.
//!
//! Needs `scripts/test` (or `source testsupport/setup.sh`); timings go to stderr.

mod e2e_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::Value;

const MANIFEST: &str = "\
# The end-to-end tests' manifest (tests/e2e_builds.rs).
[DEFAULT]
bootstrap-type = v2
bootstrap-version = 6.0.1
build-for = postgresql
openerp-addons = base, standin_mod
build-category = e2e

# On every PostgreSQL version of the worker: 13, 15 and 17.
[standin-pass]
buildout = standalone standin-pass.cfg

# A failing test in a 7.0 server, which exits 0 anyway: only the analysis can tell.
[standin-fail]
buildout = standalone standin-7.0-fail.cfg
build-for = postgresql >= 15
";

/// `sitecustomize.py` for the worker's Python processes: each `bin/buildout` run that is
/// not a bootstrap appends `START END CWD` to $ABO_E2E_BUILDOUT_TRACE, after sleeping
/// $ABO_E2E_BUILDOUT_SLEEP seconds.
const BUILDOUT_TRACER: &str = r#"
import atexit, os, sys, time
_trace = os.environ.get("ABO_E2E_BUILDOUT_TRACE")
if _trace and sys.argv and os.path.basename(sys.argv[0]) == "buildout" and "bootstrap" not in sys.argv[1:]:
    _start = time.time()
    time.sleep(float(os.environ.get("ABO_E2E_BUILDOUT_SLEEP") or 0))

    def _done():
        with open(_trace, "a") as f:
            f.write("%f %f %s\n" % (_start, time.time(), os.getcwd()))

    atexit.register(_done)
"#;

macro_rules! peers {
    ($($scenario:ident),* $(,)?) => {
        mod abo_worker {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::Peer::Abo)
                }
            )*
        }
        mod stock_worker {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::Peer::Stock)
                }
            )*
        }
    };
}

peers!(matrix, killed_worker, master_restart);

fn tag(peer: Peer) -> &'static str {
    match peer {
        Peer::Abo => "abo",
        Peer::Stock => "stock",
    }
}

fn account(name: &str) -> Account {
    Account {
        name: name.to_owned(),
        password: format!("{name}-secret"),
    }
}

fn builds_of(master: &Master, prefix: &str) -> Vec<Value> {
    let all = api(master.http, "builds?limit=1000");
    all.as_array()
        .unwrap()
        .iter()
        .filter(|b| b["builder"].as_str().unwrap_or("").starts_with(prefix))
        .map(|b| api(master.http, &format!("builds/{}", b["id"])))
        .collect()
}

/// The PostgreSQL version at the end of a builder's name (`...-postgresql-13`).
fn version_of(builder: &str) -> &str {
    builder.rsplit('-').next().unwrap()
}

fn interval(v: &Value) -> (f64, f64) {
    (time(&v["started_at"]), time(&v["finished_at"]))
}

/// What a sampler saw of the steps of running builds (all on one worker).
#[derive(Debug, Default)]
struct Seen {
    samples: usize,
    /// The most `buildout` steps running at once.
    buildouts: usize,
    /// The most `bootstrap` steps (no lock) running at once: the control.
    bootstraps: usize,
    /// Samples where a build had finished its bootstrap and waited to start its buildout
    /// while another build's buildout ran.
    waits: usize,
}

fn step_state<'a>(build: &'a Value, name: &str) -> &'a str {
    build["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("pending")
}

/// Watches the running builds' steps every few tens of milliseconds until `stop`. A step
/// counts as running at a sample only if it was running in two reads that enclose the
/// reads of the other builds, so concurrency is proven whatever the precision of the
/// API's timestamps.
fn sample(http: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        while !stop.load(Ordering::SeqCst) {
            let Ok(list) = get(http, "builds?limit=20") else {
                continue;
            };
            let ids: Vec<u64> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["state"] == "running")
                .filter_map(|b| b["id"].as_u64())
                .collect();
            let read = || -> Option<Vec<Value>> {
                ids.iter()
                    .map(|id| get(http, &format!("builds/{id}")).ok())
                    .collect()
            };
            let (Some(first), Some(second)) = (read(), read()) else {
                continue;
            };
            seen.samples += 1;
            let both = |name: &str| -> Vec<usize> {
                (0..ids.len())
                    .filter(|&i| {
                        step_state(&first[i], name) == "running"
                            && step_state(&second[i], name) == "running"
                    })
                    .collect()
            };
            let buildouts = both("buildout");
            seen.buildouts = seen.buildouts.max(buildouts.len());
            seen.bootstraps = seen.bootstraps.max(both("bootstrap").len());
            let waiting = (0..ids.len()).any(|i| {
                !buildouts.contains(&i)
                    && step_state(&first[i], "bootstrap") == "finished"
                    && step_state(&first[i], "buildout") == "pending"
            });
            if !buildouts.is_empty() && waiting {
                seen.waits += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    })
}

fn show(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn matrix(peer: Peer) {
    let t0 = Instant::now();
    let tmp = TempDir::new("abo-e2e.");
    let dir = tmp.path().join("master");
    let w1 = account("w1");
    make_master(&dir, &[w1], &format!("mx{}", tag(peer)), MANIFEST, "");
    let master = Master::start(&dir);

    // build-for picks the servers: standin-pass on all three, standin-fail on 15 and 17.
    let builders = api(master.http, "builders");
    let names: BTreeSet<String> = builders
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "standin-pass-postgresql-13",
        "standin-pass-postgresql-15",
        "standin-pass-postgresql-17",
        "standin-fail-postgresql-15",
        "standin-fail-postgresql-17",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(names, expected, "{builders:#}");
    for b in builders.as_array().unwrap() {
        assert_eq!(b["workers"], serde_json::json!(["w1"]), "{b}");
        let name = b["name"].as_str().unwrap();
        assert_eq!(b["properties"]["pg_version"], version_of(name), "{b}");
    }

    // Every `bin/buildout` run of the worker's builds (not the bootstraps) logs when it
    // starts and ends, as the worker's processes see it, and takes 1.5 s longer: with two
    // builds at once, one must wait for the other's buildout.
    let trace = tmp.path().join("buildouts.trace");
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("sitecustomize.py"), BUILDOUT_TRACER).unwrap();
    let worker = WorkerProcess::start(
        peer,
        &tmp.path().join("w1"),
        master.workers,
        &account("w1"),
        &[
            ("PYTHONPATH", site.to_str().unwrap()),
            ("ABO_E2E_BUILDOUT_TRACE", trace.to_str().unwrap()),
            ("ABO_E2E_BUILDOUT_SLEEP", "1.5"),
        ],
    );
    wait_connected(&master, &worker);

    // Three passing builds, two at a time on the worker (max_builds = 2), watched.
    let t = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(master.http, stop.clone());
    let out = cli(
        &master,
        &["force", "standin-pass", "--wait", "--timeout", "300"],
    );
    stop.store(true, Ordering::SeqCst);
    let seen = sampler.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let progress = String::from_utf8_lossy(&out.stdout).into_owned();
    say(&format!(
        "e2e {peer:?}: 3 standin-pass builds (13, 15, 17) in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    for step in ["buildout", "testing", "analyze"] {
        assert!(
            progress.contains(step),
            "no progress line for {step}:\n{progress}"
        );
    }
    let pass = builds_of(&master, "standin-pass");
    assert_eq!(pass.len(), 3, "{pass:#?}");
    for b in &pass {
        let builder = b["builder"].as_str().unwrap();
        let v = version_of(builder);
        assert_eq!(b["result"], "success", "{b:#}");
        assert_eq!(b["worker"], "w1", "{b:#}");
        // Each build talks to the server of its version, in a fresh testing database.
        let log = step_log(master.http, b, "testing", "test");
        assert!(
            log.contains(&format!("openerp.sql_db: PostgreSQL PostgreSQL {v}.")),
            "{builder}: its log does not name PostgreSQL {v}:\n{log}"
        );
        assert!(log.contains("run 1 in this database"), "{builder}:\n{log}");
        assert!(
            log.contains(&format!("mx{}-standin-pass", tag(peer))),
            "{builder}: not its testing database:\n{log}"
        );
        assert_eq!(step(b, "analyze")["result"], "success", "{b:#}");
    }

    // The buildout lock. On the worker: the three `bin/buildout` processes never ran at
    // once. Through the API: their steps never ran at once, a build waited for the lock
    // while another's buildout ran, and the bootstrap steps just before them (no lock) did
    // run at once (the sampler can see concurrency).
    let runs = std::fs::read_to_string(&trace).unwrap();
    let mut runs: Vec<(f64, f64, String)> = runs
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_owned(),
            )
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(runs.len(), 3, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two bin/buildout processes ran at once on the worker: {pair:?}"
        );
    }
    say(&format!(
        "e2e {peer:?}: bin/buildout runs on the worker, gaps between them: {:.3}s, {:.3}s",
        runs[1].0 - runs[0].1,
        runs[2].0 - runs[1].1
    ));
    assert_eq!(seen.buildouts, 1, "{seen:?}");
    assert!(
        seen.waits >= 2,
        "no build was seen waiting for the buildout lock: {seen:?}"
    );
    assert_eq!(seen.bootstraps, 2, "{seen:?}");
    say(&format!("e2e {peer:?}: buildout lock: {seen:?}"));
    let buildouts: Vec<(f64, f64)> = pass.iter().map(|b| interval(step(b, "buildout"))).collect();
    for (i, a) in buildouts.iter().enumerate() {
        for b in &buildouts[i + 1..] {
            assert!(
                a.1 <= b.0 || b.1 <= a.0,
                "two buildout steps overlap on one worker: {a:?} and {b:?}"
            );
        }
    }
    let builds: Vec<(f64, f64)> = pass.iter().map(interval).collect();
    let overlapping = builds
        .iter()
        .enumerate()
        .any(|(i, a)| builds[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(
        overlapping,
        "no two builds ran at once (max_builds = 2): the lock check proves nothing: {builds:?}"
    );

    // A failing test fails the build through the analysis: the 7.0 stand-in exits 0.
    let t = Instant::now();
    let out = cli(
        &master,
        &["force", "standin-fail", "--wait", "--timeout", "300"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let progress = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(progress.contains("analyze failed"), "{progress}");
    say(&format!(
        "e2e {peer:?}: 2 standin-fail builds (15, 17) in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    let fail = builds_of(&master, "standin-fail");
    assert_eq!(fail.len(), 2, "{fail:#?}");
    for b in &fail {
        assert_eq!(b["result"], "failure", "{b:#}");
        assert_eq!(step(b, "testing")["result"], "success", "{b:#}");
        assert_eq!(step(b, "analyze")["result"], "failure", "{b:#}");
        let v = version_of(b["builder"].as_str().unwrap());
        let log = step_log(master.http, b, "testing", "test");
        assert!(
            log.contains(&format!("PostgreSQL PostgreSQL {v}.")),
            "{log}"
        );
        assert!(log.contains("At least one test failed"), "{log}");
    }

    // The CLI's views of the same builds.
    let out = cli(&master, &["builds", "--json", "--limit", "10"]);
    assert!(out.status.success(), "{}", show(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed:#}");
    let out = cli(
        &master,
        &["builds", "--builder", "standin-fail-postgresql-17"],
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        table.contains("failure") && !table.contains("standin-pass"),
        "{table}"
    );
    let failed = fail[0]["id"].to_string();
    let out = cli(&master, &["log", &failed]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text.contains("analyze") && text.contains("failure"),
        "{text}"
    );
    let out = cli(&master, &["log", &failed, "testing", "--log", "test"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("openerp.sql_db: PostgreSQL PostgreSQL"),
        "{}",
        show(&out)
    );

    // A second forced build of the same builder: the database is made afresh.
    let out = cli(
        &master,
        &["force", "standin-pass-postgresql-13", "--wait", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["result"], "success", "{summary:#}");
    let id = summary[0]["builds"][0]["id"].as_u64().unwrap();
    let b = api(master.http, &format!("builds/{id}"));
    assert!(b["number"].as_u64().unwrap() >= 2, "{b:#}");
    let log = step_log(master.http, &b, "testing", "test");
    assert!(log.contains("run 1 in this database"), "{log}");
    say(&format!(
        "e2e {peer:?}: matrix scenario in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
}

fn killed_worker(peer: Peer) {
    let t0 = Instant::now();
    let tmp = TempDir::new("abo-e2e.");
    let dir = tmp.path().join("master");
    make_master(
        &dir,
        &[account("w1"), account("w2")],
        &format!("kw{}", tag(peer)),
        MANIFEST,
        "",
    );
    let master = Master::start(&dir);
    // w1's tests hang (the stand-in sleeps after connecting), so the build is running
    // when w1 is killed.
    let mut w1 = WorkerProcess::start(
        peer,
        &tmp.path().join("w1"),
        master.workers,
        &account("w1"),
        &[("ABO_STANDIN_SLEEP", "60")],
    );
    wait_connected(&master, &w1);
    let request = force(master.http, "standin-pass-postgresql-13");
    let first = wait_until(
        &master,
        Duration::from_secs(120),
        "the build to reach its tests",
        || {
            let r = get(master.http, &format!("requests/{request}")).ok()?;
            let id = r["builds"].as_array()?.first()?.as_u64()?;
            let b = get(master.http, &format!("builds/{id}")).ok()?;
            (step(&b, "testing")["state"] == "running").then_some(id)
        },
    );
    let w2 = WorkerProcess::start(
        peer,
        &tmp.path().join("w2"),
        master.workers,
        &account("w2"),
        &[],
    );
    wait_connected(&master, &w2);

    let t = Instant::now();
    w1.kill_process();
    // A lost worker must not be given the request again: more than two builds means the
    // master kept dispatching to the dead connection (each attempt failing at once).
    let r = wait_until(
        &master,
        Duration::from_secs(120),
        "the retried request",
        || {
            let r = get(master.http, &format!("requests/{request}")).ok()?;
            let n = r["builds"].as_array().map_or(0, Vec::len);
            assert!(
                n <= 2,
                "request {request} was dispatched {n} times: the master keeps giving it to the \
             lost worker w1 instead of w2; the master's log:\n{}",
                master.log_tail()
            );
            (r["state"] == "complete").then_some(r)
        },
    );
    let builds: Vec<u64> = r["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(builds.len(), 2, "{r:#}");
    assert_eq!(builds[0], first);
    let lost = api(master.http, &format!("builds/{}", builds[0]));
    let retried = api(master.http, &format!("builds/{}", builds[1]));
    assert_eq!(lost["result"], "retry", "{lost:#}");
    assert_eq!(lost["worker"], "w1", "{lost:#}");
    assert_eq!(retried["result"], "success", "{retried:#}");
    assert_eq!(retried["worker"], "w2", "{retried:#}");
    assert_eq!(r["result"], "success", "{r:#}");
    assert!(
        interval(&lost).1 <= interval(&retried).0,
        "{lost:#}\n{retried:#}"
    );
    let log = step_log(master.http, &retried, "testing", "test");
    assert!(log.contains("PostgreSQL PostgreSQL 13."), "{log}");
    say(&format!(
        "e2e {peer:?}: worker killed -> retry -> success elsewhere in {:.1}s (scenario {:.1}s)",
        t.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ));
}

fn master_restart(peer: Peer) {
    let t0 = Instant::now();
    let tmp = TempDir::new("abo-e2e.");
    let dir = tmp.path().join("master");
    make_master(
        &dir,
        &[account("w1")],
        &format!("mr{}", tag(peer)),
        MANIFEST,
        "",
    );
    let mut master = Master::start(&dir);
    let worker = WorkerProcess::start(
        peer,
        &tmp.path().join("w1"),
        master.workers,
        &account("w1"),
        &[("ABO_STANDIN_SLEEP", "3")],
    );
    wait_connected(&master, &worker);

    // A finished build, before the restart.
    let r0 = force(master.http, "standin-pass-postgresql-13");
    let r0 = wait_request(&master, r0, Duration::from_secs(120));
    let done = r0["builds"][0].as_u64().unwrap();
    let before = api(master.http, &format!("builds/{done}"));
    assert_eq!(before["result"], "success", "{before:#}");
    let log_before = step_log(master.http, &before, "testing", "test");

    // Three requests: two building (max_builds = 2), one queued. Kill the master while
    // the two are in their tests.
    let requests: Vec<u64> = ["13", "15", "17"]
        .iter()
        .map(|v| force(master.http, &format!("standin-pass-postgresql-{v}")))
        .collect();
    wait_until(
        &master,
        Duration::from_secs(120),
        "two builds in their tests",
        || {
            let running = requests
                .iter()
                .filter(|r| {
                    get(master.http, &format!("requests/{r}"))
                        .ok()
                        .and_then(|r| r["builds"].as_array()?.last()?.as_u64())
                        .and_then(|id| get(master.http, &format!("builds/{id}")).ok())
                        .is_some_and(|b| step(&b, "testing")["state"] == "running")
                })
                .count();
            (running == 2).then_some(())
        },
    );
    let ids_before: BTreeSet<u64> = api(master.http, "builds?limit=1000")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    master.restart();
    let restarted = Instant::now();
    wait_connected(&master, &worker);

    // Every request is dispatched again within seconds, and ends in success.
    let redispatched = wait_until(
        &master,
        Duration::from_secs(60),
        "the requests to run again",
        || {
            let all = requests.iter().all(|r| {
                get(master.http, &format!("requests/{r}")).is_ok_and(|r| {
                    r["state"] == "complete"
                        || r["builds"]
                            .as_array()
                            .and_then(|b| b.last())
                            .and_then(Value::as_u64)
                            .is_some_and(|id| !ids_before.contains(&id))
                })
            });
            all.then(|| restarted.elapsed())
        },
    );
    // Two of them were running, so the third was queued: at most two can run at once, and
    // the test sees all three only once one of those is done. What must be quick is the
    // first re-dispatch, checked through the two interrupted ones below.
    let mut first_redispatch = f64::MAX;
    for r in &requests {
        let r = wait_request(&master, *r, Duration::from_secs(240));
        assert_eq!(r["result"], "success", "{r:#}");
        let builds: Vec<Value> = r["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| api(master.http, &format!("builds/{id}")))
            .collect();
        let last = builds.last().unwrap();
        assert_eq!(last["result"], "success", "{last:#}");
        // Never two builds of one request at once: each ends before the next starts.
        for pair in builds.windows(2) {
            assert_ne!(pair[0]["result"], "success", "{:#}", pair[0]);
            assert_eq!(pair[0]["state"], "finished", "{:#}", pair[0]);
            assert!(
                interval(&pair[0]).1 <= interval(&pair[1]).0,
                "two builds of one request overlap:\n{:#}\n{:#}",
                pair[0],
                pair[1]
            );
            first_redispatch =
                first_redispatch.min(time(&pair[1]["started_at"]) - interval(&pair[0]).1);
        }
        let v = version_of(last["builder"].as_str().unwrap());
        let log = step_log(master.http, last, "testing", "test");
        assert!(
            log.contains(&format!("PostgreSQL PostgreSQL {v}.")),
            "{log}"
        );
    }
    assert!(
        first_redispatch < 10.0,
        "an interrupted build was dispatched again {first_redispatch:.1}s after it was marked"
    );
    // Nothing from before is lost: the builds, their results and their logs.
    let ids_after: BTreeSet<u64> = api(master.http, "builds?limit=1000")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids_before.is_subset(&ids_after),
        "{ids_before:?} {ids_after:?}"
    );
    let after = api(master.http, &format!("builds/{done}"));
    assert_eq!(after["result"], "success");
    assert_eq!(after["finished_at"], before["finished_at"]);
    assert_eq!(step_log(master.http, &after, "testing", "test"), log_before);
    say(&format!(
        "e2e {peer:?}: master killed and restarted: every request running again {:.1}s after, \
         first re-dispatch {first_redispatch:.1}s after its build was marked (scenario {:.1}s)",
        redispatched.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ));
}
