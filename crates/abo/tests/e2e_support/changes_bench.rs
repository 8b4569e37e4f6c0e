//! The changes benchmark (`cargo bench -p abo --bench changes`, `ABO_BENCH_QUICK=1` for a
//! smoke run; tests/e2e_changes.rs runs the quick one):
//!
//! (a) R watched git repositories of B branches each (500 × 10; copies of one bare
//!     repository), one section watching every branch of each, on one `abo start`: the
//!     master's CPU time (utime + stime from /proc, and that of the VCS commands it waited
//!     for) over one full cycle of polls once every poller has made its first poll, the
//!     cycle's wall time, each poll's duration, and the master's memory (VmHWM).
//! (b) tree-stable-timer 0: N pushes, each a real commit pushed to the last watched branch
//!     of one of the first few repositories, then announced by a signed `POST
//!     /hooks/github`: the delay from the notification to
//!     the build request being stored, server-side (the change's `received_at` to the
//!     request's `submitted_at` when the API gives milliseconds; otherwise the master's log
//!     lines `webhook push received` → `scheduler fired`, which leave out storing the
//!     change) and client-side (from sending the POST until `GET /api/v1/changes/{id}`
//!     names the request), p50 and p99. Target: < 50 ms.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::changes::{change_worker, layout_master, post};
use super::*;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub repos: usize,
    pub branches: usize,
    pub pushes: usize,
    /// Seconds between two polls of a repository: one cycle.
    pub poll_interval: u64,
    /// Repositories the pushes go to (round robin).
    pub push_targets: usize,
}

impl Options {
    pub fn full() -> Options {
        Options {
            repos: 500,
            branches: 10,
            pushes: 100,
            poll_interval: 30,
            push_targets: 10,
        }
    }

    pub fn quick() -> Options {
        Options {
            repos: 20,
            branches: 3,
            pushes: 10,
            poll_interval: 2,
            push_targets: 3,
        }
    }

    /// `ABO_BENCH_QUICK=1`: the quick run.
    pub fn from_env() -> Options {
        match std::env::var("ABO_BENCH_QUICK") {
            Ok(v) if !v.is_empty() && v != "0" => Options::quick(),
            _ => Options::full(),
        }
    }
}

/// The figures.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub repos: usize,
    pub branches: usize,
    /// From the master's start to every poller's first successful poll (mirrors cloned).
    pub first_polls: Duration,
    /// Pollers that never polled successfully.
    pub missing_polls: usize,
    /// One cycle: from the first sample until every poller polled again.
    pub cycle_wall: Duration,
    /// The master's own CPU seconds (utime + stime) over the cycle.
    pub cycle_cpu: f64,
    /// CPU seconds of the VCS commands the master waited for over the cycle.
    pub cycle_children_cpu: f64,
    /// Per poll (last_attempt → last_success of the cycle's polls), milliseconds.
    pub poll_p50_ms: f64,
    pub poll_p99_ms: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    /// Pushes announced and measured.
    pub pushes: usize,
    /// Pushes whose build request was seen.
    pub requests_seen: usize,
    /// Where the server-side figures come from.
    pub server_source: String,
    pub server_p50_ms: f64,
    pub server_p99_ms: f64,
    pub client_p50_ms: f64,
    pub client_p99_ms: f64,
}

/// The webhook secret of the benchmark's master.
const SECRET: &str = "bench-webhook-secret-0123456789";

/// (own, children) CPU seconds of `pid`: utime + stime, cutime + cstime.
pub fn cpu_seconds(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold blanks and parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // After ')': state is field 3; utime 14, stime 15, cutime 16, cstime 17 (1-based).
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
    ((at(14) + at(15)) / tick, (at(16) + at(17)) / tick)
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
        .env("GIT_AUTHOR_NAME", "Bench Author")
        .env("GIT_AUTHOR_EMAIL", "bench@example.org")
        .env("GIT_COMMITTER_NAME", "Bench Author")
        .env("GIT_COMMITTER_EMAIL", "bench@example.org")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn branch(i: usize) -> String {
    format!("b{i}")
}

fn repo_path(root: &Path, i: usize) -> PathBuf {
    root.join(format!("r{i:04}.git"))
}

/// One bare repository with `branches` branches (a commit each), copied `repos` times.
fn make_repos(root: &Path, home: &Path, o: &Options) {
    let work = root.join("template-work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, home, &["init", "-q", "-b", "b0"]);
    for b in 0..o.branches {
        if b > 0 {
            git(&work, home, &["checkout", "-q", "-b", &branch(b), "b0"]);
        }
        std::fs::write(work.join(format!("f{b}")), format!("{b}\n")).unwrap();
        git(&work, home, &["add", "."]);
        git(&work, home, &["commit", "-q", "-m", &format!("branch {b}")]);
    }
    let template = root.join("template.git");
    git(
        root,
        home,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            template.to_str().unwrap(),
        ],
    );
    for i in 0..o.repos {
        copy_dir(&template, &repo_path(root, i));
    }
}

fn layout(dir: &Path, repos: &Path, o: &Options) {
    let mut manifest = String::new();
    for i in 0..o.repos {
        manifest.push_str(&format!(
            "[s{i:04}]\nsteps = echo\nbuild-for = postgresql not-used\nwatch = "
        ));
        let url = repo_path(repos, i);
        let lines: Vec<String> = (0..o.branches)
            .map(|b| format!("git {} {}", url.display(), branch(b)))
            .collect();
        manifest.push_str(&lines.join("\n        "));
        manifest.push_str("\n\n");
    }
    layout_master(
        dir,
        &manifest,
        &format!(
            "poll-interval = {}\ntree-stable-timer = 0\n\n[webhooks.github]\nsecret = \"{SECRET}\"\n",
            o.poll_interval
        ),
    );
}

// SHA-256 and HMAC (RFC 2104), for GitHub's `X-Hub-Signature-256`: a few lines here rather
// than a dependency of the tests.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Hex HMAC-SHA256 of `body` with `key`.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(body);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer).iter().map(|b| format!("{b:02x}")).collect()
}

/// A GitHub push event for one commit of `branch` of the repository at `url`.
pub fn github_push(url: &str, branch: &str, before: &str, after: &str, message: &str) -> String {
    let commit = json!({
        "id": after,
        "message": message,
        "timestamp": "2026-11-25T18:00:00+00:00",
        "author": {"name": "Bench Author", "email": "bench@example.org"},
        "added": [], "modified": ["f"], "removed": [],
    });
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "repository": {"clone_url": url, "full_name": "bench/repo"},
        "commits": [commit.clone()],
        "head_commit": commit,
    })
    .to_string()
}

/// `POST /hooks/github` with `body` signed with `secret`: (status, answer).
pub fn send_github(http: std::net::SocketAddr, secret: &str, body: &str) -> (u16, Value) {
    let signature = format!(
        "sha256={}",
        hmac_sha256_hex(secret.as_bytes(), body.as_bytes())
    );
    let (status, text) = post(
        http,
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &signature),
        ],
        body,
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A change's or request's time in milliseconds, when the API gives better than seconds.
fn precise_ms(v: &Value, key: &str) -> Option<f64> {
    if let Some(ms) = v[format!("{key}_ms")].as_f64() {
        return Some(ms);
    }
    match &v[key] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.contains('.') => parse_time(s).map(|t| t * 1000.0),
        _ => None,
    }
}

/// Milliseconds since midnight UTC of a log line's leading RFC 3339 time.
fn log_ms(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    parse_time(stamp).map(|t| t * 1000.0)
}

/// From the master's log: for each `webhook push received` line naming one of `changes`,
/// the delay to the next `scheduler fired` line, in ms.
fn log_delays(log: &Path, pushes: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    let mut received: Option<f64> = None;
    for line in text.lines() {
        if line.contains("webhook push received") {
            received = log_ms(line);
        } else if line.contains("scheduler fired") {
            if let (Some(r), Some(f)) = (received.take(), log_ms(line)) {
                out.push(f - r);
            }
        }
    }
    let skip = out.len().saturating_sub(pushes);
    out.split_off(skip)
}

/// Runs the benchmark and prints the figures.
pub fn run(o: &Options) -> Report {
    let tmp = TempDir::new("abo-bench-changes.");
    let repos = tmp.path().join("repos");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&repos).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".gitconfig"), "").unwrap();
    let t = Instant::now();
    make_repos(&repos, &home, o);
    let dir = tmp.path().join("master");
    layout(&dir, &repos, o);
    say(&format!(
        "changes: {} git repositories × {} branches, {} sections, laid out in {:.1}s",
        o.repos,
        o.branches,
        o.repos,
        t.elapsed().as_secs_f64()
    ));
    let mut report = Report {
        repos: o.repos,
        branches: o.branches,
        ..Report::default()
    };

    // (a) Polling.
    let t = Instant::now();
    let master = Master::start(&dir);
    let pid = master.pid();
    let urls: Vec<String> = (0..o.repos)
        .map(|i| repo_path(&repos, i).to_str().unwrap().to_owned())
        .collect();
    let limit = Duration::from_secs(o.poll_interval * 3 + 120);
    let first = wait_until(&master, limit, "every poller's first poll", || {
        let list = super::changes::pollers(&master);
        let done = list.iter().filter(|p| !p["last_success"].is_null()).count();
        (list.len() == o.repos && done == o.repos).then_some(list)
    });
    report.first_polls = t.elapsed();
    let failing: Vec<&Value> = first
        .iter()
        .filter(|p| !p["last_error"].is_null())
        .collect();
    assert!(failing.is_empty(), "pollers failed: {failing:#?}");
    // One cycle: from now until every poller has polled once more.
    let before: Vec<(String, Value)> = first
        .iter()
        .map(|p| {
            (
                p["url"].as_str().unwrap_or("").to_owned(),
                p["last_success"].clone(),
            )
        })
        .collect();
    let (cpu0, child0) = cpu_seconds(pid);
    let t0 = Instant::now();
    // Few reads of the 500 statuses while the cycle runs: the API's work is not the
    // pollers'.
    std::thread::sleep(Duration::from_secs_f64(o.poll_interval as f64 * 0.8));
    let limit = Duration::from_secs(o.poll_interval * 2 + 60);
    let after = wait_until(&master, limit, "a full cycle of polls", || {
        let list = super::changes::pollers(&master);
        let all = before.iter().all(|(url, last)| {
            list.iter()
                .any(|p| p["url"] == url.as_str() && p["last_success"] != *last)
        });
        all.then_some(list)
    });
    report.cycle_wall = t0.elapsed();
    let (cpu1, child1) = cpu_seconds(pid);
    report.cycle_cpu = cpu1 - cpu0;
    report.cycle_children_cpu = child1 - child0;
    report.missing_polls = urls
        .iter()
        .filter(|u| {
            !after
                .iter()
                .any(|p| p["url"] == u.as_str() && !p["last_success"].is_null())
        })
        .count();
    // The cycle's polls: last_attempt → last_success (milliseconds), of pollers not polling
    // again already.
    let mut polls: Vec<f64> = after
        .iter()
        .filter_map(|p| Some(p["last_success"].as_f64()? - p["last_attempt"].as_f64()?))
        .filter(|d| *d >= 0.0)
        .collect();
    polls.sort_by(f64::total_cmp);
    report.poll_p50_ms = percentile(&polls, 0.5);
    report.poll_p99_ms = percentile(&polls, 0.99);
    report.rss_kib = status_kib(pid, "VmRSS:");
    say(&format!(
        "changes: first polls of {} repositories ({} branches each) done {:.1}s after the start",
        o.repos,
        o.branches,
        report.first_polls.as_secs_f64()
    ));
    say(&format!(
        "changes: one cycle of {} polls (poll-interval {} s): {:.2} s wall; master CPU {:.3} s \
         ({:.2} ms per poll), VCS commands' CPU {:.3} s; a poll takes p50 {:.0} ms, p99 {:.0} ms \
         (last_attempt → last_success of {} pollers)",
        o.repos,
        o.poll_interval,
        report.cycle_wall.as_secs_f64(),
        report.cycle_cpu,
        report.cycle_cpu * 1000.0 / o.repos as f64,
        report.cycle_children_cpu,
        report.poll_p50_ms,
        report.poll_p99_ms,
        polls.len()
    ));

    // (b) Pushes.
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.path().join("worker"),
        master.workers,
        &change_worker(),
        &[],
    );
    wait_connected(&master, &worker);
    let targets = o.push_targets.min(o.repos).max(1);
    let clones: Vec<PathBuf> = (0..targets)
        .map(|i| {
            let c = tmp.path().join(format!("clone{i}"));
            git(
                tmp.path(),
                &home,
                &[
                    "clone",
                    "-q",
                    repo_path(&repos, i).to_str().unwrap(),
                    c.to_str().unwrap(),
                ],
            );
            c
        })
        .collect();
    let mut server = Vec::new();
    let mut client = Vec::new();
    let mut attempts = 0;
    while report.pushes < o.pushes && attempts < o.pushes * 3 {
        attempts += 1;
        let k = attempts;
        let target = k % targets;
        // A section watching several branches of one repository is triggered by its last
        // line's branch only (the watch table is keyed by URL, as 0.9's), although its
        // poller polls them all: the pushes go to that branch.
        let b = branch(o.branches - 1);
        let clone = &clones[target];
        git(
            clone,
            &home,
            &["checkout", "-q", "-B", &b, &format!("origin/{b}")],
        );
        let before = git(clone, &home, &["rev-parse", "HEAD"]);
        std::fs::write(clone.join("f"), format!("push {k}\n")).unwrap();
        git(clone, &home, &["add", "f"]);
        git(clone, &home, &["commit", "-q", "-m", &format!("push {k}")]);
        let after = git(clone, &home, &["rev-parse", "HEAD"]);
        git(clone, &home, &["push", "-q", "origin", &b]);
        git(clone, &home, &["fetch", "-q", "origin"]);
        let body = github_push(&urls[target], &b, &before, &after, &format!("push {k}"));
        let sent = Instant::now();
        let (status, answer) = send_github(master.http, SECRET, &body);
        assert_eq!(status, 200, "POST /hooks/github: {answer:#}");
        let Some(id) = answer["changes"]
            .as_array()
            .and_then(|c| c.first())
            .and_then(Value::as_u64)
        else {
            // The poller saw the push first: not a webhook's delay.
            say(&format!("changes: push {k} not measured: {answer}"));
            continue;
        };
        report.pushes += 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        let change = loop {
            let c = api(master.http, &format!("changes/{id}"));
            if c["requests"].as_array().is_some_and(|r| !r.is_empty()) {
                break Some(c);
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        let Some(change) = change else {
            say(&format!("changes: push {k}: no request within 30 s"));
            continue;
        };
        client.push(sent.elapsed().as_secs_f64() * 1000.0);
        report.requests_seen += 1;
        let request = api(master.http, &format!("requests/{}", change["requests"][0]));
        if let (Some(r), Some(s)) = (
            precise_ms(&change, "received_at"),
            precise_ms(&request, "submitted_at"),
        ) {
            server.push(s - r);
        }
    }
    if server.len() == report.requests_seen && !server.is_empty() {
        report.server_source = "API: received_at → submitted_at".into();
    } else {
        server = log_delays(&master.log, report.pushes);
        report.server_source =
            "master log: `webhook push received` → `scheduler fired` (the API gives whole seconds)"
                .into();
    }
    server.sort_by(f64::total_cmp);
    client.sort_by(f64::total_cmp);
    report.server_p50_ms = percentile(&server, 0.5);
    report.server_p99_ms = percentile(&server, 0.99);
    report.client_p50_ms = percentile(&client, 0.5);
    report.client_p99_ms = percentile(&client, 0.99);
    report.peak_rss_kib = status_kib(pid, "VmHWM:");
    say(&format!(
        "changes: push notification → build request stored, {} pushes (target < 50 ms): \
         server-side p50 {:.1} ms, p99 {:.1} ms ({}); client-side (POST sent → request \
         visible) p50 {:.1} ms, p99 {:.1} ms",
        report.pushes,
        report.server_p50_ms,
        report.server_p99_ms,
        report.server_source,
        report.client_p50_ms,
        report.client_p99_ms
    ));
    say(&format!(
        "changes: master memory with {} pollers: {:.1} MB after a cycle, peak {:.1} MB (VmHWM)",
        o.repos,
        report.rss_kib as f64 / 1024.0,
        report.peak_rss_kib as f64 / 1024.0
    ));
    drop(worker);
    report
}
