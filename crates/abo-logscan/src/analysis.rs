//! The result of analysing a log ([`Analysis`]) and its text report in the seed's format
//! ([`render_report`]).

use crate::label::{Label, MODERN_ORDER};
use crate::py2dict::seed_report_order;
use serde::Serialize;

/// What an analysed log says: failed or not, test counts, and the reported lines.
///
/// Serialised (for `abo analyze-log --json`) as:
///
/// ```json
/// {
///   "failed": true,
///   "counts": {"run": 3, "failed": 1, "errors": 0},
///   "failures": [
///     {"line": 3, "label": "Test failures", "seed_label": false,
///      "text": "2024-05-02 10:00:00,100 100 ERROR testdb odoo.addons.m.tests.t: FAIL: T.t"}
///   ],
///   "total": 1
/// }
/// ```
///
/// * `failed`: whether any line was reported (exit status 1).
/// * `counts`: test counts; each is `null` when the log does not tell.
/// * `failures`: one entry per reported (line, label) pair, in log order; `line` is 1-based,
///   `label` the section title of the report, `seed_label` whether 0.9 had that label, `text`
///   the line without its line ending (colour codes removed for abo's own labels, kept for the
///   seed's, which reports raw lines; cut at [`crate::MAX_KEPT_LINE_BYTES`] with a marker).
/// * `total`: the number of entries in `failures`, the report's `Total:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// Whether anything was reported.
    pub failed: bool,
    /// Test counts, when the log gives them.
    pub counts: Counts,
    /// Reported (line, label) pairs in log order; within a line, in the order the seed tried its
    /// regexes.
    pub failures: Vec<Failure>,
    /// `failures.len()`, the report's total.
    pub total: usize,
}

/// Test counts read from the log. `None` means the log does not say (no tests, or an era that
/// does not log counts).
///
/// From the Odoo 14+ final summary (`F failed, E error(s) of T tests when loading database`)
/// when present, summed over summaries; otherwise `run` sums 8.0–13 `Ran N tests in …` lines
/// and `failed`/`errors` sum `Module X: F failures, E errors` lines (zero when tests ran and no
/// module reported failures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Tests run.
    pub run: Option<u64>,
    /// Tests failed (assertion failures).
    pub failed: Option<u64>,
    /// Tests in error (unexpected exceptions).
    pub errors: Option<u64>,
}

/// One reported line under one label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// 1-based line number in the log.
    pub line: u64,
    /// The report section.
    pub label: Label,
    /// Whether `label` is one of the seed's (`label.is_seed()`, repeated for JSON consumers).
    pub seed_label: bool,
    /// The line, without its line ending.
    pub text: String,
    /// How the line ended in the log: the seed printed lines with their newline, so the
    /// report needs it to be byte-exact.
    #[serde(skip)]
    pub(crate) ending: LineEnding,
}

/// The terminator a line had in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnding {
    /// The last line of a log that does not end with a newline.
    None,
    /// `\n`.
    Lf,
    /// `\r\n`: Python 2 kept the `\r` in the line, and so does the report.
    CrLf,
}

impl LineEnding {
    fn as_str(self) -> &'static str {
        match self {
            LineEnding::None => "",
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
        }
    }
}

impl Analysis {
    /// The process exit status the seed used: 0 when clean, 1 when failures were reported.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed)
    }

    /// The labels present, in the order the report prints them: the seed's labels in the order
    /// the seed's Python 2 dict iterated them, then abo's in a fixed order.
    pub fn label_order(&self) -> Vec<Label> {
        let seed_first_seen = self
            .failures
            .iter()
            .map(|f| f.label)
            .filter(|l| l.is_seed());
        let mut order = seed_report_order(seed_first_seen);
        order.extend(
            MODERN_ORDER
                .into_iter()
                .filter(|label| self.failures.iter().any(|f| f.label == *label)),
        );
        order
    }
}

/// The report the seed printed on standard output, byte for byte when only seed labels are
/// present: `No failure detected\n`, or `FAILURES DETECTED\n\n`, then per label `<label>:\n`,
/// each line as `    <line>` plus its own newline plus `print`'s, a blank line, and finally
/// `Total: <n> failures \n` (trailing space included).
pub fn render_report(analysis: &Analysis) -> String {
    if analysis.failures.is_empty() {
        return "No failure detected\n".to_owned();
    }
    let mut out = String::from("FAILURES DETECTED\n\n");
    for label in analysis.label_order() {
        out.push_str(label.as_str());
        out.push_str(":\n");
        for failure in analysis.failures.iter().filter(|f| f.label == label) {
            out.push_str("    ");
            out.push_str(&failure.text);
            out.push_str(failure.ending.as_str());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!("Total: {} failures \n", analysis.total));
    out
}
