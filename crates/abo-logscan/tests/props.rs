//! Properties: no input makes the analyzer panic, chunking never changes the result, and the
//! seed's labels are exactly 0.9's line-by-line regex searches.

use abo_logscan::{analyze_bytes, render_report, Analyzer, Label};
use proptest::prelude::*;
use regex::Regex;

/// Lines of every era and a few traps, so that generated logs exercise the rules rather than
/// only random noise.
const LINES: &[&str] = &[
    "[2011-06-10 10:00:03,789][testdb] ERROR:tests.sale:Assertion \"x\" FAILED",
    "[2011-06-10 10:00:03,789][testdb] WARNING:tests.stock:AssertionError in Python code : q",
    "2012-03-01 09:00:01,200 4242 ERROR testdb openerp.modules.module: module m: at least one error occurred in a test",
    "2013-09-01 09:00:00,100 4242 ERROR testdb openerp: Failed to load registry",
    "2013-09-01 09:00:00,000 4242 CRITICAL testdb openerp.modules.module: Couldn't load module foo",
    "2013-09-01 09:00:00,200 4242 ERROR testdb openerp.service: Failed to initialize database `testdb`.",
    "2013-09-01 09:00:00,200 4242 ERROR testdb openerp.modules.loading: Tests failed to execute.",
    "2015-03-19 13:25:03,314 23693 ERROR testdb openerp.modules.loading: At least one test failed when loading the modules.",
    "2018-05-31 07:38:07,000 6204 ERROR testdb odoo.modules.loading: At least one test failed when loading the modules.",
    "2018-05-31 07:38:06,805 6204 ERROR testdb odoo.addons.m.tests.test_x: FAIL: test_y (odoo.addons.m.tests.test_x.TestX)",
    "2018-05-31 07:38:06,805 6204 ERROR testdb odoo.addons.m.tests.test_x: ERROR: test_z (odoo.addons.m.tests.test_x.TestX)",
    "2018-05-31 07:38:06,805 6204 INFO testdb odoo.modules.module: Ran 3 tests in 0.070s",
    "2018-05-31 07:38:06,805 6204 ERROR testdb odoo.modules.module: Module m: 1 failures, 2 errors",
    "2024-05-02 10:00:00,200 100 ERROR testdb odoo.modules.loading: Module m: 1 failures, 0 errors of 3 tests",
    "2024-05-02 10:00:01,000 100 ERROR testdb odoo.tests.result: 1 failed, 0 error(s) of 3 tests when loading database 'testdb'",
    "2024-05-02 10:00:01,000 100 WARNING testdb odoo.tests.result: 0 failed, 0 error(s) of 0 tests when loading database 'testdb'",
    "2024-05-02 10:00:01,000 100 INFO testdb odoo.tests.result: 0 failed, 0 error(s) of 9 tests when loading database 'testdb'",
    "2018-06-01 08:00:01,000 31 ERROR db10 odoo.modules.registry: Failed to load registry",
    "2023-01-10 10:00:00,200 77 \x1b[1;31m\x1b[1;49mERROR\x1b[0m db16 odoo.addons.m.tests.t: FAIL: T.t",
    "2023-01-10 10:00:00,200 77 \x1b[1;37m\x1b[1;41mCRITICAL\x1b[0m db16 odoo.service.server: Failed to initialize database `db16`.",
    "Traceback (most recent call last):",
    "FAIL: test_y (odoo.addons.m.tests.test_x.TestX)",
    "Module m: 3 failures, 2 errors",
    "AssertionError: 1 != 2",
    "",
];

/// A log made of `LINES`, arbitrary bytes and optional `\r`.
fn log_strategy() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => (0..LINES.len()).prop_map(|i| LINES[i].as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    (
        proptest::collection::vec((line, any::<bool>()), 0..30),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline)| {
            let mut log = Vec::new();
            let count = lines.len();
            for (i, (line, cr)) in lines.into_iter().enumerate() {
                log.extend_from_slice(&line);
                if cr {
                    log.push(b'\r');
                }
                if i + 1 < count || final_newline {
                    log.push(b'\n');
                }
            }
            log
        })
}

/// Feeds `log` cut at the given (sorted, deduplicated) offsets.
fn feed_in_chunks(log: &[u8], cuts: &[usize]) -> abo_logscan::Analysis {
    let mut analyzer = Analyzer::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.min(log.len()).max(start);
        analyzer.feed(&log[start..cut]);
        start = cut;
    }
    analyzer.feed(&log[start..]);
    analyzer.finish()
}

/// 0.9, line by line: (line number, label) for every regex that searches into the line.
fn seed_by_regex(log: &[u8]) -> Vec<(u64, String)> {
    let rules = [
        (
            "Failure in Python block",
            r"WARNING:tests[.].*AssertionError",
        ),
        ("Errors during x/yml tests", r"ERROR:tests[.]"),
        (
            "Errors or failures during unittest2 tests",
            r"at least one error occurred in a test",
        ),
        ("Errors loading addons", r"ERROR.*openerp: Failed to load"),
        ("Critical logs", r"CRITICAL"),
        ("Error init db", r"Failed to initialize database"),
        (
            "Tests failed to excute",
            r"openerp.modules.loading: Tests failed to execute",
        ),
        (
            "At least one test failed when loading the modules",
            r"openerp.modules.loading: At least one test failed when loading the modules.",
        ),
    ];
    let rules: Vec<(&str, Regex)> = rules
        .iter()
        .map(|(label, re)| (*label, Regex::new(re).expect("regex")))
        .collect();
    let mut found = Vec::new();
    for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        for (label, re) in &rules {
            if re.is_match(&line) {
                found.push((i as u64 + 1, label.to_string()));
            }
        }
    }
    found.sort();
    found
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(0usize..2000, 0..10),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let analysis = feed_in_chunks(&bytes, &cuts);
        let report = render_report(&analysis);
        prop_assert_eq!(analysis.exit_code() == 0, report == "No failure detected\n");
        let total_line = format!("Total: {} failures \n", analysis.total);
        prop_assert!(!analysis.failed || report.ends_with(&total_line));
        prop_assert!(serde_json::to_string(&analysis).is_ok());
    }

    #[test]
    fn chunking_does_not_change_the_analysis(
        log in log_strategy(),
        cuts in proptest::collection::vec(0usize..3000, 0..20),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(feed_in_chunks(&log, &cuts), analyze_bytes(&log));
    }

    #[test]
    fn seed_labels_are_the_seed_regex_searches(log in log_strategy()) {
        let analysis = analyze_bytes(&log);
        let mut seed: Vec<(u64, String)> = analysis
            .failures
            .iter()
            .filter(|f| f.seed_label)
            .map(|f| (f.line, f.label.as_str().to_owned()))
            .collect();
        seed.sort();
        prop_assert_eq!(seed, seed_by_regex(&log));
    }

    #[test]
    fn abo_labels_never_repeat_a_seed_line(log in log_strategy()) {
        let analysis = analyze_bytes(&log);
        for failure in analysis.failures.iter().filter(|f| !f.seed_label) {
            prop_assert!(!analysis
                .failures
                .iter()
                .any(|g| g.seed_label && g.line == failure.line));
            prop_assert!(!matches!(failure.label, Label::CriticalLogs | Label::ErrorInitDb));
        }
        prop_assert_eq!(analysis.total, analysis.failures.len());
    }
}
