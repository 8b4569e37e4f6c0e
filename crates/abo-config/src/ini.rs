//! INI files read with Python 2.7 `ConfigParser` semantics, keeping line numbers.
//!
//! OWNED BY THE INI HELPER: see the API contract below, which other modules rely on.
//!
//! API contract (do not change the signatures without updating the callers):
//! - `parse(file_label, text) -> (Ini, Vec<Diagnostic>)`: never panics; syntax mistakes
//!   become diagnostics with line numbers and the rest of the file is still read.
//! - `Ini::sections()` in file order, `[DEFAULT]` excluded; `Ini::defaults()`.
//! - `Section::raw(key)` the raw value (no interpolation), `Section::keys()` own keys
//!   in file order; `Entry { key (lowercased), value, line }`.
//! - `Ini::interpolated(section, key)`: `%(name)s` interpolation as ConfigParser.get does,
//!   looking in the section then DEFAULT.

use crate::diag::Diagnostic;

/// One `key = value` (or `key: value`) option. Multi-line values are joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lowercased option name.
    pub key: String,
    /// Raw value, continuation lines stripped and joined with `\n`, blank lines dropped.
    pub value: String,
    /// 1-based line of the option name.
    pub line: u32,
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ini {
    /// Label of the file, used in diagnostics.
    pub file: String,
    pub defaults: Vec<Entry>,
    pub sections: Vec<Section>,
}

pub fn parse(file: &str, text: &str) -> (Ini, Vec<Diagnostic>) {
    let _ = text;
    (
        Ini {
            file: file.to_string(),
            ..Ini::default()
        },
        Vec::new(),
    )
}
