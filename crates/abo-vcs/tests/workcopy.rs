//! Working copies ([`abo_vcs::WorkingCopy`]) of real git, Mercurial and Bazaar (Breezy)
//! repositories in temporary directories: cloning, updating, refusing local modifications
//! and diverged histories, hostile URLs and branch names, directories that are not working
//! copies.
//!
//! Needs `git`, `hg` and `brz` (or `bzr`) on `PATH`: `scripts/test` installs them.

use abo_plan::Vcs;
use abo_vcs::{PollerOptions, VcsError, WorkingCopy, WorkingCopyProblem};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Bazaar program the tests commit with (the working copy picks the same way).
fn bzr_program() -> &'static str {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("brz").is_file()));
    if found {
        "brz"
    } else {
        "bzr"
    }
}

fn program(vcs: Vcs) -> &'static str {
    match vcs {
        Vcs::Git => "git",
        Vcs::Hg => "hg",
        Vcs::Bzr => bzr_program(),
    }
}

fn options() -> PollerOptions {
    PollerOptions {
        command_timeout: Duration::from_secs(60),
        ..PollerOptions::default()
    }
}

/// A temporary directory with a `HOME` for the test side's tools.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        Fixture { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A VCS command of the test side (making commits), with a clean configuration and a
    /// local identity.
    fn tool(&self, dir: &Path, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("HOME", self.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Jöhn Dœ")
            .env("GIT_AUTHOR_EMAIL", "j@example.org")
            .env("GIT_COMMITTER_NAME", "Jöhn Dœ")
            .env("GIT_COMMITTER_EMAIL", "j@example.org")
            .env("HGPLAIN", "1")
            .env("HGRCPATH", "")
            .env("HGUSER", "Jöhn Dœ <j@example.org>")
            .env("HGENCODING", "utf-8")
            .env("BRZ_EMAIL", "Jöhn Dœ <j@example.org>")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program}: {e}; install git, mercurial and brz (./scripts/test does)"
                )
            });
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A repository of `vcs` in `name` with one commit of `README`.
    fn upstream(&self, vcs: Vcs, name: &str) -> Repo<'_> {
        let dir = self.path(name);
        match vcs {
            Vcs::Git => {
                std::fs::create_dir_all(&dir).unwrap();
                self.tool(&dir, "git", &["init", "-q", "-b", "master"]);
            }
            Vcs::Hg => {
                std::fs::create_dir_all(&dir).unwrap();
                self.tool(&dir, "hg", &["init"]);
            }
            Vcs::Bzr => {
                self.tool(self.tmp.path(), bzr_program(), &["init", "-q", "--", name]);
            }
        }
        let repo = Repo { fx: self, vcs, dir };
        repo.commit("README", "hello\n", "initial");
        repo
    }
}

/// A repository (or working copy) the test side commits in.
struct Repo<'a> {
    fx: &'a Fixture,
    vcs: Vcs,
    dir: PathBuf,
}

impl Repo<'_> {
    fn url(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> String {
        self.fx.tool(&self.dir, program(self.vcs), args)
    }

    /// Writes and commits `file`; returns the new head (as [`WorkingCopy::revision`] gives
    /// it: hex for git and hg, the revision id for bzr).
    fn commit(&self, file: &str, content: &str, message: &str) -> String {
        write(&self.dir, file, content);
        match self.vcs {
            Vcs::Git => {
                self.run(&["add", "--", file]);
                self.run(&["commit", "-q", "-m", message]);
            }
            Vcs::Hg => {
                self.run(&["add", "-q", "--", file]);
                self.run(&["commit", "-q", "-m", message]);
            }
            Vcs::Bzr => {
                self.run(&["add", "-q", "--", file]);
                self.run(&["commit", "-q", "-m", message]);
            }
        }
        self.head()
    }

    fn head(&self) -> String {
        match self.vcs {
            Vcs::Git => self.run(&["rev-parse", "HEAD"]).trim().to_string(),
            Vcs::Hg => self
                .run(&["log", "-r", ".", "-T", "{node}"])
                .trim()
                .to_string(),
            Vcs::Bzr => self
                .run(&["revision-info", "--tree"])
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string(),
        }
    }
}

fn write(dir: &Path, file: &str, content: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

fn problem(err: &VcsError) -> Option<WorkingCopyProblem> {
    match err {
        VcsError::WorkingCopy { problem, .. } => Some(*problem),
        _ => None,
    }
}

fn wc(vcs: Vcs, up: &Repo, branch: Option<&str>, dir: &Path) -> WorkingCopy {
    WorkingCopy::new(vcs, &up.url(), branch, dir, &options()).unwrap()
}

/// The same scenario for each VCS: clone, nothing new, something new, a local modification
/// refused (and kept), then accepted once reverted.
async fn clone_update_and_local_modifications(vcs: Vcs) {
    let fx = Fixture::new();
    let up = fx.upstream(vcs, "up");
    let dir = fx.path("master/manifests");
    let wc = wc(vcs, &up, None, &dir);

    assert!(
        wc.ensure().await.unwrap(),
        "{vcs:?}: the first ensure clones"
    );
    assert_eq!(read(&dir, "README"), "hello\n");
    assert!(!fx.path("master/manifests.partial").exists());
    assert!(
        !wc.ensure().await.unwrap(),
        "{vcs:?}: a second ensure keeps it"
    );
    assert_eq!(wc.revision().await.unwrap(), up.head());

    assert_eq!(wc.update().await.unwrap(), None, "{vcs:?}: nothing new");

    let new = up.commit("manifests/a.cfg", "[buildout]\nparts =\n", "add a.cfg");
    assert_eq!(wc.update().await.unwrap(), Some(new.clone()), "{vcs:?}");
    assert_eq!(wc.revision().await.unwrap(), new);
    assert_eq!(read(&dir, "manifests/a.cfg"), "[buildout]\nparts =\n");
    assert_eq!(
        wc.update().await.unwrap(),
        None,
        "{vcs:?}: up to date again"
    );

    // An administrator's hand edit: refused, kept, nothing pulled into the working tree.
    write(&dir, "README", "edited by hand\n");
    let newer = up.commit("manifests/b.cfg", "b\n", "add b.cfg");
    let err = wc.update().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(
        problem(&err),
        Some(WorkingCopyProblem::LocalModifications),
        "{text}"
    );
    assert!(text.contains("local modifications"), "{text}");
    assert!(text.contains("README"), "{text}");
    assert!(text.contains(dir.to_str().unwrap()), "{text}");
    assert_eq!(read(&dir, "README"), "edited by hand\n");
    assert!(!dir.join("manifests/b.cfg").exists());
    assert_eq!(wc.revision().await.unwrap(), new);

    // Untracked files are not modifications, and are left alone.
    write(&dir, "README", "hello\n");
    write(&dir, "notes.txt", "mine\n");
    assert_eq!(wc.update().await.unwrap(), Some(newer.clone()), "{vcs:?}");
    assert_eq!(read(&dir, "manifests/b.cfg"), "b\n");
    assert_eq!(read(&dir, "notes.txt"), "mine\n");
}

/// Local commits: kept when the remote has nothing new (no update), refused as diverged when
/// the remote moved too.
async fn local_commits_and_divergence(vcs: Vcs) {
    let fx = Fixture::new();
    let up = fx.upstream(vcs, "up");
    let dir = fx.path("wc");
    let wc = wc(vcs, &up, None, &dir);
    assert!(wc.ensure().await.unwrap());
    let local = Repo {
        fx: &fx,
        vcs,
        dir: dir.clone(),
    };
    let mine = local.commit("local.cfg", "mine\n", "local commit");
    assert_eq!(wc.update().await.unwrap(), None, "{vcs:?}: only ahead");
    assert_eq!(wc.revision().await.unwrap(), mine);

    up.commit("remote.cfg", "theirs\n", "remote commit");
    let err = wc.update().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(problem(&err), Some(WorkingCopyProblem::Diverged), "{text}");
    assert!(text.contains("diverged"), "{text}");
    assert_eq!(wc.revision().await.unwrap(), mine);
    assert_eq!(read(&dir, "local.cfg"), "mine\n");
    assert!(!dir.join("remote.cfg").exists());
}

#[tokio::test]
async fn git_clone_update_and_local_modifications() {
    clone_update_and_local_modifications(Vcs::Git).await;
}

#[tokio::test]
async fn hg_clone_update_and_local_modifications() {
    clone_update_and_local_modifications(Vcs::Hg).await;
}

#[tokio::test]
async fn bzr_clone_update_and_local_modifications() {
    clone_update_and_local_modifications(Vcs::Bzr).await;
}

#[tokio::test]
async fn git_local_commits_and_divergence() {
    local_commits_and_divergence(Vcs::Git).await;
}

#[tokio::test]
async fn hg_local_commits_and_divergence() {
    local_commits_and_divergence(Vcs::Hg).await;
}

#[tokio::test]
async fn bzr_local_commits_and_divergence() {
    local_commits_and_divergence(Vcs::Bzr).await;
}

/// git: a named branch is followed, not the remote's default; without a branch, the
/// remote's `HEAD` is; a history rewritten upstream is refused.
#[tokio::test]
async fn git_branches_and_rewritten_history() {
    let fx = Fixture::new();
    let up = fx.upstream(Vcs::Git, "up");
    up.run(&["checkout", "-q", "-b", "prod"]);
    let prod = up.commit("prod.cfg", "p\n", "on prod");
    up.run(&["checkout", "-q", "master"]);
    let master = up.commit("master.cfg", "m\n", "on master");

    let dir = fx.path("prod");
    let on_prod = wc(Vcs::Git, &up, Some("prod"), &dir);
    assert_eq!(on_prod.branch(), Some("prod"));
    assert!(on_prod.ensure().await.unwrap());
    assert_eq!(on_prod.revision().await.unwrap(), prod);
    assert!(dir.join("prod.cfg").exists() && !dir.join("master.cfg").exists());
    let default = wc(Vcs::Git, &up, None, &fx.path("default"));
    assert!(default.ensure().await.unwrap());
    assert_eq!(default.revision().await.unwrap(), master);

    // New commits on master do not move the prod working copy.
    up.commit("master2.cfg", "m\n", "master again");
    assert_eq!(on_prod.update().await.unwrap(), None);
    up.run(&["checkout", "-q", "prod"]);
    let prod2 = up.commit("prod2.cfg", "p\n", "prod again");
    assert_eq!(on_prod.update().await.unwrap(), Some(prod2.clone()));

    // Rewritten upstream: refused, the working copy stays where it was.
    up.run(&["reset", "-q", "--hard", &prod]);
    up.commit("prod3.cfg", "p\n", "rewritten prod");
    let err = on_prod.update().await.unwrap_err();
    assert_eq!(problem(&err), Some(WorkingCopyProblem::Diverged), "{err}");
    assert_eq!(on_prod.revision().await.unwrap(), prod2);

    // A branch the remote does not have: a command error, nothing changed.
    let missing = wc(Vcs::Git, &up, Some("nope"), &fx.path("nope"));
    assert!(missing.ensure().await.is_err());
    assert!(!fx.path("nope").exists() && !fx.path("nope.partial").exists());
}

/// hg: a named branch whose name reads as a revset is followed as a name.
#[tokio::test]
async fn hg_branch_names_never_reach_a_revset() {
    let fx = Fixture::new();
    let up = fx.upstream(Vcs::Hg, "up");
    let default_head = up.head();
    let branch = "stable ) or all() or (";
    up.run(&["branch", "-q", "--", branch]);
    let stable = up.commit("stable.cfg", "s\n", "on stable");
    up.run(&["update", "-q", "-r", "default"]);
    let default_head2 = up.commit("default.cfg", "d\n", "on default");
    assert_ne!(default_head, default_head2);

    let dir = fx.path("wc");
    let wc = wc(Vcs::Hg, &up, Some(branch), &dir);
    assert!(wc.ensure().await.unwrap());
    assert_eq!(wc.revision().await.unwrap(), stable);
    assert!(dir.join("stable.cfg").exists() && !dir.join("default.cfg").exists());

    up.commit("default2.cfg", "d\n", "default again");
    assert_eq!(wc.update().await.unwrap(), None);
    up.run(&["update", "-q", "-r", &stable]);
    let stable2 = up.commit("stable2.cfg", "s\n", "stable again");
    assert_eq!(wc.update().await.unwrap(), Some(stable2));
    assert!(!dir.join("default2.cfg").exists());
}

/// Hostile URLs and branch names are refused by `new`, before anything runs: the programs
/// are a script that would create a marker.
#[tokio::test]
async fn hostile_urls_and_branches_run_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let marker = fx.path("pwned");
    let m = marker.display();
    let evil = fx.path("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch '{m}'\n")).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = evil.display();
    let options = PollerOptions {
        git: evil.clone(),
        hg: evil.clone(),
        bzr: Some(evil.clone()),
        ..options()
    };
    let dir = fx.path("wc");
    let urls = [
        format!("--upload-pack=touch {m}"),
        format!("--upload-pack={e}"),
        format!("ext::sh -c touch% {m}"),
        format!("ext::{e}"),
        "fd::17".to_string(),
        format!("-oProxyCommand={e}:repo"),
        format!("ssh://-oProxyCommand=touch%20{m}/x"),
        format!("ssh://%2DoProxyCommand={e}/x"),
        format!("ssh://-user@host/{m}"),
        format!("--config=hooks.pre-pull={e}"),
        format!("/srv/repo\n--upload-pack={e}"),
        "relative/path".to_string(),
    ];
    for vcs in [Vcs::Git, Vcs::Hg, Vcs::Bzr] {
        for url in &urls {
            match WorkingCopy::new(vcs, url, None, &dir, &options) {
                Err(VcsError::UnsafeUrl { .. }) => {}
                Err(other) => panic!("{vcs:?} {url:?}: {other}"),
                Ok(_) => panic!("{vcs:?} {url:?} accepted"),
            }
        }
    }
    let branches = [
        format!("--upload-pack=touch {m}"),
        format!("-oProxyCommand={e}"),
        format!("--config=hooks.update={e}"),
        "-".to_string(),
        format!("x\n--upload-pack={e}"),
        String::new(),
    ];
    for vcs in [Vcs::Git, Vcs::Hg] {
        for branch in &branches {
            match WorkingCopy::new(vcs, "https://h/repo", Some(branch), &dir, &options) {
                Err(VcsError::UnsafeBranch { .. }) => {}
                Err(other) => panic!("{vcs:?} {branch:?}: {other}"),
                Ok(_) => panic!("{vcs:?} {branch:?} accepted"),
            }
        }
    }
    // git's own rules too.
    for branch in ["a..b", "x:y", "HEAD", "a b", "refs~1"] {
        assert!(
            WorkingCopy::new(Vcs::Git, "https://h/repo", Some(branch), &dir, &options).is_err(),
            "{branch:?}"
        );
    }
    // A bzr branch is its URL: any branch is refused, a hostile one as unsafe.
    for branch in branches.iter().filter(|b| !b.is_empty()) {
        assert!(matches!(
            WorkingCopy::new(Vcs::Bzr, "https://h/repo", Some(branch), &dir, &options),
            Err(VcsError::UnsafeBranch { .. })
        ));
    }
    assert!(!marker.exists(), "a hostile value ran a command");
    assert!(!dir.exists());
}

/// Directories that are not working copies of the VCS are errors that say what they are,
/// and are left untouched; an empty one is cloned into; a failed clone leaves nothing.
#[tokio::test]
async fn directories_that_are_not_working_copies() {
    let fx = Fixture::new();
    for vcs in [Vcs::Git, Vcs::Hg, Vcs::Bzr] {
        let name = program(vcs);
        let up = fx.upstream(vcs, &format!("up-{name}"));

        // Files of someone else's.
        let dir = fx.path(&format!("busy-{name}"));
        write(&dir, "important.txt", "keep me\n");
        let wc = wc(vcs, &up, None, &dir);
        for err in [
            wc.ensure().await.unwrap_err(),
            wc.update().await.unwrap_err(),
            wc.revision().await.unwrap_err(),
        ] {
            let text = err.to_string();
            assert_eq!(
                problem(&err),
                Some(WorkingCopyProblem::NotAWorkingCopy),
                "{text}"
            );
            assert!(
                text.contains("not a") && text.contains("working copy"),
                "{text}"
            );
            assert!(text.contains("not empty"), "{text}");
        }
        assert_eq!(read(&dir, "important.txt"), "keep me\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

        // Another VCS's working copy.
        let other = [Vcs::Git, Vcs::Hg, Vcs::Bzr]
            .into_iter()
            .find(|v| *v != vcs)
            .unwrap();
        let other_up = fx.upstream(other, &format!("other-{name}"));
        let err = WorkingCopy::new(vcs, &up.url(), None, &other_up.dir, &options())
            .unwrap()
            .ensure()
            .await
            .unwrap_err();
        assert_eq!(
            problem(&err),
            Some(WorkingCopyProblem::NotAWorkingCopy),
            "{err}"
        );
        assert!(err.to_string().contains("working copy, not a"), "{err}");

        // A file.
        let file = fx.path(&format!("file-{name}"));
        std::fs::write(&file, "x").unwrap();
        let err = wc_at(vcs, &up, &file).ensure().await.unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");

        // Missing: update and revision say it was not cloned.
        let missing = wc_at(vcs, &up, &fx.path(&format!("missing-{name}")));
        let err = missing.update().await.unwrap_err();
        assert_eq!(problem(&err), Some(WorkingCopyProblem::Missing), "{err}");
        assert!(err.to_string().contains("not been cloned"), "{err}");
        assert!(missing.revision().await.is_err());

        // Empty: cloned into.
        let empty = fx.path(&format!("empty-{name}"));
        std::fs::create_dir_all(&empty).unwrap();
        let wc = wc_at(vcs, &up, &empty);
        assert!(wc.ensure().await.unwrap());
        assert_eq!(read(&empty, "README"), "hello\n");
        assert_eq!(wc.revision().await.unwrap(), up.head());

        // A clone that fails leaves neither a directory nor a partial clone, and an empty
        // directory empty.
        let gone = fx.path(&format!("gone-{name}"));
        let target = fx.path(&format!("failed-{name}"));
        let failing =
            WorkingCopy::new(vcs, gone.to_str().unwrap(), None, &target, &options()).unwrap();
        assert!(failing.ensure().await.is_err());
        assert!(!target.exists(), "{vcs:?}");
        assert!(
            !fx.path(&format!("failed-{name}.partial")).exists(),
            "{vcs:?}"
        );
        std::fs::create_dir_all(&target).unwrap();
        assert!(failing.ensure().await.is_err());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{vcs:?}");
    }
}

fn wc_at(vcs: Vcs, up: &Repo, dir: &Path) -> WorkingCopy {
    wc(vcs, up, None, dir)
}
