//! Analysis of OpenERP/Odoo server logs for CI: did the tests (or the server) fail, how many
//! tests ran, and which lines say so. A pure crate: bytes in, an [`Analysis`] out, no I/O.
//!
//! # Use
//!
//! Feed an [`Analyzer`] the log in chunks of any size while it is being collected, then call
//! [`Analyzer::finish`]; or call [`analyze`] on a whole log. [`render_report`] prints the
//! report of anybox.buildbot.openerp 0.9's `analyze_oerp_tests.py` ("the seed"), and
//! [`Analysis::exit_code`] is its exit status. `Analysis` serialises to the JSON of
//! `abo analyze-log --json` (schema in its documentation).
//!
//! # Rules
//!
//! **The seed's rules, exactly as 0.9.** Each line (cut on `\n`, keeping a `\r`) is searched
//! with the eight regexes of 0.9 ([`Label::is_seed`]), unanchored, and reported under *every*
//! label whose regex matches. They know nothing of record prefixes or of the `odoo.` namespace.
//!
//! **abo's rules, for what 0.9 misses** (Odoo 8–18). They apply to the first line of a record
//! (prefix `date pid LEVEL db logger: message` from 6.1, `[date][db] LEVEL:logger:message` in
//! 6.0, colour codes removed); lines without a prefix continue the previous record (tracebacks)
//! and are never matched on their own. A record gets at most one of:
//!
//! | label | record |
//! |---|---|
//! | "Failed to load registry" | `Failed to load registry…` from `openerp.modules.registry`/`odoo.modules.registry` |
//! | "No test ran" | 14+ summary `0 failed, 0 error(s) of 0 tests when loading database …` |
//! | "Test summary with failures" | 14+ summary `F failed, E error(s) of T tests when loading database …`, F+E > 0 |
//! | "Test failures when loading the modules" | `At least one test failed when loading the modules` from `(openerp\|odoo).modules.loading` |
//! | "Module test failures" | `Module X: F failures, E errors[ of T tests]`, F+E > 0 |
//! | "Test failures" | an ERROR record of a `*.tests.*` logger whose message starts with `FAIL: ` or `ERROR: ` |
//!
//! CRITICAL records and `Failed to initialize database` need no rule of their own: the seed's
//! `CRITICAL` and `Failed to initialize database` regexes already report every such line.
//!
//! **Nothing is counted twice.** The total counts distinct (line, label) pairs, as the seed
//! did. A line one of the seed's regexes matched gets no abo label; a line gets at most one
//! abo label. And when a seed *test* label ("Failure in Python block", "Errors during x/yml
//! tests", "Errors or failures during unittest2 tests", "Tests failed to excute", "At least one
//! test failed when loading the modules") is reported, abo's test labels are dropped from the
//! whole analysis: the seed already reported that tests failed, and its report for 6.0–9.0 logs
//! is kept byte for byte (an 8.0 log's `FAIL:` lines come with the `openerp.modules.loading`
//! line that 0.9 reports). "Failed to load registry" is not a test label and is always kept.
//! So the report only differs from the seed's for logs the seed misread, mainly Odoo ≥ 10.
//!
//! **Report order.** The seed printed a Python 2 dict; [`Analysis::label_order`] replays its
//! insertions into a model of CPython 2.7's dict (the order depends on which labels occur and
//! in which order, so no fixed order exists). abo's labels follow, most fatal first.
//!
//! **Counts** ([`Counts`]): from the 14+ final summary when present, else from `Ran N tests` and
//! `Module X: …` lines; `None` when the log does not tell.
//!
//! # Limits
//!
//! Only the first [`MAX_SCANNED_LINE_BYTES`] of a line are searched, and only
//! [`MAX_KEPT_LINE_BYTES`] of a reported line are kept. Invalid UTF-8 is replaced by U+FFFD.
//! All reported lines are kept (as the seed did): memory grows with the number of failures,
//! not with the log.

#![deny(missing_docs)]

mod analysis;
mod analyzer;
mod label;
mod py2dict;
mod record;

pub use analysis::{render_report, Analysis, Counts, Failure};
pub use analyzer::{analyze, analyze_bytes, Analyzer, MAX_KEPT_LINE_BYTES, MAX_SCANNED_LINE_BYTES};
pub use label::Label;
