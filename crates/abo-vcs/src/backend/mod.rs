//! The VCS command lines behind a poller: bring the local mirror up to date, read the heads
//! of the watched branches, list the commits between two revisions. Every call is an
//! argument vector with `--` before positional values; URLs, branch names and revisions are
//! validated before they get here (see [`crate::validate`]).

pub(crate) mod bzr;
pub(crate) mod git;
pub(crate) mod hg;

use crate::command::{self, Invocation, Limits, Output};
use crate::error::{Result, VcsError};
use crate::parse::Commit;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What every backend needs.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The URL polled (rewritten, validated).
    pub url: String,
    /// The mirror: `<master>/<vcs>poller/<hash>`, absolute.
    pub dir: PathBuf,
    pub limits: Limits,
    /// Most commits listed for one branch in one poll.
    pub max_changes: usize,
    /// Strings masked in error messages (the URL's password).
    pub secrets: Vec<String>,
}

impl Ctx {
    /// Runs `inv` with the context's limits and secrets; fails on a non-zero exit.
    pub(crate) async fn run_ok(&self, inv: Invocation) -> Result<Output> {
        self.run(inv).await?.ok()
    }

    /// Runs `inv` with the context's limits and secrets, whatever its exit status.
    pub(crate) async fn run(&self, mut inv: Invocation) -> Result<Output> {
        inv.secrets.extend(self.secrets.iter().cloned());
        command::run(&inv, self.limits).await
    }
}

/// One backend per VCS.
#[derive(Debug)]
pub(crate) enum Backend {
    Git(git::Git),
    Hg(hg::Hg),
    Bzr(bzr::Bzr),
}

impl Backend {
    /// Fetches what changed and returns the head of every watched branch the repository has
    /// (for bzr, the one key `""`).
    pub async fn update(&self) -> Result<BTreeMap<String, String>> {
        match self {
            Backend::Git(b) => b.update().await,
            Backend::Hg(b) => b.update().await,
            Backend::Bzr(b) => b.update().await,
        }
    }

    /// The commits of `branch` from `old` (excluded) to `new`, oldest first, at most
    /// `max_changes` (the newest). Without `old`, or when `old` is gone from the repository
    /// (history rewritten), the head alone: a new branch triggers one build, not one per
    /// commit of its history.
    pub async fn commits(&self, branch: &str, old: Option<&str>, new: &str) -> Result<Vec<Commit>> {
        match self {
            Backend::Git(b) => b.commits(old, new).await,
            Backend::Hg(b) => b.commits(branch, old, new).await,
            Backend::Bzr(b) => b.commits(old, new).await,
        }
    }
}

/// Creates the parent directory of a mirror (or of a working copy).
pub(crate) async fn create_parent(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|source| VcsError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// The environment variables to remove whose names start with `prefix`, except `keep`: the
/// master's environment may point git at another repository or configuration
/// (`GIT_DIR`, `GIT_CONFIG_PARAMETERS`...), which a poller must not follow.
fn inherited(prefix: &str, keep: &[&str]) -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(prefix) && !keep.contains(&k.as_str()))
        .collect()
}

/// Defense in depth: URLs that [`crate::validate::validate_url`] refuses, given to the
/// backends directly, still run nothing: `--` ends options, git refuses `ext::` and hosts
/// starting with `-`, Mercurial refuses unsafe ssh URLs.
#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn ctx(url: String, dir: PathBuf) -> Ctx {
        Ctx {
            url,
            dir,
            limits: Limits {
                timeout: Duration::from_secs(30),
                max_stdout: 1 << 20,
            },
            max_changes: 10,
            secrets: Vec::new(),
        }
    }

    /// A script creating `marker`, and the marker's path.
    fn evil(tmp: &Path) -> (PathBuf, PathBuf) {
        let marker = tmp.join("pwned");
        let script = tmp.join("evil.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, marker)
    }

    #[tokio::test]
    async fn unvalidated_urls_run_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (script, marker) = evil(tmp.path());
        let e = script.display();
        let git_urls = [
            format!("--upload-pack={e}"),
            format!("ext::{e}"),
            format!("ext::sh -c {e}"),
            format!("ssh://-oProxyCommand={e}/x"),
            format!("-oProxyCommand={e}:x"),
            "fd::3".to_string(),
        ];
        for (i, url) in git_urls.into_iter().enumerate() {
            let git = git::Git::new(
                ctx(url.clone(), tmp.path().join(format!("g{i}"))),
                "git".into(),
                vec!["master".into()],
            );
            assert!(git.update().await.is_err(), "{url}");
        }
        let hg_urls = [
            format!("--config=hooks.pre-pull={e}"),
            format!("--ssh={e}"),
            format!("ssh://-oProxyCommand={e}/x"),
        ];
        for (i, url) in hg_urls.into_iter().enumerate() {
            let hg = hg::Hg::new(
                ctx(url.clone(), tmp.path().join(format!("h{i}"))),
                "hg".into(),
                vec!["default".into()],
                None,
            );
            assert!(hg.update().await.is_err(), "{url}");
        }
        for (i, url) in [format!("--directory={e}"), "--help".to_string()]
            .into_iter()
            .enumerate()
        {
            let bzr = bzr::Bzr::new(
                ctx(url.clone(), tmp.path().join(format!("b{i}"))),
                bzr::default_program(),
            );
            assert!(bzr.update().await.is_err(), "{url}");
        }
        assert!(!marker.exists(), "a hostile URL ran a command");
    }
}
