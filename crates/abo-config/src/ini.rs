//! INI files read with Python 2.7 `ConfigParser` semantics, keeping line numbers.
//!
//! The seed read `MANIFEST.cfg` and `slaves.cfg` with Python 2.7's
//! `ConfigParser.ConfigParser`; users' files were written against its quirks, so this
//! reader reproduces them rule by rule (see `tests/ini_differential.rs`, which compares it
//! with Python itself) instead of following any INI "standard":
//!
//! - sections in file order, names case-sensitive; `[DEFAULT]` is not a section, its
//!   options are visible from every section; a repeated section merges into the first;
//! - option names lowercased (ASCII only: py2 lowercased bytes); `key = value` or
//!   `key: value`, the first `=` or `:` separates; a repeated option keeps its first
//!   position and takes the last value;
//! - comments: lines starting with `#` or `;`, and lines whose first word is `rem` (any
//!   case) with no indentation; on the first line of a value, everything from the first
//!   `;` on if whitespace precedes it;
//! - an indented line continues the value of the option above it (stripped, joined with
//!   `\n`); blank and comment lines are skipped, even inside a value;
//! - a value that is exactly `""` is the empty string;
//! - lines end with `\n`, `\r\n` or `\r` (Python's universal newlines).
//!
//! Whitespace is Python 2's byte whitespace (space, `\t`, `\n`, `\r`, `\x0b`, `\x0c`): a
//! non-breaking space is text, as it was for the seed.
//!
//! API (other modules rely on it):
//! - [`parse`]`(file_label, text) -> (Ini, Vec<Diagnostic>)`: never panics; syntax
//!   mistakes become diagnostics with line numbers and the rest of the file is still read.
//! - [`Ini::sections`] in file order (`[DEFAULT]` excluded), [`Ini::defaults`],
//!   [`Ini::section`], [`Ini::section_keys`] (py2's `options()`), [`Ini::raw`] and
//!   [`Ini::get`] (py2's `get(section, option, raw=True)` and `get(section, option)`),
//!   [`Ini::duplicates`].
//! - [`Section::raw`], [`Section::entry`], [`Section::keys`].

use crate::diag::Diagnostic;
use std::borrow::Cow;

/// How many rounds of `%(name)s` substitution py2's `ConfigParser.get` made before
/// giving up with `InterpolationDepthError`.
pub const MAX_INTERPOLATION_DEPTH: usize = 10;

/// The pseudo-section whose options every section sees.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// py2 stored each section's name under this key, so `%(__name__)s` is the section name.
const NAME_KEY: &str = "__name__";

/// Width or precision above this in a `%` format is refused rather than honoured: py2
/// would build the huge string, abo would only waste memory on it.
const MAX_FORMAT_WIDTH: usize = 10_000;

/// An interpolated value longer than this is refused: ten rounds of substitution can
/// grow a value exponentially, and no sane configuration value is a megabyte long.
const MAX_INTERPOLATED_LEN: usize = 1 << 20;

/// One `key = value` (or `key: value`) option. Multi-line values are joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lowercased option name.
    pub key: String,
    /// Raw value, continuation lines stripped and joined with `\n`, blank lines dropped.
    pub value: String,
    /// 1-based line of the option name.
    pub line: u32,
    /// 1-based line of each line of `value` (`value.split('\n')`), the first being
    /// `line`: blank and comment lines inside a value are skipped, so a later line of the
    /// value is not simply `line + i`.
    pub lines: Vec<u32>,
}

impl Entry {
    /// The file line of line `index` (0-based) of the value; the option's line when out
    /// of range, so that callers always have a line to blame.
    pub fn line_of(&self, index: usize) -> u32 {
        self.lines.get(index).copied().unwrap_or(self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Case-sensitive section name.
    pub name: String,
    /// 1-based line of the `[name]` header.
    pub line: u32,
    /// Own options in file order (a repeated key keeps its first position, last value).
    pub entries: Vec<Entry>,
}

impl Section {
    /// The own option `key` (any case), without DEFAULT.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        find_entry(&self.entries, &ascii_lower(key))
    }

    /// The raw (uninterpolated) value of the own option `key` (any case).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// Own option names in file order, without DEFAULT's.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.key.as_str())
    }
}

/// A section header or option written twice. Not an error for py2 (sections merge, the
/// last value wins), but usually a mistake worth a warning from `abo check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Section name (`DEFAULT` for the defaults).
    pub section: String,
    /// The repeated option, or `None` when the section header itself is repeated.
    pub key: Option<String>,
    /// Line of the first occurrence.
    pub first_line: u32,
    /// Line of this repetition.
    pub line: u32,
}

impl Duplicate {
    /// A warning at the repetition's line, for `abo check`.
    pub fn warning(&self, file: &str) -> Diagnostic {
        match &self.key {
            Some(key) => Diagnostic::new(
                file,
                self.line,
                format!(
                    "option `{key}` is set again in section [{}] (first set at line {}); the last value wins",
                    self.section, self.first_line
                ),
            )
            .with_help("remove one of the two settings"),
            None => Diagnostic::new(
                file,
                self.line,
                format!(
                    "section [{}] appears again (first at line {}); its options are merged into the first",
                    self.section, self.first_line
                ),
            )
            .with_help("merge the two sections into one"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ini {
    /// Label of the file, used in diagnostics.
    pub file: String,
    /// Options of `[DEFAULT]`, in file order.
    pub defaults: Vec<Entry>,
    /// Line of the first `[DEFAULT]` header, if any.
    pub default_line: Option<u32>,
    /// Sections in file order, `[DEFAULT]` excluded.
    pub sections: Vec<Section>,
    /// Repeated sections and options, in file order.
    pub duplicates: Vec<Duplicate>,
}

impl Ini {
    /// Sections in file order, `[DEFAULT]` excluded.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Options of `[DEFAULT]`, in file order.
    pub fn defaults(&self) -> &[Entry] {
        &self.defaults
    }

    /// The section named exactly `name` (`DEFAULT` is not a section).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Repeated sections and options, for warnings.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// One warning per repeated section or option.
    pub fn duplicate_warnings(&self) -> Vec<Diagnostic> {
        self.duplicates
            .iter()
            .map(|d| d.warning(&self.file))
            .collect()
    }

    /// Option names of `section` as py2's `options(section)`: own options in file order,
    /// then DEFAULT's not overridden, without `__name__`. For `DEFAULT`, its own options;
    /// for an unknown section, nothing.
    pub fn section_keys(&self, section: &str) -> Vec<String> {
        let own: &[Entry] = if section == DEFAULT_SECTION {
            &[]
        } else {
            match self.section(section) {
                Some(s) => &s.entries,
                None => return Vec::new(),
            }
        };
        let mut keys: Vec<String> = Vec::new();
        for entry in own.iter().chain(&self.defaults) {
            if entry.key != NAME_KEY && !keys.contains(&entry.key) {
                keys.push(entry.key.clone());
            }
        }
        keys
    }

    /// The option `key` (any case) as written, looked up in `section` then DEFAULT, as
    /// py2's `get(section, key, raw=True)`. `None` when the section or the option does
    /// not exist (the section name itself, `__name__`, has no entry).
    pub fn raw(&self, section: &str, key: &str) -> Option<&Entry> {
        let key = ascii_lower(key);
        let scope = self.scope(section)?;
        scope
            .section
            .and_then(|s| find_entry(&s.entries, &key))
            .or_else(|| find_entry(&self.defaults, &key))
    }

    /// The option `key` (any case) of `section`, interpolated as py2's
    /// `ConfigParser.get(section, key)`. `None` when the section or the option does not
    /// exist; `Some(Err(_))` when interpolation fails (missing reference, reference loop,
    /// bad `%` format), the diagnostic pointing at the option's line.
    pub fn get(&self, section: &str, key: &str) -> Option<Result<String, Diagnostic>> {
        let key = ascii_lower(key);
        let scope = self.scope(section)?;
        let (raw, line) = scope.lookup(&key)?;
        Some(scope.interpolate(&key, raw, line))
    }

    /// Where `get` looks: a section and DEFAULT, or DEFAULT alone.
    fn scope(&self, section: &str) -> Option<Scope<'_>> {
        if section == DEFAULT_SECTION {
            return Some(Scope {
                ini: self,
                section: None,
            });
        }
        self.section(section).map(|s| Scope {
            ini: self,
            section: Some(s),
        })
    }
}

/// The lookup chain of py2's `get`: the section's own options (including the implicit
/// `__name__`), then DEFAULT.
struct Scope<'a> {
    ini: &'a Ini,
    section: Option<&'a Section>,
}

impl<'a> Scope<'a> {
    fn name(&self) -> &'a str {
        self.section.map_or(DEFAULT_SECTION, |s| s.name.as_str())
    }

    /// Raw value and line of `key` (already lowercased).
    fn lookup(&self, key: &str) -> Option<(&'a str, u32)> {
        if let Some(section) = self.section {
            if let Some(e) = find_entry(&section.entries, key) {
                return Some((&e.value, e.line));
            }
            if key == NAME_KEY {
                return Some((&section.name, section.line));
            }
        }
        find_entry(&self.ini.defaults, key).map(|e| (e.value.as_str(), e.line))
    }

    /// py2's `ConfigParser._interpolate`: while the value contains `%(` (at most
    /// `MAX_INTERPOLATION_DEPTH` rounds), lowercase the `%(name)s` references and apply
    /// Python `%` formatting to the whole value with the lookup chain as the mapping.
    /// Values without `%(` are returned untouched, `%%` included.
    fn interpolate(&self, key: &str, raw: &str, line: u32) -> Result<String, Diagnostic> {
        let mut value = raw.to_string();
        for _ in 0..MAX_INTERPOLATION_DEPTH {
            if !value.contains("%(") {
                return Ok(value);
            }
            let rewritten = lowercase_references(&value);
            value = py2_format(&rewritten, |name| self.lookup(name).map(|(v, _)| v))
                .map_err(|e| self.interpolation_error(key, line, e))?;
        }
        if value.contains("%(") {
            return Err(self.interpolation_error(key, line, FormatError::TooDeep));
        }
        Ok(value)
    }

    fn interpolation_error(&self, key: &str, line: u32, error: FormatError) -> Diagnostic {
        let section = self.name();
        let file = &self.ini.file;
        match error {
            FormatError::Missing(name) => {
                let places = if self.section.is_some() {
                    format!("[{section}] and [DEFAULT] have")
                } else {
                    "[DEFAULT] has".to_string()
                };
                Diagnostic::new(
                    file,
                    line,
                    format!(
                        "option `{key}` of section [{section}] refers to `%({name})s`, but {places} no option `{name}`"
                    ),
                )
                .with_help(format!(
                    "define `{name}`, or write `%%` for a literal `%`"
                ))
            }
            FormatError::TooDeep => Diagnostic::new(
                file,
                line,
                format!(
                    "option `{key}` of section [{section}] still contains `%(` after {MAX_INTERPOLATION_DEPTH} rounds of interpolation"
                ),
            )
            .with_help("look for a `%(name)s` reference that leads back to itself"),
            FormatError::TooLarge => Diagnostic::new(
                file,
                line,
                format!(
                    "option `{key}` of section [{section}] grows beyond {MAX_INTERPOLATED_LEN} bytes when interpolated"
                ),
            )
            .with_help("reduce the nesting of `%(name)s` references"),
            FormatError::Bad(detail) => Diagnostic::new(
                file,
                line,
                format!("option `{key}` of section [{section}] has a bad `%` format: {detail}"),
            )
            .with_help("a reference is written `%(name)s` and a literal percent sign `%%`"),
        }
    }
}

/// Why one round of `%` formatting failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FormatError {
    /// `%(name)...` names no option (py2: `InterpolationMissingOptionError`).
    Missing(String),
    /// Still `%(` after the last round (py2: `InterpolationDepthError`).
    TooDeep,
    /// Result too large to be a configuration value (abo's own limit).
    TooLarge,
    /// Anything else Python's `%` operator rejects (py2: `ValueError`, `TypeError`).
    Bad(String),
}

/// py2's `_KEYCRE.sub`: every `%(name)s` becomes `%(lowercased name)s`; nothing else
/// changes (so `%(Name)5s` keeps its case, and is then looked up as written).
fn lowercase_references(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(close) if after[close + 1..].starts_with('s') => {
                out.push_str("%(");
                out.push_str(&ascii_lower(&after[..close]));
                out.push_str(")s");
                rest = &after[close + 2..];
            }
            _ => {
                // No reference here: keep the `%` and look again from the `(`.
                out.push('%');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python 2's `str % mapping` (`PyString_Format`), for a mapping whose values are
/// strings: `%(key)` looks the key up (balanced parentheses allowed inside), then flags
/// `-+ #0`, a width, a `.precision`, a length modifier `h`/`l`/`L` and the conversion.
/// Conversions `%`, `s`, `r` and `c` work as in py2 (widths counted in bytes); numeric
/// ones fail on a string, as in py2. Deviation: a conversion without `(key)` fails,
/// where py2 formatted the mapping object itself (its `repr`, with a memory address).
fn py2_format<'v>(
    format: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, FormatError> {
    let bytes = format.as_bytes();
    let mut out = String::with_capacity(format.len());
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&format[literal_start..i]);
        i += 1;

        let mut arg: Option<&str> = None;
        if bytes.get(i) == Some(&b'(') {
            i += 1;
            let key_start = i;
            let mut depth = 1usize;
            while i < bytes.len() {
                match bytes[i] {
                    b')' => depth -= 1,
                    b'(' => depth += 1,
                    _ => {}
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            if depth > 0 {
                return Err(FormatError::Bad("incomplete format key".into()));
            }
            let key = &format[key_start..i - 1];
            arg = Some(lookup(key).ok_or_else(|| FormatError::Missing(key.to_string()))?);
        }

        let mut left = false;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'-' => left = true,
                b'+' | b' ' | b'#' | b'0' => {}
                _ => break,
            }
            i += 1;
        }
        if bytes.get(i) == Some(&b'*') {
            return Err(FormatError::Bad("`*` wants a number, not a string".into()));
        }
        let width = parse_number(bytes, &mut i)?.unwrap_or(0);
        let mut precision = None;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if bytes.get(i) == Some(&b'*') {
                return Err(FormatError::Bad("`*` wants a number, not a string".into()));
            }
            precision = Some(parse_number(bytes, &mut i)?.unwrap_or(0));
        }
        if matches!(bytes.get(i), Some(b'h' | b'l' | b'L')) {
            i += 1;
        }
        let Some(&conversion) = bytes.get(i) else {
            return Err(FormatError::Bad(
                "incomplete format (a `%` ends the value)".into(),
            ));
        };
        i += 1;
        literal_start = i;

        let piece: Cow<str> = match conversion {
            b'%' => Cow::Borrowed("%"),
            b's' | b'r' | b'c' => {
                let Some(arg) = arg else {
                    return Err(FormatError::Bad(format!(
                        "`%{}` without a `(name)`",
                        conversion as char
                    )));
                };
                match conversion {
                    b's' => Cow::Borrowed(arg),
                    b'r' => Cow::Owned(py2_repr(arg)),
                    _ if arg.len() == 1 => Cow::Borrowed(arg),
                    _ => return Err(FormatError::Bad("`%c` requires a single character".into())),
                }
            }
            b'd' | b'i' | b'u' | b'o' | b'x' | b'X' | b'e' | b'E' | b'f' | b'F' | b'g' | b'G' => {
                return Err(FormatError::Bad(format!(
                    "`%{}` needs a number, and option values are strings",
                    conversion as char
                )));
            }
            _ => {
                let shown = format[i - 1..].chars().next().unwrap_or('?');
                return Err(FormatError::Bad(format!(
                    "unsupported format character `{shown}`"
                )));
            }
        };

        // Precision truncates `%s` and `%r` (in bytes, as py2's byte strings).
        let mut piece_len = piece.len();
        let piece = match precision {
            Some(p) if matches!(conversion, b's' | b'r') && p < piece.len() => {
                piece_len = p;
                Cow::Owned(String::from_utf8_lossy(&piece.as_bytes()[..p]).into_owned())
            }
            _ => piece,
        };
        let pad = width.saturating_sub(piece_len);
        if out.len() + pad + piece.len() > MAX_INTERPOLATED_LEN {
            return Err(FormatError::TooLarge);
        }
        let padding = " ".repeat(pad);
        if !left {
            out.push_str(&padding);
        }
        out.push_str(&piece);
        if left {
            out.push_str(&padding);
        }
    }
    out.push_str(&format[literal_start..]);
    if out.len() > MAX_INTERPOLATED_LEN {
        return Err(FormatError::TooLarge);
    }
    Ok(out)
}

/// Decimal digits at `*i` (advancing past them), as a width or precision.
fn parse_number(bytes: &[u8], i: &mut usize) -> Result<Option<usize>, FormatError> {
    let mut number: Option<usize> = None;
    while let Some(&c) = bytes.get(*i) {
        if !c.is_ascii_digit() {
            break;
        }
        let n = number.unwrap_or(0) * 10 + usize::from(c - b'0');
        if n > MAX_FORMAT_WIDTH {
            return Err(FormatError::Bad(format!(
                "width or precision above {MAX_FORMAT_WIDTH}"
            )));
        }
        number = Some(n);
        *i += 1;
    }
    Ok(number)
}

/// `repr()` of a py2 byte string: quotes chosen as py2 did, non-ASCII bytes as `\xNN`.
fn py2_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote as char);
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

fn find_entry<'e>(entries: &'e [Entry], key: &str) -> Option<&'e Entry> {
    entries.iter().find(|e| e.key == key)
}

/// py2's `optionxform`: `str.lower()` on bytes, which only knows ASCII letters.
fn ascii_lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Whitespace for py2's byte strings (`str.isspace`, `str.strip`, regex `\s`).
fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Lines of `text` with their 1-based numbers, split as Python's universal newlines do
/// (`\n`, `\r\n`, `\r`), terminators removed. A final terminator opens no extra line.
pub fn split_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    let mut rest = text;
    let mut number: u32 = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number = number.saturating_add(1);
        let line = match rest.find(['\r', '\n']) {
            Some(end) => {
                let line = &rest[..end];
                let terminator = if rest[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[end + terminator..];
                line
            }
            None => std::mem::take(&mut rest),
        };
        Some((number, line))
    })
}

/// py2's comment rule: first character `#` or `;`, or first word `rem` (any case) with
/// no indentation.
fn is_comment(line: &str) -> bool {
    if line.starts_with(['#', ';']) {
        return true;
    }
    let word = line.split(is_py_space).next().unwrap_or("");
    word.eq_ignore_ascii_case("rem")
}

/// py2's `SECTCRE` (`\[([^]]+)\]`, matched at the start of the line): the name up to the
/// first `]`, which must not be empty; anything after the `]` is ignored.
fn section_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    (close > 0).then(|| &rest[..close])
}

/// py2's `OPTCRE` (`([^:=\s][^:=]*)\s*([:=])\s*(.*)$`) and the value clean-up that
/// followed: the name is everything before the first `:` or `=`, right-stripped; the
/// value loses an inline `;` comment, then surrounding whitespace; `""` means empty.
fn option_line(line: &str) -> Option<(String, String)> {
    let first = line.chars().next()?;
    if first == ':' || first == '=' || is_py_space(first) {
        return None;
    }
    let separator = line.find([':', '='])?;
    let key = line[..separator].trim_end_matches(is_py_space);
    let mut value = line[separator + 1..].trim_start_matches(is_py_space);
    if let Some(pos) = value.find(';') {
        // py2 tested `optval[pos-1]`: at position 0 that is the value's LAST character.
        let before = if pos == 0 {
            value.chars().last()
        } else {
            value[..pos].chars().last()
        };
        if before.is_some_and(is_py_space) {
            value = &value[..pos];
        }
    }
    let mut value = py_strip(value);
    if value == "\"\"" {
        value = "";
    }
    Some((ascii_lower(key), value.to_string()))
}

/// Where options currently go.
#[derive(Debug, Clone, Copy)]
enum Target {
    Defaults,
    Section(usize),
}

impl Ini {
    fn entries_mut(&mut self, target: Target) -> &mut Vec<Entry> {
        match target {
            Target::Defaults => &mut self.defaults,
            Target::Section(i) => &mut self.sections[i].entries,
        }
    }

    fn target_name(&self, target: Target) -> &str {
        match target {
            Target::Defaults => DEFAULT_SECTION,
            Target::Section(i) => &self.sections[i].name,
        }
    }

    /// Sets an option, the last value winning in the first position.
    fn set(&mut self, target: Target, key: String, value: String, line: u32) {
        let section = self.target_name(target).to_string();
        let entries = self.entries_mut(target);
        match entries.iter_mut().find(|e| e.key == key) {
            Some(entry) => {
                let first_line = entry.line;
                entry.value = value;
                entry.line = line;
                entry.lines = vec![line];
                self.duplicates.push(Duplicate {
                    section,
                    key: Some(key),
                    first_line,
                    line,
                });
            }
            None => entries.push(Entry {
                key,
                value,
                line,
                lines: vec![line],
            }),
        }
    }

    /// Enters the section `name`, creating it or merging into an earlier one.
    fn enter(&mut self, name: &str, line: u32) -> Target {
        if name == DEFAULT_SECTION {
            match self.default_line {
                Some(first_line) => self.duplicates.push(Duplicate {
                    section: name.to_string(),
                    key: None,
                    first_line,
                    line,
                }),
                None => self.default_line = Some(line),
            }
            return Target::Defaults;
        }
        if let Some(i) = self.sections.iter().position(|s| s.name == name) {
            let first_line = self.sections[i].line;
            self.duplicates.push(Duplicate {
                section: name.to_string(),
                key: None,
                first_line,
                line,
            });
            return Target::Section(i);
        }
        self.sections.push(Section {
            name: name.to_string(),
            line,
            entries: Vec::new(),
        });
        Target::Section(self.sections.len() - 1)
    }
}

/// A short quotation of a line for a diagnostic.
fn excerpt(line: &str) -> String {
    const MAX: usize = 60;
    let line = py_strip(line);
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// Why a line is neither a header, an option, a continuation nor a comment.
fn line_error(file: &str, number: u32, line: &str) -> Diagnostic {
    let shown = excerpt(line);
    if line.starts_with(is_py_space) {
        Diagnostic::new(
            file,
            number,
            format!("indented line `{shown}` continues no option"),
        )
        .with_help("remove the indentation to make it an option, or move it under the option it continues (a section header ends the previous value)")
    } else if line.starts_with(['=', ':']) {
        Diagnostic::new(file, number, format!("option `{shown}` has no name"))
            .with_help("write `name = value`")
    } else if line.starts_with('[') {
        Diagnostic::new(
            file,
            number,
            format!("`{shown}` is not a valid section header"),
        )
        .with_help("write `[name]`, with a non-empty name and a closing `]`")
    } else {
        Diagnostic::new(
            file,
            number,
            format!("`{shown}` is neither a section header, an option nor a comment"),
        )
        .with_help("write `name = value` or `[section]`, or start the line with `#` or `;` to make it a comment")
    }
}

/// Reads `text` as Python 2.7's `ConfigParser.read` did. Mistakes py2 raised
/// (`MissingSectionHeaderError`, `ParsingError`) become diagnostics and reading goes on,
/// so that all of them are reported; lines before the first section header are
/// reported once and ignored.
pub fn parse(file: &str, text: &str) -> (Ini, Vec<Diagnostic>) {
    let mut ini = Ini {
        file: file.to_string(),
        ..Ini::default()
    };
    let mut diags = Vec::new();
    let mut target: Option<Target> = None;
    // The option an indented line continues: the last one set since the last header.
    let mut continued: Option<String> = None;
    let mut reported_headless = false;

    for (number, line) in split_lines(text) {
        if py_strip(line).is_empty() || is_comment(line) {
            continue;
        }
        if line.starts_with(is_py_space) {
            if let (Some(t), Some(key)) = (target, &continued) {
                let entries = ini.entries_mut(t);
                if let Some(entry) = entries.iter_mut().find(|e| &e.key == key) {
                    entry.value.push('\n');
                    entry.value.push_str(py_strip(line));
                    entry.lines.push(number);
                }
                continue;
            }
        }
        if let Some(name) = section_header(line) {
            target = Some(ini.enter(name, number));
            continued = None;
            continue;
        }
        let Some(t) = target else {
            if !reported_headless {
                reported_headless = true;
                diags.push(headless_error(file, number, line));
            }
            continue;
        };
        match option_line(line) {
            Some((key, value)) => {
                ini.set(t, key.clone(), value, number);
                continued = Some(key);
            }
            None => diags.push(line_error(file, number, line)),
        }
    }
    (ini, diags)
}

/// py2's `MissingSectionHeaderError`: a line before any `[section]` header.
fn headless_error(file: &str, number: u32, line: &str) -> Diagnostic {
    if let Some(rest) = line.strip_prefix('\u{feff}') {
        return Diagnostic::new(
            file,
            number,
            format!(
                "the file starts with a byte-order mark before `{}`, so its first line is no section header",
                excerpt(rest)
            ),
        )
        .with_help("save the file as UTF-8 without a byte-order mark (BOM)");
    }
    Diagnostic::new(
        file,
        number,
        format!("`{}` comes before any section header", excerpt(line)),
    )
    .with_help(
        "start the file with a section header such as `[name]`: every option belongs to a section",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> Ini {
        let (ini, diags) = parse("t.cfg", text);
        assert!(
            diags.is_empty(),
            "unexpected diagnostics for {text:?}: {diags:?}"
        );
        ini
    }

    fn diag_lines(text: &str) -> Vec<u32> {
        parse("t.cfg", text)
            .1
            .iter()
            .filter_map(|d| d.line)
            .collect()
    }

    /// Each case: text, section, key, expected raw value (`None`: absent).
    #[test]
    fn raw_values() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            // separators and whitespace
            ("[s]\nk = v\n", "s", "k", Some("v")),
            ("[s]\nk=v\n", "s", "k", Some("v")),
            ("[s]\nk: v\n", "s", "k", Some("v")),
            ("[s]\nk:v\n", "s", "k", Some("v")),
            ("[s]\nk \t=\t v \t\n", "s", "k", Some("v")),
            ("[s]\nk = a = b\n", "s", "k", Some("a = b")),
            ("[s]\nk: a = b\n", "s", "k", Some("a = b")),
            ("[s]\nk = a: b\n", "s", "k", Some("a: b")),
            (
                "[s]\nurl = http://x:80/y\n",
                "s",
                "url",
                Some("http://x:80/y"),
            ),
            ("[s]\nmy key = v\n", "s", "my key", Some("v")),
            ("[s]\n[k = v\n", "s", "[k", Some("v")),
            // option names lowercased (ASCII only), looked up in any case
            ("[s]\nKey = v\n", "s", "key", Some("v")),
            ("[s]\nKEY = v\n", "s", "KeY", Some("v")),
            ("[s]\nÉté = v\n", "s", "Été", Some("v")),
            ("[s]\nÉté = v\n", "s", "été", None),
            // empty values
            ("[s]\nk =\n", "s", "k", Some("")),
            ("[s]\nk:\n", "s", "k", Some("")),
            ("[s]\nk = \"\"\n", "s", "k", Some("")),
            ("[s]\nk = \"\" \n", "s", "k", Some("")),
            ("[s]\nk = \"\"\"\n", "s", "k", Some("\"\"\"")),
            ("[s]\nk = \"x\"\n", "s", "k", Some("\"x\"")),
            // inline comments: first `;` of the first line, after whitespace
            ("[s]\nk = v ; c\n", "s", "k", Some("v")),
            ("[s]\nk = v\t;c\n", "s", "k", Some("v")),
            ("[s]\nk = v;c\n", "s", "k", Some("v;c")),
            ("[s]\nk = a;b ;c\n", "s", "k", Some("a;b ;c")),
            ("[s]\nk = v # c\n", "s", "k", Some("v # c")),
            ("[s]\nk = ;c\n", "s", "k", Some(";c")),
            ("[s]\nk = ;c \n", "s", "k", Some("")),
            ("[s]\nk = v\n  a ; b\n", "s", "k", Some("v\na ; b")),
            // continuation lines
            ("[s]\nk = a\n  b\n\tc\n", "s", "k", Some("a\nb\nc")),
            ("[s]\nk =\n  a\n  b\n", "s", "k", Some("\na\nb")),
            ("[s]\nk = a\n\n  b\n   \n  c\n", "s", "k", Some("a\nb\nc")),
            ("[s]\nk = a\n# comment\n  b\n", "s", "k", Some("a\nb")),
            ("[s]\nk = a\n; comment\n  b\n", "s", "k", Some("a\nb")),
            (
                "[s]\nk = a\n  # not a comment\n",
                "s",
                "k",
                Some("a\n# not a comment"),
            ),
            (
                "[s]\nk = a\n    deep: x = y\n",
                "s",
                "k",
                Some("a\ndeep: x = y"),
            ),
            ("[s]\nk = a\nj = b\n  c\n", "s", "k", Some("a")),
            ("[s]\nk = a\nj = b\n  c\n", "s", "j", Some("b\nc")),
            // comments
            ("[s]\n# k = 1\nk = 2\n", "s", "k", Some("2")),
            ("[s]\n;k = 1\n", "s", "k", None),
            ("[s]\nrem k = 1\n", "s", "rem k", None),
            ("[s]\nREM k = 1\n", "s", "rem k", None),
            ("[s]\nrem = 1\n", "s", "rem", None),
            ("[s]\nrem\tx\n", "s", "rem", None),
            ("[s]\nrem=1\n", "s", "rem", Some("1")),
            ("[s]\nremark = 1\n", "s", "remark", Some("1")),
            // line endings
            ("[s]\r\nk = a\r\n  b\r\n", "s", "k", Some("a\nb")),
            ("[s]\rk = a\r  b\r", "s", "k", Some("a\nb")),
            ("[s]\nk = a", "s", "k", Some("a")),
            // repeated options: the last wins
            ("[s]\nk = 1\nk = 2\n", "s", "k", Some("2")),
            ("[s]\nk = 1\n  x\nK = 2\n", "s", "k", Some("2")),
            ("[s]\nk = 1\n[t]\n[s]\nk = 3\n", "s", "k", Some("3")),
            // py2 whitespace is ASCII: a non-breaking space is text
            ("[s]\nk = \u{a0}v\u{a0}\n", "s", "k", Some("\u{a0}v\u{a0}")),
            ("[s]\nk = v\x0c\n", "s", "k", Some("v")),
            // DEFAULT is visible from sections, sections override it
            ("[DEFAULT]\nd = 1\n[s]\n", "s", "d", Some("1")),
            ("[DEFAULT]\nd = 1\n[s]\nd = 2\n", "s", "d", Some("2")),
            ("[s]\n[DEFAULT]\nd = 1\n", "s", "d", Some("1")),
            ("[DEFAULT]\nd = 1\n", "DEFAULT", "d", Some("1")),
            // headers: case-sensitive, not stripped, text after `]` ignored
            ("[S]\nk = v\n", "s", "k", None),
            ("[ s ]\nk = v\n", " s ", "k", Some("v")),
            ("[s] ; comment\nk = v\n", "s", "k", Some("v")),
            ("[s]x]\nk = v\n", "s", "k", Some("v")),
            ("[default]\nk = v\n", "default", "k", Some("v")),
            ("[a[b]\nk = v\n", "a[b", "k", Some("v")),
        ];
        for (text, section, key, expected) in cases {
            let ini = ini(text);
            let got = ini.raw(section, key).map(|e| e.value.as_str());
            assert_eq!(got, *expected, "raw({section:?}, {key:?}) of {text:?}");
        }
    }

    #[test]
    fn section_order_names_and_merging() {
        let ini = ini("[b]\nx = 1\n[DEFAULT]\nd = 0\n[a]\ny = 2\n[b]\nz = 3\nx = 4\n");
        let names: Vec<&str> = ini.sections().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let b = ini.section("b").unwrap();
        assert_eq!(b.line, 1);
        assert_eq!(b.keys().collect::<Vec<_>>(), ["x", "z"]);
        assert_eq!(b.raw("x"), Some("4"));
        assert_eq!(b.entry("X").map(|e| e.line), Some(9));
        assert_eq!(ini.section_keys("b"), ["x", "z", "d"]);
        assert_eq!(ini.section_keys("DEFAULT"), ["d"]);
        assert!(ini.section_keys("nope").is_empty());
        assert!(ini.section("DEFAULT").is_none());
        assert_eq!(ini.default_line, Some(3));
        assert_eq!(
            ini.duplicates(),
            [
                Duplicate {
                    section: "b".into(),
                    key: None,
                    first_line: 1,
                    line: 7
                },
                Duplicate {
                    section: "b".into(),
                    key: Some("x".into()),
                    first_line: 2,
                    line: 9
                },
            ]
        );
        let warnings = ini.duplicate_warnings();
        assert_eq!(warnings[1].line, Some(9));
        assert!(
            warnings[1].message.contains("first set at line 2"),
            "{}",
            warnings[1]
        );
    }

    #[test]
    fn value_lines_skip_blank_and_comment_lines() {
        let ini = ini("[s]\nk = a\n\n  b\n# c\n  c\n");
        let entry = ini.raw("s", "k").unwrap();
        assert_eq!(entry.value, "a\nb\nc");
        assert_eq!(entry.lines, [2, 4, 6]);
        assert_eq!(entry.line_of(2), 6);
        assert_eq!(entry.line_of(9), 2);
    }

    /// Each case: text and the lines that get a diagnostic.
    #[test]
    fn syntax_errors() {
        let cases: &[(&str, &[u32])] = &[
            ("k = v\n[s]\n", &[1]),
            ("# c\n\n  k = v\nj = w\n[s]\nx = 1\n", &[3]),
            ("\u{feff}[s]\nk = v\n", &[1]),
            ("[s]\ngarbage\n", &[2]),
            ("[s]\n  indented = 1\n", &[2]),
            ("[s]\nk = 1\n[t]\n  orphan\n", &[4]),
            ("[s]\n= v\n: w\n", &[2, 3]),
            ("[s]\n[]\n", &[2]),
            ("[s]\n[unclosed\n", &[2]),
            ("[s]\nk = 1\nbad\nworse\nj = 2\n", &[3, 4]),
            ("", &[]),
            ("\n\n# only comments\n", &[]),
        ];
        for (text, lines) in cases {
            assert_eq!(diag_lines(text), *lines, "diagnostic lines of {text:?}");
        }
        let (ini, diags) = parse("t.cfg", "\u{feff}[s]\nk = v\n[t]\nj = w\n");
        assert!(diags[0].message.contains("byte-order mark"), "{}", diags[0]);
        assert_eq!(ini.sections().len(), 1, "reading goes on after the mistake");
    }

    #[test]
    fn reading_goes_on_after_errors() {
        let (ini, diags) = parse("t.cfg", "[s]\nk = 1\nbad line\n  more\nj = 2\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].file, "t.cfg");
        assert!(diags[0].help.is_some());
        // py2 keeps continuing the last option across a bad line.
        assert_eq!(ini.raw("s", "k").unwrap().value, "1\nmore");
        assert_eq!(ini.raw("s", "j").unwrap().value, "2");
    }

    /// Each case: text, section, key, expected interpolated value or `Err(line)`.
    #[test]
    fn interpolation() {
        type Case<'a> = (&'a str, &'a str, &'a str, Result<&'a str, u32>);
        let cases: &[Case] = &[
            ("[s]\na = x\nb = %(a)s/y\n", "s", "b", Ok("x/y")),
            ("[s]\na = x\nb = %(A)s\n", "s", "b", Ok("x")),
            ("[DEFAULT]\nd = D\n[s]\nb = %(d)s\n", "s", "b", Ok("D")),
            (
                "[DEFAULT]\nd = D\nb = %(s)s\n[s]\ns = S\n",
                "s",
                "b",
                Ok("S"),
            ),
            ("[DEFAULT]\nd = D\nb = %(d)s\n", "DEFAULT", "b", Ok("D")),
            ("[s]\na = %(b)s\nb = %(c)s\nc = end\n", "s", "a", Ok("end")),
            ("[s]\nname = %(__name__)s\n", "s", "name", Ok("s")),
            // no `%(`: the value is returned as written
            ("[s]\na = 100%\n", "s", "a", Ok("100%")),
            ("[s]\na = 50%%\n", "s", "a", Ok("50%%")),
            ("[s]\na = $(b)s\n", "s", "a", Ok("$(b)s")),
            // with `%(`: the whole value is %-formatted
            ("[s]\na = x\nb = %(a)s 50%%\n", "s", "b", Ok("x 50%")),
            ("[s]\na = x\nb = %%(a)s\n", "s", "b", Ok("x")),
            ("[s]\na = 5%%\nb = %(a)s\n", "s", "b", Ok("5%%")),
            (
                "[s]\na = xy\nb = [%(a)4s|%(a)-4s|%(a).1s]\n",
                "s",
                "b",
                Ok("[  xy|xy  |x]"),
            ),
            ("[s]\na = it's\nb = %(a)r\n", "s", "b", Ok("\"it's\"")),
            ("[s]\na = x\nb = %(a)c\n", "s", "b", Ok("x")),
            ("[s]\na = x\nb = %(a)s %5%\n", "s", "b", Ok("x     %")),
            ("[s]\na = x\nb = 1% %(a)s\n", "s", "b", Ok("1x")),
            ("[s]\na = x\nb = %(a)s\n  %(a)s\n", "s", "b", Ok("x\nx")),
            // errors, at the option's line
            ("[s]\nb = %(nope)s\n", "s", "b", Err(2)),
            ("[s]\n\nb = %(b)s\n", "s", "b", Err(3)),
            ("[s]\na = %(b)s\nb = %(a)s\n", "s", "a", Err(2)),
            ("[s]\nb = %(\n", "s", "b", Err(2)),
            ("[s]\na = x\nb = %(a)s %\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(a)s %s\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(a)d\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(a)s %z\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(A)5s\n", "s", "b", Err(3)),
            ("[s]\na = xy\nb = %(a)c\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(a)*s\n", "s", "b", Err(3)),
            ("[s]\na = x\nb = %(a)99999999s\n", "s", "b", Err(3)),
            ("[DEFAULT]\nb = %(s)s\n[s]\n", "s", "b", Err(2)),
        ];
        for (text, section, key, expected) in cases {
            let ini = ini(text);
            let got = ini.get(section, key).expect("option exists");
            match (got, expected) {
                (Ok(v), Ok(e)) => assert_eq!(v, *e, "get({section:?}, {key:?}) of {text:?}"),
                (Err(d), Err(line)) => {
                    assert_eq!(d.line, Some(*line), "line of {d} for {text:?}");
                    assert!(d.help.is_some());
                }
                (got, _) => {
                    panic!("get({section:?}, {key:?}) of {text:?}: {got:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn absent_sections_and_options() {
        let ini = ini("[s]\nk = v\n");
        assert!(ini.get("s", "nope").is_none());
        assert!(ini.get("nope", "k").is_none());
        assert!(ini.raw("nope", "k").is_none());
        assert!(ini.get("DEFAULT", "k").is_none());
        assert_eq!(ini.get("s", "__name__"), Some(Ok("s".to_string())));
        assert!(ini.raw("s", "__name__").is_none());
    }

    #[test]
    fn growth_is_bounded() {
        let mut text = String::from("[s]\nv0 = xxxxxxxxxxxxxxxx\n");
        for i in 1..10 {
            let r = format!("%(v{})s", i - 1);
            text.push_str(&format!("v{i} = {}\n", r.repeat(8)));
        }
        let ini = ini(&text);
        let err = ini.get("s", "v9").unwrap().unwrap_err();
        assert_eq!(err.line, Some(11));
    }

    #[test]
    fn lines_split_like_universal_newlines() {
        let lines: Vec<(u32, &str)> = split_lines("a\r\nb\rc\n\nd").collect();
        assert_eq!(lines, [(1, "a"), (2, "b"), (3, "c"), (4, ""), (5, "d")]);
        assert_eq!(split_lines("a\n").count(), 1);
        assert_eq!(split_lines("").count(), 0);
        assert_eq!(split_lines("\r\r\n").count(), 2);
    }

    #[test]
    fn reference_lowercasing_follows_keycre() {
        let cases = [
            ("%(A)s", "%(a)s"),
            ("%%(A)s", "%%(a)s"),
            ("%(A)5s", "%(A)5s"),
            ("%(A) %(B)s", "%(A) %(b)s"),
            ("%(A\nB)s", "%(a\nb)s"),
            ("x%(", "x%("),
        ];
        for (input, expected) in cases {
            assert_eq!(lowercase_references(input), expected, "{input:?}");
        }
    }
}
