//! `abo force`, `abo builds` and `abo log` against a scripted master: a small HTTP server in
//! the test that answers the JSON API contract (docs/api.md) and moves its builds forward
//! one step each time they are read. Checks the CLI's progress lines, exit statuses,
//! credentials, paging of logs and error messages; the end-to-end tests (e2e_builds.rs)
//! run the same commands against the real master.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One scripted build: its steps finish one per read of `GET builds/{id}`.
#[derive(Clone)]
struct FakeBuild {
    id: u64,
    builder: String,
    number: u64,
    /// (name, result when finished)
    steps: Vec<(&'static str, &'static str)>,
    result: &'static str,
    reads: usize,
}

impl FakeBuild {
    fn done(&self) -> bool {
        self.reads > self.steps.len()
    }

    fn json(&self, detail: bool) -> Value {
        let done = self.done();
        let mut v = json!({
            "id": self.id,
            "builder": self.builder,
            "number": self.number,
            "worker": "w1",
            "request": 1,
            "state": if done { "finished" } else { "running" },
            "result": if done { Value::from(self.result) } else { Value::Null },
            "started_at": "2026-11-25T15:38:36.000Z",
            "finished_at": if done { Value::from("2026-11-25T15:38:39.500Z") } else { Value::Null },
        });
        if detail {
            let steps: Vec<Value> = self
                .steps
                .iter()
                .enumerate()
                .map(|(i, (name, result))| {
                    let state = if i < self.reads {
                        "finished"
                    } else if i == self.reads {
                        "running"
                    } else {
                        "pending"
                    };
                    json!({
                        "index": i,
                        "name": name,
                        "state": state,
                        "result": if state == "finished" { Value::from(*result) } else { Value::Null },
                        "started_at": if state == "pending" { Value::Null } else { Value::from("2026-11-25T15:38:36Z") },
                        "finished_at": if state == "finished" { Value::from("2026-11-25T15:38:37.250Z") } else { Value::Null },
                        "description": "",
                        "hidden": *name == "bzr repo",
                        "logs": [{"name": "stdio", "bytes": 40}],
                    })
                })
                .collect();
            v["properties"] = json!({"pg_version": "13"});
            v["steps"] = Value::Array(steps);
        }
        v
    }
}

/// A request: queued for one read, then its builds in order (the next appears when the
/// previous one is done).
struct FakeRequest {
    builder: String,
    builds: Vec<u64>,
    reads: usize,
}

/// A scripted build's steps: (name, step result, build result).
type Script = Vec<(&'static str, &'static str, &'static str)>;

#[derive(Default)]
struct State {
    builders: Vec<Value>,
    requests: HashMap<u64, FakeRequest>,
    builds: HashMap<u64, FakeBuild>,
    /// Builds to give the next requests of each builder: (steps, results of successive builds)
    scripts: HashMap<String, Vec<Script>>,
    next_request: u64,
    next_build: u64,
    forced: Vec<(String, Value)>,
    /// A big log for paging: (build, step, text)
    big_log: Option<(u64, u64, Vec<u8>)>,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

const AUTH: &str = "Basic dTpw"; // u:p

fn respond(stream: &mut TcpStream, status: u16, ctype: &str, body: &[u8], extra: &str) {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Other",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

fn json_response(stream: &mut TcpStream, status: u16, v: &Value) {
    respond(
        stream,
        status,
        "application/json",
        v.to_string().as_bytes(),
        "",
    );
}

fn handle(state: &Mutex<State>, mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let path = path.trim_start_matches("/api/v1/");
    let seg: Vec<&str> = path.split('/').collect();
    let mut st = state.lock().unwrap();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["builders"]) => {
            json_response(&mut stream, 200, &Value::Array(st.builders.clone()))
        }
        ("GET", ["workers"]) => json_response(
            &mut stream,
            200,
            &json!([{"name": "w1", "connected": true}]),
        ),
        ("POST", ["builders", name, "force"]) => {
            if headers.get("authorization").map(String::as_str) != Some(AUTH) {
                return respond(
                    &mut stream,
                    401,
                    "application/json",
                    br#"{"error": "unauthenticated"}"#,
                    "WWW-Authenticate: Basic realm=\"abo\"\r\n",
                );
            }
            let name = name.to_string();
            if !st.builders.iter().any(|b| b["name"] == name.as_str()) {
                return json_response(&mut stream, 404, &json!({"error": "no such builder"}));
            }
            let body: Value = serde_json::from_slice(&body).unwrap();
            st.forced.push((name.clone(), body));
            st.next_request += 1;
            let id = st.next_request;
            st.requests.insert(
                id,
                FakeRequest {
                    builder: name,
                    builds: vec![],
                    reads: 0,
                },
            );
            json_response(&mut stream, 201, &json!({"request": id}))
        }
        ("GET", ["requests", id]) => {
            let id: u64 = id.parse().unwrap();
            let st = &mut *st;
            let Some(r) = st.requests.get_mut(&id) else {
                return json_response(&mut stream, 404, &json!({"error": "no such request"}));
            };
            r.reads += 1;
            let needs_build = match r.builds.last() {
                None => r.reads > 1,
                Some(b) => st.builds[b].done() && st.builds[b].result == "retry",
            };
            let script = st.scripts.get_mut(&r.builder).unwrap();
            if needs_build && !script.is_empty() {
                let spec = script.remove(0);
                st.next_build += 1;
                let bid = st.next_build;
                let result = spec.last().map_or("success", |s| s.2);
                st.builds.insert(
                    bid,
                    FakeBuild {
                        id: bid,
                        builder: r.builder.clone(),
                        number: bid,
                        steps: spec.iter().map(|s| (s.0, s.1)).collect(),
                        result,
                        reads: 0,
                    },
                );
                r.builds.push(bid);
            }
            let complete = r
                .builds
                .last()
                .is_some_and(|b| st.builds[b].done() && st.builds[b].result != "retry");
            let result = if complete {
                Value::from(st.builds[r.builds.last().unwrap()].result)
            } else {
                Value::Null
            };
            let v = json!({
                "id": id,
                "builder": r.builder,
                "state": if complete { "complete" } else if r.builds.is_empty() { "queued" } else { "claimed" },
                "result": result,
                "builds": r.builds,
            });
            json_response(&mut stream, 200, &v)
        }
        ("GET", ["builds"]) => {
            let mut all: Vec<&FakeBuild> = st
                .builds
                .values()
                .filter(|b| query.get("builder").is_none_or(|n| *n == b.builder))
                .collect();
            all.sort_by_key(|b| std::cmp::Reverse(b.id));
            let limit: usize = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50);
            let v: Vec<Value> = all.iter().take(limit).map(|b| b.json(false)).collect();
            json_response(&mut stream, 200, &Value::Array(v))
        }
        ("GET", ["builds", id]) => {
            let id: u64 = id.parse().unwrap();
            match st.builds.get_mut(&id) {
                Some(b) => {
                    let v = b.json(true);
                    b.reads += 1;
                    json_response(&mut stream, 200, &v)
                }
                None => json_response(&mut stream, 404, &json!({"error": "no such build"})),
            }
        }
        ("GET", ["builds", id, "steps", n, "logs", name]) => {
            let (id, n): (u64, u64) = (id.parse().unwrap(), n.parse().unwrap());
            let offset: usize = query
                .get("offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .and_then(|o| o.parse().ok())
                .unwrap_or(usize::MAX);
            let text: Vec<u8> = match &st.big_log {
                Some((b, s, t)) if *b == id && *s == n => t.clone(),
                _ => {
                    format!("log {name} of step {n} of build {id}\nERROR: it broke\n").into_bytes()
                }
            };
            let start = offset.min(text.len());
            let end = start.saturating_add(limit).min(text.len());
            let extra = format!(
                "X-Abo-Log-Complete: true\r\nX-Abo-Log-Size: {}\r\n",
                text.len()
            );
            respond(
                &mut stream,
                200,
                "text/plain; charset=utf-8",
                &text[start..end],
                &extra,
            )
        }
        _ => json_response(&mut stream, 404, &json!({"error": "not found"})),
    }
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut st = state.lock().unwrap();
            for (name, buildout) in [
                ("standin-pass-postgresql-13", "standin-pass"),
                ("standin-pass-postgresql-17", "standin-pass"),
                ("standin-fail-postgresql-13", "standin-fail"),
            ] {
                st.builders.push(json!({
                    "name": name, "buildout": buildout, "category": "e2e", "workers": ["w1"],
                    "properties": {}, "last_build": null, "pending": 0,
                }));
                st.scripts.insert(name.to_owned(), vec![]);
            }
        }
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = shared.clone();
                std::thread::spawn(move || handle(&st, stream));
            }
        });
        Fake { addr, state }
    }

    fn script(&self, builder: &str, builds: Vec<Script>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(builder.to_owned(), builds);
    }

    fn abo(&self, args: &[&str], user: Option<(&str, &str)>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_abo"));
        c.args(args)
            .env("ABO_MASTER", format!("http://{}", self.addr))
            .env_remove("ABO_USER")
            .env_remove("ABO_PASSWORD")
            .stdin(Stdio::null());
        if let Some((u, p)) = user {
            c.env("ABO_USER", u).env("ABO_PASSWORD", p);
        }
        c.output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Steps of a passing build; the last element of the last step is the build's result.
fn steps(
    result: &'static str,
    last: &'static str,
) -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("bzr repo", "failure", result),
        ("bootstrap", "success", result),
        ("buildout", "success", result),
        ("testing", "success", result),
        ("analyze", last, result),
    ]
}

#[test]
fn force_wait_follows_the_steps_through_a_retry() {
    let fake = Fake::start();
    fake.script(
        "standin-pass-postgresql-13",
        vec![
            steps("retry", "success")[..3].to_vec(),
            steps("success", "success"),
        ],
    );
    let o = fake.abo(
        &[
            "force",
            "standin-pass-postgresql-13",
            "--wait",
            "--prop",
            "note=x y",
            "--reason",
            "why",
        ],
        Some(("u", "p")),
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("forced standin-pass-postgresql-13: request 1"),
        "{out}"
    );
    assert!(out.contains("started on w1 (build 1)"), "{out}");
    assert!(
        out.contains("retry in 3.5s (the request goes back to the queue)"),
        "{out}"
    );
    assert!(out.contains("started on w1 (build 2)"), "{out}");
    assert!(out.contains("success in 3.5s"), "{out}");
    // One line per finished step, with its duration; hidden steps are not shown.
    assert!(
        out.contains("buildout             success     1.2s"),
        "{out}"
    );
    assert!(!out.contains("bzr repo"), "{out}");
    let forced = fake.state.lock().unwrap().forced.clone();
    assert_eq!(forced.len(), 1);
    assert_eq!(
        forced[0].1,
        json!({"properties": {"note": "x y"}, "reason": "why"})
    );
}

#[test]
fn forcing_a_buildout_forces_each_of_its_builders_and_a_failure_exits_1() {
    let fake = Fake::start();
    fake.script(
        "standin-pass-postgresql-13",
        vec![steps("success", "success")],
    );
    fake.script(
        "standin-pass-postgresql-17",
        vec![steps("failure", "failure")],
    );
    let o = fake.abo(
        &["force", "standin-pass", "--wait", "--json"],
        Some(("u", "p")),
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("forced standin-pass-postgresql-13: request 1"),
        "{err}"
    );
    assert!(
        err.contains("forced standin-pass-postgresql-17: request 2"),
        "{err}"
    );
    assert!(err.contains("analyze failed: abo log 2 analyze"), "{err}");
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary[0]["result"], "success", "{summary:#}");
    assert_eq!(summary[1]["result"], "failure", "{summary:#}");
    assert_eq!(summary[1]["builds"][0]["id"], 2, "{summary:#}");
    let forced = fake.state.lock().unwrap().forced.clone();
    assert_eq!(forced[0].1["reason"], "forced by u with abo force");
}

#[test]
fn exception_exits_2_and_without_wait_forcing_returns_at_once() {
    let fake = Fake::start();
    fake.script(
        "standin-fail-postgresql-13",
        vec![steps("exception", "exception")],
    );
    let o = fake.abo(
        &["force", "standin-fail-postgresql-13", "--wait"],
        Some(("u", "p")),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = fake.abo(
        &["force", "standin-fail-postgresql-13", "--json"],
        Some(("u", "p")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        json!([{"builder": "standin-fail-postgresql-13", "request": 2}])
    );
}

#[test]
fn credentials_and_names_are_checked_with_clear_messages() {
    let fake = Fake::start();
    let o = fake.abo(&["force", "standin-pass-postgresql-13"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("forcing a build needs a user"),
        "{}",
        text(&o)
    );
    let o = fake.abo(
        &["force", "standin-pass-postgresql-13"],
        Some(("u", "wrong")),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("refused the credentials"), "{}", text(&o));
    let o = fake.abo(&["force", "standin"], Some(("u", "p")));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("did you mean `standin-fail`"),
        "{}",
        text(&o)
    );
    let o = fake.abo(&["force", "x", "--prop", "novalue"], Some(("u", "p")));
    assert!(
        text(&o).contains("--prop novalue: expected NAME=VALUE"),
        "{}",
        text(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_abo"))
        .args(["builds", "--master", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cannot reach the master at http://127.0.0.1:1/api/v1/builds"),
        "{}",
        text(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_abo"))
        .args(["builds", "--master", "https://ci.example.org"])
        .output()
        .unwrap();
    assert!(text(&o).contains("plain HTTP only"), "{}", text(&o));
}

#[test]
fn builds_lists_newest_first_as_a_table_or_json() {
    let fake = Fake::start();
    let o = fake.abo(&["builds"], None);
    assert!(text(&o).contains("no build yet"), "{}", text(&o));
    fake.script(
        "standin-pass-postgresql-13",
        vec![steps("success", "success"), steps("failure", "failure")],
    );
    for _ in 0..2 {
        let o = fake.abo(
            &["force", "standin-pass-postgresql-13", "--wait"],
            Some(("u", "p")),
        );
        assert!(o.status.code().is_some(), "{}", text(&o));
    }
    let o = fake.abo(&["builds"], None);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("BUILD") && lines[0].contains("DURATION"),
        "{out}"
    );
    assert!(
        lines[1].trim_start().starts_with("2 ") && lines[1].contains("failure"),
        "{out}"
    );
    assert!(
        lines[2].trim_start().starts_with("1 ") && lines[2].contains("success"),
        "{out}"
    );
    assert!(
        lines[1].contains("2026-11-25 15:38:36") && lines[1].contains("3.5s"),
        "{out}"
    );
    let o = fake.abo(&["builds", "--json", "--limit", "1"], None);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], 2);
    let o = fake.abo(&["builds", "--builder", "standin-pass"], None);
    assert!(
        text(&o).contains("is a buildout; its builders are"),
        "{}",
        text(&o)
    );
    let o = fake.abo(&["builds", "--builder", "nope"], None);
    assert!(text(&o).contains("no builder named `nope`"), "{}", text(&o));
}

#[test]
fn log_shows_the_steps_then_pages_through_a_large_log() {
    let fake = Fake::start();
    fake.script(
        "standin-fail-postgresql-13",
        vec![steps("failure", "failure")],
    );
    let o = fake.abo(
        &["force", "standin-fail-postgresql-13", "--wait"],
        Some(("u", "p")),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = fake.abo(&["log", "1"], None);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("build 1: standin-fail-postgresql-13 #1 on w1: failure in 3.5s"),
        "{out}"
    );
    assert!(out.contains("bzr repo (hidden)"), "{out}");
    assert!(
        out.contains("analyze: last lines of its log `stdio`"),
        "{out}"
    );
    assert!(out.contains("ERROR: it broke"), "{out}");

    // 3 MiB and a bit, read in 1 MiB pages: every byte, in order.
    let big: Vec<u8> = (0..3_200_000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .take(3 * 1024 * 1024 + 17)
        .collect();
    fake.state.lock().unwrap().big_log = Some((1, 3, big.clone()));
    let o = fake.abo(&["log", "1", "testing"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len(), big.len());
    assert!(o.stdout == big);
    let o = fake.abo(&["log", "1", "3", "--log", "stdio"], None);
    assert!(o.stdout == big);
    let o = fake.abo(&["log", "1", "nope"], None);
    assert!(
        text(&o).contains("build 1 has no step `nope`; its steps: 0 bzr repo"),
        "{}",
        text(&o)
    );
    let o = fake.abo(&["log", "9"], None);
    assert!(text(&o).contains("no build 9"), "{}", text(&o));
}

#[test]
fn every_api_command_has_help() {
    for cmd in ["force", "builds", "log", "demo"] {
        let o = Command::new(env!("CARGO_BIN_EXE_abo"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{cmd}: {out}");
        assert!(out.contains("Examples:"), "{cmd}: {out}");
    }
}
