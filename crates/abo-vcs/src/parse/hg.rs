//! Outputs of `hg branches -Tjson` and `hg log -v -Tjson`. Mercurial escapes every string
//! in JSON, so newlines, quotes and `$(...)` in commit data cannot break the framing.

use super::{tidy_comments, time::from_epoch_seconds, Commit};
use crate::error::{Result, VcsError};
use serde::Deserialize;
use std::collections::BTreeMap;

fn is_node(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// JSON from bytes that may not be UTF-8 (Mercurial writes the bytes a commit holds):
/// invalid sequences are replaced. An empty output is an empty list.
fn json<T: serde::de::DeserializeOwned + Default>(command: &'static str, out: &[u8]) -> Result<T> {
    let text = String::from_utf8_lossy(out);
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(&text).map_err(|e| VcsError::parse(command, e.to_string()))
}

#[derive(Deserialize)]
struct Branch {
    branch: String,
    node: String,
}

/// `hg branches --closed -Tjson`: named branch → the node of its tip.
pub fn parse_branches(out: &[u8]) -> Result<BTreeMap<String, String>> {
    let branches: Vec<Branch> = json("hg branches", out)?;
    let mut map = BTreeMap::new();
    for b in branches {
        if !is_node(&b.node) {
            return Err(VcsError::parse(
                "hg branches",
                format!("branch {:?} has a bad node {:?}", b.branch, b.node),
            ));
        }
        map.insert(b.branch, b.node.to_ascii_lowercase());
    }
    Ok(map)
}

#[derive(Deserialize)]
struct Changeset {
    node: String,
    branch: String,
    /// `[seconds since the epoch, offset of the committer's zone]`.
    date: (f64, f64),
    desc: String,
    user: String,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    parents: Vec<String>,
}

/// `hg log -v -Tjson`: the changesets, in output order, with their named branch.
pub fn parse_log(out: &[u8]) -> Result<Vec<Commit>> {
    let changesets: Vec<Changeset> = json("hg log", out)?;
    changesets
        .into_iter()
        .map(|c| {
            if !is_node(&c.node) {
                return Err(VcsError::parse("hg log", format!("bad node {:?}", c.node)));
            }
            Ok(Commit {
                revision: c.node.to_ascii_lowercase(),
                parents: c.parents,
                author: c.user,
                when: from_epoch_seconds(c.date.0),
                comments: tidy_comments(&c.desc),
                files: c.files,
                branch: Some(c.branch),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_store::Timestamp;

    /// Recorded from Mercurial 6.3 (`HGPLAIN=1 hg branches --closed -Tjson`).
    const BRANCHES: &str = r#"[
 {
  "active": true,
  "branch": "default",
  "closed": false,
  "current": true,
  "node": "165492d21ab29c9793001f2098871f1c33f19790",
  "rev": 3
 },
 {
  "active": false,
  "branch": "$(touch x)",
  "closed": false,
  "current": false,
  "node": "afba3304684a12cbfc9e32947a04abe7c8c607a4",
  "rev": 1
 }
]
"#;

    /// Recorded from Mercurial 6.3 (`hg log -v -Tjson -r 'sort(::tip - ::0, rev)'`): a
    /// commit on a branch named `$(touch x)`, a file name with a blank, a merge (Mercurial
    /// records no files for it), a multi-line message with unicode.
    const LOG: &str = r#"[
 {
  "bookmarks": [],
  "branch": "$(touch x)",
  "date": [1795622626, 0],
  "desc": "on weird branch",
  "files": ["b"],
  "node": "afba3304684a12cbfc9e32947a04abe7c8c607a4",
  "parents": ["6e75ce1de0ed13ece2db50e69710de0ebc70091d"],
  "phase": "draft",
  "rev": 1,
  "tags": [],
  "user": "u"
 },
 {
  "bookmarks": [],
  "branch": "default",
  "date": [1795622626.5, -3600],
  "desc": "c\n\n$(touch /tmp/pwn) `x` \u00e9t\u00e9\n",
  "files": ["c d"],
  "node": "6a14dffc25ad51fb0c0f796c0e6362792168359b",
  "parents": ["6e75ce1de0ed13ece2db50e69710de0ebc70091d"],
  "phase": "draft",
  "rev": 2,
  "tags": [],
  "user": "J\u00f6hn <j@x>"
 },
 {
  "bookmarks": [],
  "branch": "default",
  "date": [1795622626, 0],
  "desc": "merge",
  "files": [],
  "node": "165492d21ab29c9793001f2098871f1c33f19790",
  "parents": ["6a14dffc25ad51fb0c0f796c0e6362792168359b", "afba3304684a12cbfc9e32947a04abe7c8c607a4"],
  "phase": "draft",
  "rev": 3,
  "tags": ["tip"],
  "user": "u"
 }
]
"#;

    #[test]
    fn branches() {
        let map = parse_branches(BRANCHES.as_bytes()).unwrap();
        assert_eq!(map["default"], "165492d21ab29c9793001f2098871f1c33f19790");
        assert_eq!(
            map["$(touch x)"],
            "afba3304684a12cbfc9e32947a04abe7c8c607a4"
        );
        assert!(parse_branches(b"").unwrap().is_empty());
        assert!(parse_branches(b"[]").unwrap().is_empty());
        assert!(parse_branches(br#"[{"branch": "x", "node": "zz"}]"#).is_err());
        assert!(parse_branches(b"[{").is_err());
    }

    #[test]
    fn log() {
        let commits = parse_log(LOG.as_bytes()).unwrap();
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].branch.as_deref(), Some("$(touch x)"));
        assert_eq!(commits[1].comments, "c\n\n$(touch /tmp/pwn) `x` été");
        assert_eq!(commits[1].author, "Jöhn <j@x>");
        assert_eq!(commits[1].when, Some(Timestamp(1_795_622_626_500)));
        assert_eq!(commits[1].files, ["c d"]);
        assert_eq!(commits[2].parents.len(), 2);
        assert!(commits[2].files.is_empty());
        assert_eq!(parse_log(b"").unwrap(), []);
        assert_eq!(parse_log(b"[\n]\n").unwrap(), []);
        assert!(parse_log(br#"[{"node": "x"}]"#).is_err());
        // Invalid UTF-8 in commit data is replaced, not refused.
        let lossy = LOG.replacen("on weird branch", "on X branch", 1);
        let mut bytes = lossy.into_bytes();
        let at = bytes.iter().position(|&b| b == b'X').unwrap();
        bytes[at] = 0xff;
        assert_eq!(parse_log(&bytes).unwrap()[0].comments, "on \u{fffd} branch");
    }
}
