//! End-to-end: changes drive builds. `abo start` polls real git, Mercurial and Bazaar
//! repositories made in a temporary directory (poll-interval 1 s, tree-stable-timer 4 s),
//! an `abo worker` runs the builds (one `echo` step of a master.toml step set: no
//! PostgreSQL, no buildout). For each VCS (`git`, `hg`, `bzr`):
//!
//! - the first poll of a repository builds nothing;
//! - a push to the watched branch gives exactly one build of each builder (two: one per
//!   `python` version) of the section watching it, none of the section watching another
//!   branch, and the request lists the change (revision,
//!   author, comments);
//! - two commits in one push give one build carrying both; for git and hg, two pushes
//!   within the tree-stable timer too (when polls are fast enough to fit in it);
//! - a commit pushed while the master is stopped (SIGTERM) is built after the restart,
//!   alone: nothing from before is built again; a change seen just before a stop, its
//!   timer pending, is built once after the restart;
//! - a repository that cannot be reached shows its error in `GET /api/v1/pollers` and
//!   does not stop the other pollers;
//! - every change is stored once (`GET /api/v1/changes`, when the route exists).
//!
//! `reconfig`: `abo reconfig DIR` with a new watched section (exit 0, the builder exists,
//! its poller runs and a push builds it, the worker stays on the same connection), then a
//! broken manifest (exit 1 with `file:line`; SIGHUP refused, shown by `GET /api/v1/master`;
//! the old builders still build).
//!
//! `pushed_changes`: a signed GitHub webhook, `POST /api/v1/changes` and `abo sendchange`
//! each build their change at once (tree-stable-timer 0); bad signatures and missing
//! credentials are refused.
//!
//! `quick_changes_benchmark`: the quick run of benches/changes.rs.
//!
//! Needs git, hg and brz; no PostgreSQL. Timings go to stderr.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::changes::*;
use e2e_support::*;
use serde_json::Value;

/// The tree-stable timer of the VCS tests.
const TREE_STABLE_SECS: f64 = 4.0;

/// When the master stored `commit`'s change, in seconds (from the API's millisecond times).
fn received_at(master: &Master, commit: &Commit) -> f64 {
    let changes = api(master.http, "changes?limit=100");
    let change = changes["changes"]
        .as_array()
        .or(changes.as_array())
        .and_then(|list| {
            list.iter()
                .find(|c| c["revision"] == commit.revision.as_str())
        })
        .unwrap_or_else(|| panic!("{commit:?} is not among the changes: {changes:#}"))
        .clone();
    let text = change["received_at"].as_str().unwrap_or_default();
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: seconds since midnight are enough for a gap of seconds.
    let clock = text.get(11..).unwrap_or_default().trim_end_matches('Z');
    let mut parts = clock
        .split(':')
        .map(|p| p.parse::<f64>().unwrap_or(f64::NAN));
    let (h, m, sec) = (parts.next(), parts.next(), parts.next());
    match (h, m, sec) {
        (Some(h), Some(m), Some(sec)) if !sec.is_nan() => h * 3600.0 + m * 60.0 + sec,
        _ => panic!("received_at {text:?} is not an RFC 3339 time"),
    }
}

/// Generous: a build here is one `echo`; the timer is 4 s and polls 1 s apart.
const BUILD_WAIT: Duration = Duration::from_secs(90);

#[test]
fn git_changes() {
    change_flow(Vcs::Git);
}

#[test]
fn hg_changes() {
    change_flow(Vcs::Hg);
}

#[test]
fn bzr_changes() {
    change_flow(Vcs::Bzr);
}

/// The request of a build, and its changes (oldest first).
fn request_of(master: &Master, build: &Value) -> (Value, Vec<Value>) {
    let req = api(master.http, &format!("requests/{}", build["request"]));
    let changes = request_changes(master, &req);
    (req, changes)
}

/// The builder's `pending` count and its builds: none of either.
fn assert_idle(master: &Master, builder: &str, why: &str) {
    let builders = api(master.http, "builders");
    let b = builders
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == builder)
        .unwrap_or_else(|| panic!("no builder {builder} in {builders:#}"));
    assert_eq!(
        b["pending"], 0,
        "{builder} has pending requests ({why}): {b:#}"
    );
    let builds = builds_of(master, builder);
    assert!(builds.is_empty(), "{builder} built ({why}): {builds:#?}");
}

/// Waits for the `n`th build of `builder` (exactly `n`, all finished, the newest a
/// success); returns the changes of the newest's request.
fn built(master: &Master, builder: &str, n: usize) -> Vec<Value> {
    let builds = wait_builds(master, builder, n, BUILD_WAIT);
    assert_eq!(builds.len(), n, "{builder}: {builds:#?}");
    let newest = &builds[0];
    assert_eq!(newest["result"], "success", "{newest:#}");
    let (req, changes) = request_of(master, newest);
    assert!(
        !changes.is_empty(),
        "a scheduler's request without changes: {req:#}"
    );
    changes
}

/// The builders of the section `on-main`.
const ON_MAIN: [&str; 2] = ["on-main-python-2.7", "on-main-python-3.11"];

/// [`built`] for each builder of `on-main`: one build each, carrying the same changes.
fn built_main(master: &Master, n: usize) -> Vec<Value> {
    let first = built(master, ON_MAIN[0], n);
    for builder in &ON_MAIN[1..] {
        let changes = built(master, builder, n);
        let ids = |c: &[Value]| c.iter().map(|c| c["id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&changes), ids(&first), "{builder} and {}", ON_MAIN[0]);
    }
    first
}

fn assert_changes(changes: &[Value], commits: &[Commit], url: &str) {
    assert_eq!(
        changes.len(),
        commits.len(),
        "expected exactly the changes {commits:?}, the request has {changes:#?}"
    );
    for commit in commits {
        let change = changes
            .iter()
            .find(|c| c["revision"] == commit.revision.as_str())
            .unwrap_or_else(|| panic!("{commit:?} is not among {changes:#?}"));
        assert_change(change, commit, url);
    }
}

fn change_flow(vcs: Vcs) {
    let started = Instant::now();
    let name = vcs.name();
    let tmp = TempDir::new(&format!("abo-e2e-{name}."));
    let main = vcs.main_branch();
    let other = "other";
    let mut repo = Repo::create(vcs, &tmp.path().join("repo"), &[main, other]);
    let main_url = repo.url(main);
    let other_url = repo.url(other);
    let unreachable = format!("http://127.0.0.1:1/unreachable-{name}");
    let unreachable_watch = match vcs {
        Vcs::Bzr => format!("bzr {unreachable}"),
        v => format!("{} {unreachable} {main}", v.name()),
    };
    let manifest = format!(
        "{}{}{}",
        two_builder_section("on-main", &[repo.watch_line(main)]),
        section("on-other", &[repo.watch_line(other)]),
        section("unreachable", &[unreachable_watch]),
    );
    let dir = tmp.path().join("master");
    layout_master(
        &dir,
        &manifest,
        &format!("poll-interval = 1\ntree-stable-timer = {TREE_STABLE_SECS}\n"),
    );
    say(&format!(
        "e2e {name}: repository and master laid out in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let mut master = Master::start(&dir);
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.path().join("worker"),
        master.workers,
        &change_worker(),
        &[],
    );
    wait_connected(&master, &worker);
    let mut watched = vec![main_url.clone()];
    if other_url != main_url {
        watched.push(other_url.clone());
    }

    // The first poll records the heads and reports nothing; the unreachable repository
    // shows its error.
    let first = wait_first_polls(&master, &watched);
    for p in &first {
        assert_eq!(
            p["changes_found"], 0,
            "a first poll reported changes: {p:#}"
        );
        assert!(p["last_error"].is_null(), "{p:#}");
    }
    let bad = wait_until(
        &master,
        Duration::from_secs(30),
        "the unreachable repository's poller to fail",
        || poller(&master, &unreachable).filter(|p| p["last_error"].is_string()),
    );
    assert!(bad["last_success"].is_null(), "{bad:#}");
    assert!(bad["consecutive_failures"].as_u64() >= Some(1), "{bad:#}");
    say(&format!(
        "e2e {name}: first polls done; the unreachable poller says: {}",
        bad["last_error"]
    ));
    if let Some(changes) = all_changes(&master) {
        assert!(
            changes.is_empty(),
            "a first poll stored changes: {changes:#?}"
        );
    }

    // One push: one build of on-main, with the change; none elsewhere.
    let t = Instant::now();
    let c1 = repo.commit_push(main, &["first change: fix the frobnicator"]);
    let changes = built_main(&master, 1);
    assert_changes(&changes, &c1, &main_url);
    assert_idle(&master, "on-other", "only on-main's branch changed");
    assert_idle(&master, "unreachable", "its repository cannot be reached");
    say(&format!(
        "e2e {name}: push to build done in {:.1}s",
        t.elapsed().as_secs_f64()
    ));

    // Two commits in one push: one build carrying both.
    let c2 = repo.commit_push(main, &["second change", "third change"]);
    let changes = built_main(&master, 2);
    assert_changes(&changes, &c2, &main_url);
    let mut builds_main = 2;
    let mut pushed: Vec<Commit> = c1.iter().chain(&c2).cloned().collect();

    // Two pushes, the second right after the poller reported the first: one build carrying
    // both when the poller saw the second within the timer (git's polls are fast enough
    // here); otherwise two builds, and the store's times must show the timer had run out.
    {
        let a = repo.commit_push(main, &["fourth change"]);
        wait_changes_found(&master, &main_url, 4);
        let b = repo.commit_push(main, &["fifth change"]);
        wait_changes_found(&master, &main_url, 5);
        builds_main += 1;
        let changes = built_main(&master, builds_main);
        let both: Vec<Commit> = a.iter().chain(&b).cloned().collect();
        if changes.len() == both.len() {
            assert_changes(&changes, &both, &main_url);
            say(&format!(
                "e2e {name}: two pushes within the timer, one build"
            ));
        } else {
            // Built apart: right only if the poller saw the second change after the first
            // one's timer had fired (a slow poll on a loaded machine). The store's times
            // (milliseconds) say which; a change seen within the timer must have waited.
            let gap = received_at(&master, &b[0]) - received_at(&master, &a[0]);
            assert!(
                gap >= TREE_STABLE_SECS - 0.25,
                "the fifth change was seen {gap:.3} s after the fourth, inside the {TREE_STABLE_SECS} s \
                 timer, yet they were built apart: {changes:#?}"
            );
            say(&format!(
                "e2e {name}: the second push was seen {gap:.2} s after the first, past the \
                 timer: built apart, as it should"
            ));
            assert_changes(&changes, &a, &main_url);
            builds_main += 1;
            let changes = built_main(&master, builds_main);
            assert_changes(&changes, &b, &main_url);
        }
        pushed.extend(both);
    }

    // A push while the master is stopped: built after the restart, alone.
    master.stop();
    let down = repo.commit_push(main, &["pushed while the master was down"]);
    master.restart();
    wait_connected(&master, &worker);
    builds_main += 1;
    let changes = built_main(&master, builds_main);
    assert_changes(&changes, &down, &main_url);
    pushed.extend(down);

    // A change seen, its timer pending, then a stop: built once after the restart.
    let pending = repo.commit_push(main, &["seen just before a stop"]);
    wait_changes_found(&master, &main_url, 2);
    master.stop();
    master.restart();
    wait_connected(&master, &worker);
    builds_main += 1;
    let changes = built_main(&master, builds_main);
    assert_changes(&changes, &pending, &main_url);
    pushed.extend(pending);
    let fired_after_restart = std::fs::read_to_string(&master.log)
        .unwrap_or_default()
        .contains("scheduler fired");
    say(&format!(
        "e2e {name}: the timer pending at the stop fired {}",
        if fired_after_restart {
            "after the restart (restored from the store)"
        } else {
            "before the stop"
        }
    ));

    // The other branch: only on-other builds.
    let o = repo.commit_push(other, &["on the other branch"]);
    let changes = built(&master, "on-other", 1);
    assert_changes(&changes, &o, &other_url);
    for builder in ON_MAIN {
        assert_eq!(
            builds_of(&master, builder).len(),
            builds_main,
            "a change of another branch built {builder}"
        );
    }
    assert_idle(&master, "unreachable", "its repository cannot be reached");

    // The unreachable poller still fails, the others polled after it failed.
    let bad = poller(&master, &unreachable).expect("the unreachable poller");
    assert!(bad["last_error"].is_string(), "{bad:#}");
    for url in &watched {
        let p = poller(&master, url).unwrap();
        assert!(p["last_error"].is_null(), "{p:#}");
    }

    // Every change stored once (bzr revisions are revnos: counted per branch URL).
    let main_changes = pushed.len();
    match all_changes(&master) {
        Some(all) => {
            let expected = [(&main_url, &pushed), (&other_url, &o)];
            let stored = revision_counts(&all, &main_url).values().sum::<usize>()
                + if other_url == main_url {
                    0
                } else {
                    revision_counts(&all, &other_url).values().sum::<usize>()
                };
            for (url, commits) in expected {
                let counts = revision_counts(&all, url);
                for c in commits {
                    assert_eq!(
                        counts.get(&c.revision),
                        Some(&1),
                        "{c:?} is not stored exactly once: {all:#?}"
                    );
                }
            }
            assert_eq!(
                stored,
                pushed.len() + o.len(),
                "unexpected changes: {all:#?}"
            );
        }
        None => say("e2e: GET /api/v1/changes is not there: the store's changes not checked"),
    }
    say(&format!(
        "e2e {name}: {} changes over {} builds of on-main and 1 of on-other in {:.1}s",
        main_changes + 1,
        builds_main,
        started.elapsed().as_secs_f64()
    ));
}

/// The worker's connection as the API shows it: (connected_since, address).
fn connection(master: &Master) -> (Value, Value) {
    let w = api(master.http, "workers");
    let w = w
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == change_worker().name.as_str())
        .cloned()
        .unwrap();
    assert_eq!(w["connected"], true, "{w:#}");
    (w["connected_since"].clone(), w["address"].clone())
}

fn builder_names(master: &Master) -> Vec<String> {
    api(master.http, "builders")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect()
}

fn show(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn reconfig() {
    let started = Instant::now();
    let tmp = TempDir::new("abo-e2e-reconfig.");
    let mut repo = Repo::create(Vcs::Git, &tmp.path().join("repo"), &["main"]);
    let url = repo.url("main");
    let dir = tmp.path().join("master");
    let first = section("first", &[]);
    layout_master(&dir, &first, "poll-interval = 1\ntree-stable-timer = 1\n");
    let master = Master::start(&dir);
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.path().join("worker"),
        master.workers,
        &change_worker(),
        &[],
    );
    wait_connected(&master, &worker);
    let before = connection(&master);
    assert_eq!(builder_names(&master), ["first"]);
    assert_eq!(api(master.http, "master")["config"]["generation"], 1);
    let dir_arg = dir.to_str().unwrap();

    // A new watched section: in force, the worker untouched.
    let manifest_path = dir.join("buildouts/MANIFEST.cfg");
    let good = format!("{first}{}", section("second", &[repo.watch_line("main")]));
    std::fs::write(&manifest_path, &good).unwrap();
    let t = Instant::now();
    let out = abo(&["reconfig", dir_arg]);
    assert!(out.status.success(), "abo reconfig: {}", show(&out));
    say(&format!(
        "e2e reconfig: valid configuration put in force in {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(builder_names(&master), ["first", "second"]);
    let state = api(master.http, "master");
    assert_eq!(state["config"]["generation"], 2, "{state:#}");
    assert_eq!(
        state["config"]["last_error"].as_array().map(Vec::len),
        Some(0),
        "{state:#}"
    );
    assert_eq!(connection(&master), before, "the worker was reconnected");
    wait_first_polls(&master, std::slice::from_ref(&url));
    let c = repo.commit_push("main", &["after the reconfiguration"]);
    let changes = built(&master, "second", 1);
    assert_changes(&changes, &c, &url);
    assert_idle(&master, "first", "not watched");

    // A broken manifest: refused by `abo reconfig` with file:line, and by the master on
    // SIGHUP; the running configuration stays.
    let broken = format!("{good}[third]\nsteps = echo\nbuild-for = postgresql 9.1\n");
    let line = broken.lines().count();
    std::fs::write(&manifest_path, &broken).unwrap();
    let out = abo(&["reconfig", dir_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("MANIFEST.cfg:{line}")),
        "no MANIFEST.cfg:{line} diagnostic: {}",
        show(&out)
    );
    let attempt = api(master.http, "master")["config"]["last_attempt"].clone();
    // SAFETY: kill(2) on the master we started.
    unsafe {
        libc::kill(master.pid(), libc::SIGHUP);
    }
    let state = wait_until(
        &master,
        Duration::from_secs(30),
        "the master to answer the SIGHUP",
        || {
            let s = api(master.http, "master");
            (s["config"]["last_attempt"] != attempt).then_some(s)
        },
    );
    assert_eq!(state["config"]["generation"], 2, "{state:#}");
    let errors = state["config"]["last_error"].to_string();
    assert!(
        errors.contains(&format!("MANIFEST.cfg:{line}")),
        "the refusal does not say where: {state:#}"
    );
    assert_eq!(builder_names(&master), ["first", "second"]);
    assert_eq!(connection(&master), before, "the worker was reconnected");
    let r = force(master.http, "first");
    let done = wait_request(&master, r, BUILD_WAIT);
    assert_eq!(done["result"], "success", "{done:#}");

    // Fixed again: in force. The watched repositories did not change: the poller goes on
    // (its count of changes found since it started is kept, not reset by a restart).
    let found = poller(&master, &url).unwrap()["changes_found"].clone();
    assert!(found.as_u64().is_some_and(|n| n >= 1), "{found}");
    std::fs::write(&manifest_path, &good).unwrap();
    let out = abo(&["reconfig", dir_arg]);
    assert!(out.status.success(), "abo reconfig: {}", show(&out));
    let state = api(master.http, "master");
    assert_eq!(state["config"]["generation"], 3, "{state:#}");
    assert_eq!(connection(&master), before, "the worker was reconnected");
    assert_eq!(
        poller(&master, &url).unwrap()["changes_found"],
        found,
        "the unchanged poller was restarted"
    );
    say(&format!(
        "e2e reconfig: done in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn quick_changes_benchmark() {
    let report = e2e_support::changes_bench::run(&e2e_support::changes_bench::Options::quick());
    assert_eq!(report.missing_polls, 0, "{report:?}");
    assert_eq!(report.requests_seen, report.pushes, "{report:?}");
}

/// The benchmark's HMAC-SHA256 (it signs the webhooks of `pushed_changes`).
#[test]
fn hmac_sha256_matches_rfc_4231() {
    use e2e_support::changes_bench::hmac_sha256_hex;
    // RFC 4231, test cases 2 and 6 (a key longer than a block).
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hmac_sha256_hex(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

/// Changes pushed rather than polled: a signed GitHub webhook, `POST /api/v1/changes` and
/// `abo sendchange` each give one build carrying their change (tree-stable-timer 0), and
/// the poller does not report the webhook's change again; refused: a wrong or missing
/// signature, an unauthenticated POST; ignored: a repository nobody watches.
#[test]
fn pushed_changes() {
    use e2e_support::changes_bench::{github_push, send_github};
    let started = Instant::now();
    let tmp = TempDir::new("abo-e2e-push.");
    let mut repo = Repo::create(Vcs::Git, &tmp.path().join("repo"), &["main"]);
    let url = repo.url("main");
    let dir = tmp.path().join("master");
    let secret = "e2e-webhook-secret-0123456789";
    layout_master(
        &dir,
        &section("pushed", &[repo.watch_line("main")]),
        &format!(
            "poll-interval = 2\ntree-stable-timer = 0\n\n[webhooks.github]\nsecret = \"{secret}\"\n"
        ),
    );
    let master = Master::start(&dir);
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.path().join("worker"),
        master.workers,
        &change_worker(),
        &[],
    );
    wait_connected(&master, &worker);
    wait_first_polls(&master, std::slice::from_ref(&url));

    // A webhook for a real push.
    let head = |repo: &Repo| {
        let out = std::process::Command::new("git")
            .args(["--git-dir", &repo.url("main"), "rev-parse", "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let old = head(&repo);
    let c = repo.commit_push("main", &["pushed and announced"]);
    let body = github_push(&url, "main", &old, &c[0].revision, &c[0].comments);
    let (status, answer) = send_github(master.http, "not-the-secret-0123456789", &body);
    assert_eq!(status, 403, "a wrong signature: {answer}");
    let (status, text) = post(
        master.http,
        "/hooks/github",
        &[("X-GitHub-Event", "push")],
        &body,
    );
    assert_eq!(status, 401, "no signature: {text}");
    let (status, answer) = send_github(master.http, secret, &body);
    assert_eq!(status, 200, "{answer}");
    if answer["changes"].as_array().is_some_and(Vec::is_empty) {
        // The poller polled between the push and the notification: it reported the change.
        say(&format!("e2e pushed: the poller was first: {answer}"));
    }
    let changes = built(&master, "pushed", 1);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["revision"], c[0].revision.as_str());
    assert_eq!(changes[0]["comments"], c[0].comments.as_str());
    assert!(
        changes[0]["author"]
            .as_str()
            .is_some_and(|a| a.contains(AUTHOR_NAME) || a.contains("Bench Author")),
        "{changes:#?}"
    );

    // A repository nobody watches: nothing stored.
    let other = github_push(
        "https://git.example.org/nobody.git",
        "main",
        &old,
        &c[0].revision,
        "x",
    );
    let (status, answer) = send_github(master.http, secret, &other);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changes"], serde_json::json!([]), "{answer}");

    // POST /api/v1/changes (what `abo sendchange` sends).
    let change = serde_json::json!({
        "repository": url, "branch": "main",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "author": "Sender <sender@example.org>", "comments": "sent by a script",
    })
    .to_string();
    let (status, text) = post(master.http, "/api/v1/changes", &[], &change);
    assert_eq!(status, 401, "an unauthenticated change: {text}");
    let (status, text) = post(
        master.http,
        "/api/v1/changes",
        &[("Authorization", &basic_auth())],
        &change,
    );
    assert_eq!(status, 201, "{text}");
    let changes = built(&master, "pushed", 2);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        changes[0]["revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(changes[0]["author"], "Sender <sender@example.org>");
    assert_eq!(changes[0]["comments"], "sent by a script");
    // Sent again (a hook that ran twice), or a commit the webhook already reported: the
    // stored change is answered, nothing is built again (counted at the end).
    for (body, what) in [
        (change.clone(), "the same change again"),
        (
            serde_json::json!({"repository": url, "branch": "main", "revision": c[0].revision})
                .to_string(),
            "the webhook's commit",
        ),
    ] {
        let (status, text) = post(
            master.http,
            "/api/v1/changes",
            &[("Authorization", &basic_auth())],
            &body,
        );
        assert_eq!(status, 200, "{what}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["known"], true, "{what}: {answer}");
        assert_eq!(
            answer["requests"].as_array().map(Vec::len),
            Some(1),
            "{what}: {answer}"
        );
    }

    // `abo sendchange`, the same through the CLI.
    let out = cli(
        &master,
        &[
            "sendchange",
            "--repository",
            &url,
            "--branch",
            "main",
            "--revision",
            "89abcdef0123456789abcdef0123456789abcdef",
            "--who",
            "CLI <cli@example.org>",
            "--comments",
            "sent by abo sendchange",
            "addons/x.py",
        ],
    );
    assert!(out.status.success(), "abo sendchange: {}", show(&out));
    let changes = built(&master, "pushed", 3);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        changes[0]["revision"],
        "89abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(changes[0]["author"], "CLI <cli@example.org>");
    assert_eq!(changes[0]["comments"], "sent by abo sendchange");
    assert_eq!(changes[0]["files"], serde_json::json!(["addons/x.py"]));

    // The webhook's change is not reported again by the poller.
    let polled = poller(&master, &url).unwrap()["last_success"].clone();
    wait_until(&master, Duration::from_secs(30), "another poll", || {
        (poller(&master, &url)?["last_success"] != polled).then_some(())
    });
    let all = all_changes(&master).expect("GET /api/v1/changes");
    let counts = revision_counts(&all, &url);
    assert_eq!(counts.get(&c[0].revision), Some(&1), "{all:#?}");
    assert_eq!(builds_of(&master, "pushed").len(), 3);
    say(&format!(
        "e2e pushed: webhook, POST changes and abo sendchange built in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// Runs git in `dir` with a test identity; panics on failure.
fn git_in(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Config Author")
        .env("GIT_AUTHOR_EMAIL", "config@example.org")
        .env("GIT_COMMITTER_NAME", "Config Author")
        .env("GIT_COMMITTER_EMAIL", "config@example.org")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", show(&out));
}

/// master.toml's `config-repository`: the manifests directory is cloned at start, and a
/// push to the repository reconfigures the running master (a broken push is refused and the
/// running configuration stays).
#[test]
fn config_repository() {
    let tmp = TempDir::new("abo-e2e-config-repo.");
    let work = tmp.path().join("work");
    let bare = tmp.path().join("config.git");
    std::fs::create_dir_all(&work).unwrap();
    git_in(&work, &["init", "-q", "-b", "main"]);
    let first = section("first", &[]);
    std::fs::write(work.join("MANIFEST.cfg"), &first).unwrap();
    git_in(&work, &["add", "MANIFEST.cfg"]);
    git_in(&work, &["commit", "-q", "-m", "first section"]);
    git_in(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );

    let dir = tmp.path().join("master");
    layout_master(
        &dir,
        &first,
        &format!(
            "config-repository = {{ vcs = \"git\", url = \"{}\", branch = \"main\", poll-interval = 1 }}\n",
            bare.display()
        ),
    );
    // `abo start` clones it.
    std::fs::remove_dir_all(dir.join("buildouts")).unwrap();
    let master = Master::start(&dir);
    assert!(dir.join("buildouts/.git").is_dir(), "not cloned");
    assert_eq!(builder_names(&master), ["first"]);

    // A pushed section is in force a pull later.
    let good = format!("{first}{}", section("second", &[]));
    std::fs::write(work.join("MANIFEST.cfg"), &good).unwrap();
    git_in(&work, &["commit", "-q", "-am", "second section"]);
    git_in(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let t = Instant::now();
    wait_until(
        &master,
        Duration::from_secs(60),
        "the pushed configuration",
        || (api(master.http, "master")["config"]["generation"] == 2).then_some(()),
    );
    assert_eq!(builder_names(&master), ["first", "second"]);
    say(&format!(
        "e2e config-repository: push in force after {:.1}s",
        t.elapsed().as_secs_f64()
    ));

    // A broken push: refused, the running configuration stays.
    std::fs::write(work.join("MANIFEST.cfg"), format!("{good}[broken\n")).unwrap();
    git_in(&work, &["commit", "-q", "-am", "broken"]);
    git_in(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let state = wait_until(&master, Duration::from_secs(60), "the refusal", || {
        let state = api(master.http, "master");
        let refused = state["config"]["last_error"]
            .as_array()
            .is_some_and(|e| !e.is_empty());
        refused.then_some(state)
    });
    assert_eq!(state["config"]["generation"], 2, "{state:#}");
    assert!(
        state["config"]["last_error"][0]
            .as_str()
            .is_some_and(|e| e.contains("MANIFEST.cfg:")),
        "{state:#}"
    );
    assert_eq!(builder_names(&master), ["first", "second"]);
}
