//! One poller at run time: a plan's [`abo_plan::Poller`] with its mirror, its store and its
//! options; [`PollerRuntime::poll_once`] is one poll.

use crate::backend::{bzr, git::Git, hg::Hg, Backend, Ctx};
use crate::command::Limits;
use crate::error::{Result, VcsError};
use crate::parse::Commit;
use crate::validate::{self, redact_url, url_password};
use abo_plan::Vcs;
use abo_store::{Change, NewChange, Store, Timestamp};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// How pollers run their commands and schedule their polls. The defaults suit a master;
/// tests shorten the delays.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// The `git` program.
    pub git: PathBuf,
    /// The `hg` program.
    pub hg: PathBuf,
    /// The Bazaar program; `None`: `brz` if it is on `PATH`, else `bzr`.
    pub bzr: Option<PathBuf>,
    /// The one Mercurial configuration file read (`HGRCPATH`), for `[auth]` or `ui.ssh`
    /// settings; none by default, so no hook or extension of the master's user runs.
    pub hgrc: Option<PathBuf>,
    /// Longest a VCS command may run before its process group is killed: a hung server must
    /// not hang its poller. The first fetch of a big repository needs the most.
    pub command_timeout: Duration,
    /// Most bytes a command may write on its standard output.
    pub max_output_bytes: usize,
    /// Most changes one poll reports for one branch (the newest): a push of a thousand
    /// commits is one batch of builds, not a thousand.
    pub max_changes_per_branch: usize,
    /// First polls are spread over `[0, min(this, interval))` after start.
    pub start_spread: Duration,
    /// Delay before the first retry after a failure (at most the poller's interval),
    /// doubled for each further failure...
    pub backoff_initial: Duration,
    /// ...up to this (at least the poller's interval).
    pub backoff_max: Duration,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            git: "git".into(),
            hg: "hg".into(),
            bzr: None,
            hgrc: None,
            command_timeout: Duration::from_secs(20 * 60),
            max_output_bytes: 64 << 20,
            max_changes_per_branch: 100,
            start_spread: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(60 * 60),
        }
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    /// The changes stored, oldest first within each branch.
    pub changes: Vec<Change>,
    /// The poller had no last seen revision at all: the heads were recorded, no change
    /// reported.
    pub first_poll: bool,
    /// Watched branches the repository does not have (deleted, misspelt, not pushed yet).
    pub missing_branches: Vec<String>,
}

/// A poller ready to poll: validated URL, branches and working directory.
#[derive(Debug)]
pub struct PollerRuntime {
    plan: abo_plan::Poller,
    interval: Duration,
    store: Store,
    backend: Backend,
}

/// The key of the poller's state for each watched branch: bzr has one, `""`.
fn state_keys(plan: &abo_plan::Poller) -> Vec<String> {
    match plan.vcs {
        Vcs::Bzr => vec![String::new()],
        Vcs::Git | Vcs::Hg => plan.branches.clone(),
    }
}

/// `<master>/<workdir>`, refusing a workdir that could leave the master directory.
fn mirror_dir(master_dir: &Path, workdir: &str) -> Result<PathBuf> {
    let bad = |reason: &str| VcsError::BadWorkdir {
        workdir: format!("`{}`", validate::printable(workdir)),
        reason: reason.to_string(),
    };
    let path = Path::new(workdir);
    if workdir.is_empty() || workdir.chars().any(char::is_control) {
        return Err(bad("empty or holding a control character"));
    }
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad(
            "it must be relative to the master directory, without `..`",
        ));
    }
    let master = if master_dir.is_absolute() {
        master_dir.to_path_buf()
    } else {
        // Commands get absolute paths: a relative one starting with `-` would be an option.
        std::env::current_dir()
            .map_err(|source| VcsError::Io {
                path: master_dir.to_path_buf(),
                source,
            })?
            .join(master_dir)
    };
    Ok(master.join(path))
}

impl PollerRuntime {
    /// A runtime for `plan`, its mirror under `master_dir`. Refused (nothing runs) when the
    /// URL, a branch name or the working directory is unsafe.
    pub fn new(
        master_dir: &Path,
        plan: &abo_plan::Poller,
        store: Store,
        options: &PollerOptions,
    ) -> Result<PollerRuntime> {
        validate::validate_url(plan.vcs, &plan.url)?;
        if plan.vcs != Vcs::Bzr {
            for branch in &plan.branches {
                validate::validate_branch(plan.vcs, branch)?;
            }
        }
        let ctx = Ctx {
            url: plan.url.clone(),
            dir: mirror_dir(master_dir, &plan.workdir)?,
            limits: Limits {
                timeout: options.command_timeout,
                max_stdout: options.max_output_bytes,
            },
            max_changes: options.max_changes_per_branch.max(1),
            secrets: url_password(&plan.url)
                .map(str::to_string)
                .into_iter()
                .collect(),
        };
        let backend = match plan.vcs {
            Vcs::Git => Backend::Git(Git::new(ctx, options.git.clone(), plan.branches.clone())),
            Vcs::Hg => Backend::Hg(Hg::new(
                ctx,
                options.hg.clone(),
                plan.branches.clone(),
                options.hgrc.clone(),
            )),
            Vcs::Bzr => Backend::Bzr(bzr::Bzr::new(
                ctx,
                options.bzr.clone().unwrap_or_else(bzr::default_program),
            )),
        };
        Ok(PollerRuntime {
            plan: plan.clone(),
            interval: Duration::from_secs(plan.interval.max(1)),
            store,
            backend,
        })
    }

    /// The poller's name: its working directory as the plan gives it (`gitpoller/<hash>`),
    /// which stays the same when URL rewriting changes. Its state in the store and the
    /// `source` of its changes use it.
    pub fn name(&self) -> &str {
        &self.plan.workdir
    }

    /// The plan's poller.
    pub fn plan(&self) -> &abo_plan::Poller {
        &self.plan
    }

    /// The polled URL with its password masked, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.plan.url)
    }

    /// Time between polls (the plan's `poll-interval`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The same poller on another interval (tests poll faster than a second).
    pub fn with_interval(mut self, interval: Duration) -> PollerRuntime {
        self.interval = interval;
        self
    }

    /// One poll: fetch, compare each watched branch's head with the last seen one, store
    /// the new changes of each branch and its new head in one transaction.
    ///
    /// The first poll of a poller (no last seen revision at all) records the heads and
    /// reports nothing: a new repository does not trigger a build per commit of its
    /// history. Afterwards, a branch seen for the first time reports its head alone. A
    /// failure leaves the last seen revisions as they were, so the next poll reports what
    /// this one missed.
    pub async fn poll_once(&self) -> Result<PollReport> {
        let vcs = self.plan.vcs;
        let state = self.store.poller_state(self.name()).await?;
        for (branch, revision) in &state {
            // What the store holds was validated when written; checked again because it is
            // about to reach a command line.
            validate::validate_revision(vcs, revision).inspect_err(|_| {
                tracing::error!(poller = self.name(), branch, "stored revision refused");
            })?;
        }
        let first_poll = state.is_empty();
        let heads = self.backend.update().await?;
        let mut report = PollReport {
            changes: Vec::new(),
            first_poll,
            missing_branches: Vec::new(),
        };
        for key in state_keys(&self.plan) {
            let Some(new) = heads.get(&key) else {
                report.missing_branches.push(key);
                continue;
            };
            validate::validate_revision(vcs, new)?;
            let old = state.get(&key).map(String::as_str);
            if old == Some(new.as_str()) {
                continue;
            }
            let commits = if first_poll {
                Vec::new()
            } else {
                self.backend.commits(&key, old, new).await?
            };
            let now = Timestamp::now();
            let news: Vec<NewChange> = commits
                .into_iter()
                .map(|c| self.new_change(&key, c, now))
                .collect();
            let ids = self
                .store
                .record_poll(self.name(), &key, new, news.clone(), now)
                .await?;
            // A change a webhook stored meanwhile is not reported twice.
            let stored = ids
                .into_iter()
                .zip(news)
                .filter_map(|(id, c)| Some((id?, c)));
            report.changes.extend(stored.map(|(id, c)| c.stored(id)));
        }
        Ok(report)
    }

    /// The change a commit of `key` becomes. The repository is the polled (rewritten) URL,
    /// which change filters are keyed by; a bzr change's branch is the URL too, as 0.9's
    /// `branch_name`, so that filters written either way accept it.
    fn new_change(&self, key: &str, commit: Commit, now: Timestamp) -> NewChange {
        let branch = match self.plan.vcs {
            Vcs::Bzr => self.plan.url.clone(),
            Vcs::Git | Vcs::Hg => key.to_string(),
        };
        NewChange {
            repository: self.plan.url.clone(),
            branch,
            revision: commit.revision,
            author: commit.author,
            committed_at: commit.when,
            comments: commit.comments,
            files: commit.files,
            project: String::new(),
            category: String::new(),
            source: self.name().to_string(),
            received_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs() {
        let master = Path::new("/srv/master");
        assert_eq!(
            mirror_dir(master, "gitpoller/abc").unwrap(),
            PathBuf::from("/srv/master/gitpoller/abc")
        );
        for bad in ["", "/etc", "../x", "gitpoller/../../x", "./x", "a\nb"] {
            assert!(mirror_dir(master, bad).is_err(), "{bad:?}");
        }
        assert!(mirror_dir(Path::new("rel"), "gitpoller/x")
            .unwrap()
            .is_absolute());
    }
}
