//! git: a bare mirror of the watched branches in `<master>/gitpoller/<hash>`.
//!
//! A poll asks the server for the heads of the watched branches (`git ls-remote`), fetches
//! only those that moved (so a branch deleted upstream cannot fail the fetch of the others,
//! and an idle poll transfers nothing), then lists the new commits with `git log`.

use super::{create_parent, inherited, Ctx};
use crate::command::Invocation;
use crate::error::Result;
use crate::parse::{git as parse, Commit};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Configuration forced on every call: no `ext::` transport, no hooks (the
/// `reference-transaction` hook runs on fetch), no signature checks running gpg on remote
/// data, no background maintenance outliving the command's timeout, no prompts.
const CONFIG: &[&str] = &[
    "protocol.ext.allow=never",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.quotePath=false",
    "log.showSignature=false",
    "gc.autoDetach=false",
    "maintenance.autoDetach=false",
    "fetch.recurseSubmodules=false",
    "credential.interactive=never",
    "i18n.logOutputEncoding=UTF-8",
];

/// Protocols git may use at all (`GIT_ALLOW_PROTOCOL`): the URL allowlist's, enforced by
/// git itself too, so that a redirect or an `insteadOf` rule cannot reach another.
const PROTOCOLS: &str = "file:git:http:https:ssh";

/// `GIT_*` variables of the master's environment kept: how to reach servers (ssh, TLS).
const KEEP_ENV: &[&str] = &[
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_CERT",
    "GIT_SSL_KEY",
    "GIT_PROXY_SSL_CAINFO",
];

/// The repository a git command works on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Repo<'a> {
    /// None (`clone`, which names its target itself).
    None,
    /// A bare repository (a poller's mirror): `--git-dir=<dir>`.
    Bare(&'a Path),
    /// A working copy: `-C <dir> --git-dir=<dir>/.git --work-tree=<dir>`, so that git never
    /// looks for a repository anywhere else (a parent directory's, `GIT_DIR`).
    WorkTree(&'a Path),
}

/// `git -c <CONFIG> -c <extra_config> --no-pager <repo> <sub>`, in an environment without
/// the master's `GIT_*` variables (but those of [`KEEP_ENV`]), with only the allowed
/// protocols, no prompts, messages in English. Every git call of the crate starts here.
pub(crate) fn command(
    program: &Path,
    repo: Repo<'_>,
    extra_config: &[&str],
    sub: &str,
) -> Invocation {
    let mut inv = Invocation::new(program, format!("git {sub}"));
    for c in CONFIG.iter().chain(extra_config) {
        inv = inv.arg("-c").arg(*c);
    }
    inv = inv.arg("--no-pager");
    let option = |name: &str, path: &Path| {
        let mut option = OsString::from(name);
        option.push(path);
        option
    };
    match repo {
        Repo::None => {}
        Repo::Bare(dir) => inv = inv.arg(option("--git-dir=", dir)),
        Repo::WorkTree(dir) => {
            inv = inv
                .arg("-C")
                .arg(dir)
                .arg(option("--git-dir=", &dir.join(".git")))
                .arg(option("--work-tree=", dir));
        }
    }
    inv = inv.arg(sub);
    inv.env_remove = inherited("GIT_", KEEP_ENV);
    inv.env_remove.push("LANGUAGE".into());
    inv.env = vec![
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_ALLOW_PROTOCOL".into(), PROTOCOLS.into()),
        ("LC_ALL".into(), "C".into()),
    ];
    inv
}

#[derive(Debug)]
pub(crate) struct Git {
    ctx: Ctx,
    program: PathBuf,
    /// Validated branch names.
    branches: Vec<String>,
}

impl Git {
    pub fn new(ctx: Ctx, program: PathBuf, branches: Vec<String>) -> Git {
        Git {
            ctx,
            program,
            branches,
        }
    }

    /// `git -c ... --git-dir=<mirror> <sub>`.
    fn git(&self, sub: &str) -> Invocation {
        command(&self.program, Repo::Bare(&self.ctx.dir), &[], sub)
    }

    async fn ensure_mirror(&self) -> Result<()> {
        if self.ctx.dir.join("HEAD").exists() {
            return Ok(());
        }
        create_parent(&self.ctx.dir).await?;
        // `--git-dir` names the directory `init` creates.
        self.ctx
            .run_ok(self.git("init").args(["--bare", "--quiet"]))
            .await?;
        Ok(())
    }

    /// Branch → object name of the mirror's branches.
    async fn local_heads(&self) -> Result<BTreeMap<String, String>> {
        let out = self
            .ctx
            .run_ok(
                self.git("for-each-ref")
                    .arg(format!("--format={}", parse::REF_FORMAT))
                    .arg("refs/heads/"),
            )
            .await?;
        Ok(parse::parse_refs(&out.stdout))
    }

    pub async fn update(&self) -> Result<BTreeMap<String, String>> {
        self.ensure_mirror().await?;
        // Patterns after the URL limit what the server lists; names are validated, so they
        // hold no glob characters.
        let out = self
            .ctx
            .run_ok(
                self.git("ls-remote")
                    .args(["--heads", "--"])
                    .arg(&self.ctx.url)
                    .args(self.branches.iter().map(|b| format!("refs/heads/{b}"))),
            )
            .await?;
        let remote = parse::parse_refs(&out.stdout);
        let mut local = self.local_heads().await?;
        let moved: Vec<&String> = self
            .branches
            .iter()
            .filter(|b| remote.get(*b).is_some_and(|r| local.get(*b) != Some(r)))
            .collect();
        if !moved.is_empty() {
            self.ctx
                .run_ok(
                    self.git("fetch")
                        .args([
                            "--quiet",
                            "--prune",
                            "--no-tags",
                            "--no-write-fetch-head",
                            "--no-recurse-submodules",
                            "--",
                        ])
                        .arg(&self.ctx.url)
                        .args(
                            moved
                                .iter()
                                .map(|b| format!("+refs/heads/{b}:refs/heads/{b}")),
                        ),
                )
                .await?;
            local = self.local_heads().await?;
        }
        // A branch the server no longer has is left out (reported missing), even if the
        // mirror still has it.
        Ok(self
            .branches
            .iter()
            .filter(|b| remote.contains_key(*b))
            .filter_map(|b| local.get(b).map(|head| (b.clone(), head.clone())))
            .collect())
    }

    /// Whether the mirror has commit `rev`.
    async fn has_commit(&self, rev: &str) -> Result<bool> {
        let out = self
            .ctx
            .run(
                self.git("cat-file")
                    .arg("-e")
                    .arg(format!("{rev}^{{commit}}")),
            )
            .await?;
        Ok(out.status.success())
    }

    pub async fn commits(&self, old: Option<&str>, new: &str) -> Result<Vec<Commit>> {
        let log = self.git("log").args([
            "-z",
            "--reverse",
            "--topo-order",
            "--diff-merges=first-parent",
            "--name-only",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--no-mailmap",
        ]);
        let log = log.arg(format!("--format={}", parse::LOG_FORMAT));
        let log = match old {
            Some(old) if self.has_commit(old).await? => log
                .arg(format!("--max-count={}", self.ctx.max_changes))
                .arg(new)
                .arg(format!("^{old}")),
            _ => {
                if let Some(old) = old {
                    tracing::warn!(
                        poller = %self.ctx.dir.display(),
                        old, new,
                        "the last seen revision is gone (history rewritten?): reporting the head only"
                    );
                }
                log.arg("--max-count=1").arg(new)
            }
        };
        let out = self.ctx.run_ok(log.arg("--")).await?;
        parse::parse_log(&out.stdout)
    }
}
