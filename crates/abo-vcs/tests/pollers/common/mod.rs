//! Test repositories and a master directory with its store.

use abo_plan::watch::url_hash;
use abo_plan::{Poller, Vcs};
use abo_store::Store;
use abo_vcs::{PollerOptions, PollerRuntime};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A temporary directory holding a master directory (with its store), the upstream
/// repositories and a `HOME` for the tools the tests run to make commits.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub store: Store,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("master")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let store = Store::open(tmp.path().join("master").to_str().unwrap())
            .await
            .unwrap();
        Fixture { tmp, store }
    }

    pub fn master(&self) -> PathBuf {
        self.tmp.path().join("master")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A VCS command of the test side (making commits), with a clean configuration.
    pub fn tool(&self, dir: &Path, program: &str, args: &[&str]) -> String {
        self.tool_env(dir, program, args, &[])
    }

    pub fn tool_env(
        &self,
        dir: &Path,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> String {
        let home = self.path("home");
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Jöhn Dœ")
            .env("GIT_AUTHOR_EMAIL", "j@example.org")
            .env("GIT_COMMITTER_NAME", "Jöhn Dœ")
            .env("GIT_COMMITTER_EMAIL", "j@example.org")
            .env("GIT_AUTHOR_DATE", "1700000000 +0100")
            .env("GIT_COMMITTER_DATE", "1700000000 +0100")
            .env("HGPLAIN", "1")
            .env("HGRCPATH", "")
            .env("HGUSER", "Jöhn Dœ <j@example.org>")
            .env("HGENCODING", "utf-8")
            .env("BRZ_EMAIL", "Jöhn Dœ <j@example.org>")
            .env("LC_ALL", "C.UTF-8")
            .envs(env.iter().copied())
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

    /// The plan's poller for `url`, as `abo_plan::watch::pollers` names it.
    pub fn plan(&self, vcs: Vcs, url: &str, branches: &[&str]) -> Poller {
        Poller {
            vcs,
            url: url.to_string(),
            branches: branches.iter().map(|b| b.to_string()).collect(),
            workdir: format!("{}poller/{}", vcs.as_str(), url_hash(url)),
            interval: 600,
        }
    }

    pub fn runtime(&self, plan: &Poller) -> PollerRuntime {
        PollerRuntime::new(&self.master(), plan, self.store.clone(), &options()).unwrap()
    }
}

/// Options for tests: short timeouts and delays.
pub fn options() -> PollerOptions {
    PollerOptions {
        command_timeout: Duration::from_secs(60),
        start_spread: Duration::ZERO,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..PollerOptions::default()
    }
}

/// Writes `content` to `dir/file` (creating directories).
pub fn write(dir: &Path, file: &str, content: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}
