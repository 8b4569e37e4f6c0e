//! Workers files (`workers.cfg`, the seed's `slaves.cfg`): one section per worker.
//!
//! A closed list of options configures the worker itself (`password`/`passwd`,
//! `capability`, `max_builds`, `notify_on_missing`); every other option becomes a worker
//! property (`db_prefix`, `build-only-if-requires`, ...), as in the seed.

use crate::diag::Diagnostic;
use crate::ini::Ini;
use std::collections::BTreeMap;

/// One capability line: `name [version [key=value ...]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub name: String,
    pub version: Option<String>,
    pub options: BTreeMap<String, String>,
    pub line: u32,
}

/// A worker as declared in the workers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    /// Secret: never printed, never serialized.
    pub password: String,
    /// Capabilities in file order (one entry per line).
    pub capabilities: Vec<Capability>,
    pub max_builds: Option<u32>,
    pub notify_on_missing: Vec<String>,
    /// Every other option, e.g. `db_prefix`, `build-only-if-requires`.
    pub properties: BTreeMap<String, String>,
    pub file: String,
    pub line: u32,
}

impl Worker {
    /// Names listed in the `build-only-if-requires` property.
    pub fn only_if_requires(&self) -> Vec<&str> {
        self.properties
            .get("build-only-if-requires")
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default()
    }

    /// Versions declared for capability `name`, in file order.
    pub fn versions_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Capability> + 'a {
        self.capabilities.iter().filter(move |c| c.name == name)
    }
}

/// Parses one capability line. `line` is the line number to report.
pub fn parse_capability(text: &str, file: &str, line: u32) -> Result<Capability, Diagnostic> {
    let mut tokens = text.split_whitespace();
    let name = tokens.next().unwrap_or_default().to_string();
    let version = tokens.next().map(str::to_string);
    if let Some(v) = &version {
        if v.contains('=') {
            return Err(Diagnostic::new(
                file,
                line,
                format!("capability `{name}`: `{v}` is an option where the version is expected"),
            )
            .with_help(format!(
                "write the version first: `{name} <version> {v}`, or `{name}` alone"
            )));
        }
    }
    let mut options = BTreeMap::new();
    for token in tokens {
        match token.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                options.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(Diagnostic::new(
                    file,
                    line,
                    format!("capability `{name}`: option `{token}` has no value"),
                )
                .with_help(format!("write it as `{token}=VALUE`")))
            }
        }
    }
    Ok(Capability {
        name,
        version,
        options,
        line,
    })
}

/// Reads every worker of a parsed workers file, reporting all mistakes.
pub fn read_workers(ini: &Ini) -> (Vec<Worker>, Vec<Diagnostic>) {
    let file = ini.file.as_str();
    let mut workers = Vec::new();
    let mut diags = Vec::new();
    for section in &ini.sections {
        let mut worker = Worker {
            name: section.name.clone(),
            password: String::new(),
            capabilities: Vec::new(),
            max_builds: None,
            notify_on_missing: Vec::new(),
            properties: BTreeMap::new(),
            file: file.to_string(),
            line: section.line,
        };
        let mut has_password = false;
        for key in ini.section_keys(&section.name) {
            let Some(found) = ini.get(&section.name, &key) else {
                continue;
            };
            let entry = ini.raw(&section.name, &key);
            let line = entry.map_or(section.line, |entry| entry.line);
            let value = match found {
                Ok(v) => v,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            match key.as_str() {
                "password" | "passwd" => {
                    has_password = true;
                    worker.password = value;
                }
                "capability" => {
                    // A multi-line value: one capability per line, each blamed on its
                    // own line of the file.
                    for (i, cap_line) in value.lines().enumerate() {
                        if cap_line.trim().is_empty() {
                            continue;
                        }
                        let cap_at = entry.map_or(line, |e| e.line_of(i));
                        match parse_capability(cap_line, file, cap_at) {
                            Ok(c) => worker.capabilities.push(c),
                            Err(d) => diags.push(d),
                        }
                    }
                }
                "max_builds" => match value.trim().parse::<u32>() {
                    Ok(n) if n > 0 => worker.max_builds = Some(n),
                    _ => diags.push(
                        Diagnostic::new(
                            file,
                            line,
                            format!("max_builds = {value:?} is not a positive integer"),
                        )
                        .with_help("write e.g. `max_builds = 2`"),
                    ),
                },
                "notify_on_missing" => {
                    worker.notify_on_missing = value
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                }
                _ => {
                    worker.properties.insert(key.clone(), value);
                }
            }
        }
        if !has_password || worker.password.is_empty() {
            // abo's deliberate difference #6: 0.9 silently dropped such a worker.
            diags.push(
                Diagnostic::new(
                    file,
                    section.line,
                    format!("worker `{}` has no password", section.name),
                )
                .with_help("add `password = ...` (the worker authenticates with it)"),
            );
        }
        workers.push(worker);
    }
    (workers, diags)
}
