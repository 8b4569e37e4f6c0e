//! Property templates: the seed's `WithProperties` strings, rendered at build time.
//!
//! Syntax (Python `%`-formatting with Buildbot's default extension):
//! `%(name)s` the property `name` (an error when unset), `%(name:-default)s` the property,
//! or `default` when it is unset, `%%` a literal `%`. In capability environment mappings
//! `cap(option)` stands for the property `cap_<capability>_<option>` ([`expand_cap`]).

use std::fmt;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `%(name)s` with no default, and no property `name`.
    Missing(String),
    /// A `%` not followed by `%` or `(name)s`; the byte offset.
    Syntax(usize),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Missing(name) => write!(f, "property `{name}` is not set"),
            TemplateError::Syntax(at) => {
                write!(f, "`%` at offset {at} must be `%%` or `%(name)s`")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// Renders `template`, looking properties up with `lookup`.
pub fn render(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            offset += pos + 2;
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix('(') else {
            return Err(TemplateError::Syntax(offset + pos));
        };
        let Some(close) = inner.find(")s") else {
            return Err(TemplateError::Syntax(offset + pos));
        };
        let spec = &inner[..close];
        let value = match spec.split_once(":-") {
            Some((name, default)) => lookup(name).unwrap_or_else(|| default.to_string()),
            None => lookup(spec).ok_or_else(|| TemplateError::Missing(spec.to_string()))?,
        };
        out.push_str(&value);
        let consumed = pos + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a template's syntax without rendering it (every property counts as set).
pub fn check(template: &str) -> Result<(), TemplateError> {
    render(template, |_| Some(String::new())).map(|_| ())
}

/// The part of a template before its first property reference: what is known at
/// configuration time (used to check absolute paths against allowed roots).
pub fn fixed_prefix(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        match rest[pos + 1..].strip_prefix('%') {
            Some(tail) => {
                out.push('%');
                rest = tail;
            }
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Escapes a literal value so that it renders to itself.
pub fn escape(value: &str) -> String {
    value.replace('%', "%%")
}

/// Replaces `cap(option)` with `cap_<capability>_<option>` (AC-F4): the seed's syntax for
/// capability options in environment mappings. The rest of the string is kept verbatim.
pub fn expand_cap(template: &str, capability: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(pos) = rest.find("cap(") {
        let after = &rest[pos + 4..];
        match after.find(')') {
            Some(close)
                if !after[..close].is_empty()
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                out.push_str(&rest[..pos]);
                out.push_str("cap_");
                out.push_str(capability);
                out.push('_');
                out.push_str(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..pos + 4]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Result<&'static str, TemplateError>,
    );

    /// AC-R4, and the forms the plan writes.
    #[test]
    fn renders_like_buildbot() {
        let cases: &[Case] = &[
            ("%(cap_postgresql_port:-5432)s", &[], Ok("5432")),
            (
                "%(cap_postgresql_port:-5432)s",
                &[("cap_postgresql_port", "5434")],
                Ok("5434"),
            ),
            ("%(cap_postgresql_host:-False)s", &[], Ok("False")),
            ("%(pg_version:-)s/main", &[], Ok("/main")),
            (
                "%(pg_version:-)s/main",
                &[("pg_version", "9.1-devel")],
                Ok("9.1-devel/main"),
            ),
            ("%(buildout-tag:-current)s", &[], Ok("current")),
            (
                "%(buildout-tag:-current)s",
                &[("buildout-tag", "1.2")],
                Ok("1.2"),
            ),
            (
                "--logfile=%(workdir)s/build/test.log",
                &[("workdir", "/w/b")],
                Ok("--logfile=/w/b/build/test.log"),
            ),
            ("100%% sure", &[], Ok("100% sure")),
            (
                "%(testing_db)s",
                &[],
                Err(TemplateError::Missing("testing_db".into())),
            ),
            // The seed's test form without a colon is not a default (AC-R4).
            (
                "%(cap_python_bin-)s",
                &[],
                Err(TemplateError::Missing("cap_python_bin-".into())),
            ),
            ("50% off", &[], Err(TemplateError::Syntax(2))),
            ("%(unclosed", &[], Err(TemplateError::Syntax(0))),
            ("", &[], Ok("")),
            ("é%(a)sé", &[("a", "ü")], Ok("éüé")),
        ];
        for (template, pairs, expected) in cases {
            let p = props(pairs);
            let got = render(template, |k| p.get(k).cloned());
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                expected.clone(),
                "{template}"
            );
        }
    }

    #[test]
    fn escape_round_trips() {
        for s in ["", "a%b", "%%", "%(x)s", "plain"] {
            assert_eq!(render(&escape(s), |_| None).unwrap(), s);
        }
    }

    #[test]
    fn cap_placeholders_expand() {
        assert_eq!(expand_cap("%(cap(bin)-)s", "python"), "%(cap_python_bin-)s");
        assert_eq!(
            expand_cap("%(cap(port):-)s", "postgresql"),
            "%(cap_postgresql_port:-)s"
        );
        assert_eq!(
            expand_cap("%(cap(sudo):-TRUE)s", "rabbitmq"),
            "%(cap_rabbitmq_sudo:-TRUE)s"
        );
        assert_eq!(expand_cap("no cap( here", "x"), "no cap( here");
        assert_eq!(
            expand_cap("%(pg_version:-)s/main", "postgresql"),
            "%(pg_version:-)s/main"
        );
    }
}
