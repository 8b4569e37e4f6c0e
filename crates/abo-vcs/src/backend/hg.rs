//! Mercurial: a clone without working copy in `<master>/hgpoller/<hash>`, updated with
//! `hg pull`. Branch names never enter a revset: heads come from `hg branches -Tjson` and
//! commits are filtered by branch after `hg log -Tjson`, so a branch named `$(...)` or
//! `') or all() or ('` is only ever compared as a string.

use super::{create_parent, inherited, Ctx};
use crate::command::Invocation;
use crate::error::Result;
use crate::parse::{hg as parse, Commit};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `hg --noninteractive [-R <repo>] <sub>` reading no configuration file but `hgrc` (not
/// even the repository's own `.hg/hgrc`), with plain output, no inherited `HG*` variables
/// and, without `hgrc`, ssh in batch mode. Every hg call of the crate starts here.
pub(crate) fn command(
    program: &Path,
    hgrc: Option<&Path>,
    repo: Option<&Path>,
    sub: &str,
) -> Invocation {
    let mut inv = Invocation::new(program, format!("hg {sub}")).args([
        "--noninteractive",
        "--config",
        "ui.interactive=false",
    ]);
    if hgrc.is_none() {
        // Without a configuration, ssh would ask for passwords and host keys.
        inv = inv.args(["--config", "ui.ssh=ssh -o BatchMode=yes"]);
    }
    if let Some(repo) = repo {
        inv = inv.arg("-R").arg(repo);
    }
    inv = inv.arg(sub);
    inv.env_remove = inherited("HG", &[]);
    inv.env_remove.push("LANGUAGE".into());
    let hgrc: OsString = hgrc.map(Into::into).unwrap_or_default();
    inv.env = vec![
        // Stable output whatever the configuration says.
        ("HGPLAIN".into(), "1".into()),
        ("HGRCPATH".into(), hgrc),
        // The clone's own .hg/hgrc is abo's, but nothing in it is needed either.
        ("HGRCSKIPREPO".into(), "1".into()),
        ("HGENCODING".into(), "utf-8".into()),
        ("HGENCODINGMODE".into(), "replace".into()),
        ("LC_ALL".into(), "C".into()),
    ];
    inv
}

#[derive(Debug)]
pub(crate) struct Hg {
    ctx: Ctx,
    program: PathBuf,
    branches: Vec<String>,
    /// The only configuration file read (`HGRCPATH`); none by default, so that no hook or
    /// extension of the master's user runs on pulled data.
    hgrc: Option<PathBuf>,
}

impl Hg {
    pub fn new(ctx: Ctx, program: PathBuf, branches: Vec<String>, hgrc: Option<PathBuf>) -> Hg {
        Hg {
            ctx,
            program,
            branches,
            hgrc,
        }
    }

    /// `hg --noninteractive [-R <clone>] <sub>`.
    fn hg(&self, sub: &str, in_repo: bool) -> Invocation {
        let repo = in_repo.then_some(self.ctx.dir.as_path());
        command(&self.program, self.hgrc.as_deref(), repo, sub)
    }

    pub async fn update(&self) -> Result<BTreeMap<String, String>> {
        if !self.ctx.dir.join(".hg").is_dir() {
            create_parent(&self.ctx.dir).await?;
            self.ctx
                .run_ok(self.hg("init", false).arg("--").arg(&self.ctx.dir))
                .await?;
        }
        self.ctx
            .run_ok(
                self.hg("pull", true)
                    .args(["--quiet", "--"])
                    .arg(&self.ctx.url),
            )
            .await?;
        let out = self
            .ctx
            .run_ok(self.hg("branches", true).args(["--closed", "-Tjson"]))
            .await?;
        let all = parse::parse_branches(&out.stdout)?;
        Ok(self
            .branches
            .iter()
            .filter_map(|b| all.get(b).map(|node| (b.clone(), node.clone())))
            .collect())
    }

    /// Whether the clone has changeset `node` (`id()` is empty for an unknown node, where
    /// `-r NODE` would fail).
    async fn has(&self, node: &str) -> Result<bool> {
        let out = self
            .ctx
            .run_ok(
                self.hg("log", true)
                    .arg("-r")
                    .arg(format!("id({node})"))
                    .args(["-T", "{node}\\n"]),
            )
            .await?;
        Ok(!out.stdout.iter().all(u8::is_ascii_whitespace))
    }

    pub async fn commits(&self, branch: &str, old: Option<&str>, new: &str) -> Result<Vec<Commit>> {
        // Nodes are validated hex: the revsets hold nothing else.
        let revset = match old {
            Some(old) if self.has(old).await? => format!(
                "last(sort(only({new}, {old}), rev), {})",
                self.ctx.max_changes
            ),
            _ => new.to_string(),
        };
        let out = self
            .ctx
            .run_ok(
                self.hg("log", true)
                    .args(["-v", "-Tjson", "-r"])
                    .arg(revset),
            )
            .await?;
        // Changesets of other branches merged into this one are not changes of this branch;
        // the merge itself is.
        Ok(parse::parse_log(&out.stdout)?
            .into_iter()
            .filter(|c| c.branch.as_deref() == Some(branch))
            .collect())
    }
}
