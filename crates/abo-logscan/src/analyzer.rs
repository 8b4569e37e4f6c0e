//! The streaming [`Analyzer`]: bytes in, in chunks of any size, an [`Analysis`] out.
//!
//! Lines are cut on `\n` like Python 2's `readlines()`, so a chunk boundary may fall anywhere,
//! even inside a UTF-8 sequence: only the current, incomplete line is buffered (up to
//! [`MAX_SCANNED_LINE_BYTES`]), and of each reported line at most [`MAX_KEPT_LINE_BYTES`] is
//! kept.

use crate::analysis::{Analysis, Counts, Failure, LineEnding};
use crate::label::{Label, SEED_RULES};
use crate::py2dict::SEED_ITEMS_ORDER;
use crate::record::{parse_head, strip_ansi, RecordHead};
use regex::{Regex, RegexSet};
use std::sync::OnceLock;

/// How much of one line is buffered and searched. The seed searched whole lines; a line longer
/// than this (a base64 blob, a giant SQL statement) is only searched in its first 1 MiB, so
/// that one pathological line cannot make the master hold an unbounded buffer.
pub const MAX_SCANNED_LINE_BYTES: usize = 1 << 20;

/// How much of a reported line is kept in the [`Analysis`]; longer lines are cut on a character
/// boundary and end with a marker giving their length.
pub const MAX_KEPT_LINE_BYTES: usize = 4096;

fn seed_set() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    // Constant patterns; the crate's tests compile them.
    SET.get_or_init(|| {
        RegexSet::new(SEED_RULES.iter().map(|(_, re)| *re)).expect("constant regexes")
    })
}

/// Compiles one of the modern rules' constant patterns once.
macro_rules! constant_regex {
    ($name:ident, $pattern:expr) => {
        fn $name() -> &'static Regex {
            static RE: OnceLock<Regex> = OnceLock::new();
            // Constant pattern; the crate's tests compile it.
            RE.get_or_init(|| Regex::new($pattern).expect("constant regex"))
        }
    };
}

// 14+: `OdooTestResult.__str__` logged as "%s when loading database %r".
constant_regex!(
    summary_re,
    r"^(\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database"
);
// 8.0–13 end in "errors"; 14+ add " of T tests".
constant_regex!(
    module_re,
    r"^Module \S+: (\d+) failures, (\d+) errors(?: of (\d+) tests)?"
);
// unittest's runner summary, logged on its own record from 8.0 to 13.
constant_regex!(ran_re, r"^Ran (\d+) tests? in ");

/// Feeds on a log, chunk by chunk, and keeps only what the [`Analysis`] needs.
///
/// ```
/// let mut analyzer = abo_logscan::Analyzer::new();
/// analyzer.feed(b"2024-05-02 10:00:01,000 100 INFO db odoo.tests.result: 0 failed, ");
/// analyzer.feed(b"0 error(s) of 3 tests when loading database 'db'\n");
/// let analysis = analyzer.finish();
/// assert!(!analysis.failed);
/// assert_eq!(analysis.counts.run, Some(3));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Analyzer {
    /// The bytes of the line being read, up to [`MAX_SCANNED_LINE_BYTES`].
    partial: Vec<u8>,
    /// Bytes of the current line beyond the buffer, counted for the truncation marker.
    overflow: u64,
    /// Lines completed so far (the number of the next line is this plus one).
    lines: u64,
    failures: Vec<Failure>,
    /// A seed test label was reported: abo's own test labels are then dropped at the end.
    seed_test_failure: bool,
    /// Sums over 14+ final summaries: (failed, errors, run).
    summary: Option<(u64, u64, u64)>,
    /// Sum of `Ran N tests`.
    ran: Option<u64>,
    /// Sums over `Module X: F failures, E errors` lines: (failed, errors).
    modules: Option<(u64, u64)>,
}

impl Analyzer {
    /// An analyzer that has read nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next bytes of the log. Chunks may split lines and characters anywhere;
    /// feeding a log in any number of pieces gives the same [`Analysis`].
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            self.buffer(&chunk[..pos]);
            self.end_line(true);
            chunk = &chunk[pos + 1..];
        }
        self.buffer(chunk);
    }

    /// Reads one line as `BufRead::read_until(b'\n', …)` returns it (with its `\n`, except
    /// perhaps at the end of the log). The same as [`Analyzer::feed`]: a line without `\n` is
    /// continued by the next call, or ended by [`Analyzer::finish`].
    pub fn feed_line(&mut self, line: &[u8]) {
        self.feed(line);
    }

    /// Ends the log (a last line without `\n` counts, as it did for the seed) and returns the
    /// analysis.
    pub fn finish(mut self) -> Analysis {
        if !self.partial.is_empty() || self.overflow > 0 {
            self.end_line(false);
        }
        if self.seed_test_failure {
            // The seed's own test label already says tests failed; see the crate docs.
            self.failures
                .retain(|f| f.label.is_seed() || !f.label.is_test());
        }
        let counts = match self.summary {
            Some((failed, errors, run)) => Counts {
                run: Some(run),
                failed: Some(failed),
                errors: Some(errors),
            },
            None => {
                // No module line but tests ran: none failed (8.0–13 only log failing modules).
                let (failed, errors) = match (self.modules, self.ran) {
                    (Some((f, e)), _) => (Some(f), Some(e)),
                    (None, Some(_)) => (Some(0), Some(0)),
                    (None, None) => (None, None),
                };
                Counts {
                    run: self.ran,
                    failed,
                    errors,
                }
            }
        };
        let total = self.failures.len();
        Analysis {
            failed: total > 0,
            counts,
            failures: self.failures,
            total,
        }
    }

    fn buffer(&mut self, bytes: &[u8]) {
        let room = MAX_SCANNED_LINE_BYTES.saturating_sub(self.partial.len());
        let take = room.min(bytes.len());
        self.partial.extend_from_slice(&bytes[..take]);
        self.overflow = self
            .overflow
            .saturating_add(u64::try_from(bytes.len() - take).unwrap_or(u64::MAX));
    }

    fn end_line(&mut self, newline: bool) {
        let mut bytes = std::mem::take(&mut self.partial);
        let overflow = std::mem::take(&mut self.overflow);
        self.lines += 1;
        let ending = if !newline {
            LineEnding::None
        } else if overflow == 0 && bytes.last() == Some(&b'\r') {
            bytes.pop();
            LineEnding::CrLf
        } else {
            LineEnding::Lf
        };
        let length = LineLength {
            bytes: u64::try_from(bytes.len())
                .unwrap_or(u64::MAX)
                .saturating_add(overflow),
            overflowed: overflow > 0,
        };
        let line = String::from_utf8_lossy(&bytes);
        // The seed's regexes see the line with its `\r`, as Python 2 did.
        let cr = if ending == LineEnding::CrLf { "\r" } else { "" };
        self.scan(&line, cr, ending, length);
        // Reuse the allocation for the next line.
        bytes.clear();
        self.partial = bytes;
    }

    /// Applies the seed's rules (on the raw line) and, if none matched, abo's (on the record).
    fn scan(&mut self, line: &str, cr: &str, ending: LineEnding, length: LineLength) {
        let number = self.lines;
        let hits = if cr.is_empty() {
            seed_set().matches(line)
        } else {
            seed_set().matches(&format!("{line}{cr}"))
        };
        let mut seed_hit = false;
        // Same-line labels in the seed's `FAILURE_REGEXPS.items()` order: that order decided
        // which label `setdefault` met first, hence the report's section order.
        for label in SEED_ITEMS_ORDER {
            let index = SEED_RULES.iter().position(|(l, _)| *l == label);
            if index.is_some_and(|i| hits.matched(i)) {
                seed_hit = true;
                self.seed_test_failure |= label.is_test();
                self.failures.push(Failure {
                    line: number,
                    label,
                    seed_label: true,
                    text: keep(line, length),
                    ending,
                });
            }
        }
        let clean = strip_ansi(line);
        let Some(head) = parse_head(&clean) else {
            // A continuation line (traceback, multi-line message): it belongs to the previous
            // record and carries no test result of its own.
            return;
        };
        let modern = self.modern_rules(&head);
        if let (Some(label), false) = (modern, seed_hit) {
            self.failures.push(Failure {
                line: number,
                label,
                seed_label: false,
                text: keep(&clean, length),
                ending,
            });
        }
    }

    /// Updates the counts from a record and says which of abo's labels it deserves, if any
    /// (at most one: the message prefixes of the rules exclude each other).
    fn modern_rules(&mut self, head: &RecordHead<'_>) -> Option<Label> {
        let message = head.message;
        if let Some(caps) = summary_re().captures(message) {
            let failed = number(caps.get(1).map(|m| m.as_str()));
            let errors = number(caps.get(2).map(|m| m.as_str()));
            let run = number(caps.get(3).map(|m| m.as_str()));
            let (f, e, r) = self.summary.unwrap_or((0, 0, 0));
            self.summary = Some((
                f.saturating_add(failed),
                e.saturating_add(errors),
                r.saturating_add(run),
            ));
            return if run == 0 {
                Some(Label::NoTestRan)
            } else if failed > 0 || errors > 0 {
                Some(Label::TestSummaryWithFailures)
            } else {
                None
            };
        }
        if let Some(caps) = module_re().captures(message) {
            let failed = number(caps.get(1).map(|m| m.as_str()));
            let errors = number(caps.get(2).map(|m| m.as_str()));
            let (f, e) = self.modules.unwrap_or((0, 0));
            self.modules = Some((f.saturating_add(failed), e.saturating_add(errors)));
            return (failed > 0 || errors > 0).then_some(Label::ModuleTestFailures);
        }
        if let Some(caps) = ran_re().captures(message) {
            let run = number(caps.get(1).map(|m| m.as_str()));
            self.ran = Some(self.ran.unwrap_or(0).saturating_add(run));
            return None;
        }
        if head.level == "ERROR"
            && head.is_test_logger()
            && (message.starts_with("FAIL: ") || message.starts_with("ERROR: "))
        {
            return Some(Label::TestFailures);
        }
        let (is_loading, is_registry) = match head.logger {
            "openerp.modules.loading" | "odoo.modules.loading" => (true, false),
            "openerp.modules.registry" | "odoo.modules.registry" => (false, true),
            _ => (false, false),
        };
        if is_loading && message.starts_with("At least one test failed when loading the modules") {
            return Some(Label::TestFailuresWhenLoadingModules);
        }
        if is_registry && message.starts_with("Failed to load registry") {
            return Some(Label::FailedToLoadRegistry);
        }
        None
    }
}

/// A decimal count from the log; absurdly long numbers saturate rather than fail.
fn number(digits: Option<&str>) -> u64 {
    digits.map_or(0, |d| d.parse().unwrap_or(u64::MAX))
}

/// The size of a line in the log, which the kept text may no longer show.
#[derive(Debug, Clone, Copy)]
struct LineLength {
    /// Bytes in the log, line ending excluded.
    bytes: u64,
    /// Whether bytes beyond [`MAX_SCANNED_LINE_BYTES`] were dropped.
    overflowed: bool,
}

/// What is kept of a reported line: all of it up to [`MAX_KEPT_LINE_BYTES`], else a prefix cut
/// on a character boundary and a marker with the line's length in the log.
fn keep(line: &str, length: LineLength) -> String {
    if line.len() <= MAX_KEPT_LINE_BYTES && !length.overflowed {
        return line.to_owned();
    }
    let mut cut = MAX_KEPT_LINE_BYTES.min(line.len());
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} [abo: line cut, {} bytes]", &line[..cut], length.bytes)
}

/// Analyses a whole log held in memory (the same as feeding it to an [`Analyzer`]).
pub fn analyze(text: &str) -> Analysis {
    analyze_bytes(text.as_bytes())
}

/// Analyses a whole log given as bytes, decoded lossily as UTF-8.
pub fn analyze_bytes(bytes: &[u8]) -> Analysis {
    let mut analyzer = Analyzer::new();
    analyzer.feed(bytes);
    analyzer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_patterns_compile() {
        let _ = seed_set();
        let _ = summary_re();
        let _ = module_re();
        let _ = ran_re();
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(MAX_SCANNED_LINE_BYTES + 10);
        let text = format!("CRITICAL {long}\n");
        let analysis = analyze(&text);
        assert_eq!(analysis.total, 1);
        let kept = &analysis.failures[0].text;
        assert!(kept.len() < MAX_KEPT_LINE_BYTES + 64);
        assert!(kept.ends_with(&format!(" [abo: line cut, {} bytes]", text.len() - 1)));
    }

    #[test]
    fn matches_beyond_the_scanned_part_are_not_seen() {
        let text = format!("{}CRITICAL\n", "x".repeat(MAX_SCANNED_LINE_BYTES));
        assert!(!analyze(&text).failed);
    }

    #[test]
    fn cut_respects_characters() {
        let text = format!("CRITICAL {}\n", "é".repeat(MAX_KEPT_LINE_BYTES));
        let analysis = analyze(&text);
        assert!(analysis.failures[0].text.contains("[abo: line cut"));
    }

    #[test]
    fn crlf_lines_keep_their_cr_for_the_seed() {
        let analysis = analyze("a CRITICAL b\r\n");
        assert_eq!(analysis.failures[0].text, "a CRITICAL b");
        assert_eq!(analysis.failures[0].ending, LineEnding::CrLf);
        // The seed's last regex needs one character after "modules": `\r` is one.
        let line =
            "x openerp.modules.loading: At least one test failed when loading the modules\r\n";
        assert_eq!(analyze(line).failures[0].label, Label::AtLeastOneTestFailed);
        let line = "x openerp.modules.loading: At least one test failed when loading the modules\n";
        assert!(!analyze(line).failed);
    }
}
