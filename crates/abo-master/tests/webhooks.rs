//! Changes pushed to a real `abo start`: forge webhooks (`POST /hooks/{github,gitlab,gitea}`)
//! with the sample payloads of testdata/webhooks, and the changes API (`POST` needs a user,
//! `GET /api/v1/changes` shows what was stored). Every refusal (missing or wrong signature,
//! a forge not configured, an unwatched repository, a hostile branch, a body over 25 MB)
//! stores nothing, and the master keeps serving.

mod builds_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use builds_support::{http, MasterDir, USER, USER_PASSWORD};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const GH_SECRET: &str = "gh-Secret-0123456789-abcdef";
const GL_TOKEN: &str = "gl-Token-0123456789-abcdef";
const GT_SECRET: &str = "gt-Secret-0123456789-abcdef";

const TOML: &str = r#"
[[step-sets.ok]]
name = "hello"
command = ["true"]

[webhooks.github]
secret = "gh-Secret-0123456789-abcdef"

[webhooks.gitlab]
token = "gl-Token-0123456789-abcdef"

[webhooks.gitea]
secret = "gt-Secret-0123456789-abcdef"
"#;

/// Watches the three sample repositories' `main` (polled rarely: a day).
const MANIFEST: &str = "[demo]
steps = ok
build-for = postgresql not-used
poll-interval = 86400
watch =
    git https://github.com/anybox/abo-demo.git main
    git https://gitlab.example.com/anybox/abo-demo.git main
    git https://gitea.example.com/anybox/abo-demo.git main
";

fn sample(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "../../testdata/webhooks", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// An HTTP answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
    text: String,
}

/// POSTs `body` to `path` with extra headers, on a fresh connection. The body is written
/// from another thread while the answer is read, so that an early answer (413) is seen even
/// if the master stops reading.
fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = tcp.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        // The master may answer and close before reading it all (413).
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer was read.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("POST {path}: {e}"),
        }
    }
    let _ = sender.join();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies here are small and not chunked (axum's Json sets a length).
    let body_text = body.to_owned();
    Answer {
        status,
        body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
        text: text.clone(),
    }
}

fn github(addr: SocketAddr, event: &str, body: Vec<u8>, secret: &str) -> Answer {
    let sig = format!("sha256={}", hmac_hex(secret, &body));
    post(
        addr,
        "/hooks/github",
        &[
            ("X-GitHub-Event", event.into()),
            (
                "X-GitHub-Delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            ("X-Hub-Signature-256", sig),
            ("User-Agent", "GitHub-Hookshot/044aadd".into()),
        ],
        body,
    )
}

fn changes(master: &builds_support::Master) -> Vec<Value> {
    master
        .get_json("/api/v1/changes?limit=1000")
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn webhooks_store_watched_pushes_and_refuse_the_rest() {
    let m = MasterDir::new(TOML, MANIFEST, "[w1]\npassword = pw-one\n");
    let master = m.start();
    let addr = master.http;

    // Refusals first: nothing may be stored by any of them.
    let push = sample("github-push.json");
    let r = post(
        addr,
        "/hooks/github",
        &[("X-GitHub-Event", "push".into())],
        push.clone(),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["error"]
        .as_str()
        .unwrap()
        .contains("X-Hub-Signature-256"));
    let r = github(addr, "push", push.clone(), "not-the-secret-0123456789");
    assert_eq!(r.status, 403, "{}", r.text);
    // A signature of another body.
    let sig = format!("sha256={}", hmac_hex(GH_SECRET, b"{}"));
    let r = post(
        addr,
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", sig),
        ],
        push.clone(),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = post(
        addr,
        "/hooks/gitlab",
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", "wrong".into()),
        ],
        sample("gitlab-push.json"),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = post(
        addr,
        "/hooks/gitea",
        &[("X-Gitea-Event", "push".into())],
        sample("gitea-push.json"),
    );
    assert_eq!(r.status, 401, "{}", r.text);

    // Hostile branches and revisions, correctly signed.
    let v: Value = serde_json::from_slice(&push).unwrap();
    for (key, value) in [
        ("ref", "refs/heads/--upload-pack=touch /tmp/pwned"),
        ("ref", "refs/heads/$(id)"),
        ("ref", "refs/heads/main\nX-Injected: 1"),
        ("after", "--output=/etc/passwd"),
    ] {
        let mut v = v.clone();
        v[key] = Value::from(value);
        let r = github(addr, "push", serde_json::to_vec(&v).unwrap(), GH_SECRET);
        assert_eq!(r.status, 400, "{value:?}: {}", r.text);
        assert!(r.body["error"].is_string(), "{}", r.text);
    }
    let mut hostile = v.clone();
    hostile["commits"][1]["id"] = Value::from("$(id)");
    let r = github(
        addr,
        "push",
        serde_json::to_vec(&hostile).unwrap(),
        GH_SECRET,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Not JSON.
    let r = github(addr, "push", b"ref=refs/heads/main".to_vec(), GH_SECRET);
    assert_eq!(r.status, 400, "{}", r.text);

    // An unwatched repository: 200, nothing stored, and why.
    let mut stranger = v.clone();
    for key in ["clone_url", "ssh_url", "git_url", "html_url", "url"] {
        stranger["repository"][key] = Value::from("https://github.com/someone/else.git");
    }
    let r = github(
        addr,
        "push",
        serde_json::to_vec(&stranger).unwrap(),
        GH_SECRET,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"], json!([]));
    assert!(
        r.body["ignored"]
            .as_str()
            .unwrap()
            .contains("no watched repository"),
        "{}",
        r.text
    );
    // A tag, a deleted branch: ignored.
    for file in ["github-tag-push.json", "github-branch-delete.json"] {
        let r = github(addr, "push", sample(file), GH_SECRET);
        assert_eq!(r.status, 200, "{file}: {}", r.text);
        assert_eq!(r.body["changes"], json!([]), "{file}");
        assert!(r.body["ignored"].is_string(), "{file}: {}", r.text);
    }
    // Other events are accepted and ignored; ping answers.
    let r = github(addr, "issues", b"{}".to_vec(), GH_SECRET);
    assert_eq!(r.status, 202, "{}", r.text);
    let r = github(addr, "ping", sample("github-ping.json"), GH_SECRET);
    assert_eq!(r.status, 200, "{}", r.text);

    // 26 MB: refused from its length, nothing read into the store.
    let mut big = b"{\"ref\": \"refs/heads/main\", \"pad\": \"".to_vec();
    big.resize(26 * 1024 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    let r = github(addr, "push", big, GH_SECRET);
    assert_eq!(r.status, 413, "{}", &r.text[..r.text.len().min(500)]);

    assert!(changes(&master).is_empty(), "{:?}", changes(&master));

    // Good deliveries.
    let r = github(addr, "push", push.clone(), GH_SECRET);
    assert_eq!(r.status, 200, "{}", r.text);
    let github_ids = r.body["changes"].as_array().unwrap().clone();
    assert_eq!(github_ids.len(), 2, "{}", r.text);
    // Redelivered: nothing new.
    let r = github(addr, "push", push.clone(), GH_SECRET);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"], json!([]), "{}", r.text);

    let r = post(
        addr,
        "/hooks/gitlab",
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", GL_TOKEN.into()),
            ("X-Gitlab-Instance", "https://gitlab.example.com".into()),
        ],
        sample("gitlab-push.json"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = post(
        addr,
        "/hooks/gitlab",
        &[
            ("X-Gitlab-Event", "Tag Push Hook".into()),
            ("X-Gitlab-Token", GL_TOKEN.into()),
        ],
        sample("gitlab-tag-push.json"),
    );
    assert_eq!(r.status, 202, "{}", r.text);

    let body = sample("gitea-push.json");
    let sig = hmac_hex(GT_SECRET, &body);
    let r = post(
        addr,
        "/hooks/gitea",
        &[("X-Gitea-Event", "push".into()), ("X-Gitea-Signature", sig)],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"].as_array().unwrap().len(), 2, "{}", r.text);
    // Forgejo's headers.
    let mut v: Value = serde_json::from_slice(&sample("gitea-push.json")).unwrap();
    v["commits"][0]["id"] = Value::from("ffffffffffffffffffffffffffffffffffffffff");
    v["after"] = Value::from("ffffffffffffffffffffffffffffffffffffffff");
    let body = serde_json::to_vec(&v).unwrap();
    let sig = hmac_hex(GT_SECRET, &body);
    let r = post(
        addr,
        "/hooks/gitea",
        &[
            ("X-Forgejo-Event", "push".into()),
            ("X-Forgejo-Signature", sig),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"].as_array().unwrap().len(), 1, "{}", r.text);

    // Read back.
    let all = changes(&master);
    assert_eq!(all.len(), 7, "{all:?}");
    let newest_github = github_ids.last().unwrap().as_u64().unwrap();
    let c = master.get_json(&format!("/api/v1/changes/{newest_github}"));
    assert_eq!(c["repository"], "https://github.com/anybox/abo-demo.git");
    assert_eq!(c["branch"], "main");
    assert_eq!(c["revision"], "a3f5b0c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8");
    assert_eq!(c["author"], "Jean Dupont <jdupont@example.org>");
    assert_eq!(c["source"], "webhook:github");
    assert_eq!(c["project"], "anybox/abo-demo");
    assert_eq!(c["committed_at"], "2026-11-25T17:58:40.000Z");
    assert_eq!(
        c["files"],
        json!([
            "addons/sale_stock_ext/__init__.py",
            "addons/sale_stock_ext/__manifest__.py",
            "requirements.txt",
            "addons/old_module/README.rst"
        ])
    );
    assert!(c["requests"].is_array());
    let gitea: Vec<&Value> = all
        .iter()
        .filter(|c| c["source"] == "webhook:gitea")
        .collect();
    assert_eq!(gitea.len(), 3);
    // Newest first in the listing; the Gitea push was stored oldest first.
    assert_eq!(
        gitea[1]["revision"],
        "e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9"
    );
    assert_eq!(
        gitea[2]["revision"],
        "4f0bd5d8e6f3d1b87a3a1c2e5f9d8b7a6c5e4d3c"
    );
    // Paging.
    let first = all[0]["id"].as_u64().unwrap();
    let page = master.get_json(&format!("/api/v1/changes?before={first}&limit=2"));
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["id"], all[1]["id"]);
    assert_eq!(master.get("/api/v1/changes?limit=0").status, 400);
    assert_eq!(master.get("/api/v1/changes?color=red").status, 400);
    assert_eq!(master.get("/api/v1/changes/99999").status, 404);
    assert_eq!(master.get("/api/v1/changes/x").status, 400);

    // No secret in the log, and the refusals were logged.
    let log = master.log_text();
    for secret in [GH_SECRET, GL_TOKEN, GT_SECRET] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("webhook refused"), "{log}");
}

#[test]
fn unconfigured_forges_have_no_endpoint() {
    let toml = "[[step-sets.ok]]\nname = \"hello\"\ncommand = [\"true\"]\n\n\
                [webhooks.gitlab]\ntoken = \"gl-Token-0123456789-abcdef\"\n";
    let m = MasterDir::new(toml, MANIFEST, "[w1]\npassword = pw-one\n");
    let master = m.start();
    let push = sample("github-push.json");
    // Even correctly signed with what would be the secret.
    let r = github(master.http, "push", push, GH_SECRET);
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("[webhooks.github]"),
        "{}",
        r.text
    );
    let body = sample("gitea-push.json");
    let sig = hmac_hex(GT_SECRET, &body);
    let r = post(
        master.http,
        "/hooks/gitea",
        &[("X-Gitea-Event", "push".into()), ("X-Gitea-Signature", sig)],
        body,
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(changes(&master).is_empty());
}

#[test]
fn the_changes_api_needs_a_user_and_checks_what_it_stores() {
    let m = MasterDir::new(
        "[[step-sets.ok]]\nname = \"hello\"\ncommand = [\"true\"]\n\n\
         [[url-rewrite]]\nfrom = \"http://old-forge/\"\nto = \"https://github.com/anybox/\"\n",
        MANIFEST,
        "[w1]\npassword = pw-one\n",
    );
    let master = m.start();
    let change = json!({
        "repository": "http://old-forge/abo-demo.git",
        "branch": "main",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "author": "Alice <alice@example.org>",
        "comments": "Fix the tests",
        "files": ["a.py", "b/c.py"],
        "when": 1795629874,
        "project": "abo-demo",
        "category": "odoo",
    })
    .to_string();
    let r = http(master.http, "POST", "/api/v1/changes", None, Some(&change));
    assert_eq!(r.status, 401, "{}", r.text());
    let r = http(
        master.http,
        "POST",
        "/api/v1/changes",
        Some((USER, "wrong-password")),
        Some(&change),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(changes(&master).is_empty());

    let r = master.post("/api/v1/changes", &change);
    assert_eq!(r.status, 201, "{}", r.text());
    let c = r.json();
    assert_eq!(c["repository"], "https://github.com/anybox/abo-demo.git");
    assert_eq!(c["watched"], true);
    assert_eq!(c["source"], format!("api:{USER}"));
    assert_eq!(c["committed_at"], "2026-11-25T18:04:34.000Z");
    let id = c["id"].as_u64().unwrap();
    let back = master.get_json(&format!("/api/v1/changes/{id}"));
    assert_eq!(back["files"], json!(["a.py", "b/c.py"]));
    assert_eq!(back["category"], "odoo");
    assert_eq!(back["comments"], "Fix the tests");

    for bad in [
        json!({"repository": "https://x.example/r.git", "branch": "--upload-pack=x", "revision": "abc123"}),
        json!({"repository": "https://x.example/r.git", "branch": "$(id)", "revision": "abc123"}),
        json!({"repository": "https://x.example/r.git", "branch": "main", "revision": "a b"}),
        json!({"repository": "ext::sh -c id", "branch": "main", "revision": "abc123"}),
        json!({"repository": "https://x.example/r.git", "branch": "main"}),
        json!({"repository": "https://x.example/r.git", "branch": "main", "revision": "abc", "oops": 1}),
    ] {
        let r = master.post("/api/v1/changes", &bad.to_string());
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = master.post("/api/v1/changes", "not json");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(changes(&master).len(), 1);
    let _ = USER_PASSWORD;
}
