//! Version filters: the seed's doctests and the cases of `semantics-0.9.md` §8 and AC-E1.

use abo_plan::version::{meets_all, Filter, Op, Requirement, Version, VersionError, VersionFilter};
use proptest::prelude::*;
use std::cmp::Ordering;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn req(line: &str) -> Requirement {
    Requirement::parse(line).unwrap()
}

/// Every comparison between `a` and `b`: `[<, >, ==, >=, <=]`.
fn comparisons(a: &Version, b: &Version) -> [bool; 5] {
    [a < b, a > b, a == b, a >= b, a <= b]
}

#[test]
fn version_comparisons() {
    // (a, b, [a < b, a > b, a == b, a >= b, a <= b])
    let cases = [
        ("9.1", "8.4", [false, true, false, true, false]),
        ("9.1", "9.1", [false, false, true, true, true]),
        ("9.2-devel", "9.2", [true, false, false, false, true]),
        ("9.2-devel", "9.2-devel", [false, false, true, true, true]),
        ("9.1", "9.2-devel", [true, false, false, false, true]),
        ("9.1-devel", "9.1", [true, false, false, false, true]),
        ("9.3-devel", "9.3", [true, false, false, false, true]),
        // Any other suffix is incomparable with the same numbers.
        ("8.4-special", "8.4", [false, false, false, false, false]),
        ("8.4", "8.4-special", [false, false, false, false, false]),
        (
            "8.4-special",
            "8.4-patched",
            [false, false, false, false, false],
        ),
        (
            "9.2-special",
            "9.2-devel",
            [false, false, false, false, false],
        ),
        // Tuple comparison: a prefix is lower.
        ("1.8", "1.8.0", [true, false, false, false, true]),
        ("1.10", "1.9", [false, true, false, true, false]),
        // Different numbers: suffixes do not matter.
        (
            "9.3-devel",
            "9.2-special",
            [false, true, false, true, false],
        ),
        // Equality is numeric, not textual.
        ("09.1", "9.1", [false, false, true, true, true]),
    ];
    for (a, b, [lt, gt, eq, ge, le]) in cases {
        assert_eq!(
            comparisons(&v(a), &v(b)),
            [lt, gt, eq, ge, le],
            "{a} vs {b}"
        );
        // The same facts seen from the other side.
        assert_eq!(
            comparisons(&v(b), &v(a)),
            [gt, lt, eq, le, ge],
            "{b} vs {a}"
        );
    }
}

#[test]
fn version_display_round_trips() {
    for text in [
        "9.1",
        "9.2-devel",
        "8.4-special",
        "1.8.0",
        "09.1",
        "6.6.6-any",
    ] {
        assert_eq!(v(text).to_string(), text);
        assert_eq!(v(&v(text).to_string()), v(text));
    }
}

#[test]
fn filter_matching() {
    // The seed's doctests, and a few more.
    let cases = [
        ("pg >= 9.1 < 9.3", "9.2", true),
        ("pg >= 9.1 < 9.3", "8.4", false),
        ("pg >= 9.1 < 9.3", "9.3-devel", true),
        ("pg >= 9.1 < 9.3", "9.3", false),
        ("pg >= 9.2-devel OR == 8.4-special", "9.2", true),
        ("pg >= 9.2-devel OR == 8.4-special", "9.1", false),
        ("pg >= 9.2-devel OR == 8.4-special", "8.4-special", true),
        ("rabbitmq", "6.6.6-any", true),
        ("pg == 8.4", "8.4-special", false),
        ("pg >= 8.4", "8.4-special", false),
        ("pg <= 9.2 > 8.4 OR == 8.4-patched", "9.0", true),
        ("pg <= 9.2 > 8.4 OR == 8.4-patched", "8.4", false),
        ("pg <= 9.2 > 8.4 OR == 8.4-patched", "8.4-patched", true),
        ("pg <= 9.2 > 8.4 OR == 8.4-patched", "9.3", false),
        ("pg == 9.0 OR == 9.1 OR == 9.2", "9.1", true),
        ("pg == 9.0 OR == 9.1 OR == 9.2", "9.3", false),
        ("pg not-used", "9.3", true),
    ];
    for (line, version, expected) in cases {
        assert_eq!(
            req(line).matches(Some(&v(version))),
            expected,
            "{line} on {version}"
        );
    }
}

#[test]
fn parse_trees() {
    let cases = [
        (
            "postgresql <= 9.2 > 8.4 OR == 8.4-patched",
            "OR(AND(<= 9.2, > 8.4), == 8.4-patched)",
        ),
        ("pg >= 9.1", ">= 9.1"),
        ("pg >= 9.1 < 9.3", "AND(>= 9.1, < 9.3)"),
        (
            "pg == 9.0 OR == 9.1 OR >= 9.2 < 10",
            "OR(== 9.0, == 9.1, AND(>= 9.2, < 10))",
        ),
    ];
    for (line, tree) in cases {
        let Filter::Versions(vf) = req(line).filter else {
            panic!("{line}: not a version filter");
        };
        assert_eq!(vf.tree(), tree, "{line}");
    }

    // The doctest's structural comparison.
    let r = req("postgresql <= 9.2 > 8.4 OR == 8.4-patched");
    assert_eq!(r.capability, "postgresql");
    let Filter::Versions(vf) = &r.filter else {
        panic!("not a version filter");
    };
    let shape: Vec<Vec<(Op, Version)>> = vf
        .alternatives()
        .iter()
        .map(|all| all.iter().map(|c| (c.op, c.version.clone())).collect())
        .collect();
    assert_eq!(
        shape,
        vec![
            vec![(Op::Le, v("9.2")), (Op::Gt, v("8.4"))],
            vec![(Op::Eq, v("8.4-patched"))],
        ]
    );
}

#[test]
fn requirement_forms() {
    assert_eq!(req("rabbitmq").filter, Filter::Any);
    // 0.9 rejected `not-used` (it came in 2014-11); abo accepts it as later upstream did.
    let not_used = req("postgresql not-used");
    assert_eq!(not_used.filter, Filter::NotUsed);
    assert!(not_used.is_not_used());
    assert!(!req("postgresql >= 9.1").is_not_used());
    // Display: the line as it would be written, blanks normalised.
    for (line, shown) in [
        ("postgresql   >=  9.1 \t< 9.3", "postgresql >= 9.1 < 9.3"),
        (
            "pg >= 9.2-devel OR == 8.4-special",
            "pg >= 9.2-devel OR == 8.4-special",
        ),
        (" rabbitmq ", "rabbitmq"),
        ("postgresql not-used", "postgresql not-used"),
    ] {
        assert_eq!(req(line).to_string(), shown);
        assert_eq!(req(shown), req(line));
    }
    assert_eq!(
        VersionFilter::parse(">= 9.1 OR == 8.4")
            .unwrap()
            .to_string(),
        ">= 9.1 OR == 8.4"
    );
}

#[test]
fn parse_errors() {
    // (line, error, message, help)
    let cases = [
        (
            "pg 8.4",
            VersionError::NotEnoughTokens { text: "8.4".into() },
            "'8.4': Not enough tokens. Missing operator?",
            "put an operator before each version: write `pg == 8.4`",
        ),
        (
            "pg >= 9.1 8.4",
            VersionError::NotEnoughTokens { text: "8.4".into() },
            "'8.4': Not enough tokens. Missing operator?",
            "put an operator before each version: write `pg >= 9.1 == 8.4`",
        ),
        (
            "postgresql >=9.1",
            VersionError::NotEnoughTokens {
                text: ">=9.1".into(),
            },
            "'>=9.1': Not enough tokens. Missing operator?",
            "separate the operator from the version: write `postgresql >= 9.1`",
        ),
        (
            "pg >=",
            VersionError::NotEnoughTokens { text: ">=".into() },
            "'>=': Not enough tokens. Missing operator?",
            "write a version after `>=`, e.g. `pg >= 9.1`",
        ),
        (
            "pg >= 9.1 OR",
            VersionError::NotEnoughTokens { text: "".into() },
            "'': Not enough tokens. Missing operator?",
            "write criteria on both sides of `OR`, e.g. `pg >= 9.1 OR == 8.4`",
        ),
        (
            "pg == 9.1-devel-x",
            VersionError::TooManyDashes {
                text: "9.1-devel-x".into(),
            },
            "'9.1-devel-x': Not enough tokens for a version filter. Missing operator?",
            "a version is integers separated by dots with an optional `-suffix`, e.g. `9.1` or `9.2-devel`",
        ),
        (
            "pg == nine",
            VersionError::NotAnInteger {
                text: "nine".into(),
                part: "nine".into(),
            },
            "'nine': invalid literal for int() with base 10: 'nine'",
            "a version is integers separated by dots with an optional `-suffix`, e.g. `9.1` or `9.2-devel`",
        ),
        (
            "pg != 9.1",
            VersionError::UnknownOperator { op: "!=".into() },
            "'!=': unknown operator",
            "operators are `>=`, `<=`, `>`, `<` and `==`",
        ),
        (
            "pg >= 9 or == 8",
            VersionError::UnknownOperator { op: "or".into() },
            "'or': unknown operator",
            "write `OR` in upper case",
        ),
        (
            "postgresql not-used OR == 8.4",
            VersionError::NotUsedNotAlone,
            "'not-used' must be the only criterion",
            "write `postgresql not-used` alone",
        ),
        (
            "",
            VersionError::MissingCapability,
            "missing capability name",
            "start with a capability name, e.g. `postgresql >= 9.1`",
        ),
        (
            ">= 9.1",
            VersionError::MissingCapability,
            "missing capability name",
            "start with a capability name, e.g. `postgresql >= 9.1`",
        ),
    ];
    for (line, error, message, help) in cases {
        let err = Requirement::parse(line).unwrap_err();
        assert_eq!(err.error, error, "{line:?}");
        assert_eq!(err.to_string(), message, "{line:?}");
        assert_eq!(err.help(), help, "{line:?}");
    }
}

#[test]
fn ac_e1_build_for_without_operator() {
    let err = Requirement::parse("postgresql 9.1").unwrap_err();
    // 0.9: VersionParseError('9.1', 'Not enough tokens. Missing operator?')
    assert_eq!(
        err.error,
        VersionError::NotEnoughTokens { text: "9.1".into() }
    );
    let d = err.to_diagnostic("buildouts/MANIFEST.cfg", 7, "build-for");
    assert_eq!(
        d.to_string(),
        "buildouts/MANIFEST.cfg:7: build-for: `postgresql 9.1`: '9.1': Not enough tokens. \
         Missing operator?, put an operator before each version: write `postgresql == 9.1`"
    );
}

#[test]
fn requirements_against_a_worker() {
    // The worker of §8: {postgresql 9.0, rabbitmq 2.8.4, selenium}.
    let worker: &[(&str, Option<&str>)] = &[
        ("postgresql", Some("9.0")),
        ("rabbitmq", Some("2.8.4")),
        ("selenium", None),
    ];
    let parsed: Vec<(&str, Option<Version>)> =
        worker.iter().map(|(n, ver)| (*n, ver.map(v))).collect();
    let cases: &[(&[&str], bool)] = &[
        (&[], true),
        (&["rabbitmq"], true),
        (&["rabbitmq >= 2.0"], true),
        (&["rabbitmq == 1.8"], false),
        (&["private-code-access"], false),
        // 0.9 recursed forever here; abo: a version criterion is not met by a capability
        // declared without a version.
        (&["selenium >= 1.0"], false),
        (&["selenium"], true),
        (&["postgresql >= 9.1"], false),
        (&["postgresql < 9.1"], true),
        (&["postgresql not-used"], true),
        (&["rabbitmq", "postgresql == 9.0"], true),
        (&["rabbitmq", "postgresql == 9.1"], false),
    ];
    for (lines, expected) in cases {
        let reqs: Vec<Requirement> = lines.iter().map(|l| req(l)).collect();
        assert_eq!(meets_all(worker, &reqs), *expected, "{lines:?} (text)");
        assert_eq!(meets_all(&parsed, &reqs), *expected, "{lines:?} (parsed)");
    }
}

#[test]
fn several_versions_of_a_capability() {
    let worker = [
        ("postgresql", Some("8.4")),
        ("postgresql", Some("9.2")),
        ("postgresql", None),
        ("tool", Some("latest")),
    ];
    for (line, expected) in [
        ("postgresql >= 9.0", true),
        ("postgresql < 8.4", false),
        ("postgresql", true),
        // `not-used` is met even without the capability: it asks for nothing.
        ("absent not-used", true),
        // A version that does not parse counts as no version: the name is met, no criterion.
        ("tool", true),
        ("tool >= 1", false),
    ] {
        assert_eq!(req(line).is_met_by(&worker), expected, "{line}");
    }
}

/// Tokens of the requirement language, for strings close to valid ones.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(">=".to_string()),
        Just("<".to_string()),
        Just("==".to_string()),
        Just("OR".to_string()),
        Just("not-used".to_string()),
        Just("pg".to_string()),
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(-[a-z]{0,5}){0,2}",
        "[ -~]{0,4}",
    ]
}

fn version_text() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-(devel|special|a)){0,1}"
}

proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC*") {
        let _ = Version::parse(&s);
        let _ = VersionFilter::parse(&s);
        if let Err(e) = Requirement::parse(&s) {
            let _ = e.help();
            let _ = e.to_diagnostic("f", 1, "build-for");
        }
    }

    #[test]
    fn near_valid_lines_never_panic_and_round_trip(tokens in prop::collection::vec(token(), 0..8)) {
        let line = tokens.join(" ");
        match Requirement::parse(&line) {
            Ok(r) => prop_assert_eq!(Requirement::parse(&r.to_string()).unwrap(), r),
            Err(e) => {
                let _ = e.help();
            }
        }
    }

    #[test]
    fn order_is_consistent(a in version_text(), b in version_text()) {
        let (a, b) = (v(&a), v(&b));
        let ab = a.partial_cmp(&b);
        prop_assert_eq!(ab.map(Ordering::reverse), b.partial_cmp(&a));
        prop_assert_eq!(ab == Some(Ordering::Equal), a == b);
        // Incomparable means none of `<`, `>`, `==` holds.
        prop_assert_eq!(ab.is_none(), ![a < b, a > b, a == b].contains(&true));
    }
}
