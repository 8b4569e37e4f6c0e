//! Builds run for real: `abo start` and `abo worker` processes, builds forced through the
//! JSON API, results, properties, secrets, transfers, stops and the API's refusals.

mod builds_support;

use std::time::Duration;

use builds_support::{http, MasterDir, USER};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn section(name: &str, set: &str) -> String {
    format!("[{name}]\nsteps = {set}\nbuild-for = postgresql not-used\n\n")
}

fn step_results(build: &Value) -> Vec<(String, String)> {
    build["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["result"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

const RESULTS_TOML: &str = r#"
secrets = ["tok-SECRET-123"]

[[step-sets.ok]]
name = "hello"
command = ["sh", "-c", "echo hello %(buildername)s %(db_prefix:-none)s %(greeting:-none)s; echo oops >&2; echo token=tok-SECRET-123 pw=pw-one"]

[[step-sets.ok]]
name = "compute"
kind = "set-property-from-command"
property = "computed"
command = ["echo", "  value-from-the-worker  "]

[[step-sets.ok]]
name = "use"
command = ["sh", "-c", "echo got:%(computed)s; echo PATHLIKE=$PATHLIKE"]
env = { PATHLIKE = ["/one", "%(missing:-)s", "/two"] }

[[step-sets.fails]]
name = "boom"
command = ["false"]

[[step-sets.fails]]
name = "after"
command = ["echo", "still runs"]

[[step-sets.halts]]
name = "boom"
command = ["false"]
halt-on-failure = true

[[step-sets.halts]]
name = "never"
command = ["echo", "never"]

[[step-sets.warns]]
name = "soft"
command = ["false"]
flunk-on-failure = false
warn-on-failure = true

[[step-sets.warns]]
name = "fine"
command = ["true"]

[[step-sets.quiet]]
name = "silent"
command = ["sleep", "20"]
timeout = 1

[[step-sets.analyze]]
name = "testing"
command = ["sh", "-c", "printf '2024-05-02 10:00:00,100 100 ERROR testdb odoo.addons.m.tests.t: FAIL: T.t\n' > test.log; echo ran"]
logfiles = { test = "test.log" }

[[step-sets.analyze]]
name = "analyze"
kind = "analyze-log"
step = "testing"
log = "test"
"#;

#[test]
fn results_properties_secrets_and_api_refusals() {
    let manifest: String = ["ok", "fails", "halts", "warns", "quiet", "analyze"]
        .iter()
        .map(|s| section(s, s))
        .collect();
    let m = MasterDir::new(
        RESULTS_TOML,
        &manifest,
        "[w1]\npassword = pw-one\ndb_prefix = pref\n",
    );
    let master = m.start();
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);

    // Success, with properties rendered from the worker, the builder and the force.
    let r = master.force("ok", &[("greeting", "hi"), ("leak", "tok-SECRET-123")]);
    let req = master.wait_request(r, WAIT);
    assert_eq!(req["result"], "success", "{req}");
    let id = req["builds"][0].as_u64().unwrap();
    let build = master.get_json(&format!("/api/v1/builds/{id}"));
    assert_eq!(build["result"], "success");
    assert_eq!(build["state"], "finished");
    assert_eq!(build["worker"], "w1");
    assert_eq!(build["properties"]["computed"], "value-from-the-worker");
    assert_eq!(
        build["properties"]["leak"], "***",
        "secrets are masked in properties"
    );
    let hello = master.log(id, 0, "stdio");
    assert!(hello.contains("hello ok pref hi"), "{hello}");
    assert!(hello.contains("oops"), "stderr is in the log: {hello}");
    assert!(hello.contains("token=*** pw=***"), "{hello}");
    assert!(!hello.contains("tok-SECRET-123") && !hello.contains("pw-one"));
    let used = master.log(id, 2, "stdio");
    assert!(used.contains("got:value-from-the-worker"), "{used}");
    assert!(used.contains("PATHLIKE=/one:/two"), "{used}");
    let log = master.get(&format!(
        "/api/v1/builds/{id}/steps/0/logs/stdio?offset=3&limit=5"
    ));
    assert_eq!(log.header("x-abo-log-complete"), Some("true"));
    let size: usize = log.header("x-abo-log-size").unwrap().parse().unwrap();
    assert_eq!(size, hello.len());
    assert_eq!(log.text(), hello[3..8]);

    // A flunking step fails the build and the next step still runs.
    let req = master.wait_request(master.force("fails", &[]), WAIT);
    assert_eq!(req["result"], "failure");
    let b = master.get_json(&format!("/api/v1/builds/{}", req["builds"][0]));
    assert_eq!(
        step_results(&b),
        [
            ("boom".into(), "failure".into()),
            ("after".into(), "success".into())
        ]
    );
    // halt-on-failure skips the rest.
    let req = master.wait_request(master.force("halts", &[]), WAIT);
    assert_eq!(req["result"], "failure");
    let b = master.get_json(&format!("/api/v1/builds/{}", req["builds"][0]));
    assert_eq!(
        step_results(&b),
        [
            ("boom".into(), "failure".into()),
            ("never".into(), "skipped".into())
        ]
    );
    // warn-on-failure without flunk: warnings.
    let req = master.wait_request(master.force("warns", &[]), WAIT);
    assert_eq!(req["result"], "warnings");
    // A step silent for longer than its timeout is killed and fails.
    let req = master.wait_request(master.force("quiet", &[]), WAIT);
    assert_eq!(req["result"], "failure");
    let b = master.get_json(&format!("/api/v1/builds/{}", req["builds"][0]));
    let why = b["steps"][0]["description"].as_str().unwrap();
    assert!(why.contains("timed out"), "{b}");
    // The log analysis reads the collected test log.
    let req = master.wait_request(master.force("analyze", &[]), WAIT);
    let id = req["builds"][0].as_u64().unwrap();
    let b = master.get_json(&format!("/api/v1/builds/{id}"));
    assert_eq!(
        req["result"],
        "failure",
        "{b}\ntesting:\n{}\ntest:\n{}\nanalyze:\n{}",
        master.log(id, 0, "stdio"),
        master.log(id, 0, "test"),
        master.log(id, 1, "stdio")
    );
    assert_eq!(step_results(&b)[1], ("analyze".into(), "failure".into()));
    let test_log = master.log(id, 0, "test");
    assert!(test_log.contains("FAIL: T.t"), "{test_log}");
    let report = master.log(id, 1, "stdio");
    assert!(report.contains("FAIL: T.t"), "{report}");

    // Listings.
    let builders = master.get_json("/api/v1/builders");
    let ok = builders
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "ok")
        .unwrap();
    assert_eq!(ok["workers"][0], "w1");
    assert_eq!(ok["last_build"]["result"], "success");
    assert_eq!(ok["pending"], 0);
    let builds = master.get_json("/api/v1/builds?limit=2");
    assert_eq!(builds.as_array().unwrap().len(), 2);
    // A listed build is its own page's answer without the properties and the steps.
    let mut detail = master.get_json(&format!("/api/v1/builds/{}", builds[1]["id"]));
    let detail = detail.as_object_mut().unwrap();
    assert!(detail.remove("properties").unwrap().is_object());
    assert!(detail.remove("steps").unwrap().is_array());
    assert_eq!(builds[1].as_object().unwrap(), detail);
    let first = builds[0]["id"].as_u64().unwrap();
    let older = master.get_json(&format!("/api/v1/builds?before={first}&builder=ok"));
    assert!(older
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["builder"] == "ok"));

    // Refusals.
    let a = master.http;
    let r = http(a, "POST", "/api/v1/builders/ok/force", None, Some("{}"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"abo\""));
    let r = http(
        a,
        "POST",
        "/api/v1/builders/ok/force",
        Some((USER, "wrong")),
        Some("{}"),
    );
    assert_eq!(r.status, 401);
    let r = master.post("/api/v1/builders/ok/force", "{not json");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("body"),
        "{}",
        r.text()
    );
    let r = master.post("/api/v1/builders/ok/force", r#"{"properties": {"a": 1}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = master.post("/api/v1/builders/nope/force", "{}");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    assert_eq!(master.get("/api/v1/builds/999999").status, 404);
    assert_eq!(master.get("/api/v1/builds/x").status, 400);
    assert_eq!(master.get("/api/v1/builds?limit=0").status, 400);
    assert_eq!(master.get("/api/v1/requests/999999").status, 404);
    let r = master.post(&format!("/api/v1/builds/{id}/stop"), "");
    assert_eq!(r.status, 409, "{}", r.text());

    let log = master.log_text();
    assert!(
        !log.contains("tok-SECRET-123") && !log.contains("pw-one") && !log.contains("alice-pw")
    );
}

const TRANSFER_TOML: &str = r#"
[[step-sets.xfer]]
name = "send"
kind = "download"
src = "files/input.txt"
dest = "in.txt"

[[step-sets.xfer]]
name = "work"
command = ["sh", "-c", "cat in.txt > out.txt; mkdir -p tree/sub; echo deep > tree/sub/f.txt"]

[[step-sets.xfer]]
name = "fetch-file"
kind = "upload-file"
src = "out.txt"
dest = "up/%(buildername)s/out.txt"

[[step-sets.xfer]]
name = "fetch-tree"
kind = "upload-directory"
src = "tree"
dest = "trees/%(buildnumber)s"

[[step-sets.xfer]]
name = "on-master"
kind = "master-shell"
command = ["cat", "up/xfer/out.txt", "trees/1/sub/f.txt"]

[[step-sets.evil]]
name = "make"
command = ["sh", "-c", "echo x > f"]

[[step-sets.evil]]
name = "escape"
kind = "upload-file"
src = "f"
dest = "%(where)s"
"#;

#[test]
fn downloads_uploads_and_artifacts() {
    let manifest = section("xfer", "xfer") + &section("evil", "evil");
    let public = tempfile::tempdir().unwrap();
    let toml = format!(
        "allowed-upload-roots = [{:?}]\n{TRANSFER_TOML}",
        public.path().display().to_string()
    );
    let m = MasterDir::new(&toml, &manifest, "[w1]\npassword = pw-one\n");
    std::fs::create_dir_all(m.dir.join("files")).unwrap();
    std::fs::write(m.dir.join("files/input.txt"), "payload from the master\n").unwrap();
    let master = m.start();
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);

    let req = master.wait_request(master.force("xfer", &[]), WAIT);
    let id = req["builds"][0].as_u64().unwrap();
    let b = master.get_json(&format!("/api/v1/builds/{id}"));
    assert_eq!(req["result"], "success", "{b}\n{}", master.log_text());
    let shown = master.log(id, 4, "stdio");
    assert!(shown.contains("payload from the master"), "{shown}");
    assert!(shown.contains("deep"), "{shown}");
    let art = master.get("/artifacts/up/xfer/out.txt");
    assert_eq!(art.status, 200);
    assert_eq!(art.text(), "payload from the master\n");
    assert_eq!(master.get("/artifacts/trees/1/sub/f.txt").text(), "deep\n");
    assert_eq!(master.get("/artifacts/../master.toml").status, 404);
    assert_eq!(master.get("/artifacts/%2e%2e/master.toml").status, 404);
    assert_eq!(master.get("/artifacts/trees").status, 404);
    // A symlink inside the artifacts directory leading out of it is not followed.
    std::os::unix::fs::symlink(&m.dir, m.dir.join("artifacts/out")).unwrap();
    assert_eq!(master.get("/artifacts/out/master.toml").status, 404);

    // Upload destinations made from properties cannot leave the artifacts directory.
    for (dest, bad) in [
        ("../escape.txt", true),
        ("/etc/abo-escape", true),
        ("fine/f", false),
    ] {
        let req = master.wait_request(master.force("evil", &[("where", dest)]), WAIT);
        let expected = if bad { "exception" } else { "success" };
        assert_eq!(req["result"], expected, "{dest}: {req}");
    }
    // Inside an allowed absolute root: accepted (and not served: it is not an artifact).
    let inside = public.path().join("docs/f");
    let req = master.wait_request(
        master.force("evil", &[("where", &inside.display().to_string())]),
        WAIT,
    );
    assert_eq!(req["result"], "success", "{req}");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "x\n");
    let climbing = format!("{}/../x", public.path().display());
    let req = master.wait_request(master.force("evil", &[("where", &climbing)]), WAIT);
    assert_eq!(req["result"], "exception", "{req}");
    assert!(!m.dir.join("escape.txt").exists());
    assert!(!std::path::Path::new("/etc/abo-escape").exists());
    assert_eq!(master.get("/artifacts/fine/f").text(), "x\n");
}

const STOP_TOML: &str = r#"
[[step-sets.slow]]
name = "sleep"
command = ["sh", "-c", "echo started; sleep 60"]

[[step-sets.slow]]
name = "after"
command = ["true"]
"#;

#[test]
fn a_stop_cancels_the_running_build() {
    let m = MasterDir::new(
        STOP_TOML,
        &section("slow", "slow"),
        "[w1]\npassword = pw-one\n",
    );
    let master = m.start();
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);
    let r = master.force("slow", &[]);
    let b = loop {
        let req = master.get_json(&format!("/api/v1/requests/{r}"));
        if let Some(id) = req["builds"][0].as_u64() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let running = master.wait_build(b, WAIT, |b| b["steps"][0]["state"] == "running");
    assert_eq!(running["state"], "running");
    assert_eq!(running["steps"][1]["state"], "pending");
    master.wait_build(b, WAIT, |_| master.log(b, 0, "stdio").contains("started"));
    let stop = master.post(&format!("/api/v1/builds/{b}/stop"), "");
    assert_eq!(stop.status, 202, "{}", stop.text());
    assert_eq!(stop.json()["build"], b);
    let req = master.wait_request(r, Duration::from_secs(20));
    assert_eq!(req["result"], "cancelled");
    let done = master.get_json(&format!("/api/v1/builds/{b}"));
    assert_eq!(done["result"], "cancelled");
    assert_eq!(
        step_results(&done),
        [
            ("sleep".into(), "cancelled".into()),
            ("after".into(), "skipped".into())
        ]
    );
    assert_eq!(
        master.post(&format!("/api/v1/builds/{b}/stop"), "").status,
        409
    );
}
