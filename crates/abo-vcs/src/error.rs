//! The crate's one error type.

use abo_plan::Vcs;
use std::path::PathBuf;

/// Everything validation, parsing and polling can fail with. Texts are safe to show and log:
/// URLs in them have their password masked and control characters escaped, so a hostile
/// value can neither leak a secret nor forge a log line.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// A repository URL that a VCS tool could misread (an option, a command transport, an
    /// ssh host starting with `-`...).
    #[error("refused {} URL {url}: {reason}", vcs.as_str())]
    UnsafeUrl {
        /// The VCS the URL was given for.
        vcs: Vcs,
        /// The URL, masked and escaped.
        url: String,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// A branch name that is not a valid name for the VCS, or that a tool could misread.
    #[error("refused {} branch name {name}: {reason}", vcs.as_str())]
    UnsafeBranch {
        /// The VCS.
        vcs: Vcs,
        /// The name, escaped and quoted.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A revision that is not a revision of the VCS (hex for git and hg; revision id or revno
    /// for bzr).
    #[error("refused {} revision {revision}: {reason}", vcs.as_str())]
    UnsafeRevision {
        /// The VCS.
        vcs: Vcs,
        /// The revision, escaped and quoted.
        revision: String,
        /// What is wrong.
        reason: String,
    },
    /// The plan's working directory of a poller is not a relative path inside the master
    /// directory.
    #[error("refused poller working directory {workdir}: {reason}")]
    BadWorkdir {
        /// The working directory, escaped and quoted.
        workdir: String,
        /// What is wrong.
        reason: String,
    },
    /// The VCS program could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A command failed; `stderr` is the tail of what it said, masked and escaped.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The program and subcommand (`git fetch`): never the URL, which may hold a secret.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A command ran longer than the poller's command timeout; its process group was killed.
    #[error("`{command}` did not finish within {seconds} s and was killed")]
    Timeout {
        /// The program and subcommand.
        command: String,
        /// The timeout.
        seconds: u64,
    },
    /// A command wrote more than the poller accepts; it was killed.
    #[error("`{command}` wrote more than {limit} bytes and was killed")]
    OutputTooLarge {
        /// The program and subcommand.
        command: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The output of a command is not what abo asked for.
    #[error("cannot read the output of `{command}`: {reason}")]
    Parse {
        /// The program and subcommand whose output it is.
        command: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation on a poller's working directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] abo_store::Error),
    /// A working copy ([`crate::WorkingCopy`]: the master's checkout of its configuration
    /// repository) that abo will not use or change as it is. Nothing was changed in it.
    #[error("working copy {}: {reason}", crate::validate::printable(&dir.display().to_string()))]
    WorkingCopy {
        /// Its directory.
        dir: PathBuf,
        /// What is wrong, for callers that treat cases apart.
        problem: WorkingCopyProblem,
        /// What is wrong and what to do about it, escaped.
        reason: String,
    },
}

/// Why a [`crate::WorkingCopy`] cannot be used or brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkingCopyProblem {
    /// The directory is not an absolute path.
    RelativePath,
    /// The directory does not exist (yet): [`crate::WorkingCopy::ensure`] clones it.
    Missing,
    /// The directory exists but is not a working copy of the VCS, and is not empty (or is
    /// not a directory): abo clones only into a missing or empty directory.
    NotAWorkingCopy,
    /// Versioned files are modified, added, removed or missing, or a merge is pending: abo
    /// does not overwrite an administrator's edits.
    LocalModifications,
    /// The working copy has revisions the remote branch does not (history rewritten
    /// upstream, or local commits beside new remote ones): abo only fast-forwards.
    Diverged,
}

impl VcsError {
    /// A parse error of `command`'s output.
    pub(crate) fn parse(command: &'static str, reason: impl Into<String>) -> VcsError {
        VcsError::Parse {
            command,
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = VcsError> = std::result::Result<T, E>;
