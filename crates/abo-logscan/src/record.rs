//! Recognising the first line of a log record (its prefix: level, database, logger) in every
//! OpenERP/Odoo logging format, so that the modern rules match on records rather than on
//! whatever text happens to sit in a traceback.
//!
//! A line that does not start with a known prefix continues the previous record (traceback,
//! multi-line message) and never starts a match of its own for the modern rules.

use regex::Regex;
use std::borrow::Cow;
use std::sync::OnceLock;

/// The parsed prefix of a record's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHead<'a> {
    /// `ERROR`, `INFO`, `TEST`, … as printed (colour codes removed).
    pub level: &'a str,
    /// The logger name (`odoo.addons.mymod.tests.test_x`).
    pub logger: &'a str,
    /// The first line of the message.
    pub message: &'a str,
}

impl RecordHead<'_> {
    /// A `*.tests.*` logger: a test module (`openerp.addons.m.tests.t`, `odoo.addons.m.tests`)
    /// or the 6.0 `tests.<module>` channel.
    pub fn is_test_logger(&self) -> bool {
        self.logger.split('.').any(|part| part == "tests")
    }
}

/// 6.1 → 18: `2015-03-19 13:25:03,314 23693 ERROR db logger: message`. Fields are separated by
/// runs of whitespace to tolerate aligned copies; the database may be missing (empty
/// `dbname`); the logger stops at the first colon.
const MODERN_PREFIX: &str = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}\s+\d+\s+([A-Z][A-Z_]*)\s+(?:\S+\s+)??([^\s:]+):(?:\s(.*))?$";

/// 4.2/5.0 and 6.0: `[date] LEVEL:logger:message` and `[date][db] LEVEL:logger:message`.
const OLD_PREFIX: &str = r"^\[[^\]]*\](?:\[[^\]]*\])? ([A-Z][A-Z_]*):([^:\s]*):(.*)$";

fn modern_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // The pattern is a constant; a unit test proves it compiles.
    RE.get_or_init(|| Regex::new(MODERN_PREFIX).expect("constant regex"))
}

fn old_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // The pattern is a constant; a unit test proves it compiles.
    RE.get_or_init(|| Regex::new(OLD_PREFIX).expect("constant regex"))
}

/// Parses the prefix of `line` (already stripped of colour codes and of its line ending).
pub(crate) fn parse_head(line: &str) -> Option<RecordHead<'_>> {
    for re in [modern_prefix(), old_prefix()] {
        if let Some(caps) = re.captures(line) {
            let level = caps.get(1)?.as_str();
            let logger = caps.get(2)?.as_str();
            let message = caps.get(3).map_or("", |m| m.as_str());
            return Some(RecordHead {
                level,
                logger,
                message,
            });
        }
    }
    None
}

/// Removes ANSI SGR/CSI sequences (`ESC [ params final`), which Odoo's ColoredFormatter wraps
/// around the level name when logging to a terminal.
pub(crate) fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find('\x1b') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match csi_len(after) {
            Some(len) => rest = &after[len..],
            None => {
                // A lone ESC: keep it, it is not ours to interpret.
                out.push('\x1b');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Length of a CSI sequence body after the ESC (`[`, parameter bytes, one final byte), if
/// `s` starts with one.
fn csi_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let mut i = 1;
    // Parameter and intermediate bytes (0x20–0x3F), then the final byte (0x40–0x7E).
    while i < bytes.len() && (0x20..=0x3f).contains(&bytes[i]) {
        i += 1;
    }
    match bytes.get(i) {
        Some(b) if (0x40..=0x7e).contains(b) => Some(i + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(line: &str) -> Option<(String, String, String)> {
        parse_head(line).map(|h| (h.level.into(), h.logger.into(), h.message.into()))
    }

    fn h(level: &str, logger: &str, message: &str) -> Option<(String, String, String)> {
        Some((level.into(), logger.into(), message.into()))
    }

    #[test]
    fn modern_prefix_forms() {
        assert_eq!(
            head(
                "2015-03-19 13:25:03,314 23693 ERROR testdb openerp.modules.loading: At least one"
            ),
            h("ERROR", "openerp.modules.loading", "At least one")
        );
        assert_eq!(
            head("2024-05-02 10:00:00,000 100 INFO ? odoo.modules.loading: a: b: c "),
            h("INFO", "odoo.modules.loading", "a: b: c ")
        );
        // Empty database name leaves two spaces.
        assert_eq!(
            head("2024-05-02 10:00:00,000 100 WARNING  odoo.x: m"),
            h("WARNING", "odoo.x", "m")
        );
        // Aligned level column.
        assert_eq!(
            head("2015-03-19 13:25:03,314 23693 INFO  db openerp.modules.module: Ran 2 tests"),
            h("INFO", "openerp.modules.module", "Ran 2 tests")
        );
        assert_eq!(
            head("2012-03-01 09:00:01,100 4242 TEST testdb openerp.modules.module:"),
            h("TEST", "openerp.modules.module", "")
        );
    }

    #[test]
    fn old_prefix_forms() {
        assert_eq!(
            head("[2011-06-10 10:00:03,789][testdb] ERROR:tests.sale:Assertion \"x\" FAILED"),
            h("ERROR", "tests.sale", "Assertion \"x\" FAILED")
        );
        assert_eq!(
            head("[Mon Jun 10 10:00:01 2011] INFO:init:module sale: loading"),
            h("INFO", "init", "module sale: loading")
        );
    }

    #[test]
    fn continuation_lines_are_not_records() {
        for line in [
            "Traceback (most recent call last):",
            "  File \"/srv/x.py\", line 10, in test_y",
            "AssertionError: 1 != 2",
            "FAIL: test_x (odoo.addons.m.tests.t.T)",
            "",
            "test: state == 'manual'",
        ] {
            assert_eq!(parse_head(line), None, "{line}");
        }
    }

    #[test]
    fn ansi_codes_are_removed() {
        let line =
            "2024-05-02 10:00:00,100 100 \x1b[1;31m\x1b[1;49mERROR\x1b[0m testdb odoo.x: FAIL: T.t";
        let clean = strip_ansi(line);
        assert_eq!(
            clean,
            "2024-05-02 10:00:00,100 100 ERROR testdb odoo.x: FAIL: T.t"
        );
        assert_eq!(head(&clean), h("ERROR", "odoo.x", "FAIL: T.t"));
        assert_eq!(strip_ansi("a\x1bb\x1b[1;3"), "a\x1bb\x1b[1;3");
        assert!(matches!(strip_ansi("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn test_loggers() {
        let is_test = |logger| {
            RecordHead {
                level: "ERROR",
                logger,
                message: "",
            }
            .is_test_logger()
        };
        assert!(is_test("odoo.addons.m.tests.test_x"));
        assert!(is_test("openerp.addons.m.tests"));
        assert!(is_test("tests.sale"));
        assert!(!is_test("odoo.addons.m.testsuite"));
        assert!(!is_test("odoo.modules.loading"));
    }
}
