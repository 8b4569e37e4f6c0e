//! Bazaar / Breezy: a branch without working tree in `<master>/bzrpoller/<hash>`, kept
//! identical to the polled one with `pull --overwrite`. A bzr branch is its URL, so the
//! poller has one key, `""`, whose last seen revision is a revision id (stable when history
//! is rewritten); changes carry revnos, as 0.9's did.
//!
//! `--no-plugins --no-aliases` on every call: plugins are the only way bzr runs code
//! (hooks), and an alias could turn `log` into anything.

use super::{create_parent, Ctx};
use crate::command::Invocation;
use crate::error::{Result, VcsError};
use crate::parse::{bzr as parse, Commit};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct Bzr {
    ctx: Ctx,
    program: PathBuf,
}

/// `brz` if it is on `PATH`, else `bzr` (Breezy replaced Bazaar, and installs `bzr` as an
/// alias of itself only on some systems).
pub(crate) fn default_program() -> PathBuf {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    PathBuf::from(if on_path("brz") { "brz" } else { "bzr" })
}

/// `bzr --no-plugins --no-aliases <sub>`, messages in English, output in UTF-8, no progress
/// bars. Every bzr call of the crate starts here; bzr takes its branch with `-d` or a path.
pub(crate) fn command(program: &Path, sub: &str) -> Invocation {
    let mut inv =
        Invocation::new(program, format!("bzr {sub}")).args(["--no-plugins", "--no-aliases", sub]);
    inv.env_remove.push("LANGUAGE".into());
    inv.env = vec![
        // Messages in English, output in UTF-8: the log parser reads both.
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("PYTHONIOENCODING".into(), "utf-8".into()),
        ("BRZ_PROGRESS_BAR".into(), "none".into()),
        ("BZR_PROGRESS_BAR".into(), "none".into()),
    ];
    inv
}

impl Bzr {
    pub fn new(ctx: Ctx, program: PathBuf) -> Bzr {
        Bzr { ctx, program }
    }

    fn bzr(&self, sub: &str) -> Invocation {
        command(&self.program, sub)
    }

    pub async fn update(&self) -> Result<BTreeMap<String, String>> {
        let dir = &self.ctx.dir;
        if dir.join(".bzr").is_dir() {
            self.ctx
                .run_ok(
                    self.bzr("pull")
                        .args(["--overwrite", "--quiet", "-d"])
                        .arg(dir)
                        .arg("--")
                        .arg(&self.ctx.url),
                )
                .await?;
        } else {
            // Branched beside, then renamed: an interrupted first fetch leaves no half
            // branch that later pulls would trust.
            create_parent(dir).await?;
            let mut partial = dir.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            remove_dir_if_any(&partial).await?;
            self.ctx
                .run_ok(
                    self.bzr("branch")
                        .args(["--no-tree", "--quiet", "--"])
                        .arg(&self.ctx.url)
                        .arg(&partial),
                )
                .await?;
            tokio::fs::rename(&partial, dir)
                .await
                .map_err(|source| VcsError::Io {
                    path: dir.clone(),
                    source,
                })?;
        }
        let (_, head) = self.revision_info(None).await?.ok_or_else(|| {
            VcsError::parse("bzr revision-info", "the branch has no head revision")
        })?;
        crate::validate::validate_revision(abo_plan::Vcs::Bzr, &head)?;
        Ok(BTreeMap::from([(String::new(), head)]))
    }

    /// `(revno, revision id)` of `revid` (the head without one) in the mirror, `None` if the
    /// branch does not have it.
    async fn revision_info(&self, revid: Option<&str>) -> Result<Option<(String, String)>> {
        let mut inv = self.bzr("revision-info").arg("-d").arg(&self.ctx.dir);
        if let Some(revid) = revid {
            inv = inv.arg("-r").arg(format!("revid:{revid}"));
        }
        let out = self.ctx.run_ok(inv).await?;
        parse::parse_revision_info(&out.stdout)
    }

    pub async fn commits(&self, old: Option<&str>, new: &str) -> Result<Vec<Commit>> {
        let Some((new_revno, _)) = self.revision_info(Some(new)).await? else {
            return Err(VcsError::parse(
                "bzr revision-info",
                "the head revision vanished from the mirror",
            ));
        };
        let Ok(head) = new_revno.parse::<u64>() else {
            return Err(VcsError::parse(
                "bzr revision-info",
                format!("the head's revno {new_revno:?} is not on the mainline"),
            ));
        };
        if head == 0 {
            return Ok(Vec::new());
        }
        // Only a mainline revision of the current history gives a revno range; a revision
        // the overwritten history lost (or merged away) gives the head alone.
        let old_revno = match old {
            Some(old) => self
                .revision_info(Some(old))
                .await?
                .and_then(|(revno, _)| revno.parse::<u64>().ok()),
            None => None,
        };
        let first = match old_revno {
            Some(o) if o < head => {
                (o + 1).max(head.saturating_sub(self.ctx.max_changes as u64 - 1))
            }
            _ => head,
        };
        let out = self
            .ctx
            .run_ok(
                self.bzr("log")
                    .args(["--long", "-v", "-n1", "--forward", "--timezone=utc", "-r"])
                    .arg(format!("{first}..{head}"))
                    .arg("--")
                    .arg(&self.ctx.dir),
            )
            .await?;
        parse::parse_log(&out.stdout)
    }
}

async fn remove_dir_if_any(path: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VcsError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}
