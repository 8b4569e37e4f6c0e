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
    /// IANA time zone of `nightly` times (`"Europe/Brussels"`); `None`: the system's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Where workers connect.
    #[serde(default = "default_worker_listen")]
    pub worker_listen: String,
    /// Where the web UI and JSON API listen.
    #[serde(default = "default_http_listen")]
    pub http_listen: String,
    /// Worker frames longer than this are refused before they are read, and the connection
    /// closed.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Seconds between two liveness pings of a connected worker.
    #[serde(default = "default_worker_ping_interval")]
    pub worker_ping_interval: f64,
    /// Seconds of silence (not even a pong) after which a worker is declared lost.
    #[serde(default = "default_worker_lost_after")]
    pub worker_lost_after: f64,
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
    /// Where uploads land and what `/artifacts/` serves (relative to the master directory);
    /// default `artifacts`.
    #[serde(default)]
    pub artifacts_dir: Option<String>,
    /// Stored bytes per step log after which the log is truncated with a marker.
    #[serde(default = "default_log_cap_bytes")]
    pub log_cap_bytes: u64,
    /// Values masked as `***` in every log, property and API answer (tokens, passwords
    /// that builds use). Worker passwords are masked without being listed here.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Forge webhooks (`[webhooks.github]`, `[webhooks.gitlab]`, `[webhooks.gitea]`): a forge
    /// whose secret is not set has no endpoint.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// The web status pages (`[web]`).
    #[serde(default)]
    pub web: WebSettings,
    /// The repository the manifests directory is a working copy of: the master pulls it
    /// and reconfigures itself when it changes (the seed's advice: let developers push
    /// manifest changes).
    #[serde(default)]
    pub config_repository: Option<ConfigRepository>,
}

/// `config-repository = { vcs = "git", url = "...", branch = "..." }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigRepository {
    /// `git`, `hg` or `bzr`.
    pub vcs: RepositoryVcs,
    /// Where to pull from.
    pub url: String,
    /// The branch; default: the remote's default branch (git), `default` (hg); none for bzr.
    #[serde(default)]
    pub branch: Option<String>,
    /// The working copy, relative to the master directory; default: the directory of the
    /// first manifest (`buildouts`).
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds between two pulls; default: `poll-interval`.
    #[serde(default)]
    pub poll_interval: Option<u64>,
}

/// The version control system of the configuration repository.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryVcs {
    Git,
    Hg,
    Bzr,
}

/// `[web]`: who may read the status pages, and when a missing worker is flagged.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WebSettings {
    /// Pages readable without logging in (mutations always need a login).
    #[serde(default = "default_true")]
    pub public: bool,
    /// Seconds a worker may be disconnected before the workers page flags it as missing.
    #[serde(default = "default_missing_worker_after")]
    pub missing_worker_after: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            public: true,
            missing_worker_after: default_missing_worker_after(),
        }
    }
}

fn default_missing_worker_after() -> u64 {
    3600
}

/// `[webhooks]`: the forges allowed to push changes, each with its shared secret.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `[webhooks.github]`: `X-Hub-Signature-256` is checked with `secret`.
    #[serde(default)]
    pub github: Option<SignedHook>,
    /// `[webhooks.gitlab]`: `X-Gitlab-Token` must equal `token`.
    #[serde(default)]
    pub gitlab: Option<TokenHook>,
    /// `[webhooks.gitea]` (Gitea and Forgejo): `X-Gitea-Signature` / `X-Forgejo-Signature`
    /// is checked with `secret`.
    #[serde(default)]
    pub gitea: Option<SignedHook>,
}

/// A forge that signs its payloads with HMAC-SHA256 of a shared secret.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedHook {
    /// The shared secret (never shown by `Debug`).
    pub secret: String,
}

impl std::fmt::Debug for SignedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedHook { secret: <hidden> }")
    }
}

/// A forge that sends a shared token in a header.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenHook {
    /// The shared token (never shown by `Debug`).
    pub token: String,
}

impl std::fmt::Debug for TokenHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHook { token: <hidden> }")
    }
}

/// Shortest webhook secret accepted: a guessable one would let anyone trigger builds.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

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
fn default_max_frame_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_worker_ping_interval() -> f64 {
    15.0
}
fn default_worker_lost_after() -> f64 {
    45.0
}
fn default_log_cap_bytes() -> u64 {
    100_000_000
}

/// The smallest log cap accepted: the truncation marker and a useful head must fit.
const MIN_LOG_CAP_BYTES: u64 = 1024;

/// The smallest frame cap accepted: the stock worker's `update`s reach about 64 KiB.
const MIN_FRAME_BYTES: usize = 64 * 1024;

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
    let settings = toml::from_str::<MasterSettings>(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() as u32 + 1)
            .unwrap_or(1);
        let message = e.message().trim().replace('\n', " ");
        Diagnostic::new(file, line, message)
            .with_help("see docs/master-toml.md for the keys master.toml accepts")
    })?;
    check_worker_port_settings(file, text, &settings)?;
    check_timezone(file, text, &settings)?;
    check_webhooks(file, text, &settings.webhooks)?;
    Ok(settings)
}

/// The line where `key` is set inside the table `[header]` (1 when not found).
fn line_in_table(text: &str, header: &str, key: &str) -> u32 {
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            inside = t.replace(' ', "") == header;
            continue;
        }
        if inside
            && t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return i as u32 + 1;
        }
    }
    text.lines()
        .position(|l| l.trim().replace(' ', "") == header)
        .map_or(1, |i| i as u32 + 1)
}

fn check_webhooks(file: &str, text: &str, w: &WebhookSettings) -> Result<(), Diagnostic> {
    let hooks = [
        (
            "github",
            "secret",
            w.github.as_ref().map(|h| h.secret.as_str()),
        ),
        (
            "gitlab",
            "token",
            w.gitlab.as_ref().map(|h| h.token.as_str()),
        ),
        (
            "gitea",
            "secret",
            w.gitea.as_ref().map(|h| h.secret.as_str()),
        ),
    ];
    for (forge, key, value) in hooks {
        let Some(value) = value else { continue };
        let header = format!("[webhooks.{forge}]");
        let line = line_in_table(text, &header, key);
        let problem = if value.trim() != value {
            Some("starts or ends with a blank (a copy-and-paste slip?)")
        } else if value.chars().any(char::is_control) {
            Some("contains a control character")
        } else if value.chars().count() < MIN_WEBHOOK_SECRET_LEN {
            Some("is too short to be secret")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(
                Diagnostic::new(file, line, format!("{header} {key} {problem}")).with_help(
                    format!(
                "use at least {MIN_WEBHOOK_SECRET_LEN} random characters (`openssl rand -hex 32`), \
                 the same in the forge's webhook settings"
            ),
                ),
            );
        }
    }
    Ok(())
}

/// The line where `key` is set, for values that parse but make no sense.
fn line_of(text: &str, key: &str) -> u32 {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i as u32 + 1)
}

/// `timezone` must look like an IANA name (`Area/Location`, `UTC`); whether the zone exists
/// is the planner's question, which has the time zone database.
fn check_timezone(file: &str, text: &str, s: &MasterSettings) -> Result<(), Diagnostic> {
    let Some(name) = &s.timezone else {
        return Ok(());
    };
    let well_formed = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c))
        });
    if well_formed {
        return Ok(());
    }
    Err(Diagnostic::new(
        file,
        line_of(text, "timezone"),
        format!("timezone = {name:?} is not a time zone name"),
    )
    .with_help("write an IANA name such as \"Europe/Brussels\" or \"UTC\", or leave `timezone` out for the system's zone"))
}

fn check_worker_port_settings(
    file: &str,
    text: &str,
    s: &MasterSettings,
) -> Result<(), Diagnostic> {
    if s.max_frame_bytes < MIN_FRAME_BYTES {
        return Err(Diagnostic::new(
            file,
            line_of(text, "max-frame-bytes"),
            format!(
                "max-frame-bytes = {} is too small for worker output",
                s.max_frame_bytes
            ),
        )
        .with_help(format!(
            "use at least {MIN_FRAME_BYTES} (the default is 16777216)"
        )));
    }
    if s.log_cap_bytes < MIN_LOG_CAP_BYTES {
        return Err(Diagnostic::new(
            file,
            line_of(text, "log-cap-bytes"),
            format!("log-cap-bytes = {} is too small", s.log_cap_bytes),
        )
        .with_help(format!(
            "use at least {MIN_LOG_CAP_BYTES} (the default is 100000000, 100 MB)"
        )));
    }
    if let Some(i) = s.secrets.iter().position(|v| v.is_empty()) {
        return Err(Diagnostic::new(
            file,
            line_of(text, "secrets"),
            format!("secrets[{i}] is empty: an empty secret would mask nothing"),
        )
        .with_help("remove the empty string from `secrets`"));
    }
    if s.web.missing_worker_after == 0 {
        return Err(Diagnostic::new(
            file,
            line_of(text, "missing-worker-after"),
            "missing-worker-after must be a positive number of seconds",
        )
        .with_help("the default is 3600 (a worker away for an hour is flagged)"));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(s.worker_ping_interval) {
        return Err(Diagnostic::new(
            file,
            line_of(text, "worker-ping-interval"),
            "worker-ping-interval must be a positive number of seconds",
        )
        .with_help("the default is 15"));
    }
    if !positive(s.worker_lost_after) || s.worker_lost_after <= s.worker_ping_interval {
        return Err(Diagnostic::new(
            file,
            line_of(text, "worker-lost-after"),
            format!(
                "worker-lost-after ({}) must be longer than worker-ping-interval ({})",
                s.worker_lost_after, s.worker_ping_interval
            ),
        )
        .with_help("a worker gets at least two pings before it is declared lost: the defaults are 15 and 45"));
    }
    Ok(())
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
        assert_eq!(s.max_frame_bytes, 16 * 1024 * 1024);
        assert_eq!(s.worker_ping_interval, 15.0);
        assert_eq!(s.worker_lost_after, 45.0);
        assert_eq!(s.log_cap_bytes, 100_000_000);
        assert_eq!(s.artifacts_dir, None);
        assert!(s.secrets.is_empty());
    }

    #[test]
    fn worker_port_settings_are_checked() {
        let s = read_settings(
            "master.toml",
            "worker-ping-interval = 1\nworker-lost-after = 2.5\n",
        )
        .unwrap();
        assert_eq!((s.worker_ping_interval, s.worker_lost_after), (1.0, 2.5));
        let cases = [
            ("max-frame-bytes = 10\n", 1),
            ("\nworker-ping-interval = 0\n", 2),
            ("worker-ping-interval = 20\n\nworker-lost-after = 20\n", 3),
            ("worker-lost-after = -1\n", 1),
            ("\nlog-cap-bytes = 10\n", 2),
            ("secrets = [\"a\", \"\"]\n", 1),
        ];
        for (text, line) in cases {
            let d = read_settings("master.toml", text).unwrap_err();
            assert_eq!(d.line, Some(line), "{text:?}: {d}");
        }
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
    fn timezone_is_a_zone_name() {
        assert_eq!(read_settings("master.toml", "").unwrap().timezone, None);
        for name in [
            "Europe/Brussels",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+2",
        ] {
            let s = read_settings("master.toml", &format!("timezone = {name:?}\n")).unwrap();
            assert_eq!(s.timezone.as_deref(), Some(name));
        }
        for name in [
            "",
            "Europe/",
            "/etc/localtime",
            "../x",
            "Europe/Brussels CET",
            "Ê",
        ] {
            let text = format!("manifests = []\ntimezone = {name:?}\n");
            let d = read_settings("master.toml", &text).unwrap_err();
            assert_eq!(d.line, Some(2), "{name:?}: {d}");
            assert!(d.to_string().contains("is not a time zone name"), "{d}");
        }
        assert!(read_settings("master.toml", "timezone = 1\n").is_err());
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

    #[test]
    fn web_table_reads_and_is_checked() {
        let s = read_settings("master.toml", "").unwrap();
        assert!(s.web.public);
        assert_eq!(s.web.missing_worker_after, 3600);
        let s = read_settings(
            "master.toml",
            "[web]\npublic = false\nmissing-worker-after = 60\n",
        )
        .unwrap();
        assert!(!s.web.public);
        assert_eq!(s.web.missing_worker_after, 60);
        let e = read_settings("master.toml", "[web]\nmissing-worker-after = 0\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(read_settings("master.toml", "[web]\npublik = true\n").is_err());
    }

    #[test]
    fn webhooks_read_and_are_checked() {
        let s = read_settings("master.toml", "").unwrap();
        assert_eq!(s.webhooks, WebhookSettings::default());
        let text = "[webhooks.github]\nsecret = \"0123456789abcdef-gh\"\n\
                    [webhooks.gitlab]\ntoken = \"0123456789abcdef-gl\"\n\
                    [webhooks.gitea]\nsecret = \"0123456789abcdef-gt\"\n";
        let s = read_settings("master.toml", text).unwrap();
        assert_eq!(
            s.webhooks.github.as_ref().unwrap().secret,
            "0123456789abcdef-gh"
        );
        assert_eq!(
            s.webhooks.gitlab.as_ref().unwrap().token,
            "0123456789abcdef-gl"
        );
        assert_eq!(
            s.webhooks.gitea.as_ref().unwrap().secret,
            "0123456789abcdef-gt"
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let cases = [
            ("[webhooks.github]\nsecret = \"short\"\n", 2),
            ("[webhooks.github]\nsecret = \"0123456789abcdef\"\n[webhooks.gitea]\n\nsecret = \"\"\n", 5),
            ("[webhooks.gitlab]\ntoken = \" 0123456789abcdef\"\n", 2),
            ("[webhooks.gitlab]\nsecret = \"0123456789abcdef\"\n", 2),
            ("[webhooks.bitbucket]\nsecret = \"0123456789abcdef\"\n", 1),
        ];
        for (text, line) in cases {
            let d = read_settings("master.toml", text).unwrap_err();
            assert_eq!(d.line, Some(line), "{text:?}: {d}");
            assert!(!d.to_string().contains("0123456789abcdef"), "{d}");
        }
    }
}
