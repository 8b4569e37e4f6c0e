//! Secret masking over a stream of writes.

use crate::error::{Error, Result};
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::Arc;

/// What a secret is replaced with, in logs and anywhere else [`Masker`] is used.
pub const MASK: &[u8] = b"***";

/// Replaces every occurrence of the secrets in a byte stream with [`MASK`], however the
/// stream is cut into writes. At each position the longest secret wins (leftmost-longest),
/// and the output is the same as masking the whole stream at once.
///
/// To see a secret split across two writes, the masker keeps back the end of a write while
/// it could be the beginning of a secret: at most the longest secret's length minus one
/// bytes, and only when they actually start one, so ordinary output is not delayed.
#[derive(Clone)]
pub struct Masker {
    /// `None` without secrets: the common case costs a copy.
    matcher: Option<AhoCorasick>,
    /// Shared by clones: one masker is built per configuration and cloned for each log.
    secrets: Arc<[Vec<u8>]>,
    longest: usize,
    held: Vec<u8>,
}

/// Says how many secrets there are, never what they are: options holding a masker may be
/// printed with `{:?}`.
impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .field("held_len", &self.held.len())
            .finish()
    }
}

impl Masker {
    /// A masker with nothing to mask.
    pub fn none() -> Masker {
        Masker {
            matcher: None,
            secrets: Arc::default(),
            longest: 0,
            held: Vec::new(),
        }
    }

    /// A masker for these secrets. Empty secrets are ignored.
    pub fn new<I, S>(secrets: I) -> Result<Masker>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort();
        secrets.dedup();
        let longest = secrets.iter().map(Vec::len).max().unwrap_or(0);
        let matcher = if secrets.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&secrets)
                    .map_err(|e| Error::Invalid(format!("cannot build the secret masker: {e}")))?,
            )
        };
        Ok(Masker {
            matcher,
            secrets: secrets.into(),
            longest,
            held: Vec::new(),
        })
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Bytes kept back, waiting to see whether a secret starts there.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Masks `input`, the next piece of the stream, appending what is settled to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.process(input, false, out);
    }

    /// [`Masker::push`] without a copy when it can: returns the settled output, which is
    /// `input` itself when nothing is kept back from before, `input` holds no secret and
    /// no possible start of one at its end (ordinary output), else `out` filled as `push`
    /// fills it (`out` must be empty).
    pub(crate) fn push_settled<'a>(&mut self, input: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
        debug_assert!(out.is_empty());
        let Some(matcher) = &self.matcher else {
            return input;
        };
        if self.held.is_empty()
            && matcher.find(input).is_none()
            && self.settled_len(input) == input.len()
        {
            return input;
        }
        self.process(input, false, out);
        out
    }

    /// Ends the stream: appends what was kept back, masked.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.process(&[], true, out);
    }

    /// Masks a whole value at once (a property, an API answer), leaving the stream state
    /// alone.
    pub fn mask(&self, input: &[u8]) -> Vec<u8> {
        let mut one = Masker {
            held: Vec::new(),
            ..self.clone()
        };
        let mut out = Vec::with_capacity(input.len());
        one.process(input, true, &mut out);
        out
    }

    /// [`Masker::mask`] for text. A secret given as text only ever matches whole
    /// characters, so the result is the masked text; other secrets may cut a character,
    /// which is then replaced with U+FFFD.
    pub fn mask_str(&self, input: &str) -> String {
        if self.matcher.is_none() {
            return input.to_owned();
        }
        String::from_utf8_lossy(&self.mask(input.as_bytes())).into_owned()
    }

    fn process(&mut self, input: &[u8], last: bool, out: &mut Vec<u8>) {
        let Some(matcher) = &self.matcher else {
            out.extend_from_slice(input);
            return;
        };
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(input);
        let settled = if last {
            buf.len()
        } else {
            self.settled_len(&buf)
        };
        // A match starting before `settled` is final: no longer secret can start there
        // (that would make the rest of the buffer a proper prefix of a secret, and
        // `settled` would be at or before it), and none can start earlier.
        let mut pos = 0;
        for m in matcher.find_iter(&buf) {
            if m.start() >= settled {
                break;
            }
            out.extend_from_slice(&buf[pos..m.start()]);
            out.extend_from_slice(MASK);
            pos = m.end();
        }
        if pos < settled {
            out.extend_from_slice(&buf[pos..settled]);
            pos = settled;
        }
        buf.drain(..pos);
        self.held = buf;
    }

    /// The length of the prefix of `buf` that can be masked now: up to the first position
    /// from which the rest of `buf` is a proper prefix of some secret.
    fn settled_len(&self, buf: &[u8]) -> usize {
        let from = buf.len().saturating_sub(self.longest.saturating_sub(1));
        (from..buf.len())
            .find(|&i| {
                let tail = &buf[i..];
                self.secrets
                    .iter()
                    .any(|s| s.len() > tail.len() && s.starts_with(tail))
            })
            .unwrap_or(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(secrets: &[&str], writes: &[&str]) -> String {
        let mut m = Masker::new(secrets).unwrap();
        let mut out = Vec::new();
        for w in writes {
            m.push(w.as_bytes(), &mut out);
        }
        m.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_across_writes_and_prefers_the_longest() {
        assert_eq!(stream(&["hunter2"], &["pw=hun", "ter2!"]), "pw=***!");
        assert_eq!(stream(&["ab", "abcd"], &["xab", "cdy"]), "x***y");
        assert_eq!(stream(&["ab", "abcd"], &["xab", "cy"]), "x***cy");
        assert_eq!(stream(&["abc"], &["ab"]), "ab");
        assert_eq!(stream(&[], &["plain"]), "plain");
    }

    #[test]
    fn holds_back_only_a_possible_secret_start() {
        let mut m = Masker::new(["secret"]).unwrap();
        let mut out = Vec::new();
        m.push(b"line one\n", &mut out);
        assert_eq!(out, b"line one\n");
        m.push(b"x sec", &mut out);
        assert_eq!(m.held_len(), 3);
    }

    /// One masker is cloned for every log: a clone starts its own stream (nothing held
    /// back from the original's), and printing one never shows a secret.
    #[test]
    fn clones_start_afresh_and_debug_hides_the_secrets() {
        let template = Masker::new(["hunter2"]).unwrap();
        let mut first = template.clone();
        let mut out = Vec::new();
        first.push(b"pw=hun", &mut out);
        assert_eq!(first.held_len(), 3);
        let mut second = template.clone();
        let mut out = Vec::new();
        second.push(b"ter2 hunter2", &mut out);
        second.finish(&mut out);
        assert_eq!(out, b"ter2 ***");
        let printed = format!("{template:?} {first:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("hun"),
            "{printed}"
        );
        assert!(printed.contains("<1 hidden>"), "{printed}");
    }
}
