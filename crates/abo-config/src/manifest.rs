//! Manifests (`buildouts/MANIFEST.cfg`): sections with `DEFAULT` and `inherit` resolved.
//!
//! A [`ManifestSection`] holds the merged option set of one section, as the seed saw it:
//! the parent's options (recursively merged), the section's own on top, values
//! interpolated by ConfigParser rules. Each value keeps the place it was written, so that
//! later stages can point at it in a diagnostic.

use std::collections::BTreeMap;

/// One option value with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptValue {
    pub value: String,
    pub file: String,
    pub line: u32,
}

/// One manifest section with its merged options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSection {
    pub name: String,
    /// File the section is in (as the user named it).
    pub file: String,
    /// Line of the `[name]` header.
    pub line: u32,
    /// Directory of the manifest file: standalone buildout paths and `bootstrap.py` are
    /// relative to it.
    pub manifest_dir: String,
    /// Merged options (lowercased names).
    pub options: BTreeMap<String, OptValue>,
}

impl ManifestSection {
    /// A section built from `(key, value)` pairs, every value at line `line + i + 1`:
    /// for tests and generated configurations.
    pub fn from_pairs(name: &str, manifest_dir: &str, pairs: &[(&str, &str)]) -> Self {
        let file = format!("{manifest_dir}/MANIFEST.cfg");
        let options = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                (
                    k.to_ascii_lowercase(),
                    OptValue {
                        value: v.to_string(),
                        file: file.clone(),
                        line: i as u32 + 2,
                    },
                )
            })
            .collect();
        ManifestSection {
            name: name.to_string(),
            file,
            line: 1,
            manifest_dir: manifest_dir.to_string(),
            options,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(|v| v.value.as_str())
    }

    pub fn opt(&self, key: &str) -> Option<&OptValue> {
        self.options.get(key)
    }

    /// Non-blank lines of a multi-line option, stripped; empty when absent.
    pub fn lines(&self, key: &str) -> Vec<&str> {
        self.get(key)
            .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The line to blame for `key`: its own line, or the section header.
    pub fn line_of(&self, key: &str) -> u32 {
        self.options.get(key).map_or(self.line, |v| v.line)
    }

    /// File and line of `key`, for diagnostics.
    pub fn place_of(&self, key: &str) -> (&str, u32) {
        match self.options.get(key) {
            Some(v) => (v.file.as_str(), v.line),
            None => (self.file.as_str(), self.line),
        }
    }
}
