//! The steps every buildout factory has (the seed's `make_factory` and `steps_bootstrap`):
//! `bzr repo`, `pg_cluster_props`, `cachedirs`, `bootstrap` (with the `bootstrap-*`
//! options, AC-F6) and `buildout` (AC-F2).

use super::{literal, py_list, py_repr, Scope, StepExt};
use crate::model::{EnvValue, Step, StepKind};
use std::collections::BTreeMap;

/// Shared per worker, two levels above the build directory, so that every builder of a
/// worker reuses eggs and OpenERP downloads.
pub(crate) const EGGS_CACHE: &str = "../../buildout-caches/eggs";
pub(crate) const OPENERP_CACHE: &str = "../../buildout-caches/openerp";

/// Seconds without output before a buildout (or a nose run) is killed: the seed's 4 hours.
pub(crate) const LONG_TIMEOUT: u64 = 4 * 3600;

/// Deliberate difference 7: workers may declare a `python` capability with `bin=`; the
/// default renders to plain `python` as in the seed.
pub(crate) const PYTHON: &str = "%(cap_python_bin:-python)s";

const BOOTSTRAP_PREFIX: &str = "bootstrap-";
/// Options abo passes to bootstrap itself.
const FORBIDDEN: [&str; 3] = ["eggs", "find-links", "help"];

/// The major version of `bootstrap.py`, whose command-line options differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootstrapType {
    V1,
    V2,
}

/// The `bootstrap-*` options of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootstrapOptions {
    /// The script, relative to the bootstrap's working directory.
    pub script: String,
    pub kind: BootstrapType,
    /// Run with `~/openerp-env/bin` first on PATH.
    pub virtualenv: bool,
    /// Every other option, passed as `--NAME=VALUE` (sorted by name), `version` included.
    pub extra: BTreeMap<String, String>,
}

impl BootstrapOptions {
    /// Reads the options, recording mistakes in `scope`.
    pub fn read(scope: &mut Scope<'_>) -> Self {
        let mut opts = BootstrapOptions {
            script: "bootstrap.py".to_string(),
            kind: BootstrapType::V1,
            virtualenv: false,
            extra: BTreeMap::new(),
        };
        let section = scope.section;
        for (key, value) in &section.options {
            let Some(name) = key.strip_prefix(BOOTSTRAP_PREFIX) else {
                continue;
            };
            let value = value.value.trim();
            match name {
                "type" => match value.to_lowercase().as_str() {
                    "v1" => opts.kind = BootstrapType::V1,
                    "v2" => opts.kind = BootstrapType::V2,
                    other => scope.error(
                        key,
                        format!(
                            "Unknown bootstrap type: {}. Known ones are ('v1', 'v2')",
                            py_repr(other)
                        ),
                        "write `bootstrap-type = v1` (zc.buildout 1 bootstrap.py, the \
                         default) or `bootstrap-type = v2`",
                    ),
                },
                "virtualenv" => opts.virtualenv = value.eq_ignore_ascii_case("true"),
                // Deliberate difference 3: the option chooses the script and is not also
                // passed to it as --script=... (bootstrap.py has no such option).
                "script" => opts.script = value.to_string(),
                _ if FORBIDDEN.contains(&name) => scope.error(
                    key,
                    format!(
                        "The following bootstrap options are forbidden: {}",
                        py_list(&FORBIDDEN)
                    ),
                    format!(
                        "remove `{key}`: abo passes --eggs (v1) or --find-links (v2) with \
                         the worker's shared eggs cache itself"
                    ),
                ),
                "" => scope.error(
                    key,
                    "a bootstrap option needs a name after `bootstrap-`",
                    "write `bootstrap-NAME = VALUE` to pass --NAME=VALUE to bootstrap.py",
                ),
                _ => {
                    opts.extra.insert(name.to_string(), value.to_string());
                }
            }
        }
        opts.extra
            .entry("version".to_string())
            .or_insert_with(|| "2.1.1".to_string());
        opts
    }
}

/// `bzr init-repo ../..`: a shared bzr repository above the builders, so that bzr
/// branches of every builder of the worker share their history. Allowed to fail, hidden.
pub(crate) fn bzr_repo() -> Step {
    let mut step = Step::argv("bzr repo", ["bzr", "init-repo", "../.."]).hide();
    step.flunk_on_failure = false;
    step.warn_on_failure = false;
    step
}

/// Sets `testing_db` = `<db_prefix>-<section>`, `db_prefix` defaulting to
/// `openerp_buildbot` (the seed's `PgSetProperties`, AC-R3).
pub(crate) fn pg_cluster_props(section: &str) -> Step {
    let db = format!("%(db_prefix:-openerp_buildbot)s-{}", literal(section));
    Step::new(
        "pg_cluster_props",
        StepKind::SetProperties {
            properties: BTreeMap::from([("testing_db".to_string(), db)]),
        },
    )
}

pub(crate) fn cachedirs() -> Step {
    Step::argv("cachedirs", ["mkdir", "-p", EGGS_CACHE, OPENERP_CACHE])
}

/// The bootstrap of the buildout at `conf`, in `workdir` (the build directory if `None`).
pub(crate) fn bootstrap_step(opts: &BootstrapOptions, conf: &str, workdir: Option<&str>) -> Step {
    let find_links = match opts.kind {
        BootstrapType::V1 => "--eggs",
        BootstrapType::V2 => "--find-links",
    };
    let mut argv = vec![
        PYTHON.to_string(),
        literal(&opts.script),
        find_links.to_string(),
        EGGS_CACHE.to_string(),
        "-c".to_string(),
        literal(conf),
    ];
    argv.extend(
        opts.extra
            .iter()
            .map(|(k, v)| format!("--{}={}", literal(k), literal(v))),
    );
    let mut step = Step::argv("bootstrap", argv).halt();
    if opts.virtualenv {
        step.env.insert(
            "PATH".to_string(),
            EnvValue::List(vec![
                "${HOME}/openerp-env/bin".to_string(),
                "${PATH}".to_string(),
            ]),
        );
    }
    step.workdir = workdir.map(str::to_string);
    step
}

/// `bin/buildout` with the recipe overrides the seed passes (recipe-notes §2); one buildout
/// at a time per worker because the caches are shared.
pub(crate) fn buildout_step(conf: &str, env: BTreeMap<String, EnvValue>) -> Step {
    Step::argv(
        "buildout",
        [
            "bin/buildout".to_string(),
            "-c".to_string(),
            literal(conf),
            format!("buildout:eggs-directory={EGGS_CACHE}"),
            format!("buildout:openerp-downloads-directory={OPENERP_CACHE}"),
            "openerp:with_devtools=true".to_string(),
            "openerp:vcs-clear-locks=true".to_string(),
            "openerp:vcs-clear-retry=true".to_string(),
            "openerp:clean=true".to_string(),
            "openerp:vcs-revert=on-merge".to_string(),
            "openerp:options.db_port=%(cap_postgresql_port:-5432)s".to_string(),
            "openerp:options.db_host=%(cap_postgresql_host:-False)s".to_string(),
            "openerp:options.db_user=%(cap_postgresql_user:-False)s".to_string(),
            "openerp:options.db_password=%(cap_postgresql_passwd:-False)s".to_string(),
            "openerp:options.db_name=%(testing_db)s".to_string(),
        ],
    )
    .halt()
    .timeout(LONG_TIMEOUT)
    .lock("buildout")
    .with_env(env)
}
