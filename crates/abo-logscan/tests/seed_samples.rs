//! Every shared log sample against what the real 0.9 `analyze_oerp_tests.py` printed and
//! returned (`testdata/log-samples/analyze-results.json`): byte-exact where the seed flagged
//! something or the log is clean for abo too, and abo's own report where the seed missed an
//! Odoo ≥ 10 failure.

use abo_logscan::{analyze_bytes, render_report, Analyzer};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/log-samples");
const ABO_REPORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/seed-samples");

/// Samples the seed called clean although tests failed: 0.9 only knows `openerp.` loggers.
/// Their expected abo report is `tests/data/seed-samples/<log>.report`.
const SEED_MISSED: [&str; 2] = ["v10_odoo_namespace_failure.log", "v17_summary_failure.log"];

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn results() -> serde_json::Map<String, Value> {
    let json = read(&Path::new(SAMPLES).join("analyze-results.json"));
    match serde_json::from_slice(&json).expect("analyze-results.json") {
        Value::Object(map) => map,
        other => panic!("unexpected results: {other}"),
    }
}

#[test]
fn every_sample_has_a_seed_result() {
    let logs: BTreeSet<String> = std::fs::read_dir(SAMPLES)
        .expect("samples dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".log"))
        .collect();
    let results: BTreeSet<String> = results().keys().cloned().collect();
    assert_eq!(logs, results);
}

#[test]
fn reports_match_the_seed_or_abo_expectations() {
    for (name, expected) in results() {
        let log = read(&Path::new(SAMPLES).join(&name));
        let analysis = analyze_bytes(&log);
        let report = render_report(&analysis);

        // Line by line, as `abo analyze-log` feeds it, gives the same analysis.
        let mut analyzer = Analyzer::new();
        for line in log.split_inclusive(|&b| b == b'\n') {
            analyzer.feed_line(line);
        }
        assert_eq!(analyzer.finish(), analysis, "{name}: line by line");

        if SEED_MISSED.contains(&name.as_str()) {
            assert_eq!(expected["exit_code"], 0, "{name}: the seed missed it");
            let abo_report = read(&Path::new(ABO_REPORTS).join(format!("{name}.report")));
            assert_eq!(report, String::from_utf8_lossy(&abo_report), "{name}");
            assert_eq!(analysis.exit_code(), 1, "{name}");
            assert!(analysis.failures.iter().all(|f| !f.seed_label), "{name}");
        } else {
            assert_eq!(
                report,
                expected["stdout"].as_str().expect("stdout"),
                "{name}"
            );
            assert_eq!(
                Value::from(analysis.exit_code()),
                expected["exit_code"],
                "{name}"
            );
            assert!(analysis.failures.iter().all(|f| f.seed_label), "{name}");
        }
    }
}

#[test]
fn abo_counts_for_the_samples() {
    let counts = |name: &str| {
        let analysis = analyze_bytes(&read(&Path::new(SAMPLES).join(name)));
        let c = analysis.counts;
        (c.run, c.failed, c.errors)
    };
    assert_eq!(
        counts("v10_odoo_namespace_failure.log"),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(
        counts("v17_summary_failure.log"),
        (Some(3), Some(1), Some(0))
    );
    assert_eq!(
        counts("v17_summary_success.log"),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(
        counts("v80_unittest_failure.log"),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(counts("v70_success.log"), (None, None, None));
    assert_eq!(counts("empty.log"), (None, None, None));
}

#[test]
fn json_schema() {
    let log = read(&Path::new(SAMPLES).join("v17_summary_failure.log"));
    let json = serde_json::to_value(analyze_bytes(&log)).expect("serialise");
    assert_eq!(
        json,
        serde_json::json!({
            "failed": true,
            "counts": {"run": 3, "failed": 1, "errors": 0},
            "failures": [
                {"line": 3, "label": "Test failures", "seed_label": false,
                 "text": "2024-05-02 10:00:00,100 100 ERROR testdb odoo.addons.mymod.tests.test_x: FAIL: TestX.test_y"},
                {"line": 9, "label": "Module test failures", "seed_label": false,
                 "text": "2024-05-02 10:00:00,200 100 ERROR testdb odoo.modules.loading: Module mymod: 1 failures, 0 errors of 3 tests"},
                {"line": 11, "label": "Test summary with failures", "seed_label": false,
                 "text": "2024-05-02 10:00:01,000 100 ERROR testdb odoo.tests.result: 1 failed, 0 error(s) of 3 tests when loading database 'testdb'"}
            ],
            "total": 3
        })
    );
    let clean = serde_json::to_value(analyze_bytes(b"")).expect("serialise");
    assert_eq!(
        clean,
        serde_json::json!({
            "failed": false,
            "counts": {"run": null, "failed": null, "errors": null},
            "failures": [],
            "total": 0
        })
    );
}
