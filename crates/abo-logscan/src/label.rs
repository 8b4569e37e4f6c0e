//! The labels a reported line can carry: the eight of anybox.buildbot.openerp 0.9 (with their
//! regexes, spelled exactly as 0.9 spelled them, typo included) and the ones abo adds for Odoo
//! 8–18 failures that 0.9's regexes never see.

use serde::{Serialize, Serializer};

/// Why a line was reported.
///
/// The first eight variants are the seed's `FAILURE_REGEXPS` keys; their [`Label::as_str`] is
/// the seed's label byte for byte, because `render_report` must reproduce the seed's output.
/// The others are abo's own labels for modern Odoo (see the crate documentation for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// Seed: `WARNING:tests[.].*AssertionError` (6.0 YAML `!python` block).
    FailureInPythonBlock,
    /// Seed: `ERROR:tests[.]` (6.0 YAML/XML test error).
    ErrorsDuringXymlTests,
    /// Seed: `at least one error occurred in a test` (6.1 unittest2 `fast_suite`/`checks`).
    ErrorsDuringUnittest2Tests,
    /// Seed: `ERROR.*openerp: Failed to load` (only when the logger is exactly `openerp`).
    ErrorsLoadingAddons,
    /// Seed: `CRITICAL` anywhere in the line.
    CriticalLogs,
    /// Seed: `Failed to initialize database` anywhere in the line.
    ErrorInitDb,
    /// Seed: `openerp.modules.loading: Tests failed to execute` (label misspelt by the seed).
    TestsFailedToExcute,
    /// Seed: `openerp.modules.loading: At least one test failed when loading the modules.`
    AtLeastOneTestFailed,
    /// abo: ERROR `Failed to load registry` from `openerp.modules.registry` /
    /// `odoo.modules.registry`.
    FailedToLoadRegistry,
    /// abo: the 14+ summary `F failed, E error(s) of T tests when loading database …` with
    /// `F + E > 0`.
    TestSummaryWithFailures,
    /// abo: the 14+ summary with `T = 0`: nothing was tested, which CI must not call a success.
    NoTestRan,
    /// abo: `At least one test failed when loading the modules` from a logger 0.9's regex misses
    /// (`odoo.modules.loading`, 10.0+).
    TestFailuresWhenLoadingModules,
    /// abo: `Module <m>: F failures, E errors [of T tests]` with `F + E > 0` (8.0+).
    ModuleTestFailures,
    /// abo: a `FAIL: …` or `ERROR: …` ERROR record of a `*.tests.*` logger (one per failed test, 8.0+).
    TestFailures,
}

/// The seed's `FAILURE_REGEXPS`, in the order of its source dict literal (which is also the
/// insertion order that fixes the Python 2 dict layout, see [`crate::py2dict`]).
pub(crate) const SEED_RULES: [(Label, &str); 8] = [
    (
        Label::FailureInPythonBlock,
        r"WARNING:tests[.].*AssertionError",
    ),
    (Label::ErrorsDuringXymlTests, r"ERROR:tests[.]"),
    (
        Label::ErrorsDuringUnittest2Tests,
        r"at least one error occurred in a test",
    ),
    (
        Label::ErrorsLoadingAddons,
        r"ERROR.*openerp: Failed to load",
    ),
    (Label::CriticalLogs, r"CRITICAL"),
    (Label::ErrorInitDb, r"Failed to initialize database"),
    (
        Label::TestsFailedToExcute,
        r"openerp.modules.loading: Tests failed to execute",
    ),
    (
        Label::AtLeastOneTestFailed,
        r"openerp.modules.loading: At least one test failed when loading the modules.",
    ),
];

/// abo's labels in the order their sections are printed, after the seed's: from the most
/// fatal to the most detailed, so that the summary lines come before the per-test lines.
pub(crate) const MODERN_ORDER: [Label; 6] = [
    Label::FailedToLoadRegistry,
    Label::NoTestRan,
    Label::TestSummaryWithFailures,
    Label::TestFailuresWhenLoadingModules,
    Label::ModuleTestFailures,
    Label::TestFailures,
];

impl Label {
    /// The text printed in the report and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::FailureInPythonBlock => "Failure in Python block",
            Label::ErrorsDuringXymlTests => "Errors during x/yml tests",
            Label::ErrorsDuringUnittest2Tests => "Errors or failures during unittest2 tests",
            Label::ErrorsLoadingAddons => "Errors loading addons",
            Label::CriticalLogs => "Critical logs",
            Label::ErrorInitDb => "Error init db",
            Label::TestsFailedToExcute => "Tests failed to excute",
            Label::AtLeastOneTestFailed => "At least one test failed when loading the modules",
            Label::FailedToLoadRegistry => "Failed to load registry",
            Label::TestSummaryWithFailures => "Test summary with failures",
            Label::NoTestRan => "No test ran",
            Label::TestFailuresWhenLoadingModules => "Test failures when loading the modules",
            Label::ModuleTestFailures => "Module test failures",
            Label::TestFailures => "Test failures",
        }
    }

    /// Whether the label is one of the seed's eight.
    pub fn is_seed(self) -> bool {
        match self {
            Label::FailureInPythonBlock
            | Label::ErrorsDuringXymlTests
            | Label::ErrorsDuringUnittest2Tests
            | Label::ErrorsLoadingAddons
            | Label::CriticalLogs
            | Label::ErrorInitDb
            | Label::TestsFailedToExcute
            | Label::AtLeastOneTestFailed => true,
            Label::FailedToLoadRegistry
            | Label::TestSummaryWithFailures
            | Label::NoTestRan
            | Label::TestFailuresWhenLoadingModules
            | Label::ModuleTestFailures
            | Label::TestFailures => false,
        }
    }

    /// Whether the label says "tests failed" (as opposed to "the server could not start").
    ///
    /// When a seed test label is present, abo drops its own test labels: the seed already
    /// reported the test failure, and adding the per-test detail would change 0.9's report for
    /// 6.1–9.0 logs (see the crate documentation).
    pub(crate) fn is_test(self) -> bool {
        match self {
            Label::FailureInPythonBlock
            | Label::ErrorsDuringXymlTests
            | Label::ErrorsDuringUnittest2Tests
            | Label::TestsFailedToExcute
            | Label::AtLeastOneTestFailed
            | Label::TestSummaryWithFailures
            | Label::NoTestRan
            | Label::TestFailuresWhenLoadingModules
            | Label::ModuleTestFailures
            | Label::TestFailures => true,
            Label::ErrorsLoadingAddons
            | Label::CriticalLogs
            | Label::ErrorInitDb
            | Label::FailedToLoadRegistry => false,
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_rules_are_the_seed_labels() {
        for (label, _) in SEED_RULES {
            assert!(label.is_seed(), "{label}");
        }
        for label in MODERN_ORDER {
            assert!(!label.is_seed(), "{label}");
        }
    }
}
