//! Versions and version filters: the capability versions workers declare, and the
//! `build-for` / `build-requires` lines of manifests that select them.
//!
//! - [`Version`]: dot-separated integers with an optional `-suffix` (`9.2`, `9.2-devel`,
//!   `8.4-special`), ordered as the seed ordered them: partially.
//! - [`VersionFilter`]: `OP VERSION` criteria, ANDed when written side by side, with an
//!   upper-case `OR` of lower precedence (`>= 9.1 < 9.3 OR == 8.4-special`).
//! - [`Requirement`]: a capability name with a [`Filter`]: any version, a [`VersionFilter`],
//!   or `not-used` (a `build-for` saying the capability does not dispatch).
//!
//! Parse errors are [`VersionError`]s carrying the seed's messages; [`RequirementError`]
//! adds the line and turns into a [`Diagnostic`] telling what would be right.
//!
//! Deliberate difference with 0.9: a version criterion never matches a capability declared
//! without a version (0.9 recursed forever comparing `None` with a version).

use abo_config::Diagnostic;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::num::IntErrorKind;
use std::str::FromStr;

/// Python 2's `repr()` of a byte string, so that messages quote values as the seed did
/// (`'8.4'`, `['hg', 'URL']`).
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ if b == quote as u8 => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

/// A version: dot-separated integers and an optional suffix after a single `-`.
///
/// Comparisons follow the seed exactly:
/// - different numbers compare as tuples (`9.1 < 9.2`, `1.8 < 1.8.0`), whatever the suffixes;
/// - same numbers: equal when the suffixes are equal; a `devel` suffix is lower than no
///   suffix (`9.2-devel < 9.2`); any other pair of suffixes is incomparable
///   (`8.4-special` is neither `<`, `>`, `==` nor `>=` than `8.4`).
///
/// Equality ignores how the text was written (`09.1 == 9.1`); [`fmt::Display`] gives the text
/// back as written.
#[derive(Debug, Clone)]
pub struct Version {
    numbers: Vec<u64>,
    suffix: Option<String>,
    text: String,
}

/// The one suffix the seed ranks: below the same numbers without a suffix.
const DEVEL: &str = "devel";

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        // The seed splits on every dash, so a second dash is an error, not part of the suffix.
        let mut dashes = text.split('-');
        let numeric = dashes.next().unwrap_or_default();
        let suffix = dashes.next().map(str::to_string);
        if dashes.next().is_some() {
            return Err(VersionError::TooManyDashes {
                text: text.to_string(),
            });
        }
        let numbers = numeric
            .split('.')
            .map(|part| parse_int(part, text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version {
            numbers,
            suffix,
            text: text.to_string(),
        })
    }

    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    pub fn suffix(&self) -> Option<&str> {
        self.suffix.as_deref()
    }

    /// The text the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One dot-separated part, read as Python's `int()` did (surrounding blanks and a `+` allowed).
fn parse_int(part: &str, text: &str) -> Result<u64, VersionError> {
    part.trim().parse::<u64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow => VersionError::TooLarge {
            text: text.to_string(),
        },
        _ => VersionError::NotAnInteger {
            text: text.to_string(),
            part: part.to_string(),
        },
    })
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.numbers == other.numbers && self.suffix == other.suffix
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.numbers != other.numbers {
            // Vec ordering is lexicographic with a shorter prefix first, like Python tuples.
            return Some(self.numbers.cmp(&other.numbers));
        }
        match (self.suffix(), other.suffix()) {
            (a, b) if a == b => Some(Ordering::Equal),
            (None, Some(DEVEL)) => Some(Ordering::Greater),
            (Some(DEVEL), None) => Some(Ordering::Less),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

/// A comparison operator of a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Ge, Op::Le, Op::Gt, Op::Lt, Op::Eq];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Eq => "==",
        }
    }

    pub fn parse(token: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == token)
    }

    /// `version OP bound`, with the partial order of [`Version`]: an incomparable pair
    /// satisfies no operator.
    pub fn holds(self, version: &Version, bound: &Version) -> bool {
        match self {
            Op::Ge => version >= bound,
            Op::Le => version <= bound,
            Op::Gt => version > bound,
            Op::Lt => version < bound,
            Op::Eq => version == bound,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `OP VERSION` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub op: Op,
    pub version: Version,
}

impl Criterion {
    pub fn matches(&self, version: &Version) -> bool {
        self.op.holds(version, &self.version)
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.version)
    }
}

/// The word that separates alternatives; upper-case only, as in the seed.
const OR: &str = "OR";
/// The criteria that say a capability does not matter (later upstream, accepted by abo).
pub const NOT_USED: &str = "not-used";

/// Criteria on a version: an OR of ANDs of [`Criterion`]s, never empty.
///
/// The seed built a right-nested binary tree (`a b OR c` is `OR(AND(a, b), c)`); a flat
/// list of alternatives has the same meaning and is easier to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFilter {
    /// Alternatives (ORed), each a non-empty list of criteria (ANDed).
    any_of: Vec<Vec<Criterion>>,
}

impl VersionFilter {
    /// Parses criteria such as `>= 9.1 < 9.3 OR == 8.4-special` (no capability name).
    /// Tokens are separated by blanks.
    pub fn parse(criteria: &str) -> Result<VersionFilter, VersionError> {
        let tokens: Vec<&str> = criteria.split_whitespace().collect();
        VersionFilter::from_tokens(&tokens)
    }

    fn from_tokens(tokens: &[&str]) -> Result<VersionFilter, VersionError> {
        if tokens.contains(&NOT_USED) {
            return Err(VersionError::NotUsedNotAlone);
        }
        let any_of = tokens
            .split(|t| *t == OR)
            .map(parse_conjunction)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VersionFilter { any_of })
    }

    /// The alternatives: the filter matches when every criterion of one of them does.
    pub fn alternatives(&self) -> &[Vec<Criterion>] {
        &self.any_of
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(version)))
    }

    /// The parse tree, as the seed's doctest spelled it: `OR(AND(<= 9.2, > 8.4), == 8.4-patched)`.
    /// Single-element ANDs and ORs are shown bare; longer ones flat (`AND(a, b, c)`).
    pub fn tree(&self) -> String {
        fn node(name: &str, items: Vec<String>) -> String {
            if items.len() == 1 {
                items.into_iter().next().unwrap_or_default()
            } else {
                format!("{name}({})", items.join(", "))
            }
        }
        let ors = self
            .any_of
            .iter()
            .map(|all| node("AND", all.iter().map(Criterion::to_string).collect()))
            .collect();
        node("OR", ors)
    }
}

/// One alternative: `OP VERSION` pairs side by side.
fn parse_conjunction(tokens: &[&str]) -> Result<Vec<Criterion>, VersionError> {
    if tokens.is_empty() {
        // Nothing on one side of an `OR`: the seed reported the empty remainder.
        return Err(VersionError::NotEnoughTokens {
            text: String::new(),
        });
    }
    tokens
        .chunks(2)
        .map(|pair| {
            let op_token = pair[0];
            let Some(op) = Op::parse(op_token) else {
                return Err(if looks_like_version_criterion(op_token) {
                    VersionError::NotEnoughTokens {
                        text: op_token.to_string(),
                    }
                } else {
                    VersionError::UnknownOperator {
                        op: op_token.to_string(),
                    }
                });
            };
            let Some(version) = pair.get(1) else {
                return Err(VersionError::NotEnoughTokens {
                    text: op_token.to_string(),
                });
            };
            Ok(Criterion {
                op,
                version: Version::parse(version)?,
            })
        })
        .collect()
}

/// A token where an operator was expected that is a version (`8.4`) or an operator glued to
/// a version (`>=9.1`): the seed's "Missing operator?" case.
fn looks_like_version_criterion(token: &str) -> bool {
    Version::parse(token).is_ok() || split_glued(token).is_some()
}

/// `>=9.1` → (`>=`, `9.1`).
fn split_glued(token: &str) -> Option<(Op, &str)> {
    // Two-character operators first, so that `>=9.1` is not read as `>` `=9.1`.
    let mut ops = Op::ALL;
    ops.sort_by_key(|op| std::cmp::Reverse(op.as_str().len()));
    ops.into_iter().find_map(|op| {
        let rest = token.strip_prefix(op.as_str())?;
        Version::parse(rest).ok().map(|_| (op, rest))
    })
}

impl fmt::Display for VersionFilter {
    /// The criteria as they would be written: `>= 9.1 < 9.3 OR == 8.4-special`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, all) in self.any_of.iter().enumerate() {
            if i > 0 {
                f.write_str(" OR ")?;
            }
            for (j, c) in all.iter().enumerate() {
                if j > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for VersionFilter {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionFilter::parse(s)
    }
}

/// What a requirement asks of the capability's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The capability name alone: any version, or none.
    Any,
    /// Versions matching these criteria.
    Versions(VersionFilter),
    /// `not-used`: the capability does not matter (a `build-for` that does not dispatch).
    NotUsed,
}

/// A `build-for` / `build-requires` line: `postgresql >= 9.1 < 9.3 OR == 8.4-special`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub capability: String,
    pub filter: Filter,
}

impl Requirement {
    pub fn parse(line: &str) -> Result<Requirement, RequirementError> {
        let err = |error| RequirementError {
            line: line.trim().to_string(),
            error,
        };
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some((&capability, criteria)) = tokens.split_first() else {
            return Err(err(VersionError::MissingCapability));
        };
        // A line starting with an operator forgot its capability; taking `>=` as a
        // capability name would only fail later, obscurely.
        if Op::parse(capability).is_some() || capability == OR || capability == NOT_USED {
            return Err(err(VersionError::MissingCapability));
        }
        let filter = match criteria {
            [] => Filter::Any,
            [NOT_USED] => Filter::NotUsed,
            _ => Filter::Versions(VersionFilter::from_tokens(criteria).map_err(err)?),
        };
        Ok(Requirement {
            capability: capability.to_string(),
            filter,
        })
    }

    /// Whether a capability declared with this version (or none) satisfies the requirement.
    /// A version criterion against a capability declared without a version does not match
    /// (0.9 recursed forever there).
    pub fn matches(&self, version: Option<&Version>) -> bool {
        match &self.filter {
            Filter::Any | Filter::NotUsed => true,
            Filter::Versions(vf) => version.is_some_and(|v| vf.matches(v)),
        }
    }

    /// `postgresql not-used`: the capability does not dispatch.
    pub fn is_not_used(&self) -> bool {
        self.filter == Filter::NotUsed
    }

    /// Whether a worker's capabilities — `(name, version)` pairs, one per declared line, the
    /// version parsed or as text — meet the requirement: one line of that capability with a
    /// matching version. A version text that does not parse counts as no version.
    /// `not-used` asks nothing, so it is met even without the capability.
    pub fn is_met_by<N: AsRef<str>, V: DeclaredVersion>(
        &self,
        capabilities: &[(N, Option<V>)],
    ) -> bool {
        if self.is_not_used() {
            return true;
        }
        capabilities
            .iter()
            .filter(|(name, _)| name.as_ref() == self.capability)
            .any(|(_, version)| {
                let parsed = version.as_ref().and_then(DeclaredVersion::parsed);
                self.matches(parsed.as_deref())
            })
    }
}

/// A capability version as a worker declares it: already parsed, or as text (parsed on use;
/// text that does not parse counts as no version).
pub trait DeclaredVersion {
    fn parsed(&self) -> Option<Cow<'_, Version>>;
}

impl DeclaredVersion for Version {
    fn parsed(&self) -> Option<Cow<'_, Version>> {
        Some(Cow::Borrowed(self))
    }
}

impl DeclaredVersion for str {
    fn parsed(&self) -> Option<Cow<'_, Version>> {
        Version::parse(self).ok().map(Cow::Owned)
    }
}

impl DeclaredVersion for String {
    fn parsed(&self) -> Option<Cow<'_, Version>> {
        self.as_str().parsed()
    }
}

impl<T: DeclaredVersion + ?Sized> DeclaredVersion for &T {
    fn parsed(&self) -> Option<Cow<'_, Version>> {
        (**self).parsed()
    }
}

/// Whether a worker's capabilities meet every requirement (none: always).
pub fn meets_all<N: AsRef<str>, V: DeclaredVersion>(
    capabilities: &[(N, Option<V>)],
    requirements: &[Requirement],
) -> bool {
    requirements.iter().all(|r| r.is_met_by(capabilities))
}

impl fmt::Display for Requirement {
    /// The requirement as it would be written, blanks normalised.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.capability)?;
        match &self.filter {
            Filter::Any => Ok(()),
            Filter::NotUsed => write!(f, " {NOT_USED}"),
            Filter::Versions(vf) => write!(f, " {vf}"),
        }
    }
}

impl FromStr for Requirement {
    type Err = RequirementError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Requirement::parse(s)
    }
}

/// Why a version or version filter does not parse. Messages are the seed's where it had one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// A criterion that is not `OP VERSION`: a version without an operator (`pg 8.4`), an
    /// operator without a version (`pg >=`), an operator glued to its version (`pg >=9.1`),
    /// or nothing on one side of an `OR` (`text` empty).
    #[error("{}: Not enough tokens. Missing operator?", py_repr(.text))]
    NotEnoughTokens { text: String },
    /// More than one `-` in a version (`9.1-devel-x`); the seed's message, misleading as it is.
    #[error("{}: Not enough tokens for a version filter. Missing operator?", py_repr(.text))]
    TooManyDashes { text: String },
    /// A dot-separated part of a version that is not an integer (`nine`, `9.x`).
    #[error("{}: invalid literal for int() with base 10: {}", py_repr(.text), py_repr(.part))]
    NotAnInteger { text: String, part: String },
    /// A part of a version too large for 64 bits (Python had no limit).
    #[error("{}: version number too large", py_repr(.text))]
    TooLarge { text: String },
    /// An operator abo does not know (`!=`, `~=`, lower-case `or`); 0.9 silently matched
    /// every version with it.
    #[error("{}: unknown operator", py_repr(.op))]
    UnknownOperator { op: String },
    /// `not-used` among other criteria.
    #[error("'not-used' must be the only criterion")]
    NotUsedNotAlone,
    /// A blank line, or one starting with an operator.
    #[error("missing capability name")]
    MissingCapability,
}

/// The right form of a version, for help texts.
const VERSION_FORM: &str =
    "a version is integers separated by dots with an optional `-suffix`, e.g. `9.1` or `9.2-devel`";

/// A requirement line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RequirementError {
    /// The line, trimmed.
    pub line: String,
    pub error: VersionError,
}

impl RequirementError {
    /// What would be right, as concretely as the line allows (`write `postgresql == 9.1``).
    pub fn help(&self) -> String {
        let tokens: Vec<&str> = self.line.split_whitespace().collect();
        let capability = tokens.first().copied().unwrap_or("postgresql");
        // The line with one token replaced, the rest as written.
        let replaced = |old: &str, new: &str| {
            let mut done = false;
            let fixed: Vec<&str> = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if i > 0 && !done && *t == old {
                        done = true;
                        new
                    } else {
                        t
                    }
                })
                .collect();
            fixed.join(" ")
        };
        match &self.error {
            VersionError::NotEnoughTokens { text } if text.is_empty() => format!(
                "write criteria on both sides of `OR`, e.g. `{capability} >= 9.1 OR == 8.4`"
            ),
            VersionError::NotEnoughTokens { text } => {
                if let Some(op) = Op::parse(text) {
                    format!("write a version after `{op}`, e.g. `{capability} {op} 9.1`")
                } else if let Some((op, version)) = split_glued(text) {
                    format!(
                        "separate the operator from the version: write `{}`",
                        replaced(text, &format!("{op} {version}"))
                    )
                } else if Version::parse(text).is_ok() {
                    format!(
                        "put an operator before each version: write `{}`",
                        replaced(text, &format!("== {text}"))
                    )
                } else {
                    format!("write `OP VERSION` pairs, e.g. `{capability} >= 9.1 < 9.3`")
                }
            }
            VersionError::TooManyDashes { .. }
            | VersionError::NotAnInteger { .. }
            | VersionError::TooLarge { .. } => VERSION_FORM.to_string(),
            VersionError::UnknownOperator { op } if op.eq_ignore_ascii_case(OR) => {
                "write `OR` in upper case".to_string()
            }
            VersionError::UnknownOperator { .. } => {
                "operators are `>=`, `<=`, `>`, `<` and `==`".to_string()
            }
            VersionError::NotUsedNotAlone => format!("write `{capability} not-used` alone"),
            VersionError::MissingCapability => {
                "start with a capability name, e.g. `postgresql >= 9.1`".to_string()
            }
        }
    }

    /// The error at `file:line` of option `option`, with [`RequirementError::help`]:
    /// ``build-for: `postgresql 9.1`: '9.1': Not enough tokens. Missing operator?``.
    pub fn to_diagnostic(&self, file: &str, line: u32, option: &str) -> Diagnostic {
        Diagnostic::new(
            file,
            line,
            format!("{option}: `{}`: {}", self.line, self.error),
        )
        .with_help(self.help())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_repr_quotes_like_python2() {
        for (input, expected) in [
            ("8.4", "'8.4'"),
            ("", "''"),
            ("it's", "\"it's\""),
            ("a'b\"c", "'a\\'b\"c'"),
            ("back\\slash", "'back\\\\slash'"),
            ("tab\there", "'tab\\there'"),
            ("é", "'\\xc3\\xa9'"),
        ] {
            assert_eq!(py_repr(input), expected, "repr of {input:?}");
        }
    }

    #[test]
    fn version_parts() {
        for (text, numbers, suffix) in [
            ("9.1", &[9u64, 1][..], None),
            ("9.2-devel", &[9, 2], Some("devel")),
            ("6.6.6-any", &[6, 6, 6], Some("any")),
            ("10", &[10], None),
            // Python's int() accepts blanks and a plus sign; so does abo.
            (" 9.+1", &[9, 1], None),
            ("9.2-", &[9, 2], Some("")),
        ] {
            let v = Version::parse(text).unwrap();
            assert_eq!(v.numbers(), numbers, "{text}");
            assert_eq!(v.suffix(), suffix, "{text}");
            assert_eq!(v.to_string(), text, "display round-trips");
        }
    }

    #[test]
    fn version_errors() {
        for (text, expected) in [
            (
                "nine",
                "'nine': invalid literal for int() with base 10: 'nine'",
            ),
            ("9.x", "'9.x': invalid literal for int() with base 10: 'x'"),
            ("", "'': invalid literal for int() with base 10: ''"),
            ("9..1", "'9..1': invalid literal for int() with base 10: ''"),
            (
                "9.1-devel-x",
                "'9.1-devel-x': Not enough tokens for a version filter. Missing operator?",
            ),
            (
                "99999999999999999999999",
                "'99999999999999999999999': version number too large",
            ),
        ] {
            let err = Version::parse(text).unwrap_err();
            assert_eq!(err.to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn glued_operator_is_split_longest_first() {
        assert_eq!(split_glued(">=9.1"), Some((Op::Ge, "9.1")));
        assert_eq!(split_glued("<9.1-devel"), Some((Op::Lt, "9.1-devel")));
        assert_eq!(split_glued(">=x"), None);
        assert_eq!(split_glued("9.1"), None);
    }
}
