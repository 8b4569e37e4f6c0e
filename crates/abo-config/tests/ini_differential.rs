//! Differential test of the INI reader against Python's own configparser.
//!
//! `tests/ini_reference.py` reads every file of the corpus (`tests/ini-corpus/`, and
//! every `*.cfg` of `testdata/upstream/` and `testdata/seed-samples/`) and prints what
//! the parser saw: sections, own raw options, `options()`, interpolated values (or that
//! `get` failed) and the parse error. The same is computed with `abo_config::ini` and
//! compared.
//!
//! - Python 3 (required, the test fails if it is missing): `configparser`, adjusted to
//!   py2 by the small "PY2 RULE" steps of the script. What cannot be adjusted is listed
//!   in [`PY3_KNOWN_DIFFERENCES`], each skipping exactly one comparison; a listed
//!   difference that no longer shows fails the test, so the list stays true.
//! - Python 2.7 (when found: `$ABO_PYTHON2`, `python2.7`, `python2`, or a pyenv 2.7):
//!   the very `ConfigParser` the seed used, unadjusted. Only abo's deliberate deviations
//!   are skipped ([`PY2_KNOWN_DIFFERENCES`]).
//!
//! Error kinds are not compared (py2 and py3 name them differently), only whether
//! reading or interpolation failed and, for reading, on which lines.

use abo_config::ini;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A comparison skipped for one corpus file.
#[derive(Debug, Clone, Copy)]
enum Skip {
    /// Whether and where reading fails.
    Errors,
    /// Everything about one option: raw value, presence in `options()`, value.
    Key(&'static str, &'static str),
    /// The interpolated value of one option.
    Value(&'static str, &'static str),
}

/// A known difference between the reference and abo's reader, with its reason.
struct Known {
    file: &'static str,
    skip: Skip,
    reason: &'static str,
}

const PY3_INDENT: &str = "py3 reads an indented line after a section header as an option; \
     py2 reports it (no option to continue) and so does abo";
const PY3_EMPTY_NAME: &str = "py3's option regex accepts an empty name and keeps the option \
     while reporting the line; py2's regex rejects the line";
const PY3_FORMAT: &str = "py3 only knows `%(name)s` and `%%`; py2 applied Python's `%` \
     operator, so widths, `%r`, `%c` and `% %` worked";
const PY3_ROUNDS: &str = "py2 formats the whole value once per round (`%%` in a referenced \
     value stays doubled, `%%(x)s` becomes a reference); py3 expands each reference alone";
const PY3_UNICODE_SPACE: &str = "py3 strips Unicode whitespace (U+00A0, U+2003, U+001F...); \
     py2 read bytes and only stripped ASCII whitespace";

const PY3_KNOWN_DIFFERENCES: &[Known] = &[
    Known {
        file: "21-parse-errors.cfg",
        skip: Skip::Key("s", ""),
        reason: PY3_EMPTY_NAME,
    },
    Known {
        file: "45-separator-in-key-position.cfg",
        skip: Skip::Key("s", ""),
        reason: PY3_EMPTY_NAME,
    },
    Known {
        file: "22-indented-after-header.cfg",
        skip: Skip::Errors,
        reason: PY3_INDENT,
    },
    Known {
        file: "22-indented-after-header.cfg",
        skip: Skip::Key("s", "indented"),
        reason: PY3_INDENT,
    },
    Known {
        file: "28-name-interp.cfg",
        skip: Skip::Value("named", "who"),
        reason: "py3 has no implicit `__name__` option; py2 had the section name there",
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "right"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "left"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "prec"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "repr"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "char"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "pct"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "spacepct"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "long"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "29-format-widths.cfg",
        skip: Skip::Value("s", "keyed_pct"),
        reason: PY3_FORMAT,
    },
    Known {
        file: "30-unicode-space.cfg",
        skip: Skip::Key("s", "nbsp"),
        reason: PY3_UNICODE_SPACE,
    },
    Known {
        file: "30-unicode-space.cfg",
        skip: Skip::Key("s", "sep"),
        reason: PY3_UNICODE_SPACE,
    },
    Known {
        file: "30-unicode-space.cfg",
        skip: Skip::Key("s", "emsp"),
        reason: PY3_UNICODE_SPACE,
    },
    Known {
        file: "31-inline-quirk.cfg",
        skip: Skip::Key("s", "start"),
        reason: "py2 decides whether a `;` at the start of a value opens a comment by looking \
                 at the value's last character (`optval[pos-1]` with pos 0), trailing \
                 whitespace included; py3 has stripped that whitespace before the script \
                 can emulate the rule",
    },
    Known {
        file: "44-interp-percent-refs.cfg",
        skip: Skip::Value("s", "use"),
        reason: PY3_ROUNDS,
    },
    Known {
        file: "44-interp-percent-refs.cfg",
        skip: Skip::Value("s", "use1"),
        reason: PY3_ROUNDS,
    },
    Known {
        file: "44-interp-percent-refs.cfg",
        skip: Skip::Value("s", "escaped_ref"),
        reason: PY3_ROUNDS,
    },
];

/// abo's deliberate deviations from py2 (none in the corpus so far: a `%s` without
/// `(name)` would format py2's mapping object, memory address included; abo reports it).
const PY2_KNOWN_DIFFERENCES: &[Known] = &[];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of the corpus, sorted.
fn corpus() -> Vec<PathBuf> {
    let testdata = crate_dir().join("../../testdata");
    let mut files = Vec::new();
    collect(&crate_dir().join("tests/ini-corpus"), &mut files);
    collect(&testdata.join("upstream"), &mut files);
    collect(&testdata.join("seed-samples"), &mut files);
    files.sort();
    assert!(
        files.len() >= 100,
        "corpus too small ({} files): is testdata/ there?",
        files.len()
    );
    files
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            collect(&path, out);
        } else if name.ends_with(".cfg") || name.ends_with(".cfg.sample") {
            out.push(path);
        }
    }
}

/// Runs the reference script with `python` over `files`.
fn reference(python: &Path, files: &[PathBuf]) -> Map<String, Value> {
    let script = crate_dir().join("tests/ini_reference.py");
    let output = Command::new(python)
        .arg(&script)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{} {} failed:\n{}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Object(map)) => map,
        other => panic!("reference printed no JSON object: {other:?}"),
    }
}

/// What abo's reader sees in `path`, in the shape the script prints, plus the
/// diagnostics.
fn abo_dump(path: &Path) -> (Value, Vec<abo_config::Diagnostic>) {
    let text = std::fs::read_to_string(path).expect("corpus files are UTF-8");
    let (ini, diags) = ini::parse(&path.display().to_string(), &text);
    let own = |entries: &[ini::Entry]| -> Value {
        entries
            .iter()
            .filter(|e| e.key != "__name__")
            .map(|e| json!([e.key, e.value]))
            .collect()
    };
    let value = |section: &str, key: &str| -> Value {
        match ini.get(section, key) {
            Some(Ok(v)) => json!({ "ok": v }),
            Some(Err(d)) => json!({ "err": d.message }),
            None => Value::Null,
        }
    };
    let default_values: Map<String, Value> = ini
        .defaults()
        .iter()
        .map(|e| (e.key.clone(), value("DEFAULT", &e.key)))
        .collect();
    let sections: Vec<Value> = ini
        .sections()
        .iter()
        .map(|s| {
            let options = ini.section_keys(&s.name);
            let values: Map<String, Value> = options
                .iter()
                .map(|k| (k.clone(), value(&s.name, k)))
                .collect();
            json!({ "name": s.name, "own": own(&s.entries), "options": options, "values": values })
        })
        .collect();
    let dump = json!({
        "defaults": own(ini.defaults()),
        "default_values": default_values,
        "sections": sections,
    });
    (dump, diags)
}

/// One comparison and whether abo agreed with the reference.
struct Check {
    what: Aspect,
    ok: bool,
    detail: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Aspect {
    Errors,
    Sections,
    Order(String),
    Own(String, String),
    Value(String, String),
}

impl Skip {
    fn covers(&self, aspect: &Aspect) -> bool {
        match (self, aspect) {
            (Skip::Errors, Aspect::Errors) => true,
            (Skip::Key(s, k), Aspect::Own(s2, k2) | Aspect::Value(s2, k2)) => s == s2 && k == k2,
            (Skip::Value(s, k), Aspect::Value(s2, k2)) => s == s2 && k == k2,
            _ => false,
        }
    }

    /// Keys left out of order comparisons in `section`.
    fn hidden_key(&self, section: &str) -> Option<&'static str> {
        match self {
            Skip::Key(s, k) if *s == section => Some(k),
            _ => None,
        }
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_str().unwrap_or_default().to_string(),
                p[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `{"ok": v}` stays `Ok(v)`; any error is just "an error".
fn outcome(v: Option<&Value>) -> Option<Result<String, ()>> {
    let v = v?;
    if let Some(ok) = v.get("ok") {
        return Some(Ok(ok.as_str().unwrap_or_default().to_string()));
    }
    v.get("err").map(|_| Err(()))
}

/// Compares one section (or DEFAULT) option by option.
fn compare_options(
    checks: &mut Vec<Check>,
    section: &str,
    ours: (&Value, &Value, &Value),
    theirs: (&Value, &Value, &Value),
    skips: &[Skip],
) {
    let hidden: Vec<&str> = skips.iter().filter_map(|s| s.hidden_key(section)).collect();
    let (our_own, their_own) = (pairs(ours.0), pairs(theirs.0));
    let visible = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| !hidden.contains(&k.as_str()))
            .collect()
    };
    let our_order = visible(our_own.iter().map(|p| p.0.clone()).collect());
    let their_order = visible(their_own.iter().map(|p| p.0.clone()).collect());
    checks.push(Check {
        what: Aspect::Order(section.to_string()),
        ok: our_order == their_order,
        detail: format!("[{section}] own options: abo {our_order:?}, reference {their_order:?}"),
    });
    if !ours.1.is_null() || !theirs.1.is_null() {
        let (a, b) = (visible(strings(ours.1)), visible(strings(theirs.1)));
        checks.push(Check {
            what: Aspect::Order(section.to_string()),
            ok: a == b,
            detail: format!("[{section}] options(): abo {a:?}, reference {b:?}"),
        });
    }
    let mut keys: Vec<String> = our_own
        .iter()
        .chain(&their_own)
        .map(|p| p.0.clone())
        .collect();
    for v in [ours.2, theirs.2] {
        keys.extend(v.as_object().into_iter().flat_map(|m| m.keys().cloned()));
    }
    keys.sort();
    keys.dedup();
    for key in keys {
        let a = our_own.iter().find(|p| p.0 == key).map(|p| &p.1);
        let b = their_own.iter().find(|p| p.0 == key).map(|p| &p.1);
        checks.push(Check {
            what: Aspect::Own(section.to_string(), key.clone()),
            ok: a == b,
            detail: format!("[{section}] raw `{key}`: abo {a:?}, reference {b:?}"),
        });
        let a = outcome(ours.2.get(&key));
        let b = outcome(theirs.2.get(&key));
        checks.push(Check {
            what: Aspect::Value(section.to_string(), key.clone()),
            ok: a == b,
            detail: format!("[{section}] get(`{key}`): abo {a:?}, reference {b:?}"),
        });
    }
}

/// All comparisons for one file.
fn compare(
    ours: &Value,
    diags: &[abo_config::Diagnostic],
    theirs: &Value,
    skips: &[Skip],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let lines: Vec<u32> = diags.iter().filter_map(|d| d.line).collect();
    let error = &theirs["error"];
    let (ok, expected) = match error["kind"].as_str() {
        None => (diags.is_empty(), "no error".to_string()),
        Some("MissingSectionHeaderError") => {
            let line = error["line"].as_u64();
            let first = diags.first();
            let ok = first.is_some_and(|d| {
                d.line.map(u64::from) == line
                    && (d.message.contains("section header") || d.message.contains("byte-order"))
            });
            (ok, format!("missing section header at line {line:?}"))
        }
        Some(_) => {
            let want: Vec<u32> = error["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect();
            (lines == want, format!("parsing errors at lines {want:?}"))
        }
    };
    checks.push(Check {
        what: Aspect::Errors,
        ok,
        detail: format!("errors: abo {diags:?}, reference {expected}"),
    });
    if error["kind"] == "MissingSectionHeaderError" {
        return checks; // py2 stopped reading there; abo goes on, nothing left to compare
    }

    let names = |v: &Value| -> Vec<String> {
        v["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (our_names, their_names) = (names(ours), names(theirs));
    checks.push(Check {
        what: Aspect::Sections,
        ok: our_names == their_names,
        detail: format!("sections: abo {our_names:?}, reference {their_names:?}"),
    });
    compare_options(
        &mut checks,
        "DEFAULT",
        (&ours["defaults"], &Value::Null, &ours["default_values"]),
        (&theirs["defaults"], &Value::Null, &theirs["default_values"]),
        skips,
    );
    let find = |v: &Value, name: &str| -> Value {
        v["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for name in their_names.iter().filter(|n| our_names.contains(n)) {
        let (a, b) = (find(ours, name), find(theirs, name));
        compare_options(
            &mut checks,
            name,
            (&a["own"], &a["options"], &a["values"]),
            (&b["own"], &b["options"], &b["values"]),
            skips,
        );
    }
    checks
}

/// Runs the whole corpus against `python`; panics listing every disagreement.
fn differential(python: &Path, known: &[Known]) {
    let files = corpus();
    let results = reference(python, &files);
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in &files {
        let key = path.display().to_string();
        let Some(theirs) = results.get(&key) else {
            failures.push(format!("{key}: no reference result"));
            continue;
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_corpus = path.parent().is_some_and(|p| p.ends_with("ini-corpus"));
        let known_here: Vec<&Known> = known
            .iter()
            .filter(|k| in_corpus && k.file == name)
            .collect();
        let skips: Vec<Skip> = known_here.iter().map(|k| k.skip).collect();
        let (ours, diags) = abo_dump(path);
        let checks = compare(&ours, &diags, theirs, &skips);
        for check in &checks {
            let skipped = skips.iter().any(|s| s.covers(&check.what));
            if !check.ok && !skipped {
                failures.push(format!("{key}: {}", check.detail));
            }
            compared += usize::from(!skipped);
        }
        for k in &known_here {
            let covered: Vec<&Check> = checks.iter().filter(|c| k.skip.covers(&c.what)).collect();
            if covered.iter().all(|c| c.ok) {
                failures.push(format!(
                    "{key}: known difference {:?} ({}) no longer differs: remove it from the list",
                    k.skip, k.reason
                ));
            }
        }
    }
    for k in known {
        if !files
            .iter()
            .any(|f| f.ends_with(Path::new("ini-corpus").join(k.file)))
        {
            failures.push(format!("known difference for missing file {}", k.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with {}:\n{}",
        failures.len(),
        python.display(),
        failures.join("\n")
    );
    eprintln!(
        "{} files, {compared} comparisons agree with {}",
        files.len(),
        python.display()
    );
}

/// Whether `python` runs and can import `module`.
fn usable(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn agrees_with_python3_configparser() {
    let python = PathBuf::from("python3");
    assert!(
        usable(&python, "configparser"),
        "python3 is required by the INI differential test, and could not be run"
    );
    differential(&python, PY3_KNOWN_DIFFERENCES);
}

/// Python 2.7 if this machine has it, looked up in the usual places.
fn find_python2() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("ABO_PYTHON2") {
        candidates.push(p.into());
    }
    candidates.push("python2.7".into());
    candidates.push("python2".into());
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|r| r.join("versions")) {
        if let Ok(entries) = std::fs::read_dir(versions) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
                .map(|e| e.path().join("bin/python"))
                .collect();
            found.sort();
            candidates.extend(found.into_iter().rev());
        }
    }
    candidates.into_iter().find(|p| usable(p, "ConfigParser"))
}

#[test]
fn agrees_with_python2_configparser() {
    match find_python2() {
        Some(python) => differential(&python, PY2_KNOWN_DIFFERENCES),
        None => eprintln!(
            "NOTE: no Python 2.7 found (set ABO_PYTHON2): comparison with the seed's own \
             ConfigParser skipped; the Python 3 comparison still runs"
        ),
    }
}
