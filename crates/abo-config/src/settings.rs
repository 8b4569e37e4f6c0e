//! `master.toml`: abo's own settings. Every key is optional; the defaults make a master
//! directory laid out like the seed's (`buildouts/MANIFEST.cfg`, `workers.cfg`).

use crate::diag::Diagnostic;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const DEFAULT_MANIFEST: &str = "buildouts/MANIFEST.cfg";
pub const DEFAULT_WORKERS: &str = "workers.cfg";
/// The seed's name for the workers file, read when `workers.cfg` is absent.
pub const SEED_WORKERS: &str = "slaves.cfg";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasterSettings {
    /// Manifest files, relative to the master directory.
    #[serde(default = "default_manifests")]
    pub manifests: Vec<String>,
    /// Workers file; `None` means `workers.cfg`, or `slaves.cfg` when that is absent.
    #[serde(default)]
    pub workers: Option<String>,
    /// Default tree-stable timer of schedulers, in seconds.
    #[serde(default = "default_600")]
    pub tree_stable_timer: u64,
    /// Default poll interval of pollers, in seconds.
    #[serde(default = "default_600")]
    pub poll_interval: u64,
    /// Where workers connect.
    #[serde(default = "default_worker_listen")]
    pub worker_listen: String,
    /// Where the web UI and JSON API listen.
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
    /// Database URL; default: an SQLite file `abo.sqlite` in the master directory.
    #[serde(default)]
    pub database: Option<String>,
    /// URL rewriting rules, applied in order, each on the previous result.
    #[serde(default)]
    pub url_rewrite: Vec<UrlRewriteRule>,
    /// Environment mappings for capabilities other than (or overriding) `postgresql`.
    #[serde(default)]
    pub capability_env: BTreeMap<String, CapabilityEnv>,
    /// User-defined step sets, usable as `steps = NAME` or in `post-buildout-steps`.
    #[serde(default)]
    pub step_sets: BTreeMap<String, Vec<StepSpec>>,
    /// Master directories under which the seed's absolute upload paths
    /// (`doc.upload-root`, `packaging.root-dir`) are accepted.
    #[serde(default)]
    pub allowed_upload_roots: Vec<String>,
}

fn default_manifests() -> Vec<String> {
    vec![DEFAULT_MANIFEST.to_string()]
}
fn default_600() -> u64 {
    600
}
fn default_worker_listen() -> String {
    "0.0.0.0:9989".to_string()
}
fn default_http_listen() -> String {
    "127.0.0.1:8010".to_string()
}

impl Default for MasterSettings {
    fn default() -> Self {
        toml::from_str("").expect("empty settings use defaults")
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UrlRewriteRule {
    pub from: String,
    pub to: String,
}

/// A string, or a list of strings (joined with `:` at run time, like `PATH`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum EnvSpec {
    One(String),
    List(Vec<String>),
}

/// How a capability maps to build properties and environment variables.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CapabilityEnv {
    /// Build property that holds the version of the capability the build uses.
    #[serde(default)]
    pub version_property: Option<String>,
    /// Environment variables; `cap(option)` in a value refers to the capability's option.
    #[serde(default)]
    pub environ: BTreeMap<String, EnvSpec>,
}

/// A command: argument vector, or a shell string the user wrote as such.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StepSpecKind {
    #[default]
    Shell,
    MasterShell,
    Download,
    UploadFile,
    UploadDirectory,
    SetProperties,
    SetPropertyFromCommand,
    AnalyzeLog,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LockModeSpec {
    Exclusive,
    Counting,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    pub name: String,
    #[serde(default = "default_lock_mode")]
    pub mode: LockModeSpec,
}

fn default_lock_mode() -> LockModeSpec {
    LockModeSpec::Exclusive
}

/// One step of a user step set (`[[step-sets.NAME]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    #[serde(default)]
    pub kind: StepSpecKind,
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvSpec>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub halt_on_failure: bool,
    #[serde(default = "default_true")]
    pub flunk_on_failure: bool,
    #[serde(default)]
    pub warn_on_failure: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub timeout: Option<u64>,
    #[serde(default)]
    pub logfiles: BTreeMap<String, String>,
    #[serde(default)]
    pub locks: Vec<LockSpec>,
    /// `download`/`upload-*`: source path.
    #[serde(default)]
    pub src: Option<String>,
    /// `download`/`upload-*`: destination path.
    #[serde(default)]
    pub dest: Option<String>,
    /// `set-properties`: property name → template.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// `set-property-from-command`: the property to set.
    #[serde(default)]
    pub property: Option<String>,
    /// `analyze-log`: the step whose log is analysed, and the log's name.
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub log: Option<String>,
}

fn default_true() -> bool {
    true
}

/// Parses `master.toml`. A syntax or type mistake is reported at its line.
pub fn read_settings(file: &str, text: &str) -> Result<MasterSettings, Diagnostic> {
    toml::from_str::<MasterSettings>(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() as u32 + 1)
            .unwrap_or(1);
        let message = e.message().trim().replace('\n', " ");
        Diagnostic::new(file, line, message)
            .with_help("see docs/master-toml.md for the keys master.toml accepts")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let s = read_settings("master.toml", "").unwrap();
        assert_eq!(s.manifests, vec!["buildouts/MANIFEST.cfg"]);
        assert_eq!(s.tree_stable_timer, 600);
        assert_eq!(s.poll_interval, 600);
        assert_eq!(s.worker_listen, "0.0.0.0:9989");
        assert_eq!(s.http_listen, "127.0.0.1:8010");
    }

    #[test]
    fn issue_example_reads() {
        let text = r#"
manifests = ["buildouts/MANIFEST.cfg"]
workers = "workers.cfg"
tree-stable-timer = 600
poll-interval = 600
[[url-rewrite]]
from = "http://hg.example/"
to = "ssh://hg@example/"
[capability-env.python]
version-property = "py_version"
environ = { PYTHONBIN = "%(cap(bin):-)s" }
[[step-sets.my-checks]]
name = "flake8"
command = ["flake8", "src"]
"#;
        let s = read_settings("master.toml", text).unwrap();
        assert_eq!(s.url_rewrite.len(), 1);
        let py = &s.capability_env["python"];
        assert_eq!(py.version_property.as_deref(), Some("py_version"));
        assert_eq!(
            py.environ["PYTHONBIN"],
            EnvSpec::One("%(cap(bin):-)s".into())
        );
        assert_eq!(s.step_sets["my-checks"][0].name, "flake8");
        assert!(s.step_sets["my-checks"][0].flunk_on_failure);
    }

    #[test]
    fn mistakes_point_at_their_line() {
        let cases = [
            ("tree-stable-timer = \"soon\"\n", 1),
            ("\n\npoll-intervall = 3\n", 3),
            ("[[step-sets.x]]\nname = \"a\"\nkind = \"frobnicate\"\n", 3),
        ];
        for (text, line) in cases {
            let d = read_settings("master.toml", text).unwrap_err();
            assert_eq!(d.line, Some(line), "{text:?}: {d}");
        }
    }
}
