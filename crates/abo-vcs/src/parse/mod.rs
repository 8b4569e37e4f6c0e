//! Parsers of the VCS tools' outputs: pure functions from bytes to values, each tested on
//! recorded outputs. Commit data is data: it is never interpreted, only split by the framing
//! abo asked for (NULs for git, JSON for hg, indentation for bzr), and bytes that are not
//! UTF-8 are replaced rather than refused, so one odd commit cannot stop a poller.

pub mod bzr;
pub mod git;
pub mod hg;
pub mod time;

use abo_store::Timestamp;

/// One revision as a VCS reported it, before it becomes a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Its id: the hex node for git and hg, the revno for bzr (as 0.9 reported it).
    pub revision: String,
    /// Its parents (git and hg; empty for bzr, whose long log does not show ids).
    pub parents: Vec<String>,
    /// `Name <email>` as the VCS records it.
    pub author: String,
    /// When it was committed, if the VCS says and it is after 1970.
    pub when: Option<Timestamp>,
    /// The message, without trailing blank lines.
    pub comments: String,
    /// Paths it touched, in the VCS's order (for a merge: against its first parent in git;
    /// what Mercurial records for hg; against the left parent for bzr).
    pub files: Vec<String>,
    /// The named branch it was committed on (hg only).
    pub branch: Option<String>,
}

/// The message with trailing newlines and blanks removed: git and bzr end it with one.
fn tidy_comments(s: &str) -> String {
    s.trim_end().to_string()
}
