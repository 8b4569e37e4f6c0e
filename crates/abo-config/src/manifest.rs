//! Manifests (`buildouts/MANIFEST.cfg`): sections with `DEFAULT` and `inherit` resolved.
//!
//! A [`ManifestSection`] holds the merged option set of one section, as the seed saw it:
//! the parent's options (recursively merged), the section's own on top, values
//! interpolated by ConfigParser rules. Each value keeps the place it was written, so that
//! later stages can point at it in a diagnostic.

use crate::diag::Diagnostic;
use std::collections::BTreeMap;

/// One option value with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptValue {
    pub value: String,
    pub file: String,
    pub line: u32,
    /// File line of each line of the (raw) value; see [`OptValue::line_of`].
    pub lines: Vec<u32>,
}

impl OptValue {
    /// File line of line `index` of the value, or the option's line.
    pub fn line_of(&self, index: usize) -> u32 {
        self.lines.get(index).copied().unwrap_or(self.line)
    }
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
                        lines: Vec::new(),
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

    /// Non-blank lines of a multi-line option, stripped, each with its file line.
    pub fn lines_at(&self, key: &str) -> Vec<(&str, u32)> {
        let Some(opt) = self.options.get(key) else {
            return Vec::new();
        };
        opt.value
            .lines()
            .enumerate()
            .map(|(i, l)| (l.trim(), opt.line_of(i)))
            .filter(|(l, _)| !l.is_empty())
            .collect()
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

/// Reads the sections of a parsed manifest, resolving `DEFAULT`, interpolation and
/// `inherit` as the seed did. Sections come in file order; all mistakes are reported.
pub fn read_manifest(
    ini: &crate::ini::Ini,
    manifest_dir: &str,
) -> (Vec<ManifestSection>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    // Own options of every section, interpolated in the section's own context.
    let mut own: BTreeMap<&str, BTreeMap<String, OptValue>> = BTreeMap::new();
    for section in &ini.sections {
        let mut options = BTreeMap::new();
        for key in ini.section_keys(&section.name) {
            let Some(found) = ini.get(&section.name, &key) else {
                continue;
            };
            let (line, lines) = match ini.raw(&section.name, &key) {
                Some(entry) => (entry.line, entry.lines.clone()),
                None => (section.line, Vec::new()),
            };
            match found {
                Ok(value) => {
                    let file = ini.file.clone();
                    options.insert(
                        key.clone(),
                        OptValue {
                            value,
                            file,
                            line,
                            lines,
                        },
                    );
                }
                Err(d) => diags.push(d),
            }
        }
        own.insert(section.name.as_str(), options);
    }

    let mut sections = Vec::new();
    for section in &ini.sections {
        let mut chain = vec![section.name.as_str()];
        let mut current = section.name.as_str();
        // Walk up the `inherit` chain; the merged set is the root's options with each
        // descendant's own options on top.
        while let Some(parent) = own[current].get("inherit") {
            let parent_name = parent.value.trim();
            if !own.contains_key(parent_name) {
                diags.push(
                    Diagnostic::new(
                        &parent.file,
                        parent.line,
                        format!("section `{current}` inherits from `{parent_name}`, which is not a section of this manifest"),
                    )
                    .with_help(format!(
                        "name one of: {}",
                        ini.sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                );
                break;
            }
            if chain.contains(&parent_name) {
                diags.push(
                    Diagnostic::new(
                        &parent.file,
                        parent.line,
                        format!(
                            "`inherit` makes a cycle: {} -> {parent_name}",
                            chain.join(" -> ")
                        ),
                    )
                    .with_help("remove one of the `inherit` options of the cycle"),
                );
                break;
            }
            chain.push(parent_name);
            current = parent_name;
        }
        let mut options = BTreeMap::new();
        for name in chain.iter().rev() {
            for (k, v) in &own[name] {
                options.insert(k.clone(), v.clone());
            }
        }
        sections.push(ManifestSection {
            name: section.name.clone(),
            file: ini.file.clone(),
            line: section.line,
            manifest_dir: manifest_dir.to_string(),
            options,
        });
    }
    (sections, diags)
}
