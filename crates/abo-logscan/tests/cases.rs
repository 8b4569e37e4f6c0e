//! abo's synthetic logs (`tests/data/cases/`), one per era or trap, against the labels,
//! counts and exit code listed in `tests/data/cases.json`, and against
//! `tests/data/cases/<name>.report` where one exists (byte-exact report).

use abo_logscan::{analyze_bytes, render_report, Analysis, Analyzer};
use serde_json::Value;
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn count(value: Option<u64>) -> Value {
    value.map_or(Value::Null, Value::from)
}

/// The same log fed whole, line by line and byte by byte must give one analysis.
fn analyse_three_ways(log: &[u8], name: &str) -> Analysis {
    let whole = analyze_bytes(log);
    let mut by_line = Analyzer::new();
    for line in log.split_inclusive(|&b| b == b'\n') {
        by_line.feed_line(line);
    }
    assert_eq!(by_line.finish(), whole, "{name}: line by line");
    let mut by_byte = Analyzer::new();
    for byte in log {
        by_byte.feed(std::slice::from_ref(byte));
    }
    assert_eq!(by_byte.finish(), whole, "{name}: byte by byte");
    whole
}

#[test]
fn synthetic_cases() {
    let cases: serde_json::Map<String, Value> =
        serde_json::from_slice(&read(&Path::new(DATA).join("cases.json"))).expect("cases.json");
    let dir = Path::new(DATA).join("cases");
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".log"))
        .collect();
    logs.sort();
    let mut listed: Vec<String> = cases.keys().cloned().collect();
    listed.sort();
    assert_eq!(
        logs, listed,
        "every case log is described, every description has a log"
    );

    for (name, expected) in &cases {
        let analysis = analyse_three_ways(&read(&dir.join(name)), name);
        assert_eq!(
            Value::from(analysis.exit_code()),
            expected["exit_code"],
            "{name}: exit code"
        );
        let counts = serde_json::json!({
            "run": count(analysis.counts.run),
            "failed": count(analysis.counts.failed),
            "errors": count(analysis.counts.errors),
        });
        assert_eq!(counts, expected["counts"], "{name}: counts");
        let failures: Vec<Value> = analysis
            .failures
            .iter()
            .map(|f| serde_json::json!([f.line, f.label.as_str()]))
            .collect();
        assert_eq!(
            Value::Array(failures),
            expected["failures"],
            "{name}: failures"
        );
        assert_eq!(analysis.total, analysis.failures.len(), "{name}: total");
        for failure in &analysis.failures {
            assert_eq!(failure.seed_label, failure.label.is_seed(), "{name}");
            assert!(!failure.text.contains('\x1b'), "{name}: colour codes kept");
            assert!(
                !failure.text.ends_with(['\n', '\r']),
                "{name}: line ending kept"
            );
        }

        let report_path = dir.join(name.replace(".log", ".report"));
        if report_path.exists() {
            let expected_report = String::from_utf8(read(&report_path)).expect("utf-8 report");
            assert_eq!(render_report(&analysis), expected_report, "{name}: report");
        }
    }
}
