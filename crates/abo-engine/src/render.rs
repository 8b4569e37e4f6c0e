//! Steps rendered for the runtime: every template of a plan [`Step`] filled in from the
//! build's properties, so that the runtime only moves bytes and never sees `%(name)s`.

use abo_plan::props::CapabilityPropsError;
use abo_plan::template::{render, TemplateError};
use abo_plan::{Command, EnvValue, Step, StepKind, Vcs};
use std::collections::BTreeMap;

/// The step's working directory, relative to the builder directory, when the plan says
/// none: Buildbot's default.
pub const DEFAULT_WORKDIR: &str = "build";

/// Why a step could not run: it ends with `exception` and this message (never a panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A template of the step could not be rendered (a property is not set, a stray `%`).
    #[error("cannot render `{template}`: {error}")]
    Render {
        template: String,
        error: TemplateError,
    },
    /// A command step without a command: a mistake in the plan.
    #[error("step `{0}` has no command to run")]
    NoCommand(String),
    /// `SetCapabilityProperties` could not choose the capability version.
    #[error(transparent)]
    Capability(#[from] CapabilityPropsError),
    /// Every port of a `reserve-port` range is reserved by other builds on this worker.
    #[error("no free port in {min}..{max} (step {step}) on worker {worker}: all are reserved by running builds")]
    NoFreePort {
        min: u16,
        max: u16,
        step: u16,
        worker: String,
    },
    /// `analyze-log` names a step that does not come before it in the build.
    #[error("no step `{0}` before this one to analyse the log of")]
    NoSuchStep(String),
}

/// A command, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedCommand {
    /// An argument vector, never passed through a shell.
    Argv(Vec<String>),
    /// A shell string the user wrote as such.
    Shell(String),
}

/// An environment value, rendered. `${VAR}` references are kept for the worker to expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedEnv {
    One(String),
    /// Joined with the worker's path separator by the worker. Empty elements (an unset
    /// `%(cap_postgresql_bin:-)s`) are already dropped: an empty `PATH` entry would mean the
    /// current directory.
    List(Vec<String>),
}

/// What the runtime does for a step, with its own fields rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedKind {
    /// Run the command on the worker.
    Shell,
    /// Run the command on the master, in the artifacts directory.
    MasterShell,
    /// Send master file `src` to `dest` (relative to the step's workdir) on the worker.
    Download { src: String, dest: String },
    /// Fetch worker file `src` into `dest` under the master's artifacts directory.
    UploadFile { src: String, dest: String },
    /// Fetch worker directory `src` (tar) into `dest` under the artifacts directory.
    UploadDirectory { src: String, dest: String },
    /// Run the command on the worker; report its stripped standard output as property
    /// `property` in [`StepOutcome::properties`](crate::StepOutcome::properties).
    SetPropertyFromCommand { property: String },
    /// Clone or update a repository into `dest` (relative to the builder directory).
    Checkout {
        vcs: Vcs,
        repo: String,
        branch: Option<String>,
        revision: Option<String>,
        dest: String,
        subdir: Option<String>,
    },
    /// Analyse, on the master, log `log` of the build's step number `step_index` (named
    /// `step`); the analysis's verdict is the step's result.
    AnalyzeLog {
        step: String,
        step_index: usize,
        log: String,
    },
}

/// A step ready to run: the plan's step with every template rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedStep {
    /// The step's position in the build (what [`Event::StepFinished`](crate::Event) answers).
    pub index: usize,
    pub name: String,
    pub kind: RenderedKind,
    pub command: Option<RenderedCommand>,
    pub env: BTreeMap<String, RenderedEnv>,
    /// Relative to the builder directory (`build` unless the plan says otherwise).
    pub workdir: String,
    /// Seconds without output before the command is killed.
    pub timeout: Option<u64>,
    /// Extra log files followed while the command runs: log name → path on the worker.
    pub logfiles: BTreeMap<String, String>,
    /// Shown only to those who ask (it still runs).
    pub hidden: bool,
}

/// Renders one template from the build's properties.
pub(crate) fn render_one(
    template: &str,
    props: &BTreeMap<String, String>,
) -> Result<String, StepError> {
    render(template, |name| props.get(name).cloned()).map_err(|error| StepError::Render {
        template: template.to_string(),
        error,
    })
}

fn render_opt(
    template: &Option<String>,
    props: &BTreeMap<String, String>,
) -> Result<Option<String>, StepError> {
    template
        .as_deref()
        .map(|t| render_one(t, props))
        .transpose()
}

/// Renders a runtime step. `steps` is the build's whole step list (to resolve the step an
/// `analyze-log` refers to). Engine-side kinds (`set-properties`,
/// `set-capability-properties`, `reserve-port`) are not rendered here: they return `None`.
pub(crate) fn render_step(
    steps: &[Step],
    index: usize,
    props: &BTreeMap<String, String>,
) -> Option<Result<RenderedStep, StepError>> {
    let step = steps.get(index)?;
    let kind = match &step.kind {
        StepKind::SetProperties { .. }
        | StepKind::SetCapabilityProperties { .. }
        | StepKind::ReservePort { .. } => return None,
        StepKind::Shell => Ok(RenderedKind::Shell),
        StepKind::MasterShell => Ok(RenderedKind::MasterShell),
        StepKind::Download { src, dest } => {
            render_pair(src, dest, props).map(|(src, dest)| RenderedKind::Download { src, dest })
        }
        StepKind::UploadFile { src, dest } => {
            render_pair(src, dest, props).map(|(src, dest)| RenderedKind::UploadFile { src, dest })
        }
        StepKind::UploadDirectory { src, dest } => render_pair(src, dest, props)
            .map(|(src, dest)| RenderedKind::UploadDirectory { src, dest }),
        StepKind::SetPropertyFromCommand { property } => Ok(RenderedKind::SetPropertyFromCommand {
            property: property.clone(),
        }),
        StepKind::Checkout {
            vcs,
            repo,
            branch,
            revision,
            dest,
            subdir,
        } => (|| {
            Ok(RenderedKind::Checkout {
                vcs: *vcs,
                repo: render_one(repo, props)?,
                branch: render_opt(branch, props)?,
                revision: render_opt(revision, props)?,
                dest: render_one(dest, props)?,
                subdir: render_opt(subdir, props)?,
            })
        })(),
        StepKind::AnalyzeLog { step: target, log } => steps[..index]
            .iter()
            .rposition(|s| &s.name == target)
            .map(|step_index| RenderedKind::AnalyzeLog {
                step: target.clone(),
                step_index,
                log: log.clone(),
            })
            .ok_or_else(|| StepError::NoSuchStep(target.clone())),
    };
    Some(kind.and_then(|kind| finish(step, index, kind, props)))
}

fn render_pair(
    src: &str,
    dest: &str,
    props: &BTreeMap<String, String>,
) -> Result<(String, String), StepError> {
    Ok((render_one(src, props)?, render_one(dest, props)?))
}

/// The fields every runtime step has.
fn finish(
    step: &Step,
    index: usize,
    kind: RenderedKind,
    props: &BTreeMap<String, String>,
) -> Result<RenderedStep, StepError> {
    let needs_command = match kind {
        RenderedKind::Shell
        | RenderedKind::MasterShell
        | RenderedKind::SetPropertyFromCommand { .. } => true,
        RenderedKind::Download { .. }
        | RenderedKind::UploadFile { .. }
        | RenderedKind::UploadDirectory { .. }
        | RenderedKind::Checkout { .. }
        | RenderedKind::AnalyzeLog { .. } => false,
    };
    let command = match &step.command {
        Some(Command::Argv(argv)) => Some(RenderedCommand::Argv(
            argv.iter()
                .map(|a| render_one(a, props))
                .collect::<Result<_, _>>()?,
        )),
        Some(Command::Shell(s)) => Some(RenderedCommand::Shell(render_one(s, props)?)),
        None if needs_command => return Err(StepError::NoCommand(step.name.clone())),
        None => None,
    };
    let mut env = BTreeMap::new();
    for (name, value) in &step.env {
        let rendered = match value {
            EnvValue::One(t) => RenderedEnv::One(render_one(t, props)?),
            EnvValue::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items {
                    let v = render_one(t, props)?;
                    if !v.is_empty() {
                        out.push(v);
                    }
                }
                RenderedEnv::List(out)
            }
        };
        env.insert(name.clone(), rendered);
    }
    let workdir = match &step.workdir {
        Some(t) => render_one(t, props)?,
        None => DEFAULT_WORKDIR.to_string(),
    };
    let logfiles = step
        .logfiles
        .iter()
        .map(|(name, path)| Ok((name.clone(), render_one(path, props)?)))
        .collect::<Result<_, StepError>>()?;
    Ok(RenderedStep {
        index,
        name: step.name.clone(),
        kind,
        command,
        env,
        workdir,
        timeout: step.timeout,
        logfiles,
        hidden: step.hidden,
    })
}

/// The builder's directory under the worker's base directory: the builder name with every
/// character other than ASCII letters, digits, `-`, `_` and `.` replaced by `_` (Buildbot's
/// `safeTranslate` idea), so that a builder name can never climb out of the base directory.
/// The runtime must use the same name when it addresses the worker.
pub fn builder_dir(builder: &str) -> String {
    let name: String = builder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // `.` and `..` alone (or nothing) would name the base directory or its parent.
    if name.chars().all(|c| c == '.') {
        "_".repeat(name.len().max(1))
    } else {
        name
    }
}
