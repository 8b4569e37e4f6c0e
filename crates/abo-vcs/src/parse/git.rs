//! Outputs of `git ls-remote`, `git for-each-ref` and `git log`.

use super::{tidy_comments, time::from_epoch_seconds, Commit};
use crate::error::{Result, VcsError};
use std::collections::BTreeMap;

/// The `git log --format` abo asks for, with `-z`: each record starts with a NUL, then the
/// fields, NUL-separated: hash, parents (space-separated), `author <email>`, committer time
/// (seconds), message. With `--name-only`, the paths follow the message, each NUL-terminated,
/// the first one after a newline. A path is never empty, so the empty token in front of
/// every record marks where the previous record's paths end; messages cannot hold a NUL.
pub const LOG_FORMAT: &str = "%x00%H%x00%P%x00%an <%ae>%x00%ct%x00%B";

/// The `git for-each-ref --format` abo asks for: the same lines as `git ls-remote`.
pub const REF_FORMAT: &str = "%(objectname)%09%(refname)";

const REF_PREFIX: &str = "refs/heads/";

fn is_object_name(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The branches of `git ls-remote --heads` (or of `git for-each-ref` with [`REF_FORMAT`]):
/// branch name → object name. Lines that are not `<object name>\trefs/heads/<name>`
/// (peeled tags, symbolic refs, a hostile name that is not UTF-8) are skipped: abo only
/// looks up the names it watches, which are valid.
pub fn parse_refs(out: &[u8]) -> BTreeMap<String, String> {
    let mut refs = BTreeMap::new();
    for line in out.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((object, name)) = line.split_once('\t') else {
            continue;
        };
        let Some(branch) = name.strip_prefix(REF_PREFIX) else {
            continue;
        };
        if is_object_name(object) && !branch.is_empty() {
            refs.insert(branch.to_string(), object.to_ascii_lowercase());
        }
    }
    refs
}

/// The commits of `git log -z --name-only --format=`[`LOG_FORMAT`], in output order.
pub fn parse_log(out: &[u8]) -> Result<Vec<Commit>> {
    let err = |reason: String| VcsError::parse("git log", reason);
    let mut tokens = out.split(|&b| b == 0);
    match tokens.next() {
        Some([]) => {}
        // No commit: empty output (split yields one empty token only for `[]`).
        Some(t) if t.iter().all(u8::is_ascii_whitespace) => return Ok(Vec::new()),
        _ => return Err(err("it does not start with a record separator".into())),
    }
    let mut commits = Vec::new();
    // At the top of the loop, the separator of a record has been read.
    loop {
        let Some(hash) = tokens.next() else {
            return Ok(commits);
        };
        let hash = String::from_utf8_lossy(hash);
        if !is_object_name(&hash) {
            return Err(err(format!(
                "record {} starts with {:?}, not a commit hash",
                commits.len() + 1,
                crate::validate::printable(&hash.chars().take(80).collect::<String>())
            )));
        }
        let mut field = |what: &str| {
            tokens
                .next()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .ok_or_else(|| err(format!("commit {hash} has no {what}")))
        };
        let parents = field("parents")?;
        let author = field("author")?;
        let time = field("time")?;
        let body = field("message")?;
        let parents: Vec<String> = parents.split_whitespace().map(str::to_string).collect();
        if let Some(bad) = parents.iter().find(|p| !is_object_name(p)) {
            return Err(err(format!("commit {hash} has a bad parent {bad:?}")));
        }
        let when = match time.trim().parse::<i64>() {
            Ok(seconds) => from_epoch_seconds(seconds as f64),
            Err(_) => return Err(err(format!("commit {hash} has a bad time {time:?}"))),
        };
        let mut files = Vec::new();
        let mut more = false;
        for token in tokens.by_ref() {
            if token.is_empty() {
                more = true;
                break;
            }
            // The first path comes after a newline that ends the message.
            let token = match (files.is_empty(), token.strip_prefix(b"\n")) {
                (true, Some(rest)) => rest,
                _ => token,
            };
            if !token.is_empty() {
                files.push(String::from_utf8_lossy(token).into_owned());
            }
        }
        commits.push(Commit {
            revision: hash.to_ascii_lowercase(),
            parents,
            author,
            when,
            comments: tidy_comments(&body),
            files,
            branch: None,
        });
        if !more {
            return Ok(commits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_store::Timestamp;

    const A: &str = "49eeb38276fe90abbce155458d799709a574d4ff";
    const B: &str = "cec4b98b7288ff635df92beec73ce632c1d79356";
    const C: &str = "a8899cc6775eb28edde993dfcf6e96442cab61e4";
    const M: &str = "32ece6683e6bc4c8749edb268b6fd489adeb166e";

    #[test]
    fn refs() {
        let out = format!(
            "{A}\trefs/heads/master\n{B}\trefs/heads/feature/x\n{C}\trefs/tags/v1\n\
             {C}\trefs/tags/v1^{{}}\nref: refs/heads/master\tHEAD\n\
             {A}\trefs/heads/--upload-pack=touch x\nnot a line\nzz\trefs/heads/bad\n"
        );
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(format!("{A}\trefs/heads/").as_bytes());
        bytes.extend_from_slice(b"\xff\xff\n");
        let refs = parse_refs(&bytes);
        assert_eq!(refs.get("master").map(String::as_str), Some(A));
        assert_eq!(refs.get("feature/x").map(String::as_str), Some(B));
        // A hostile name is data: listed, never used unless watched (and valid).
        assert!(refs.contains_key("--upload-pack=touch x"));
        assert_eq!(refs.len(), 3, "{refs:?}");
        assert!(parse_refs(b"").is_empty());
    }

    /// Recorded from git 2.47 (`git log -z --reverse --topo-order --diff-merges=first-parent
    /// --name-only --format=LOG_FORMAT`): a commit with a multi-line message holding `$(...)`
    /// and backquotes, a unicode author, a file name with a blank, a merge (files against its
    /// first parent), an empty commit, a commit with an empty message, and a file name with a
    /// newline.
    fn recorded() -> Vec<u8> {
        let mut out = Vec::new();
        let mut rec = |fields: &[&str], files: &[&str]| {
            out.push(0);
            out.extend_from_slice(fields.join("\0").as_bytes());
            out.push(0);
            for (i, f) in files.iter().enumerate() {
                if i == 0 {
                    out.push(b'\n');
                }
                out.extend_from_slice(f.as_bytes());
                out.push(0);
            }
        };
        let author = "Jöhn Dœ <j@x>";
        rec(
            &[
                A,
                "",
                author,
                "1795622514",
                "first\n\nbody $(touch /tmp/pwn) `x`\n",
            ],
            &["a"],
        );
        rec(&[B, A, author, "1795622514", "c\n"], &["c d"]);
        rec(&[C, A, author, "1795622514", "dev b\n"], &["b"]);
        rec(
            &[M, &format!("{B} {C}"), author, "1795622514", "merge dev\n"],
            &["b"],
        );
        rec(
            &[
                "1d93c31a70311b4244b9875dc24ce319d1f8dddc",
                M,
                author,
                "1795622527",
                "empty\n",
            ],
            &[],
        );
        rec(
            &[
                "72b9518f242e2c80fc20689d06f808b9b82a2e32",
                "1d93c31a70311b4244b9875dc24ce319d1f8dddc",
                author,
                "1795622527",
                "",
            ],
            &[],
        );
        rec(
            &[
                "20d7e0f83aeb001393f4a6b4551514eee95804e0",
                "72b9518f242e2c80fc20689d06f808b9b82a2e32",
                author,
                "1795622527",
                "nl file\n",
            ],
            &["new\nline", "z"],
        );
        out
    }

    #[test]
    fn log_records() {
        let commits = parse_log(&recorded()).unwrap();
        assert_eq!(commits.len(), 7);
        let first = &commits[0];
        assert_eq!(first.revision, A);
        assert!(first.parents.is_empty());
        assert_eq!(first.author, "Jöhn Dœ <j@x>");
        assert_eq!(first.when, Some(Timestamp(1_795_622_514_000)));
        assert_eq!(first.comments, "first\n\nbody $(touch /tmp/pwn) `x`");
        assert_eq!(first.files, ["a"]);
        assert_eq!(commits[1].files, ["c d"]);
        assert_eq!(commits[3].parents, [B, C]);
        assert_eq!(commits[3].files, ["b"]);
        assert_eq!(commits[4].comments, "empty");
        assert!(commits[4].files.is_empty());
        assert_eq!(commits[5].comments, "");
        assert!(commits[5].files.is_empty());
        assert_eq!(commits[6].files, ["new\nline", "z"]);
    }

    #[test]
    fn log_edge_cases() {
        assert_eq!(parse_log(b"").unwrap(), []);
        assert_eq!(parse_log(b"\n").unwrap(), []);
        // Every truncation of a valid output parses or fails, never panics.
        let full = recorded();
        for cut in 0..full.len() {
            let _ = parse_log(&full[..cut]);
        }
        for bad in [
            &b"x\0"[..],
            b"\0nothex\0\0a\x001\0m\0",
            b"\x0049eeb38276fe90abbce155458d799709a574d4ff\0zz\0a\x001\0m\0",
            b"\x0049eeb38276fe90abbce155458d799709a574d4ff\0\0a\0soon\0m\0",
            b"\x0049eeb38276fe90abbce155458d799709a574d4ff\0\0a",
        ] {
            assert!(parse_log(bad).is_err(), "{bad:?}");
        }
        // Invalid UTF-8 in a message is replaced, not refused.
        let mut odd = format!("\0{A}\0\0a\x001\0").into_bytes();
        odd.extend_from_slice(b"bad \xff byte\n\0");
        let commits = parse_log(&odd).unwrap();
        assert_eq!(commits[0].comments, "bad \u{fffd} byte");
    }
}
