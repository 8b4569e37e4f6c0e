//! Property tests of the INI reader: whatever the text, `parse`, `get` and friends never
//! panic, and every line number they give points into the text.

use abo_config::ini::{self, Ini};
use proptest::prelude::*;

/// Number of lines as Python's universal newlines count them (`\n`, `\r\n`, `\r`), a
/// final terminator opening no extra line. Counted here independently of the reader.
fn line_count(text: &str) -> u32 {
    let mut count = 0u32;
    let mut chars = text.chars().peekable();
    let mut open = false;
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                count += 1;
                open = false;
            }
            '\n' => {
                count += 1;
                open = false;
            }
            _ => open = true,
        }
    }
    count + u32::from(open)
}

/// Reads `text` and exercises the whole API, checking every line number.
fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = line_count(text);
    let in_range = |line: u32| (1..=lines).contains(&line);
    let (ini, diags) = ini::parse("p.cfg", text);
    for d in &diags {
        let line = d.line.unwrap_or(0);
        prop_assert!(in_range(line), "diagnostic line {line} of {lines}: {d}");
    }
    for d in ini.duplicate_warnings() {
        prop_assert!(in_range(d.line.unwrap_or(0)), "duplicate at {d}");
    }
    check_entries(&ini, lines)?;
    let mut names: Vec<String> = ini.sections().iter().map(|s| s.name.clone()).collect();
    names.push("DEFAULT".into());
    for name in &names {
        let mut keys = ini.section_keys(name);
        keys.push("__name__".into());
        keys.push("absent".into());
        for key in &keys {
            let raw = ini.raw(name, key).map(|e| e.value.clone());
            match ini.get(name, key) {
                Some(Ok(value)) => {
                    if let Some(raw) = raw.filter(|r| !r.contains("%(")) {
                        prop_assert_eq!(value, raw, "a value without `%(` is returned as written");
                    }
                }
                Some(Err(d)) => {
                    let line = d.line.unwrap_or(0);
                    prop_assert!(in_range(line), "interpolation error line {line}: {d}");
                }
                None => prop_assert!(raw.is_none() || key == "__name__"),
            }
        }
    }
    Ok(())
}

/// Entries and sections point into the text, and value lines match the value.
fn check_entries(ini: &Ini, lines: u32) -> Result<(), TestCaseError> {
    let in_range = |line: u32| (1..=lines).contains(&line);
    let sections = ini.sections().iter().map(|s| (Some(s.line), &s.entries));
    for (header, entries) in sections.chain(std::iter::once((ini.default_line, &ini.defaults))) {
        prop_assert!(
            header.iter().all(|&l| in_range(l)),
            "header line {:?}",
            header
        );
        prop_assert!(header.is_some() || entries.is_empty());
        for e in entries {
            prop_assert_eq!(e.lines.len(), e.value.split('\n').count(), "{:?}", e);
            prop_assert_eq!(e.lines.first(), Some(&e.line));
            prop_assert!(e.lines.windows(2).all(|w| w[0] < w[1]), "{:?}", e);
            prop_assert!(e.lines.iter().all(|&l| in_range(l)), "{:?}", e);
            prop_assert_eq!(e.key.to_ascii_lowercase(), e.key.clone());
        }
    }
    Ok(())
}

/// Pieces INI files are made of, and pieces that confuse readers.
const FRAGMENTS: &[&str] = &[
    "[", "]", "=", ":", "%(", ")s", "%", "%%", "(", ")", "s", "\n", "\n", "\n", "\r\n", "\r", "\t",
    " ", "  ", "#", ";", " ;", "a", "Key", "x", "DEFAULT", "__name__", "rem", "REM ", "\"\"", "é",
    "\u{a0}", "\u{feff}", "\u{b}", "\u{c}", "$(", "5", ".", "-",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..120).prop_map(|v| v.concat())
}

/// Line-shaped pieces, more likely to build real sections, options and references.
fn ini_lines() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[s]".to_string()),
        Just("[DEFAULT]".to_string()),
        "\\[[a-cS ]{0,3}\\]?",
        "[a-cA-C]{1,2} ?[=:] ?([a-c%()s;# ]|%\\([a-cA-C_]{0,3}\\)s){0,6}",
        "[ \t]{1,2}[a-c%()s;# ]{0,6}",
        "(#|;|rem |REM)[a-c ]{0,4}",
        Just(String::new()),
    ];
    (
        prop::collection::vec(line, 0..25),
        prop::sample::select(&["\n", "\r\n", "\r"][..]),
    )
        .prop_map(|(lines, end)| lines.join(end))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn ini_fragments(text in fragments()) {
        check(&text)?;
    }

    #[test]
    fn ini_shaped_lines(text in ini_lines()) {
        check(&text)?;
    }
}

#[test]
fn line_count_counts_like_universal_newlines() {
    for (text, n) in [
        ("", 0),
        ("a", 1),
        ("a\n", 1),
        ("a\r\nb", 2),
        ("\r\r\n\n", 3),
        ("\n\nx", 3),
    ] {
        assert_eq!(line_count(text), n, "{text:?}");
        assert_eq!(ini::split_lines(text).count() as u32, n, "{text:?}");
    }
}
