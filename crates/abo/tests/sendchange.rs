//! `abo sendchange` against a real `abo start`: the change is stored as given (read back
//! with `GET /api/v1/changes/{id}`), credentials come from `--password-file` or
//! `ABO_PASSWORD`, and the master's refusals (credentials, hostile values) become clear
//! errors with exit status 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const USER: &str = "hook";
const PASSWORD: &str = "hook-pw-7Qx2";

const TOML: &str = r#"worker-listen = "127.0.0.1:0"
http-listen = "127.0.0.1:0"

[[step-sets.ok]]
name = "hello"
command = ["true"]
"#;

const MANIFEST: &str = "[demo]
steps = ok
build-for = postgresql not-used
poll-interval = 86400
watch = git https://github.com/anybox/abo-demo.git main
";

fn abo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_abo"));
    c.env_remove("ABO_USER")
        .env_remove("ABO_PASSWORD")
        .env_remove("ABO_MASTER");
    c
}

/// `abo start` on a fresh master directory, killed when dropped.
struct Master {
    child: Child,
    http: SocketAddr,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Master {
    fn start() -> Master {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("master");
        std::fs::create_dir_all(dir.join("buildouts")).unwrap();
        std::fs::write(dir.join("master.toml"), TOML).unwrap();
        std::fs::write(dir.join("buildouts/MANIFEST.cfg"), MANIFEST).unwrap();
        std::fs::write(dir.join("workers.cfg"), "[w1]\npassword = pw-one\n").unwrap();
        let mut add = abo()
            .args(["user", "add"])
            .arg(&dir)
            .args([USER, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        add.stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = add.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = abo()
            .arg("start")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("abo start names its API address");
            if let Some((_, a)) = line.split_once("serving the API on http://") {
                break a.trim().parse().unwrap();
            }
        };
        Master {
            child,
            http,
            _tmp: tmp,
            dir,
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut tcp = TcpStream::connect(self.http).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        )
        .unwrap();
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn changes(&self) -> Vec<Value> {
        let (status, v) = self.get("/api/v1/changes");
        assert_eq!(status, 200);
        v.as_array().unwrap().clone()
    }

    fn sendchange(&self, args: &[&str], password: Option<&str>, stdin: &str) -> Output {
        let mut c = abo();
        c.arg("sendchange")
            .args(["--master", &format!("http://{}", self.http)])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = password {
            c.env("ABO_PASSWORD", p);
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const REV: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

#[test]
fn sendchange_stores_the_change() {
    let master = Master::start();
    let pw_file = master.dir.join("hook.password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let pw_file = pw_file.to_str().unwrap();
    let files_from = master.dir.join("files");
    std::fs::write(&files_from, "with space.py\0other/file.py\0").unwrap();

    let out = master.sendchange(
        &[
            "--user",
            USER,
            "--password-file",
            pw_file,
            "--repository",
            "https://github.com/anybox/abo-demo.git",
            "--branch",
            "main",
            "--revision",
            REV,
            "--who",
            "Alice <alice@example.org>",
            "--logfile",
            "-",
            "--when",
            "1795629874",
            "--project",
            "abo-demo",
            "--files-from",
            files_from.to_str().unwrap(),
            "addons/x/models.py",
            "README.rst",
        ],
        None,
        "Fix the tests\n\nThe message comes from standard input.\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("change 1 stored: https://github.com/anybox/abo-demo.git main"),
        "{stdout}"
    );
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let (status, c) = master.get("/api/v1/changes/1");
    assert_eq!(status, 200);
    assert_eq!(c["revision"], REV);
    assert_eq!(c["branch"], "main");
    assert_eq!(c["author"], "Alice <alice@example.org>");
    assert_eq!(
        c["comments"],
        "Fix the tests\n\nThe message comes from standard input."
    );
    assert_eq!(
        c["files"],
        serde_json::json!([
            "addons/x/models.py",
            "README.rst",
            "with space.py",
            "other/file.py"
        ])
    );
    assert_eq!(c["committed_at"], "2026-11-25T18:04:34.000Z");
    assert_eq!(c["project"], "abo-demo");
    assert_eq!(c["source"], format!("api:{USER}"));

    // ABO_PASSWORD, --json, a repository nobody watches: stored, with a warning.
    let out = master.sendchange(
        &[
            "--user",
            USER,
            "-R",
            "https://example.org/other.git",
            "-b",
            "dev",
            "-r",
            "abcdef12",
            "-c",
            "one line",
            "--json",
        ],
        Some(PASSWORD),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["comments"], "one line");
    assert!(
        text(&out.stderr).contains("warning: the master watches no repository"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(master.changes().len(), 2);
}

#[test]
fn sendchange_refusals_are_clear() {
    let master = Master::start();
    let base = [
        "--repository",
        "https://github.com/anybox/abo-demo.git",
        "--branch",
        "main",
        "--revision",
        REV,
    ];
    // No user.
    let out = master.sendchange(&base, None, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("needs a user"),
        "{}",
        text(&out.stderr)
    );
    // A wrong password.
    let mut args = vec!["--user", USER];
    args.extend(base);
    let out = master.sendchange(&args, Some("wrong"), "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refused the credentials"),
        "{}",
        text(&out.stderr)
    );
    // Hostile values: the master's reason is shown.
    for (flag, value) in [
        ("--branch", "--upload-pack=touch /tmp/x"),
        ("--branch", "$(id)"),
        ("--revision", "HEAD; rm -rf /"),
        ("--repository", "ext::sh -c id"),
    ] {
        let mut args: Vec<&str> = vec!["--user", USER];
        let mut it = base.iter();
        while let Some(k) = it.next() {
            let v = it.next().unwrap();
            args.push(k);
            args.push(if *k == flag { value } else { v });
        }
        // `--branch=--upload-pack...`: clap would read a separate value starting with `--`
        // as an option.
        let joined: Vec<String> = args
            .chunks(2)
            .map(|kv| format!("{}={}", kv[0], kv[1]))
            .collect();
        let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
        let out = master.sendchange(&joined, Some(PASSWORD), "");
        assert_eq!(out.status.code(), Some(2), "{value}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("HTTP 400"),
            "{value}: {}",
            text(&out.stderr)
        );
    }
    assert!(master.changes().is_empty());
    // --help documents it.
    let out = abo().args(["sendchange", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "--repository",
        "--password-file",
        "--logfile",
        "post-receive",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}

/// The `post-receive` hook of docs/api.md, as documented.
fn documented_hook() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    let start = doc
        .find("```sh\n#!/bin/sh\n# post-receive")
        .expect("docs/api.md has the post-receive hook");
    let script = &doc[start + "```sh\n".len()..];
    script[..script.find("```").unwrap()].to_owned()
}

fn git(
    dir: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Zoé O'Hara; $(id)")
        .env("GIT_AUTHOR_EMAIL", "zoe@example.org")
        .env("GIT_COMMITTER_NAME", "CI")
        .env("GIT_COMMITTER_EMAIL", "ci@example.org")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    out
}

#[test]
fn the_documented_post_receive_hook_sends_each_pushed_commit() {
    let master = Master::start();
    let root = master.dir.parent().unwrap().to_path_buf();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pw_file = root.join("hook.password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let origin = root.join("origin.git");
    git(
        &root,
        &home,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
        &[],
    );
    let hook = origin.join("hooks/post-receive");
    std::fs::write(&hook, documented_hook()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = root.join("work");
    git(
        &root,
        &home,
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
        &[],
    );

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_abo"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let master_url = format!("http://{}", master.http);
    let hook_env = [
        ("PATH", path.as_str()),
        ("ABO_MASTER", master_url.as_str()),
        ("ABO_USER", USER),
        ("ABO_PASSWORD_FILE", pw_file.to_str().unwrap()),
        ("ABO_REPOSITORY", "https://github.com/anybox/abo-demo.git"),
    ];
    let commit = |file: &str, message: &str| {
        std::fs::write(work.join(file), message).unwrap();
        git(&work, &home, &["add", "--", file], &[]);
        git(&work, &home, &["commit", "-q", "-m", message], &[]);
        let out = git(&work, &home, &["rev-parse", "HEAD"], &[]);
        text(&out.stdout).trim().to_owned()
    };
    // A new branch: its head alone.
    commit("first.txt", "first");
    let second = commit("with space.txt", "second\n\nwith a body");
    git(&work, &home, &["push", "-q", "origin", "main"], &hook_env);
    // Two more commits: both, oldest first.
    let third = commit("third.txt", "third");
    let fourth = commit("fourth.txt", "fourth");
    git(&work, &home, &["push", "-q", "origin", "main"], &hook_env);
    // A tag: nothing. A hostile branch name: refused by the master, the push goes through.
    git(&work, &home, &["tag", "v1"], &[]);
    git(&work, &home, &["push", "-q", "origin", "v1"], &hook_env);
    let out = git(
        &work,
        &home,
        &["push", "origin", "HEAD:refs/heads/$(id)"],
        &hook_env,
    );
    assert!(
        text(&out.stderr).contains("abo sendchange failed"),
        "{}",
        text(&out.stderr)
    );

    let changes = master.changes();
    let revisions: Vec<&str> = changes
        .iter()
        .rev()
        .map(|c| c["revision"].as_str().unwrap())
        .collect();
    assert_eq!(
        revisions,
        [second.as_str(), third.as_str(), fourth.as_str()]
    );
    let second_change = &changes[2];
    assert_eq!(second_change["branch"], "main");
    assert_eq!(
        second_change["author"],
        "Zoé O'Hara; $(id) <zoe@example.org>"
    );
    assert_eq!(second_change["comments"], "second\n\nwith a body");
    assert_eq!(
        second_change["files"],
        serde_json::json!(["with space.txt"])
    );
    assert!(second_change["committed_at"].is_string());
    assert_eq!(changes[0]["files"], serde_json::json!(["fourth.txt"]));
}
