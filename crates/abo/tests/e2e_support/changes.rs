//! Shared by tests/e2e_changes.rs and the changes benchmark (benches/changes.rs): real git,
//! Mercurial and Bazaar repositories in a temporary directory, updated by pushes from a
//! working copy, and a master directory whose builders need neither PostgreSQL nor
//! buildout (one `echo` shell step from a master.toml step set), plus the API reads about
//! changes, pollers and requests.
//!
//! Commits are made with an identity given through the environment (and a HOME of the
//! temporary directory, no global or system configuration), never the user's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// The name and address every test commit is made with.
pub const AUTHOR_NAME: &str = "E2E Author";
pub const AUTHOR_EMAIL: &str = "e2e@example.org";

/// A VCS abo polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vcs {
    Git,
    Hg,
    Bzr,
}

impl Vcs {
    pub fn name(self) -> &'static str {
        match self {
            Vcs::Git => "git",
            Vcs::Hg => "hg",
            Vcs::Bzr => "bzr",
        }
    }

    /// The branch every repository starts with.
    pub fn main_branch(self) -> &'static str {
        match self {
            Vcs::Git => "main",
            Vcs::Hg => "default",
            Vcs::Bzr => "trunk",
        }
    }
}

/// A commit as the test made it: what the change abo reports must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub branch: String,
    pub revision: String,
    pub comments: String,
}

/// A repository abo watches (`watched`: a bare git repository, an hg repository, one bzr
/// branch per branch name), and the working copies the test commits in and pushes from.
pub struct Repo {
    pub vcs: Vcs,
    pub root: PathBuf,
    home: PathBuf,
    counter: u32,
}

fn run_in(dir: &Path, home: &Path, program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    identity(&mut cmd, home);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test identity and a private configuration for the VCS commands the test runs.
fn identity(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env("HGRCPATH", home.join(".hgrc"))
        .env("HGUSER", format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>"))
        .env("HGPLAIN", "1")
        .env("BRZ_EMAIL", format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>"))
        .env("BZR_EMAIL", format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>"))
        .env("BRZ_PROGRESS_BAR", "none")
        .env("LC_ALL", "C.UTF-8");
}

impl Repo {
    /// Creates the repository under `root` with one commit on each of `branches` (the first
    /// is the VCS's main branch), pushed to the watched location.
    pub fn create(vcs: Vcs, root: &Path, branches: &[&str]) -> Repo {
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(".gitconfig"), "").unwrap();
        std::fs::write(home.join(".hgrc"), "").unwrap();
        let repo = Repo {
            vcs,
            root: root.to_owned(),
            home,
            counter: 0,
        };
        let work = root.join("work");
        match vcs {
            Vcs::Git => {
                repo.run(
                    root,
                    "git",
                    &["init", "-q", "--bare", "-b", "main", "watched.git"],
                );
                repo.run(root, "git", &["init", "-q", "-b", "main", "work"]);
                repo.run(&work, "git", &["remote", "add", "origin", "../watched.git"]);
                std::fs::write(work.join("README"), "initial\n").unwrap();
                repo.run(&work, "git", &["add", "README"]);
                repo.run(&work, "git", &["commit", "-q", "-m", "initial"]);
                for b in branches.iter().filter(|b| **b != "main") {
                    repo.run(&work, "git", &["branch", b]);
                }
                let mut push = vec!["push", "-q", "origin"];
                push.extend(branches.iter().copied());
                repo.run(&work, "git", &push);
            }
            Vcs::Hg => {
                repo.run(root, "hg", &["init", "watched"]);
                repo.run(root, "hg", &["clone", "-q", "watched", "work"]);
                std::fs::write(work.join("README"), "initial\n").unwrap();
                repo.run(&work, "hg", &["commit", "-q", "-A", "-m", "initial"]);
                for b in branches.iter().filter(|b| **b != "default") {
                    repo.run(&work, "hg", &["update", "-q", "default"]);
                    repo.run(&work, "hg", &["branch", "-q", b]);
                    repo.run(&work, "hg", &["commit", "-q", "-m", &format!("branch {b}")]);
                }
                repo.run(&work, "hg", &["push", "-q", "--new-branch"]);
            }
            Vcs::Bzr => {
                for b in branches {
                    let w = root.join(format!("work-{b}"));
                    repo.run(root, "brz", &["init", "-q", w.to_str().unwrap()]);
                    std::fs::write(w.join("README"), format!("initial {b}\n")).unwrap();
                    repo.run(&w, "brz", &["add", "-q", "README"]);
                    repo.run(&w, "brz", &["commit", "-q", "-m", &format!("initial {b}")]);
                    let target = root.join(format!("watched-{b}"));
                    repo.run(&w, "brz", &["push", "-q", target.to_str().unwrap()]);
                }
            }
        }
        repo
    }

    fn run(&self, dir: &Path, program: &str, args: &[&str]) -> String {
        run_in(dir, &self.home, program, args)
    }

    /// The URL abo watches for `branch` (for bzr, each branch is its own URL).
    pub fn url(&self, branch: &str) -> String {
        let p = match self.vcs {
            Vcs::Git => self.root.join("watched.git"),
            Vcs::Hg => self.root.join("watched"),
            Vcs::Bzr => self.root.join(format!("watched-{branch}")),
        };
        p.to_str().unwrap().to_owned()
    }

    /// The manifest's `watch` line for `branch`.
    pub fn watch_line(&self, branch: &str) -> String {
        match self.vcs {
            Vcs::Bzr => format!("bzr {}", self.url(branch)),
            v => format!("{} {} {branch}", v.name(), self.url(branch)),
        }
    }

    /// Commits once per message on `branch`, then pushes them all at once (one update of
    /// the watched repository, as a developer's push).
    pub fn commit_push(&mut self, branch: &str, messages: &[&str]) -> Vec<Commit> {
        let mut commits = Vec::new();
        let work = match self.vcs {
            Vcs::Bzr => self.root.join(format!("work-{branch}")),
            _ => self.root.join("work"),
        };
        match self.vcs {
            Vcs::Git => {
                self.run(&work, "git", &["checkout", "-q", branch]);
            }
            Vcs::Hg => {
                self.run(&work, "hg", &["update", "-q", branch]);
            }
            Vcs::Bzr => {}
        }
        for m in messages {
            self.counter += 1;
            let file = format!("file-{}.txt", self.counter);
            std::fs::write(work.join(&file), format!("{m}\n")).unwrap();
            let revision = match self.vcs {
                Vcs::Git => {
                    self.run(&work, "git", &["add", &file]);
                    self.run(&work, "git", &["commit", "-q", "-m", m]);
                    self.run(&work, "git", &["rev-parse", "HEAD"])
                }
                Vcs::Hg => {
                    self.run(&work, "hg", &["commit", "-q", "-A", "-m", m]);
                    self.run(&work, "hg", &["log", "-r", ".", "-T", "{node}"])
                }
                Vcs::Bzr => {
                    self.run(&work, "brz", &["add", "-q", &file]);
                    self.run(&work, "brz", &["commit", "-q", "-m", m]);
                    self.run(&work, "brz", &["revno"])
                }
            };
            commits.push(Commit {
                branch: branch.to_owned(),
                revision: revision.trim().to_owned(),
                comments: (*m).to_owned(),
            });
        }
        match self.vcs {
            Vcs::Git => {
                self.run(&work, "git", &["push", "-q", "origin", branch]);
            }
            Vcs::Hg => {
                self.run(&work, "hg", &["push", "-q", "-b", branch]);
            }
            Vcs::Bzr => {
                self.run(&work, "brz", &["push", "-q"]);
            }
        }
        commits
    }
}

/// The worker account of every master laid out here.
pub fn change_worker() -> Account {
    Account {
        name: "cw".to_owned(),
        password: "cw-secret".to_owned(),
    }
}

/// Lays out a master in `dir` without PostgreSQL: `workers.cfg` with the account of
/// [`change_worker`] (offering `python` 2.7 and 3.11, for sections with two builders), master.toml with `top` (top-level keys) and the step set `echo` (one
/// shell step), `manifest` as buildouts/MANIFEST.cfg, and the
/// API user.
pub fn layout_master(dir: &Path, manifest: &str, top: &str) {
    std::fs::create_dir_all(dir.join("buildouts")).unwrap();
    let w = change_worker();
    std::fs::write(
        dir.join("workers.cfg"),
        format!(
            "[{}]\npassword = {}\nmax_builds = 4\ncapability = python 2.7\n             python 3.11\n",
            w.name, w.password
        ),
    )
    .unwrap();
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
    std::fs::write(
        dir.join("master.toml"),
        format!(
            "manifests = [\"buildouts/MANIFEST.cfg\"]\nworkers = \"workers.cfg\"\n\
             worker-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\
             worker-ping-interval = 1\nworker-lost-after = 5\n{top}\n\
             [[step-sets.echo]]\nname = \"echo\"\n\
             command = \"echo building %(buildername)s number %(buildnumber)s\"\n"
        ),
    )
    .unwrap();
    add_user(dir, API_USER, API_PASSWORD);
}

/// A manifest section building with the `echo` step set, on any worker, watching `watch`:
/// one builder named after it.
pub fn section(name: &str, watch: &[String]) -> String {
    let mut s = format!("[{name}]\nsteps = echo\nbuild-for = postgresql not-used\n");
    if !watch.is_empty() {
        s.push_str("watch = ");
        s.push_str(&watch.join("\n        "));
        s.push('\n');
    }
    s.push('\n');
    s
}

/// [`section`] with one builder per `python` version of the worker: `NAME-python-2.7` and
/// `NAME-python-3.11`.
pub fn two_builder_section(name: &str, watch: &[String]) -> String {
    section(name, watch).replace(
        "build-for = postgresql not-used\n",
        "build-for = postgresql not-used\n            python\n",
    )
}

/// `GET /api/v1/pollers`: every poller's status.
pub fn pollers(master: &Master) -> Vec<Value> {
    match api(master.http, "pollers") {
        Value::Array(a) => a,
        v => v["pollers"].as_array().cloned().unwrap_or_default(),
    }
}

/// The status of the poller of `url`.
pub fn poller(master: &Master, url: &str) -> Option<Value> {
    pollers(master).into_iter().find(|p| p["url"] == url)
}

/// Waits until the poller of each of `urls` has polled successfully at least once (its
/// first poll recorded the heads); returns their statuses.
pub fn wait_first_polls(master: &Master, urls: &[String]) -> Vec<Value> {
    wait_until(master, Duration::from_secs(60), "the first polls", || {
        urls.iter()
            .map(|u| poller(master, u).filter(|p| !p["last_success"].is_null()))
            .collect::<Option<Vec<_>>>()
    })
}

/// Waits until the poller of `url` has reported `count` changes since the master started.
pub fn wait_changes_found(master: &Master, url: &str, count: u64) {
    wait_until(
        master,
        Duration::from_secs(60),
        &format!("{count} changes found by the poller of {url}"),
        || {
            let p = poller(master, url)?;
            (p["changes_found"].as_u64()? >= count).then_some(())
        },
    )
}

/// The builds of `builder`, newest first.
pub fn builds_of(master: &Master, builder: &str) -> Vec<Value> {
    api(master.http, &format!("builds?builder={builder}&limit=1000"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `builder` has `count` builds, all finished; returns them, newest first.
pub fn wait_builds(master: &Master, builder: &str, count: usize, limit: Duration) -> Vec<Value> {
    wait_until(
        master,
        limit,
        &format!("{count} finished builds of {builder}"),
        || {
            let b = builds_of(master, builder);
            (b.len() >= count && b.iter().all(|b| b["state"] == "finished")).then_some(b)
        },
    )
}

/// The changes a request carries, oldest first, each as an object with at least
/// `revision`, `author`, `comments`, `branch`, `repository`: the request's `changes` as the
/// API gives them (objects, or ids read from `GET /api/v1/changes/{id}`), or else the
/// changes of `GET /api/v1/changes` whose `requests` name it.
pub fn request_changes(master: &Master, request: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = match request["changes"].as_array() {
        Some(list) => list
            .iter()
            .map(|c| match c {
                Value::Number(id) => api(master.http, &format!("changes/{id}")),
                other => other.clone(),
            })
            .collect(),
        None => {
            let id = &request["id"];
            all_changes(master)
                .unwrap_or_else(|| {
                    panic!("neither the request nor GET changes lists its changes: {request:#}")
                })
                .into_iter()
                .filter(|c| c["requests"].as_array().is_some_and(|r| r.contains(id)))
                .collect()
        }
    };
    out.sort_by_key(|c| c["id"].as_u64().unwrap_or(0));
    out
}

/// Checks that `change` (from the API) is `commit` as the test made it, in the repository
/// watched at `url`.
pub fn assert_change(change: &Value, commit: &Commit, url: &str) {
    assert_eq!(change["revision"], commit.revision.as_str(), "{change:#}");
    assert_eq!(
        change["comments"].as_str().map(str::trim_end),
        Some(commit.comments.as_str()),
        "{change:#}"
    );
    let author = change["author"].as_str().unwrap_or("");
    assert!(
        author.contains(AUTHOR_NAME) && author.contains(AUTHOR_EMAIL),
        "author {author:?} is not {AUTHOR_NAME} <{AUTHOR_EMAIL}>: {change:#}"
    );
    assert_eq!(change["repository"], url, "{change:#}");
    // A bzr branch is its URL: its changes carry the URL as their branch, as 0.9's did.
    assert!(
        change["branch"] == commit.branch.as_str() || change["branch"] == url,
        "the change's branch is not {:?}: {change:#}",
        commit.branch
    );
}

/// `GET /api/v1/changes` as a list (the route's answer, or its `changes` member), if the
/// route exists; up to 1000 of them.
pub fn all_changes(master: &Master) -> Option<Vec<Value>> {
    let v = get(master.http, "changes?limit=1000").ok()?;
    match v {
        Value::Array(a) => Some(a),
        other => other["changes"].as_array().cloned(),
    }
}

/// Revision → how many times it is stored (changes of `url` only).
pub fn revision_counts(changes: &[Value], url: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for c in changes.iter().filter(|c| c["repository"] == url) {
        *counts
            .entry(c["revision"].as_str().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// An API time as milliseconds since the epoch: a number is taken as milliseconds, a
/// string as RFC 3339.
pub fn millis(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        other => time(other) * 1000.0,
    }
}

/// `abo ARGS` (no API credentials), with its output.
pub fn abo(args: &[&str]) -> std::process::Output {
    Command::new(abo_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running abo")
}

/// A POST to `path` (from the server's root) with `headers` and a JSON body: (status, body).
pub fn post(
    http: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let url = format!("http://{http}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .proxy(None)
        .build()
        .into();
    let mut req = agent.post(&url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(body).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// The API user's `Authorization` header value.
pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{API_USER}:{API_PASSWORD}")
        )
    )
}
