//! The plan's types: what abo will run. Serialized as `abo check --json`.
//!
//! Strings in steps (commands, env values, properties) are *templates*, rendered at build
//! time from build properties with Python `%`-syntax: `%(name)s`, `%(name:-default)s`, and
//! `%%` for a literal `%` (see [`crate::template`]).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything abo derives from the configuration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub workers: Vec<WorkerView>,
    pub builders: Vec<Builder>,
    pub schedulers: Vec<Scheduler>,
    pub pollers: Vec<Poller>,
}

/// A worker as declared in workers.cfg (never its password).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerView {
    pub name: String,
    pub max_builds: Option<u32>,
    pub notify_on_missing: Vec<String>,
    pub capabilities: Vec<CapabilityView>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CapabilityView {
    pub name: String,
    pub version: Option<String>,
    pub options: BTreeMap<String, String>,
}

/// One builder: a manifest section crossed with one version of each dispatching capability.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Builder {
    pub name: String,
    /// The manifest section (the seed's "factory") this builder comes from.
    pub buildout: String,
    /// Workers that may run it, in workers-file order. Shared by every builder with the
    /// same workers (2,000 builders each held a list of their own), as are the names in it.
    pub workers: Arc<[Arc<str>]>,
    pub category: String,
    /// Builder properties, e.g. `pg_version`.
    pub properties: BTreeMap<String, String>,
    /// Shared by every builder with the same steps: the builders of a section differ only
    /// by their properties, and sections of one step set mostly have the same steps.
    pub steps: Arc<[Step]>,
}

/// A command: an argument vector (never passed through a shell), or a shell string
/// that the user wrote as such.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

/// An environment value: a plain template, or a list joined with `:` at run time
/// (`PATH`-like: `["%(cap_postgresql_bin:-)s", "${PATH}"]`, empty elements dropped).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum EnvValue {
    One(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Exclusive,
    Counting,
}

/// A worker lock taken while the step runs (`buildout`, `port-reserve`, or user-defined).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct LockUse {
    pub name: String,
    pub mode: LockMode,
}

/// One step of a builder. `Eq` and `Hash` let the planner share equal step lists.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct Step {
    pub name: String,
    #[serde(flatten)]
    pub kind: StepKind,
    pub command: Option<Command>,
    pub env: BTreeMap<String, EnvValue>,
    /// Relative to the builder's directory on the worker; `None` means `build`.
    pub workdir: Option<String>,
    pub halt_on_failure: bool,
    pub flunk_on_failure: bool,
    pub warn_on_failure: bool,
    pub hidden: bool,
    /// Seconds without output before the command is killed.
    pub timeout: Option<u64>,
    pub locks: Vec<LockUse>,
    /// Extra log files followed while the command runs: log name → path on the worker.
    pub logfiles: BTreeMap<String, String>,
}

impl Step {
    /// A step with Buildbot's defaults: flunk on failure, nothing else.
    pub fn new(name: impl Into<String>, kind: StepKind) -> Self {
        Step {
            name: name.into(),
            kind,
            command: None,
            env: BTreeMap::new(),
            workdir: None,
            halt_on_failure: false,
            flunk_on_failure: true,
            warn_on_failure: false,
            hidden: false,
            timeout: None,
            locks: Vec::new(),
            logfiles: BTreeMap::new(),
        }
    }

    /// A shell-kind step running `argv` (no shell involved).
    pub fn argv<S: Into<String>>(name: &str, argv: impl IntoIterator<Item = S>) -> Self {
        let mut step = Step::new(name, StepKind::Shell);
        step.command = Some(Command::Argv(argv.into_iter().map(Into::into).collect()));
        step
    }

    pub fn halt(mut self) -> Self {
        self.halt_on_failure = true;
        self
    }

    /// Every string of the step that is rendered at build time, so that a template mistake
    /// is found when the configuration is checked, not in the middle of a build.
    pub fn templates(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match &self.command {
            Some(Command::Argv(argv)) => out.extend(argv.iter().map(String::as_str)),
            Some(Command::Shell(s)) => out.push(s),
            None => {}
        }
        for value in self.env.values() {
            match value {
                EnvValue::One(s) => out.push(s),
                EnvValue::List(l) => out.extend(l.iter().map(String::as_str)),
            }
        }
        out.extend(self.workdir.as_deref());
        out.extend(self.logfiles.values().map(String::as_str));
        match &self.kind {
            StepKind::Download { src, dest }
            | StepKind::UploadFile { src, dest }
            | StepKind::UploadDirectory { src, dest } => out.extend([src.as_str(), dest.as_str()]),
            StepKind::SetProperties { properties } => {
                out.extend(properties.values().map(String::as_str))
            }
            StepKind::Checkout {
                repo,
                branch,
                revision,
                dest,
                subdir,
                ..
            } => {
                out.push(repo);
                out.extend(branch.as_deref());
                out.extend(revision.as_deref());
                out.push(dest);
                out.extend(subdir.as_deref());
            }
            StepKind::Shell
            | StepKind::MasterShell
            | StepKind::SetCapabilityProperties { .. }
            | StepKind::SetPropertyFromCommand { .. }
            | StepKind::ReservePort { .. }
            | StepKind::AnalyzeLog { .. } => {}
        }
        out
    }
}

/// What a step does. Serialized flat into the step: `"kind": "shell"`, plus its own fields.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    /// Runs `command` on the worker.
    Shell,
    /// Runs `command` on the master (argv only), in the master's artifacts directory: the
    /// directory relative upload destinations are resolved against, so that the seed's
    /// `chmod`/`find` steps after an upload act on what was uploaded.
    MasterShell,
    /// Sends a master file to the worker. `src` is a path on the master (absolute, or
    /// relative to the master directory); `dest` is relative to the step's workdir.
    Download { src: String, dest: String },
    /// Fetches one worker file into the master's artifacts directory (`dest` relative to it).
    UploadFile { src: String, dest: String },
    /// Fetches a worker directory (tar) into the artifacts directory.
    UploadDirectory { src: String, dest: String },
    /// Sets build properties from templates (the seed's `pg_cluster_props` is one).
    SetProperties {
        properties: BTreeMap<String, String>,
    },
    /// Sets `cap_<capability>_<option>` properties for the capability version selected by
    /// `version_property` (the seed's `props_<capability>` steps).
    SetCapabilityProperties {
        capability: String,
        version_property: Option<String>,
    },
    /// Runs `command` on the worker and stores its stripped standard output in `property`.
    SetPropertyFromCommand { property: String },
    /// Reserves a TCP port on the worker for this build, free and not reserved by another
    /// running build there; stores it in `property`.
    ReservePort {
        property: String,
        min: u16,
        max: u16,
        step: u16,
    },
    /// Fetches a repository into `dest` (relative to the builder directory) on the worker:
    /// a clone, or an update of an existing clone, with plain VCS commands run as argument
    /// vectors. `revision` (a template, e.g. `%(buildout-tag)s`) wins over `branch`.
    /// `subdir` keeps only that subdirectory of the repository (bzr `subdir=`).
    Checkout {
        vcs: Vcs,
        repo: String,
        branch: Option<String>,
        revision: Option<String>,
        dest: String,
        subdir: Option<String>,
    },
    /// Analyses an OpenERP/Odoo log on the master: the log `log` collected by step `step`.
    AnalyzeLog { step: String, log: String },
}

/// One scheduler per buildout section (`buildout` or `steps`) that is watched or has a
/// `nightly` option: when to build the section's builders.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scheduler {
    pub name: String,
    pub builders: Vec<String>,
    /// Seconds without a new change before the builders are triggered.
    pub tree_stable_timer: u64,
    /// The change filter; empty for a scheduler that only has `nightly` times.
    pub watch: Vec<WatchedBranch>,
    /// Times of day the builders are also built, in the master's time zone (`nightly`);
    /// empty when the section has none.
    pub nightly: Vec<Nightly>,
}

/// A day of the week, Monday first (ISO 8601). Serialized as `"mon"`, `"tue"`, ...
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// `mon`, `tue`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// Days since Monday: 0 for Monday, 6 for Sunday.
    pub fn days_from_monday(self) -> u8 {
        self as u8
    }
}

/// A wall-clock time at which a scheduler builds its builders (the `nightly` option), on
/// some days of the week, in the master's time zone (master.toml `timezone`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct Nightly {
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// The days it applies, Monday first, without repetition; all seven when the option
    /// names none. Never empty.
    pub weekdays: Vec<Weekday>,
}

impl std::fmt::Display for Nightly {
    /// As a manifest would write it, normalized: `02:30`, `02:30 mon-fri`, `23:00 sat,sun`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)?;
        let mut days = [false; 7];
        for d in &self.weekdays {
            days[d.days_from_monday() as usize] = true;
        }
        if days.iter().all(|d| *d) {
            return Ok(());
        }
        // Runs of consecutive days, Monday first: three or more as a range.
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !days[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < 7 && days[i + 1] {
                i += 1;
            }
            let (a, b) = (Weekday::ALL[start].as_str(), Weekday::ALL[i].as_str());
            match i - start {
                0 => parts.push(a.to_string()),
                1 => parts.extend([a.to_string(), b.to_string()]),
                _ => parts.push(format!("{a}-{b}")),
            }
            i += 1;
        }
        write!(f, " {}", parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Vcs {
    Git,
    Hg,
    Bzr,
}

impl Vcs {
    pub fn as_str(self) -> &'static str {
        match self {
            Vcs::Git => "git",
            Vcs::Hg => "hg",
            Vcs::Bzr => "bzr",
        }
    }
}

/// A change-filter entry: changes to `url` (rewritten) on `branch` are interesting.
/// `branch` is `None` for bzr, whose branch is the URL itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WatchedBranch {
    pub vcs: Vcs,
    pub url: String,
    pub branch: Option<String>,
}

/// One repository to poll.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Poller {
    pub vcs: Vcs,
    /// The URL polled (after rewriting).
    pub url: String,
    pub branches: Vec<String>,
    /// Relative to the master directory: `<vcs>poller/<sha1 of the original URL>`.
    pub workdir: String,
    /// Seconds between polls.
    pub interval: u64,
}
