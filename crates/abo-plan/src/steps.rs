//! Build steps of one manifest section: the seed's "subfactories", as a pure function.
//!
//! [`factory_steps`] turns a [`ManifestSection`] into the step list the seed's `make_factory`
//! built (AC-F1..F7): a hidden `bzr repo`, the buildout download steps ([`download`],
//! chosen by the `buildout` option, parsed as a [`BuildoutSource`]), the capability property
//! steps handed in by the planner, the `post-dl-steps` ([`postdownload`]), the testing
//! database property, cache directories, bootstrap and buildout ([`buildout`]), the
//! `db-steps` ([`db`]) and the `post-buildout-steps` ([`postbuildout`], or user step sets
//! from master.toml). A section with `steps = NAME` and no `buildout` gets that user step
//! set alone.
//!
//! Every string of a step is a template (see `crate::model`): the seed's `WithProperties`
//! strings are kept verbatim, values from the manifest go through [`literal`] (or
//! [`dollar_template`] where the seed swapped `$` for `%`).
//!
//! abo differs from the seed on purpose where the seed sent Python helper scripts to the
//! worker: log analysis, buildout checkouts and port reservation are typed steps
//! ([`StepKind::AnalyzeLog`], [`StepKind::Checkout`], [`StepKind::ReservePort`]); each such
//! place carries a comment.

pub mod buildout;
pub mod db;
pub mod download;
pub mod postbuildout;
pub mod postdownload;

pub use download::{BuildoutSource, SourceError};

use crate::model::{EnvValue, LockMode, LockUse, Step, StepKind};
pub(crate) use crate::version::py_repr;
use abo_config::{Diagnostic, ManifestSection};
use std::collections::{BTreeMap, HashMap};

/// What the planner knows about a section's builders that the steps need.
pub struct StepContext<'a> {
    /// Capability environment of this factory (PGPORT, PGHOST, PATH list, LD_LIBRARY_PATH,
    /// PGCLUSTER, user-defined), computed by the planner; put on the steps where the seed put
    /// "env = capability env" (buildout, db steps, tests, ...).
    pub env: &'a BTreeMap<String, EnvValue>,
    /// `props_<capability>` steps, inserted right after the buildout download steps.
    pub capability_props: &'a [Step],
    /// User step sets from master.toml, by name (usable in post-buildout-steps and `steps =`).
    pub step_sets: &'a BTreeMap<String, Vec<Step>>,
}

/// Escapes a literal value (from the manifest, or a name) so that it renders to itself.
/// Every user value put into a step goes through here.
pub use crate::template::escape as literal;

/// A manifest value in which the user wrote build-property references as `$(name)s`
/// (because ConfigParser would interpolate `%(name)s`): `$` becomes `%`, and any literal
/// `%` is escaped first so that it survives rendering.
pub fn dollar_template(value: &str) -> String {
    literal(value).replace('$', "%")
}

/// The step list of one manifest section, or every mistake found in it, each at the
/// option's `file:line`.
pub fn factory_steps(
    section: &ManifestSection,
    ctx: &StepContext<'_>,
) -> Result<Vec<Step>, Vec<Diagnostic>> {
    let mut scope = Scope {
        section,
        ctx,
        diags: Vec::new(),
    };
    let steps = match (section.get("buildout"), section.get("steps")) {
        (Some(_), Some(_)) => {
            scope.error(
                "steps",
                "a section cannot have both `buildout` and `steps`",
                "keep `buildout` to build and test a buildout, or `steps = NAME` to run \
                 the master.toml step set NAME alone",
            );
            Vec::new()
        }
        (None, Some(name)) => user_step_set(&mut scope, name),
        (Some(value), None) => buildout_factory(&mut scope, value),
        (None, None) => {
            scope.error(
                "buildout",
                format!(
                    "section `{}` has neither `buildout` nor `steps`",
                    section.name
                ),
                "add `buildout = TYPE SPECIFICATION` or `steps = NAME`",
            );
            Vec::new()
        }
    };
    if scope.diags.is_empty() {
        Ok(steps)
    } else {
        Err(scope.diags)
    }
}

/// `steps = NAME`: exactly the user step set NAME, nothing of the seed's.
fn user_step_set(scope: &mut Scope<'_>, value: &str) -> Vec<Step> {
    let mut tokens = value.split_whitespace();
    let (Some(name), None) = (tokens.next(), tokens.next()) else {
        scope.error(
            "steps",
            format!("steps = {value:?} must name exactly one step set"),
            format!(
                "write `steps = NAME`, NAME one of the master.toml step sets: {}",
                names_or_none(scope.ctx.step_sets.keys())
            ),
        );
        return Vec::new();
    };
    match scope.ctx.step_sets.get(name) {
        Some(steps) => steps.clone(),
        None => {
            scope.error(
                "steps",
                format!("unknown step set {:?}", name),
                format!(
                    "master.toml defines these step sets: {}",
                    names_or_none(scope.ctx.step_sets.keys())
                ),
            );
            Vec::new()
        }
    }
}

/// The seed's `make_factory` (0.9), in its order.
fn buildout_factory(scope: &mut Scope<'_>, value: &str) -> Vec<Step> {
    let source = match BuildoutSource::parse(value, &scope.section.name) {
        Ok(source) => Some(source),
        Err(e) => {
            scope.error("buildout", e.message, e.help);
            None
        }
    };
    // Bootstrap options are read once: the packaging post-download steps bootstrap too.
    let bootstrap = buildout::BootstrapOptions::read(scope);

    let mut steps = vec![buildout::bzr_repo()];
    let mut conf = String::new();
    if let Some(source) = &source {
        conf = source.conf_name().to_string();
        steps.extend(download::steps(source, &scope.section.manifest_dir));
    }
    steps.extend(scope.ctx.capability_props.iter().cloned());

    for name in lines_or(scope, "post-dl-steps", "noop") {
        match name.as_str() {
            "noop" => {}
            "packaging" => {
                let (new_conf, more) =
                    postdownload::packaging(scope, source.as_ref(), &conf, &bootstrap);
                conf = new_conf;
                steps.extend(more);
            }
            _ => scope.error(
                "post-dl-steps",
                format!("unknown post-download subfactory {name:?}"),
                format!("known ones are: {}", postdownload::BUILTINS.join(", ")),
            ),
        }
    }

    // The seed downloaded analyze_oerp_tests.py here; abo analyses logs on the master
    // (StepKind::AnalyzeLog), so nothing is sent to the worker (deliberate difference 4).
    steps.push(buildout::pg_cluster_props(&scope.section.name));
    steps.push(buildout::cachedirs());
    steps.push(buildout::bootstrap_step(&bootstrap, &conf, None));
    steps.push(buildout::buildout_step(&conf, scope.env()));

    for name in lines_or(scope, "db-steps", "simple_create") {
        match name.as_str() {
            "simple_create" => steps.extend(db::simple_create(scope)),
            "pg_remote_copy" => steps.extend(db::pg_remote_copy(scope)),
            _ => scope.error(
                "db-steps",
                format!("unknown db-steps subfactory {name:?}"),
                format!("known ones are: {}", db::BUILTINS.join(", ")),
            ),
        }
    }

    for name in lines_or(scope, "post-buildout-steps", "standard") {
        // A user step set shadows a builtin of the same name, as registering a callable
        // under an existing key did in the seed.
        if let Some(set) = scope.ctx.step_sets.get(&name) {
            steps.extend(set.iter().cloned());
        } else if let Some(more) = postbuildout::builtin(scope, &name, &conf) {
            steps.extend(more);
        } else {
            scope.error(
                "post-buildout-steps",
                format!("unknown post-buildout subfactory {name:?}"),
                format!(
                    "builtin ones are: {}; master.toml step sets: {}",
                    postbuildout::BUILTINS.join(", "),
                    names_or_none(scope.ctx.step_sets.keys())
                ),
            );
        }
    }

    unique_names(&mut steps);
    steps
}

/// Lines of a list option, or `default` when the option is absent. An option written
/// empty gives no line at all (the seed failed on it with a KeyError on `''`).
fn lines_or(scope: &Scope<'_>, key: &str, default: &str) -> Vec<String> {
    match scope.section.get(key) {
        None => vec![default.to_string()],
        Some(_) => scope
            .section
            .lines(key)
            .into_iter()
            .map(str::to_string)
            .collect(),
    }
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Makes step names unique as Buildbot 0.8 did when it set up a build (the second `start`
/// becomes `start_1`), so that the names shown are the names run, and keeps each
/// `AnalyzeLog` pointing at the latest step that had the name it refers to.
fn unique_names(steps: &mut [Step]) {
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut latest: HashMap<String, String> = HashMap::new();
    for step in steps.iter_mut() {
        if let StepKind::AnalyzeLog { step: target, .. } = &mut step.kind {
            if let Some(renamed) = latest.get(target.as_str()) {
                *target = renamed.clone();
            }
        }
        let original = step.name.clone();
        if let Some(count) = used.get(&original).copied() {
            let mut n = count + 1;
            let mut candidate = format!("{original}_{n}");
            while used.contains_key(&candidate) {
                n += 1;
                candidate = format!("{original}_{n}");
            }
            used.insert(original.clone(), n);
            used.insert(candidate.clone(), 0);
            step.name = candidate;
        } else {
            used.insert(original.clone(), 0);
        }
        latest.insert(original, step.name.clone());
    }
}

/// One section being turned into steps, with the mistakes found so far.
pub(crate) struct Scope<'a> {
    pub section: &'a ManifestSection,
    pub ctx: &'a StepContext<'a>,
    pub diags: Vec<Diagnostic>,
}

impl Scope<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.section.get(key)
    }

    /// The value of `key`, stripped, or `default`.
    pub fn get_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.get(key).map_or(default, str::trim)
    }

    /// The seed's `bool_opt`: true only for `true` (any case, surrounding blanks ignored).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// A mistake at the place of `key` (the section header when `key` is absent).
    pub fn error(&mut self, key: &str, message: impl Into<String>, help: impl Into<String>) {
        let (file, line) = self.section.place_of(key);
        self.diags
            .push(Diagnostic::new(file, line, message).with_help(help));
    }

    /// A required option, stripped; when it is absent, a mistake at the place of the
    /// option `wanted_by` that asked for it (and `None`).
    pub fn require(
        &mut self,
        key: &str,
        wanted_by: &str,
        what: &str,
        help: &str,
    ) -> Option<String> {
        match self.get(key) {
            Some(v) => Some(v.trim().to_string()),
            None => {
                self.error(wanted_by, format!("{what} need the option {key}"), help);
                None
            }
        }
    }

    /// The capability environment, for the steps the seed gave it to.
    pub fn env(&self) -> BTreeMap<String, EnvValue> {
        self.ctx.env.clone()
    }
}

/// Builder-style setters for the fields `Step` has no constructor argument for.
pub(crate) trait StepExt: Sized {
    fn with_env(self, env: BTreeMap<String, EnvValue>) -> Self;
    fn in_dir(self, workdir: &str) -> Self;
    fn logfile(self, name: &str, path: &str) -> Self;
    fn timeout(self, seconds: u64) -> Self;
    fn lock(self, name: &str) -> Self;
    fn hide(self) -> Self;
}

impl StepExt for Step {
    fn with_env(mut self, env: BTreeMap<String, EnvValue>) -> Self {
        self.env = env;
        self
    }
    fn in_dir(mut self, workdir: &str) -> Self {
        self.workdir = Some(workdir.to_string());
        self
    }
    fn logfile(mut self, name: &str, path: &str) -> Self {
        self.logfiles.insert(name.to_string(), path.to_string());
        self
    }
    fn timeout(mut self, seconds: u64) -> Self {
        self.timeout = Some(seconds);
        self
    }
    fn lock(mut self, name: &str) -> Self {
        self.locks.push(LockUse {
            name: name.to_string(),
            mode: LockMode::Exclusive,
        });
        self
    }
    fn hide(mut self) -> Self {
        self.hidden = true;
        self
    }
}

/// A master-side command (argv only).
pub(crate) fn master_argv<S: Into<String>>(name: &str, argv: impl IntoIterator<Item = S>) -> Step {
    let mut step = Step::argv(name, argv);
    step.kind = StepKind::MasterShell;
    step
}

/// Python's `os.path.join` for two parts: an absolute second part wins.
pub(crate) fn join_path(base: &str, rest: &str) -> String {
    if base.is_empty() || rest.starts_with('/') {
        rest.to_string()
    } else if base.ends_with('/') {
        format!("{base}{rest}")
    } else {
        format!("{base}/{rest}")
    }
}

/// Python's `repr` of a list of strings.
pub(crate) fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| py_repr(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let cases = [
            ("v3", "'v3'"),
            ("it's", "\"it's\""),
            ("a'b\"c", "'a\\'b\"c'"),
            ("back\\slash", "'back\\\\slash'"),
            ("", "''"),
        ];
        for (input, expected) in cases {
            assert_eq!(py_repr(input), expected, "{input}");
        }
        assert_eq!(py_list(&["a.cfg", "b.cfg"]), "['a.cfg', 'b.cfg']");
        assert_eq!(py_list::<&str>(&[]), "[]");
    }

    #[test]
    fn joins_like_os_path_join() {
        let cases = [
            ("", "a.cfg", "a.cfg"),
            ("buildouts", "a.cfg", "buildouts/a.cfg"),
            ("buildouts/", "a.cfg", "buildouts/a.cfg"),
            ("buildouts", "/abs/a.cfg", "/abs/a.cfg"),
        ];
        for (a, b, expected) in cases {
            assert_eq!(join_path(a, b), expected);
        }
    }

    #[test]
    fn names_made_unique_like_buildbot() {
        let mut steps: Vec<Step> = ["start", "testing", "start", "start_1", "start", "x"]
            .iter()
            .map(|n| Step::new(*n, StepKind::Shell))
            .collect();
        steps[5].kind = StepKind::AnalyzeLog {
            step: "start".into(),
            log: "l".into(),
        };
        unique_names(&mut steps);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["start", "testing", "start_1", "start_1_1", "start_2", "x"]
        );
        assert_eq!(
            steps[5].kind,
            StepKind::AnalyzeLog {
                step: "start_2".into(),
                log: "l".into()
            }
        );
    }

    #[test]
    fn literals_survive_rendering() {
        assert_eq!(literal("50%"), "50%%");
        assert_eq!(literal("plain"), "plain");
        assert_eq!(
            dollar_template("/srv/$(buildout-tag:-current)s/100%"),
            "/srv/%(buildout-tag:-current)s/100%%"
        );
    }
}
