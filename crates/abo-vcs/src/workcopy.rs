//! A working copy that abo keeps at the head of a remote branch: the master's manifests
//! directory when `master.toml` names a `config-repository` (developers push manifest
//! changes, the master pulls them and reconfigures itself).
//!
//! [`WorkingCopy::ensure`] clones into a missing or empty directory;
//! [`WorkingCopy::update`] brings the working copy to the branch's head on the remote, only
//! ever forward, and never over local edits:
//!
//! - modified, added, removed or missing versioned files (or a pending merge) refuse the
//!   update ([`WorkingCopyProblem::LocalModifications`]): an administrator's hand edit is
//!   never lost; untracked files are left alone (the tools refuse to overwrite them);
//! - a remote head that does not descend from the checked-out revision (history rewritten
//!   upstream, local commits beside new remote ones) refuses the update
//!   ([`WorkingCopyProblem::Diverged`]); local commits that the remote head is an ancestor
//!   of are kept (nothing to pull: `Ok(None)`, with a warning for git and hg).
//!
//! Every command is built as the pollers' are (the same builders): argument vectors with
//! `--` before URLs and paths, git with `ext::` and hooks disabled, only the allowed
//! protocols, no prompts and none of the master's `GIT_*` variables; hg reading no
//! configuration but [`PollerOptions::hgrc`], never the repository's own `.hg/hgrc`; bzr
//! without plugins and aliases. Each runs within [`PollerOptions::command_timeout`] and
//! [`PollerOptions::max_output_bytes`], its process group killed otherwise. The URL is
//! always the configured one (never the working copy's remembered remote), and a branch name
//! never enters a revset: hg heads come from `hg branches -Tjson`.

use crate::backend::{bzr, create_parent, git, hg, Ctx};
use crate::command::{Invocation, Limits};
use crate::error::{Result, VcsError, WorkingCopyProblem};
use crate::parse;
use crate::poller::PollerOptions;
use crate::validate::{self, printable, redact_url, url_password};
use abo_plan::Vcs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// git configuration added to the pollers' for a working copy, which checks files out: no
/// submodule is cloned, fetched or summarised.
const GIT_CONFIG: &[&str] = &[
    "submodule.recurse=false",
    "status.submoduleSummary=false",
    "advice.detachedHead=false",
];

/// Most modified files named in a [`WorkingCopyProblem::LocalModifications`] message.
const SHOWN_FILES: usize = 10;

/// A working copy of one branch of a repository, kept at the branch's head on the remote.
///
/// Calls on one value (and its clones) run one at a time; two values for one directory must
/// not be used at once.
#[derive(Debug, Clone)]
pub struct WorkingCopy {
    vcs: Vcs,
    /// git: `None` is the remote's default branch (its `HEAD`); hg: always a name
    /// (`default` unless configured); bzr: always `None` (a bzr branch is its URL).
    branch: Option<String>,
    /// The URL (validated), the directory (absolute, normalised), limits, secrets.
    ctx: Ctx,
    program: PathBuf,
    hgrc: Option<PathBuf>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// What the directory holds.
enum State {
    /// Nothing: cloned beside it, then renamed.
    Missing,
    /// An empty directory: cloned into.
    Empty,
    /// A working copy of the VCS.
    WorkingCopy,
}

/// The directory of a working copy of `vcs`, in its top directory.
fn marker(vcs: Vcs) -> &'static str {
    match vcs {
        Vcs::Git => ".git",
        Vcs::Hg => ".hg",
        Vcs::Bzr => ".bzr",
    }
}

/// `vcs`'s name in messages.
fn tool_name(vcs: Vcs) -> &'static str {
    match vcs {
        Vcs::Git => "git",
        Vcs::Hg => "Mercurial",
        Vcs::Bzr => "Bazaar",
    }
}

impl WorkingCopy {
    /// A working copy of `branch` of `url` in `dir`. Refused, without running anything,
    /// when the URL is not one [`validate_url`](crate::validate_url) accepts, the branch
    /// name not one [`validate_branch`](crate::validate_branch) accepts, or `dir` is not
    /// absolute.
    ///
    /// Without `branch`: git follows the remote's default branch (its `HEAD`), hg the
    /// `default` branch. bzr takes no branch (a bzr branch is its URL; `Some("")` is the
    /// same as `None`).
    pub fn new(
        vcs: Vcs,
        url: &str,
        branch: Option<&str>,
        dir: &Path,
        options: &PollerOptions,
    ) -> Result<WorkingCopy> {
        validate::validate_url(vcs, url)?;
        let branch = match (vcs, branch) {
            (Vcs::Bzr, None | Some("")) => None,
            (Vcs::Bzr, Some(name)) => {
                validate::validate_branch(vcs, name)?;
                let shown: String = name.chars().take(200).collect();
                return Err(VcsError::UnsafeBranch {
                    vcs,
                    name: format!("`{}`", printable(&shown)),
                    reason: "a bzr branch is its URL: give the branch's URL, without a branch"
                        .into(),
                });
            }
            (Vcs::Git | Vcs::Hg, Some(name)) => {
                validate::validate_branch(vcs, name)?;
                Some(name.to_string())
            }
            (Vcs::Git, None) => None,
            (Vcs::Hg, None) => Some("default".to_string()),
        };
        if !dir.is_absolute() {
            return Err(VcsError::WorkingCopy {
                dir: dir.to_path_buf(),
                problem: WorkingCopyProblem::RelativePath,
                reason: "the directory must be an absolute path".into(),
            });
        }
        // No trailing `/` or `.`: the clone is made in `<dir>.partial` beside it.
        let dir: PathBuf = dir.components().collect();
        let program = match vcs {
            Vcs::Git => options.git.clone(),
            Vcs::Hg => options.hg.clone(),
            Vcs::Bzr => options.bzr.clone().unwrap_or_else(bzr::default_program),
        };
        Ok(WorkingCopy {
            vcs,
            branch,
            ctx: Ctx {
                url: url.to_string(),
                dir,
                limits: Limits {
                    timeout: options.command_timeout,
                    max_stdout: options.max_output_bytes,
                },
                max_changes: options.max_changes_per_branch.max(1),
                secrets: url_password(url).map(str::to_string).into_iter().collect(),
            },
            program,
            hgrc: options.hgrc.clone(),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The VCS.
    pub fn vcs(&self) -> Vcs {
        self.vcs
    }

    /// The working copy's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.ctx.dir
    }

    /// The branch followed: `None` for git's remote default branch and for bzr.
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }

    /// The URL with its password masked, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.ctx.url)
    }

    /// Clones the branch into the directory when it does not exist or is empty: `Ok(true)`
    /// when it cloned, `Ok(false)` when the directory already is a working copy of the VCS
    /// (left as it is: [`WorkingCopy::update`] brings it up to date). A directory that
    /// exists but is not a working copy of the VCS, and is not empty, is an error
    /// ([`WorkingCopyProblem::NotAWorkingCopy`]) and is left untouched.
    ///
    /// A missing directory is cloned into `<dir>.partial` beside it, then renamed, so an
    /// interrupted clone never passes for a working copy; an empty one is cloned into, and
    /// emptied again if the clone fails.
    pub async fn ensure(&self) -> Result<bool> {
        let _one_at_a_time = self.lock.lock().await;
        let dir = &self.ctx.dir;
        match self.state().await? {
            State::WorkingCopy => Ok(false),
            State::Missing => {
                create_parent(dir).await?;
                let mut partial = dir.as_os_str().to_owned();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                remove_all(&partial).await?;
                let cloned = match self.clone_into(&partial, false).await {
                    Ok(()) => {
                        tokio::fs::rename(&partial, dir)
                            .await
                            .map_err(|source| VcsError::Io {
                                path: dir.clone(),
                                source,
                            })
                    }
                    Err(e) => Err(e),
                };
                if cloned.is_err() {
                    if let Err(e) = remove_all(&partial).await {
                        tracing::warn!(dir = %partial.display(), error = %e, "cannot remove a failed clone");
                    }
                }
                cloned.map(|()| true)
            }
            State::Empty => {
                if let Err(e) = self.clone_into(dir, true).await {
                    if let Err(cleanup) = empty_dir(dir).await {
                        tracing::warn!(dir = %dir.display(), error = %cleanup, "cannot empty the directory of a failed clone");
                    }
                    return Err(e);
                }
                Ok(true)
            }
        }
    }

    /// Brings the working copy to the head of the branch on the remote: `Ok(Some(revision))`
    /// when the checked-out revision changed (the new one), `Ok(None)` when there was nothing
    /// to pull. Refused, with the working copy left as it was, when versioned files have
    /// local modifications ([`WorkingCopyProblem::LocalModifications`]) or the remote head
    /// does not descend from the checked-out revision ([`WorkingCopyProblem::Diverged`]).
    /// The directory must be a working copy already ([`WorkingCopy::ensure`]).
    ///
    /// git: `fetch` of the branch (or `HEAD`), then `merge --ff-only`; hg: `pull --branch`,
    /// then `update --check` to the branch's head; bzr: `pull` (never `--overwrite`).
    pub async fn update(&self) -> Result<Option<String>> {
        let _one_at_a_time = self.lock.lock().await;
        self.require_working_copy().await?;
        match self.vcs {
            Vcs::Git => self.git_update().await,
            Vcs::Hg => self.hg_update().await,
            Vcs::Bzr => self.bzr_update().await,
        }
    }

    /// The checked-out revision: the commit's hex id for git, the changeset's hex node for
    /// hg, the working tree's revision id for bzr.
    pub async fn revision(&self) -> Result<String> {
        let _one_at_a_time = self.lock.lock().await;
        self.require_working_copy().await?;
        self.current().await
    }

    async fn current(&self) -> Result<String> {
        match self.vcs {
            Vcs::Git => self.git_rev_parse("HEAD").await,
            Vcs::Hg => self.hg_revision(&self.ctx.dir).await,
            Vcs::Bzr => self.bzr_revision().await,
        }
    }

    fn problem(&self, problem: WorkingCopyProblem, reason: impl AsRef<str>) -> VcsError {
        VcsError::WorkingCopy {
            dir: self.ctx.dir.clone(),
            problem,
            reason: printable(reason.as_ref()),
        }
    }

    /// What the directory holds; an error when it cannot be cloned into and is not a
    /// working copy of the VCS.
    async fn state(&self) -> Result<State> {
        use WorkingCopyProblem::NotAWorkingCopy;
        let dir = &self.ctx.dir;
        let io = |source| VcsError::Io {
            path: dir.clone(),
            source,
        };
        match tokio::fs::metadata(dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Missing),
            Err(e) => return Err(io(e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(self.problem(NotAWorkingCopy, "it exists and is not a directory"))
            }
            Ok(_) => {}
        }
        let name = tool_name(self.vcs);
        let own = dir.join(marker(self.vcs));
        match tokio::fs::symlink_metadata(&own).await {
            Ok(meta) if meta.is_dir() => {
                if self.vcs == Vcs::Bzr && !own.join("checkout").is_dir() {
                    return Err(self.problem(
                        NotAWorkingCopy,
                        "it is a Bazaar branch without a working tree (`brz checkout` makes one)",
                    ));
                }
                return Ok(State::WorkingCopy);
            }
            Ok(_) => {
                return Err(self.problem(
                    NotAWorkingCopy,
                    format!(
                        "its `{}` is not a directory (a linked worktree or a submodule?): \
                         abo needs a plain {name} clone",
                        marker(self.vcs)
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        for other in [Vcs::Git, Vcs::Hg, Vcs::Bzr] {
            if other != self.vcs && dir.join(marker(other)).exists() {
                return Err(self.problem(
                    NotAWorkingCopy,
                    format!(
                        "it is a {} working copy, not a {name} one",
                        tool_name(other)
                    ),
                ));
            }
        }
        let mut entries = tokio::fs::read_dir(dir).await.map_err(io)?;
        if entries.next_entry().await.map_err(io)?.is_none() {
            return Ok(State::Empty);
        }
        Err(self.problem(
            NotAWorkingCopy,
            format!(
                "it is not a {name} working copy (it has no `{}`) and is not empty: abo clones \
                 only into a missing or empty directory; move its content away, or clone the \
                 repository there",
                marker(self.vcs)
            ),
        ))
    }

    async fn require_working_copy(&self) -> Result<()> {
        match self.state().await? {
            State::WorkingCopy => Ok(()),
            State::Missing | State::Empty => Err(self.problem(
                WorkingCopyProblem::Missing,
                "it is missing or empty: it has not been cloned",
            )),
        }
    }

    /// Clones the branch into `target` (missing, or empty with `existing`), checked out at
    /// the branch's head.
    async fn clone_into(&self, target: &Path, existing: bool) -> Result<()> {
        let url = &self.ctx.url;
        match self.vcs {
            Vcs::Git => {
                let mut inv = git::command(&self.program, git::Repo::None, GIT_CONFIG, "clone")
                    .args([
                        "--quiet",
                        "--no-tags",
                        "--single-branch",
                        "--no-recurse-submodules",
                    ]);
                if let Some(branch) = &self.branch {
                    inv = inv.arg("--branch").arg(branch);
                }
                self.ctx.run_ok(inv.arg("--").arg(url).arg(target)).await?;
            }
            Vcs::Hg => {
                // Without a working directory first: `--updaterev` would take a revset.
                let inv = self
                    .hg("clone", None)
                    .args(["--noupdate", "--quiet", "--branch"])
                    .arg(self.hg_branch())
                    .arg("--")
                    .arg(url)
                    .arg(target);
                self.ctx.run_ok(inv).await?;
                let head = self.hg_branch_head(target).await?;
                self.hg_checkout(target, &head).await?;
            }
            Vcs::Bzr => {
                let mut inv = bzr::command(&self.program, "branch").arg("--quiet");
                if existing {
                    inv = inv.arg("--use-existing-dir");
                }
                self.ctx.run_ok(inv.arg("--").arg(url).arg(target)).await?;
            }
        }
        Ok(())
    }

    /// [`WorkingCopyProblem::LocalModifications`] when `listing` (one entry per modified
    /// file) is not empty.
    fn refuse_modifications(&self, listing: &[u8], separator: u8, discard: &str) -> Result<()> {
        let entries: Vec<String> = listing
            .split(|b| *b == separator)
            .map(|e| {
                let entry = String::from_utf8_lossy(e);
                entry.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let mut shown = entries
            .iter()
            .take(SHOWN_FILES)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if entries.len() > SHOWN_FILES {
            shown.push_str(&format!(" and {} more", entries.len() - SHOWN_FILES));
        }
        Err(self.problem(
            WorkingCopyProblem::LocalModifications,
            format!(
                "it has local modifications ({shown}): abo does not overwrite them and did not \
                 update; commit and push them, or discard them (`{discard}`)"
            ),
        ))
    }

    /// [`WorkingCopyProblem::Diverged`]: `old`, checked out, is not an ancestor of `new`,
    /// the remote head; `reset` tells how to move to the remote head anyway.
    fn diverged(&self, old: &str, new: &str, reset: &str) -> VcsError {
        self.problem(
            WorkingCopyProblem::Diverged,
            format!(
                "its history has diverged from the remote branch's: the checked-out revision \
                 {old} is not an ancestor of the remote head {new} (history rewritten upstream, \
                 or local commits?); abo only moves forward and did not update; merge and push, \
                 or {reset}"
            ),
        )
    }

    fn ahead(&self, old: &str, new: &str) {
        tracing::warn!(
            dir = %self.ctx.dir.display(),
            checked_out = old,
            remote = new,
            "the working copy has commits the remote branch does not: kept; push them"
        );
    }

    // --- git ---------------------------------------------------------------------------

    fn git(&self, sub: &str) -> Invocation {
        git::command(
            &self.program,
            git::Repo::WorkTree(&self.ctx.dir),
            GIT_CONFIG,
            sub,
        )
    }

    /// The commit `name` names, validated.
    async fn git_rev_parse(&self, name: &str) -> Result<String> {
        let out = self
            .ctx
            .run_ok(
                self.git("rev-parse")
                    .arg("--verify")
                    .arg(format!("{name}^{{commit}}")),
            )
            .await?;
        let rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        validate::validate_revision(Vcs::Git, &rev)?;
        Ok(rev)
    }

    /// Whether commit `a` is an ancestor of (or is) commit `b`.
    async fn git_is_ancestor(&self, a: &str, b: &str) -> Result<bool> {
        let out = self
            .ctx
            .run(self.git("merge-base").arg("--is-ancestor").arg(a).arg(b))
            .await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => out.ok().map(|_| false),
        }
    }

    async fn git_update(&self) -> Result<Option<String>> {
        let out = self
            .ctx
            .run_ok(self.git("status").args([
                "--porcelain=v1",
                "-z",
                "--no-renames",
                "--untracked-files=no",
            ]))
            .await?;
        self.refuse_modifications(&out.stdout, 0, "git reset --hard")?;
        let old = self.git_rev_parse("HEAD").await?;
        let refspec = match &self.branch {
            Some(branch) => format!("refs/heads/{branch}"),
            None => "HEAD".to_string(),
        };
        self.ctx
            .run_ok(
                self.git("fetch")
                    .args(["--quiet", "--no-tags", "--no-recurse-submodules", "--"])
                    .arg(&self.ctx.url)
                    .arg(refspec),
            )
            .await?;
        let new = self.git_rev_parse("FETCH_HEAD").await?;
        if new == old {
            return Ok(None);
        }
        if self.git_is_ancestor(&new, &old).await? {
            self.ahead(&old, &new);
            return Ok(None);
        }
        if !self.git_is_ancestor(&old, &new).await? {
            return Err(self.diverged(
                &old,
                &new,
                "move to the remote head with `git reset --hard FETCH_HEAD` (which drops local \
                 commits)",
            ));
        }
        self.ctx
            .run_ok(
                self.git("merge")
                    .args([
                        "--ff-only",
                        "--quiet",
                        "--no-stat",
                        "--no-verify-signatures",
                        "--no-autostash",
                    ])
                    .arg(&new),
            )
            .await?;
        let now = self.git_rev_parse("HEAD").await?;
        Ok((now != old).then_some(now))
    }

    // --- hg ----------------------------------------------------------------------------

    fn hg(&self, sub: &str, repo: Option<&Path>) -> Invocation {
        hg::command(&self.program, self.hgrc.as_deref(), repo, sub)
    }

    fn hg_branch(&self) -> &str {
        self.branch.as_deref().unwrap_or("default")
    }

    /// The working directory's parent in `repo`.
    async fn hg_revision(&self, repo: &Path) -> Result<String> {
        let out = self
            .ctx
            .run_ok(self.hg("log", Some(repo)).args(["-r", ".", "-T", "{node}"]))
            .await?;
        let node = String::from_utf8_lossy(&out.stdout).trim().to_string();
        validate::validate_revision(Vcs::Hg, &node)?;
        Ok(node)
    }

    /// The head of the branch in `repo`, from `hg branches` (the name is compared as a
    /// string, never given to a revset).
    async fn hg_branch_head(&self, repo: &Path) -> Result<String> {
        let out = self
            .ctx
            .run_ok(self.hg("branches", Some(repo)).args(["--closed", "-Tjson"]))
            .await?;
        let branch = self.hg_branch();
        let node = parse::hg::parse_branches(&out.stdout)?
            .remove(branch)
            .ok_or_else(|| {
                VcsError::parse(
                    "hg branches",
                    format!("the repository has no branch `{}`", printable(branch)),
                )
            })?;
        validate::validate_revision(Vcs::Hg, &node)?;
        Ok(node)
    }

    /// Updates `repo`'s working directory to `node` (refused by hg too if it has
    /// uncommitted changes).
    async fn hg_checkout(&self, repo: &Path, node: &str) -> Result<()> {
        self.ctx
            .run_ok(
                self.hg("update", Some(repo))
                    .args(["--check", "--quiet", "-r"])
                    .arg(node),
            )
            .await?;
        Ok(())
    }

    /// Whether changeset `a` is an ancestor of (or is) changeset `b`: validated hex nodes
    /// are all the revset holds.
    async fn hg_is_ancestor(&self, a: &str, b: &str) -> Result<bool> {
        let out = self
            .ctx
            .run_ok(
                self.hg("log", Some(&self.ctx.dir))
                    .arg("-r")
                    .arg(format!("id({a}) and ancestors(id({b}))"))
                    .args(["-T", "{node}\\n"]),
            )
            .await?;
        Ok(!out.stdout.iter().all(u8::is_ascii_whitespace))
    }

    async fn hg_update(&self) -> Result<Option<String>> {
        let dir = &self.ctx.dir;
        let out = self
            .ctx
            .run_ok(self.hg("status", Some(dir)).args([
                "--modified",
                "--added",
                "--removed",
                "--deleted",
                "--print0",
            ]))
            .await?;
        self.refuse_modifications(&out.stdout, 0, "hg update --clean .")?;
        let old = self.hg_revision(dir).await?;
        self.ctx
            .run_ok(
                self.hg("pull", Some(dir))
                    .args(["--quiet", "--branch"])
                    .arg(self.hg_branch())
                    .arg("--")
                    .arg(&self.ctx.url),
            )
            .await?;
        let new = self.hg_branch_head(dir).await?;
        if new == old {
            return Ok(None);
        }
        if self.hg_is_ancestor(&new, &old).await? {
            self.ahead(&old, &new);
            return Ok(None);
        }
        if !self.hg_is_ancestor(&old, &new).await? {
            return Err(self.diverged(
                &old,
                &new,
                &format!(
                    "move to the remote head with `hg update --clean -r {new}` (local commits \
                     stay, on another head)"
                ),
            ));
        }
        self.hg_checkout(dir, &new).await?;
        let now = self.hg_revision(dir).await?;
        Ok((now != old).then_some(now))
    }

    // --- bzr ---------------------------------------------------------------------------

    /// The working tree's revision id.
    async fn bzr_revision(&self) -> Result<String> {
        let out = self
            .ctx
            .run_ok(
                bzr::command(&self.program, "revision-info")
                    .args(["--tree", "-d"])
                    .arg(&self.ctx.dir),
            )
            .await?;
        let (_, revid) = parse::bzr::parse_revision_info(&out.stdout)?.ok_or_else(|| {
            VcsError::parse("bzr revision-info", "the working tree has no revision")
        })?;
        validate::validate_revision(Vcs::Bzr, &revid)?;
        Ok(revid)
    }

    async fn bzr_update(&self) -> Result<Option<String>> {
        let dir = &self.ctx.dir;
        let out = self
            .ctx
            .run_ok(
                bzr::command(&self.program, "status")
                    .args(["--short", "--versioned", "--"])
                    .arg(dir),
            )
            .await?;
        self.refuse_modifications(&out.stdout, b'\n', "brz revert")?;
        let old = self.bzr_revision().await?;
        let pulled = self
            .ctx
            .run_ok(
                bzr::command(&self.program, "pull")
                    .args(["--quiet", "-d"])
                    .arg(dir)
                    .arg("--")
                    .arg(&self.ctx.url),
            )
            .await;
        match pulled {
            Err(VcsError::Command { stderr, .. }) if stderr.contains("have diverged") => {
                return Err(self.problem(
                    WorkingCopyProblem::Diverged,
                    format!(
                        "its history has diverged from the remote branch's ({stderr}); abo \
                         only pulls what extends it and did not update; merge and push, or \
                         `brz pull --overwrite` (which drops local commits)"
                    ),
                ));
            }
            other => {
                other?;
            }
        }
        let new = self.bzr_revision().await?;
        Ok((new != old).then_some(new))
    }
}

/// Removes `path` (a directory and its content, or a file), if it exists. Symbolic links
/// are removed, never followed.
async fn remove_all(path: &Path) -> Result<()> {
    let io = |source| VcsError::Io {
        path: path.to_path_buf(),
        source,
    };
    match tokio::fs::symlink_metadata(path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
        Ok(meta) if meta.is_dir() => tokio::fs::remove_dir_all(path).await.map_err(io),
        Ok(_) => tokio::fs::remove_file(path).await.map_err(io),
    }
}

/// Removes the content of directory `dir`, keeping it.
async fn empty_dir(dir: &Path) -> Result<()> {
    let io = |source| VcsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(io)?;
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        remove_all(&entry.path()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_normalised_and_absolute() {
        let options = PollerOptions::default();
        let wc = WorkingCopy::new(
            Vcs::Git,
            "https://h/r.git",
            None,
            Path::new("/srv/m/./manifests/"),
            &options,
        )
        .unwrap();
        assert_eq!(wc.dir(), Path::new("/srv/m/manifests"));
        assert_eq!(wc.branch(), None);
        let err = WorkingCopy::new(Vcs::Git, "https://h/r.git", None, Path::new("m"), &options)
            .unwrap_err();
        assert!(
            matches!(
                err,
                VcsError::WorkingCopy {
                    problem: WorkingCopyProblem::RelativePath,
                    ..
                }
            ),
            "{err}"
        );
        let hg = WorkingCopy::new(Vcs::Hg, "https://h/r", None, Path::new("/m"), &options).unwrap();
        assert_eq!(hg.branch(), Some("default"));
        assert!(
            WorkingCopy::new(Vcs::Bzr, "https://h/r", Some(""), Path::new("/m"), &options).is_ok()
        );
        let err = WorkingCopy::new(
            Vcs::Bzr,
            "https://h/r",
            Some("https://h/other"),
            Path::new("/m"),
            &options,
        )
        .unwrap_err();
        assert!(err.to_string().contains("its URL"), "{err}");
    }

    #[test]
    fn passwords_are_masked() {
        let wc = WorkingCopy::new(
            Vcs::Git,
            "https://u:hunter2@h/r.git",
            Some("main"),
            Path::new("/m"),
            &PollerOptions::default(),
        )
        .unwrap();
        assert_eq!(wc.display_url(), "https://u:***@h/r.git");
        assert_eq!(wc.ctx.secrets, ["hunter2"]);
    }
}
