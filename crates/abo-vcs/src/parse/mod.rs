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

/// Whatever the bytes, parsers and validators return: hostile output cannot panic a poller.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{self, redact_url, url_password};
    use abo_plan::Vcs;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = git::parse_log(&bytes);
            let _ = git::parse_refs(&bytes);
            let _ = hg::parse_log(&bytes);
            let _ = hg::parse_branches(&bytes);
            let _ = bzr::parse_log(&bytes);
            let _ = bzr::parse_revision_info(&bytes);
        }

        #[test]
        fn git_log_framing_survives_any_text(
            fields in proptest::collection::vec("[^\\x00]{0,20}", 5),
        ) {
            let mut out = vec![0u8];
            out.extend_from_slice(fields.join("\0").as_bytes());
            let _ = git::parse_log(&out);
        }

        #[test]
        fn validators_never_panic(
            s in prop_oneof![
                any::<String>(),
                "[a-z+]{0,6}(://|::|:)?[-%@:\\[\\]a-zA-Z0-9./~ ]{0,30}",
            ],
        ) {
            for vcs in [Vcs::Git, Vcs::Hg, Vcs::Bzr] {
                let _ = validate::validate_url(vcs, &s);
                let _ = validate::validate_branch(vcs, &s);
                let _ = validate::validate_revision(vcs, &s);
            }
            let _ = redact_url(&s);
            let _ = url_password(&s);
            let _ = time::parse_bzr_timestamp(&s);
            let _ = tidy_comments(&s);
        }
    }
}
