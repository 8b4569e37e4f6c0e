//! The planner: manifests × workers × settings → [`Plan`].
//!
//! A pure function ([`plan`]). Matrix expansion follows the seed (builders per PostgreSQL
//! version, `<section>-postgresql-<version>`), extended as later upstream did: every other
//! capability named in `build-for` multiplies the matrix
//! (`<section>-postgresql-9.1-python-2.7`), and `build-for = postgresql not-used` drops the
//! PostgreSQL dimension (one builder named after the section when nothing else dispatches).

use crate::model::*;
use crate::nightly::{nightly, time_zone};
use crate::steps::{factory_steps, StepContext};
use crate::template::expand_cap;
use crate::version::{Requirement, Version};
use crate::watch::{pollers, watch_table, UrlRewriter};
use abo_config::settings::{
    CapabilityEnv, CommandSpec, EnvSpec, LockModeSpec, StepSpec, StepSpecKind,
};
use abo_config::{Diagnostic, ManifestSection, MasterSettings, Worker};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

/// What the planner reads. Sections of every manifest, in order; workers in file order.
pub struct PlanInput<'a> {
    pub sections: &'a [ManifestSection],
    pub workers: &'a [Worker],
    pub settings: &'a MasterSettings,
    /// File name of master.toml, for diagnostics about step sets.
    pub settings_file: &'a str,
}

const POSTGRESQL: &str = "postgresql";

/// The seed's built-in environment mapping for the `postgresql` capability.
pub fn postgresql_env() -> CapabilityEnv {
    let one = |s: &str| EnvSpec::One(s.to_string());
    CapabilityEnv {
        version_property: Some("pg_version".to_string()),
        environ: BTreeMap::from([
            ("PGPORT".to_string(), one("%(cap(port):-)s")),
            ("PGHOST".to_string(), one("%(cap(host):-)s")),
            ("LD_LIBRARY_PATH".to_string(), one("%(cap(lib):-)s")),
            (
                "PATH".to_string(),
                EnvSpec::List(vec!["%(cap(bin):-)s".to_string(), "${PATH}".to_string()]),
            ),
            ("PGCLUSTER".to_string(), one("%(pg_version:-)s/main")),
        ]),
    }
}

/// Plans everything, or returns every mistake found.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let settings = input.settings;

    let mut cap_envs: BTreeMap<String, CapabilityEnv> = BTreeMap::new();
    cap_envs.insert(POSTGRESQL.to_string(), postgresql_env());
    // A `python` capability needs no environment, but its property step sets
    // `cap_python_bin`, which the bootstrap step uses (abo's difference #7).
    cap_envs.insert(
        "python".to_string(),
        CapabilityEnv {
            version_property: None,
            environ: BTreeMap::new(),
        },
    );
    for (name, env) in &settings.capability_env {
        cap_envs.insert(name.clone(), env.clone());
    }

    let step_sets = convert_step_sets(settings, input.settings_file, &mut diags);
    if let Some(name) = &settings.timezone {
        if let Err(why) = time_zone(name) {
            diags.push(Diagnostic::whole_file(input.settings_file, why));
        }
    }
    let rewriter = UrlRewriter::new(
        settings
            .url_rewrite
            .iter()
            .map(|r| (r.from.clone(), r.to.clone()))
            .collect(),
    );

    // Capabilities of each worker, parsed once.
    let worker_caps: Vec<Vec<(&str, Option<Version>)>> = input
        .workers
        .iter()
        .map(|w| {
            w.capabilities
                .iter()
                .map(|c| {
                    (
                        c.name.as_str(),
                        c.version.as_deref().and_then(|v| Version::parse(v).ok()),
                    )
                })
                .collect()
        })
        .collect();
    let offers = Offers::new(input.workers);
    for w in input.workers {
        for c in &w.capabilities {
            if let Some(v) = &c.version {
                if let Err(e) = Version::parse(v) {
                    diags.push(
                        Diagnostic::new(&w.file, c.line, format!("capability `{}`: version `{v}`: {e}", c.name))
                            .with_help("versions are dot-separated integers with an optional `-suffix`, e.g. `9.1` or `9.2-devel`"),
                    );
                }
            }
        }
    }

    let mut seen_sections: HashMap<&str, &ManifestSection> = HashMap::new();
    let mut builders = Vec::new();
    let mut sharing = Sharing::default();
    let mut schedulers = Vec::new();
    let mut watched_sections = Vec::new();
    for section in input.sections {
        if let Some(first) = seen_sections.insert(section.name.as_str(), section) {
            // AC-W14: a section name may appear in one manifest only.
            diags.push(
                Diagnostic::new(
                    &section.file,
                    section.line,
                    format!(
                        "section `{}` is already defined at {}:{}",
                        section.name, first.file, first.line
                    ),
                )
                .with_help("rename one of them: builder names must be unique across manifests"),
            );
            continue;
        }
        let table = match watch_table(section, &rewriter) {
            Ok(t) => t,
            Err(d) => {
                diags.extend(d);
                None
            }
        };
        watched_sections.push(section);
        let is_factory = section.get("buildout").is_some() || section.get("steps").is_some();
        if !is_factory {
            continue;
        }
        let Some(factory) = plan_factory(
            section,
            input,
            &worker_caps,
            &offers,
            &cap_envs,
            &step_sets,
            &mut diags,
        ) else {
            continue;
        };
        let tree_stable_timer = match section.get("tree-stable-timer") {
            None => settings.tree_stable_timer,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                let (file, line) = section.place_of("tree-stable-timer");
                diags.push(
                    Diagnostic::new(
                        file,
                        line,
                        format!("tree-stable-timer = {v:?} is not a number of seconds"),
                    )
                    .with_help("write e.g. `tree-stable-timer = 600`"),
                );
                settings.tree_stable_timer
            }),
        };
        let nightly = nightly(section).unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        let watch = table.unwrap_or_default();
        if !watch.is_empty() || !nightly.is_empty() {
            schedulers.push(Scheduler {
                name: section.name.clone(),
                builders: factory.iter().map(|b| b.name.clone()).collect(),
                tree_stable_timer,
                watch,
                nightly,
            });
        }
        builders.extend(factory.into_iter().map(|b| sharing.share(b)));
    }
    // The plan lives as long as the master: no spare capacity.
    builders.shrink_to_fit();

    let pollers = match pollers(&watched_sections, &rewriter, settings.poll_interval) {
        Ok(p) => p,
        Err(d) => {
            diags.extend(d);
            Vec::new()
        }
    };

    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Plan {
        workers: input.workers.iter().map(worker_view).collect(),
        builders,
        schedulers,
        pollers,
    })
}

/// Step lists and worker lists already in the plan, so that equal ones are one allocation:
/// with 2,000 one-step builders of one step set, each held its own copy of the same step
/// and of the same eight worker names.
#[derive(Default)]
struct Sharing {
    steps: HashSet<Arc<[Step]>>,
    workers: HashSet<Arc<[Arc<str>]>>,
}

impl Sharing {
    /// The builder, its steps and workers replaced by equal ones already planned.
    fn share(&mut self, builder: Builder) -> Builder {
        Builder {
            steps: shared(&mut self.steps, builder.steps),
            workers: shared(&mut self.workers, builder.workers),
            ..builder
        }
    }
}

/// The value in `set` equal to `value`, or `value`, then kept in `set`.
fn shared<T: Eq + Hash + ?Sized>(set: &mut HashSet<Arc<T>>, value: Arc<T>) -> Arc<T> {
    match set.get(&value) {
        Some(known) => known.clone(),
        None => {
            set.insert(value.clone());
            value
        }
    }
}

fn worker_view(w: &Worker) -> WorkerView {
    WorkerView {
        name: w.name.clone(),
        max_builds: w.max_builds,
        notify_on_missing: w.notify_on_missing.clone(),
        capabilities: w
            .capabilities
            .iter()
            .map(|c| CapabilityView {
                name: c.name.clone(),
                version: c.version.clone(),
                options: c.options.clone(),
            })
            .collect(),
        properties: w.properties.clone(),
    }
}

/// Parses the lines of a `build-for`/`build-requires` option, each mistake at its line.
fn requirements(
    section: &ManifestSection,
    key: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(Requirement, u32)> {
    let file = section.place_of(key).0;
    let mut found = Vec::new();
    for (text, line) in section.lines_at(key) {
        match Requirement::parse(text) {
            // `not-used` says a build-for capability does not dispatch; as a requirement
            // it would mean nothing (later upstream crashed on it).
            Ok(r) if r.is_not_used() && key == "build-requires" => diags.push(
                Diagnostic::new(
                    file,
                    line,
                    format!("build-requires: `{text}`: `not-used` only makes sense in build-for"),
                )
                .with_help(format!(
                    "move it to build-for, or require the capability: `{}`",
                    r.capability
                )),
            ),
            Ok(r) => found.push((r, line)),
            Err(e) => diags.push(e.to_diagnostic(file, line, key)),
        }
    }
    found
}

/// Builders of one section.
fn plan_factory(
    section: &ManifestSection,
    input: &PlanInput<'_>,
    worker_caps: &[Vec<(&str, Option<Version>)>],
    offers: &Offers<'_>,
    cap_envs: &BTreeMap<String, CapabilityEnv>,
    step_sets: &BTreeMap<String, Vec<Step>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<Builder>> {
    let before = diags.len();
    let build_for_at = requirements(section, "build-for", diags);
    let build_for: Vec<Requirement> = build_for_at.iter().map(|(r, _)| r.clone()).collect();
    let build_requires: Vec<Requirement> = requirements(section, "build-requires", diags)
        .into_iter()
        .map(|(r, _)| r)
        .collect();

    // Dimensions of the matrix: postgresql first (unless `not-used`), then every other
    // capability of build-for, in order. A capability named twice is a mistake.
    let mut dims: Vec<(&str, Option<&Requirement>)> = Vec::new();
    let mut named = BTreeSet::new();
    for (r, line) in &build_for_at {
        if !named.insert(r.capability.as_str()) {
            diags.push(
                Diagnostic::new(
                    section.place_of("build-for").0,
                    *line,
                    format!("build-for names `{}` twice", r.capability),
                )
                .with_help("combine the two lines into one with `OR`"),
            );
        }
    }
    let pg_rule = build_for.iter().find(|r| r.capability == POSTGRESQL);
    if !pg_rule.is_some_and(|r| r.is_not_used()) {
        dims.push((POSTGRESQL, pg_rule));
    }
    for r in &build_for {
        if r.capability != POSTGRESQL && !r.is_not_used() {
            dims.push((r.capability.as_str(), Some(r)));
        }
    }

    // Capability environment and property steps: capabilities named in build-for or
    // build-requires that have an environment mapping (AC-F4).
    let mut env = BTreeMap::new();
    let mut props = Vec::new();
    let mut env_caps: Vec<&str> = Vec::new();
    for r in build_for.iter().chain(&build_requires) {
        if !r.is_not_used() && !env_caps.contains(&r.capability.as_str()) {
            env_caps.push(r.capability.as_str());
        }
    }
    for cap in &env_caps {
        let Some(cfg) = cap_envs.get(*cap) else {
            continue;
        };
        for (var, spec) in &cfg.environ {
            let value = match spec {
                EnvSpec::One(s) => EnvValue::One(expand_cap(s, cap)),
                EnvSpec::List(l) => EnvValue::List(l.iter().map(|s| expand_cap(s, cap)).collect()),
            };
            env.insert(var.clone(), value);
        }
        props.push(Step::new(
            format!("props_{cap}"),
            StepKind::SetCapabilityProperties {
                capability: cap.to_string(),
                version_property: version_property(cap, cfg, &dims),
            },
        ));
    }

    let steps: Arc<[Step]> = match factory_steps(
        section,
        &StepContext {
            env: &env,
            capability_props: &props,
            step_sets,
        },
    ) {
        Ok(s) => s.into(),
        Err(d) => {
            diags.extend(d);
            return None;
        }
    };
    check_steps(section, &steps, input.settings, diags);
    if diags.len() > before {
        return None;
    }

    let category = section
        .get("build-category")
        .unwrap_or("")
        .trim()
        .to_string();
    let requirement_names: BTreeSet<&str> = build_requires
        .iter()
        .map(|r| r.capability.as_str())
        .collect();
    // Workers meeting every requirement, whose build-only-if-requires names are all required.
    let names: Vec<Arc<str>> = input
        .workers
        .iter()
        .map(|w| Arc::from(w.name.as_str()))
        .collect();
    let eligible: Vec<usize> = (0..input.workers.len())
        .filter(|&i| {
            build_requires.iter().all(|r| r.is_met_by(&worker_caps[i]))
                && input.workers[i]
                    .only_if_requires()
                    .iter()
                    .all(|n| requirement_names.contains(n))
        })
        .collect();

    let mut builders = Vec::new();
    if dims.is_empty() {
        if !eligible.is_empty() {
            builders.push(Builder {
                name: section.name.clone(),
                buildout: section.name.clone(),
                workers: eligible.iter().map(|&i| names[i].clone()).collect(),
                category,
                properties: BTreeMap::new(),
                steps,
            });
        }
        return Some(builders);
    }

    let eligible_mask: Vec<bool> = {
        let mut mask = vec![false; input.workers.len()];
        for &i in &eligible {
            mask[i] = true;
        }
        mask
    };
    // Versions of each dimension that an eligible worker offers and the build-for filter
    // accepts, each with the workers offering it.
    let dim_versions: Vec<Vec<&Offer<'_>>> = dims
        .iter()
        .map(|(cap, rule)| {
            offers
                .of(cap)
                .iter()
                .filter(|o| o.workers.iter().zip(&eligible_mask).any(|(a, b)| *a && *b))
                .filter(|o| match rule {
                    None => true,
                    Some(r) => o.parsed.as_ref().is_some_and(|v| r.matches(Some(v))),
                })
                .collect()
        })
        .collect();

    let mut combo = vec![0usize; dims.len()];
    if dim_versions.iter().any(Vec::is_empty) {
        return Some(builders);
    }
    loop {
        let chosen: Vec<&str> = combo
            .iter()
            .enumerate()
            .map(|(d, &k)| dim_versions[d][k].version)
            .collect();
        let workers: Arc<[Arc<str>]> = (0..input.workers.len())
            .filter(|&i| {
                eligible_mask[i]
                    && combo
                        .iter()
                        .enumerate()
                        .all(|(d, &k)| dim_versions[d][k].workers[i])
            })
            .map(|i| names[i].clone())
            .collect();
        if !workers.is_empty() {
            let mut name = section.name.clone();
            let mut properties = BTreeMap::new();
            for ((cap, _), v) in dims.iter().zip(&chosen) {
                name.push('-');
                name.push_str(cap);
                name.push('-');
                name.push_str(v);
                let prop = match cap_envs.get(*cap).and_then(|c| c.version_property.clone()) {
                    Some(p) => p,
                    None => format!("{cap}_version"),
                };
                properties.insert(prop, v.to_string());
            }
            builders.push(Builder {
                name,
                buildout: section.name.clone(),
                workers,
                category: category.clone(),
                properties,
                steps: steps.clone(),
            });
        }
        // Next combination (odometer order: last dimension fastest).
        let mut d = dims.len();
        loop {
            if d == 0 {
                return Some(builders);
            }
            d -= 1;
            combo[d] += 1;
            if combo[d] < dim_versions[d].len() {
                break;
            }
            combo[d] = 0;
        }
    }
}

/// The version property a `props_<cap>` step uses: the configured one; for a capability that
/// dispatches without a configured property, the builder property the planner sets.
fn version_property(
    cap: &str,
    cfg: &CapabilityEnv,
    dims: &[(&str, Option<&Requirement>)],
) -> Option<String> {
    cfg.version_property.clone().or_else(|| {
        dims.iter()
            .any(|(d, _)| *d == cap)
            .then(|| format!("{cap}_version"))
    })
}

/// Converts master.toml step sets into steps.
fn convert_step_sets(
    settings: &MasterSettings,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Vec<Step>> {
    let mut sets = BTreeMap::new();
    for (name, specs) in &settings.step_sets {
        let mut steps = Vec::new();
        for spec in specs {
            match convert_step(spec) {
                Ok(s) => steps.push(s),
                Err(why) => diags.push(Diagnostic::whole_file(
                    file,
                    format!("step set `{name}`, step `{}`: {why}", spec.name),
                )),
            }
        }
        sets.insert(name.clone(), steps);
    }
    sets
}

fn convert_step(spec: &StepSpec) -> Result<Step, String> {
    let need = |field: &Option<String>, what: &str| -> Result<String, String> {
        field
            .clone()
            .ok_or_else(|| format!("a `{}` step needs `{what}`", kind_name(spec.kind)))
    };
    let kind = match spec.kind {
        StepSpecKind::Shell => StepKind::Shell,
        StepSpecKind::MasterShell => StepKind::MasterShell,
        StepSpecKind::Download => StepKind::Download {
            src: need(&spec.src, "src")?,
            dest: need(&spec.dest, "dest")?,
        },
        StepSpecKind::UploadFile => StepKind::UploadFile {
            src: need(&spec.src, "src")?,
            dest: need(&spec.dest, "dest")?,
        },
        StepSpecKind::UploadDirectory => StepKind::UploadDirectory {
            src: need(&spec.src, "src")?,
            dest: need(&spec.dest, "dest")?,
        },
        StepSpecKind::SetProperties => StepKind::SetProperties {
            properties: spec.properties.clone(),
        },
        StepSpecKind::SetPropertyFromCommand => StepKind::SetPropertyFromCommand {
            property: need(&spec.property, "property")?,
        },
        StepSpecKind::AnalyzeLog => StepKind::AnalyzeLog {
            step: need(&spec.step, "step")?,
            log: need(&spec.log, "log")?,
        },
    };
    let wants_command = matches!(
        spec.kind,
        StepSpecKind::Shell | StepSpecKind::MasterShell | StepSpecKind::SetPropertyFromCommand
    );
    let command = match (&spec.command, wants_command) {
        (Some(CommandSpec::Argv(v)), true) if !v.is_empty() => Some(Command::Argv(v.clone())),
        (Some(CommandSpec::Shell(s)), true) if spec.kind != StepSpecKind::MasterShell => {
            Some(Command::Shell(s.clone()))
        }
        (Some(CommandSpec::Shell(_)), true) => {
            return Err("a `master-shell` command must be an argument list".into())
        }
        (_, true) => {
            return Err(format!(
                "a `{}` step needs a non-empty `command`",
                kind_name(spec.kind)
            ))
        }
        (Some(_), false) => {
            return Err(format!(
                "a `{}` step takes no `command`",
                kind_name(spec.kind)
            ))
        }
        (None, false) => None,
    };
    let mut step = Step::new(spec.name.clone(), kind);
    step.command = command;
    step.env = spec
        .env
        .iter()
        .map(|(k, v)| {
            let v = match v {
                EnvSpec::One(s) => EnvValue::One(s.clone()),
                EnvSpec::List(l) => EnvValue::List(l.clone()),
            };
            (k.clone(), v)
        })
        .collect();
    step.workdir = spec.workdir.clone();
    step.halt_on_failure = spec.halt_on_failure;
    step.flunk_on_failure = spec.flunk_on_failure;
    step.warn_on_failure = spec.warn_on_failure;
    step.hidden = spec.hidden;
    step.timeout = spec.timeout;
    step.logfiles = spec.logfiles.clone();
    step.locks = spec
        .locks
        .iter()
        .map(|l| LockUse {
            name: l.name.clone(),
            mode: match l.mode {
                LockModeSpec::Exclusive => LockMode::Exclusive,
                LockModeSpec::Counting => LockMode::Counting,
            },
        })
        .collect();
    Ok(step)
}

fn kind_name(kind: StepSpecKind) -> &'static str {
    match kind {
        StepSpecKind::Shell => "shell",
        StepSpecKind::MasterShell => "master-shell",
        StepSpecKind::Download => "download",
        StepSpecKind::UploadFile => "upload-file",
        StepSpecKind::UploadDirectory => "upload-directory",
        StepSpecKind::SetProperties => "set-properties",
        StepSpecKind::SetPropertyFromCommand => "set-property-from-command",
        StepSpecKind::AnalyzeLog => "analyze-log",
    }
}

/// One version of one capability, and which workers (by index) declare it.
struct Offer<'a> {
    version: &'a str,
    parsed: Option<Version>,
    workers: Vec<bool>,
}

/// Every versioned capability the workers declare, indexed once per plan so that the
/// matrix of each section is computed without comparing strings.
struct Offers<'a>(HashMap<&'a str, Vec<Offer<'a>>>);

impl<'a> Offers<'a> {
    fn new(workers: &'a [Worker]) -> Self {
        let mut index: HashMap<&str, Vec<Offer<'_>>> = HashMap::new();
        for (i, w) in workers.iter().enumerate() {
            for c in &w.capabilities {
                let Some(version) = c.version.as_deref() else {
                    continue;
                };
                let offers = index.entry(c.name.as_str()).or_default();
                let at = match offers.iter().position(|o| o.version == version) {
                    Some(at) => at,
                    None => {
                        offers.push(Offer {
                            version,
                            parsed: Version::parse(version).ok(),
                            workers: vec![false; workers.len()],
                        });
                        offers.len() - 1
                    }
                };
                offers[at].workers[i] = true;
            }
        }
        Offers(index)
    }

    /// Versions of `capability` in first-declared order.
    fn of(&self, capability: &str) -> &[Offer<'a>] {
        self.0.get(capability).map_or(&[], Vec::as_slice)
    }
}

/// Checks what the step builders cannot: template syntax of every rendered string, and
/// upload destinations (relative ones stay inside the artifacts directory; absolute ones,
/// the seed's `doc.upload-root`/`packaging.root-dir`, only under `allowed-upload-roots`).
fn check_steps(
    section: &ManifestSection,
    steps: &[Step],
    settings: &MasterSettings,
    diags: &mut Vec<Diagnostic>,
) {
    let (file, line) = (section.place_of("buildout").0, section.line);
    for step in steps {
        for t in step.templates() {
            if let Err(e) = crate::template::check(t) {
                diags.push(
                    Diagnostic::new(file, line, format!("section `{}`, step `{}`: `{t}`: {e}", section.name, step.name))
                        .with_help("write build properties as `$(name)s` or `$(name:-default)s`; a lone `$` or `%` cannot be used there"),
                );
            }
        }
        let (StepKind::UploadFile { dest, .. } | StepKind::UploadDirectory { dest, .. }) =
            &step.kind
        else {
            continue;
        };
        let fixed = crate::template::fixed_prefix(dest);
        let path = std::path::Path::new(&fixed);
        if path.is_absolute() {
            let allowed = settings.allowed_upload_roots.iter().any(|root| {
                let root = std::path::Path::new(root);
                root.is_absolute()
                    && path.starts_with(root)
                    && !path
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
            });
            if !allowed {
                diags.push(
                    Diagnostic::new(file, line, format!("section `{}`, step `{}` uploads to `{dest}`, outside the master's artifacts directory", section.name, step.name))
                        .with_help(format!("add a directory containing it to `allowed-upload-roots` in master.toml (now: {:?}), or use a relative path", settings.allowed_upload_roots)),
                );
            }
        } else if path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            diags.push(
                Diagnostic::new(file, line, format!("section `{}`, step `{}` uploads to `{dest}`, which climbs out of the artifacts directory with `..`", section.name, step.name))
                    .with_help("use a path inside the artifacts directory"),
            );
        }
    }
}
