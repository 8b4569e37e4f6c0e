//! Outputs of `brz revision-info` and `brz log --long -v -n1` (Bazaar and Breezy write the
//! same). The long log has no escaping, but it indents every message and path line by two
//! blanks, so no commit data can pass for a header, a section or a record separator: a
//! line starting with two blanks is always data.

use super::{tidy_comments, time::parse_bzr_timestamp, Commit};
use crate::error::{Result, VcsError};
use crate::validate::is_bzr_revno;

/// The line between two revisions of the long log.
const SEPARATOR: &str = "------------------------------------------------------------";

/// `brz revision-info`: `(revno, revision id)` of its one line, `None` when the revision is
/// not in the branch (`??? <id>`). An empty branch is `("0", "null:")`.
pub fn parse_revision_info(out: &[u8]) -> Result<Option<(String, String)>> {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let Some((revno, id)) = line.trim().split_once(' ') else {
        return Err(VcsError::parse(
            "brz revision-info",
            format!(
                "{:?} is not `REVNO REVISION-ID`",
                crate::validate::printable(line)
            ),
        ));
    };
    let id = id.trim();
    if revno == "???" {
        return Ok(None);
    }
    if !is_bzr_revno(revno) || id.is_empty() {
        return Err(VcsError::parse(
            "brz revision-info",
            format!(
                "{:?} is not `REVNO REVISION-ID`",
                crate::validate::printable(line)
            ),
        ));
    }
    Ok(Some((revno.to_string(), id.to_string())))
}

/// Where the parser is within one revision.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Headers,
    Message,
    /// A file section: `added:`, `removed:`, `renamed:`, `modified:`, `kind changed:`.
    Files(FileSection),
    /// A section abo does not read (`unknown:`...).
    Other,
}

#[derive(Clone, Copy, PartialEq)]
enum FileSection {
    Plain,
    Renamed,
    KindChanged,
}

#[derive(Default)]
struct Draft {
    revno: Option<String>,
    committer: Option<String>,
    author: Option<String>,
    timestamp: Option<String>,
    message: Vec<String>,
    files: Vec<String>,
}

impl Draft {
    fn add_file(&mut self, path: &str) {
        // A directory is shown with its kind marker `/`.
        let path = path.strip_suffix('/').unwrap_or(path);
        if !path.is_empty() && !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_string());
        }
    }

    fn finish(self, commits: &mut Vec<Commit>) -> Result<()> {
        let Some(revno) = self.revno else {
            return Err(VcsError::parse("brz log", "a revision without `revno:`"));
        };
        commits.push(Commit {
            when: self.timestamp.as_deref().and_then(parse_bzr_timestamp),
            revision: revno,
            parents: Vec::new(),
            author: self.author.or(self.committer).unwrap_or_default(),
            comments: tidy_comments(&self.message.join("\n")),
            files: self.files,
            branch: None,
        });
        Ok(())
    }
}

/// `brz log --long -v -n1`: the mainline revisions, in output order. The revision is the
/// revno (`revno: 4 [merge]` gives `4`); the author is `author:` (all of them, as shown)
/// or else `committer:`; a rename gives both paths.
pub fn parse_log(out: &[u8]) -> Result<Vec<Commit>> {
    let text = String::from_utf8_lossy(out);
    let mut commits = Vec::new();
    let mut draft: Option<Draft> = None;
    let mut part = Part::Headers;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == SEPARATOR {
            if let Some(done) = draft.take() {
                done.finish(&mut commits)?;
            }
            draft = Some(Draft::default());
            part = Part::Headers;
            continue;
        }
        // Text before the first separator or after the log (a hint about merged revisions)
        // is not a revision.
        let Some(d) = draft.as_mut() else {
            continue;
        };
        if let Some(data) = line.strip_prefix("  ") {
            match part {
                Part::Message => d.message.push(data.to_string()),
                Part::Files(FileSection::Plain) => d.add_file(data),
                Part::Files(FileSection::Renamed) => match data.split_once(" => ") {
                    Some((from, to)) => {
                        d.add_file(from);
                        d.add_file(to);
                    }
                    None => d.add_file(data),
                },
                Part::Files(FileSection::KindChanged) => {
                    // `path (file => directory)`
                    let path = data.rsplit_once(" (").map_or(data, |(path, _)| path);
                    d.add_file(path);
                }
                Part::Headers | Part::Other => {}
            }
            continue;
        }
        // Some tools strip the two blanks of an empty message line.
        if part == Part::Message && line.is_empty() {
            d.message.push(String::new());
            continue;
        }
        if part == Part::Headers {
            if line == "message:" {
                part = Part::Message;
            } else if let Some((key, value)) = line.split_once(": ") {
                let value = value.trim().to_string();
                match key {
                    "revno" => {
                        let revno = value.split_whitespace().next().unwrap_or("");
                        if !is_bzr_revno(revno) {
                            return Err(VcsError::parse(
                                "brz log",
                                format!("bad revno {:?}", crate::validate::printable(&value)),
                            ));
                        }
                        d.revno = Some(revno.to_string());
                    }
                    "committer" => d.committer = Some(value),
                    "author" | "authors" => d.author = Some(value),
                    "timestamp" => d.timestamp = Some(value),
                    _ => {}
                }
            }
            continue;
        }
        // After the message: section headers, or the end of the log.
        part = match line {
            "added:" | "removed:" | "modified:" => Part::Files(FileSection::Plain),
            "renamed:" => Part::Files(FileSection::Renamed),
            "kind changed:" => Part::Files(FileSection::KindChanged),
            _ => Part::Other,
        };
    }
    if let Some(done) = draft {
        done.finish(&mut commits)?;
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_store::Timestamp;

    /// Recorded from Breezy 3.3 (`brz --no-plugins log --long -v -n1 --forward
    /// --timezone=utc -r 1..3`): a message that holds a section header, a separator line,
    /// `$(...)`, backquotes, a blank line and unicode; a revision with two authors, a
    /// removal, a rename to a name with a blank and a modification; a merge.
    const LOG: &str = "------------------------------------------------------------\nrevno: 1\ncommitter: Jöhn Dœ <j@x.org>\nbranch nick: trunk\ntimestamp: Wed 2026-11-25 16:08:05 +0000\nmessage:\n  first line\n  added:\n  ------------------------------------------------------------\n  $(touch /tmp/pwn) `x`\n  \n    indented été\nadded:\n  a\n  gone\n------------------------------------------------------------\nrevno: 2\nauthor: Other <o@x>, Third <t@x>\ncommitter: Jöhn Dœ <j@x.org>\nbranch nick: trunk\ntimestamp: Wed 2026-11-25 16:08:06 +0000\nmessage:\n  mod rm mv\nremoved:\n  gone\nrenamed:\n  a => a b\nmodified:\n  a b\n------------------------------------------------------------\nrevno: 3 [merge]\ncommitter: Jöhn Dœ <j@x.org>\nbranch nick: trunk\ntimestamp: Wed 2026-11-25 16:08:06 +0000\nmessage:\n  merge feat\nadded:\n  f g\n";

    #[test]
    fn log() {
        let commits = parse_log(LOG.as_bytes()).unwrap();
        assert_eq!(commits.len(), 3);
        let first = &commits[0];
        assert_eq!(first.revision, "1");
        assert_eq!(first.author, "Jöhn Dœ <j@x.org>");
        assert_eq!(
            first.comments,
            "first line\nadded:\n------------------------------------------------------------\n\
             $(touch /tmp/pwn) `x`\n\n  indented été"
        );
        assert_eq!(first.files, ["a", "gone"]);
        // `date -d '2026-11-25 16:08:05 UTC' +%s`
        assert_eq!(first.when, Some(Timestamp(1_795_622_885_000)));
        assert_eq!(commits[1].author, "Other <o@x>, Third <t@x>");
        assert_eq!(commits[1].files, ["gone", "a", "a b"]);
        assert_eq!(commits[2].revision, "3");
        assert_eq!(commits[2].comments, "merge feat");
        assert_eq!(commits[2].files, ["f g"]);
    }

    #[test]
    fn log_edge_cases() {
        assert_eq!(parse_log(b"").unwrap(), []);
        assert_eq!(
            parse_log(b"Use --include-merged or -n0 to see merged revisions.\n").unwrap(),
            []
        );
        let kinds = format!(
            "{SEPARATOR}\nrevno: 7\ncommitter: c\ntimestamp: bad\nmessage:\n  (no message)\n\
             kind changed:\n  d (file => directory)\nadded:\n  d/\n  d/x\nunknown:\n  junk\n"
        );
        let commits = parse_log(kinds.as_bytes()).unwrap();
        assert_eq!(commits[0].files, ["d", "d/x"]);
        assert_eq!(commits[0].when, None);
        assert_eq!(commits[0].author, "c");
        assert!(parse_log(format!("{SEPARATOR}\nmessage:\n  x\n").as_bytes()).is_err());
        assert!(parse_log(format!("{SEPARATOR}\nrevno: x\n").as_bytes()).is_err());
        for cut in 0..LOG.len() {
            if LOG.is_char_boundary(cut) {
                let _ = parse_log(&LOG.as_bytes()[..cut]);
            }
        }
    }

    #[test]
    fn revision_info() {
        assert_eq!(
            parse_revision_info(b"4 j@x.org-20261125160119-vs5xkc5db46ywjz0\n").unwrap(),
            Some(("4".into(), "j@x.org-20261125160119-vs5xkc5db46ywjz0".into()))
        );
        assert_eq!(
            parse_revision_info(b"2.1.1 j@x.org-x\n").unwrap(),
            Some(("2.1.1".into(), "j@x.org-x".into()))
        );
        assert_eq!(
            parse_revision_info(b"0 null:\n").unwrap(),
            Some(("0".into(), "null:".into()))
        );
        assert_eq!(parse_revision_info(b"??? nonexist\n").unwrap(), None);
        for bad in [&b""[..], b"4\n", b"x y\n", b"4 \n"] {
            assert!(parse_revision_info(bad).is_err(), "{bad:?}");
        }
    }
}
