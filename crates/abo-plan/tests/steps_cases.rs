//! Step lists of manifest sections: the seed's subfactories (AC-F1..F7), their errors
//! (AC-E2..E9) and abo's deliberate differences, each asserted as the whole step list
//! where the spec gives it.
//!
//! Steps are compared through a one-line text form (see [`show`]):
//! `name: $ argv... [flags]`, so that a failing case prints a readable diff.

use abo_config::{Diagnostic, ManifestSection};
use abo_plan::steps::{dollar_template, factory_steps, literal, BuildoutSource, StepContext};
use abo_plan::{Command, EnvValue, Step, StepKind, Vcs};
use std::collections::{BTreeMap, BTreeSet};

const DIR: &str = "/srv/master";

/// Manifest options of a case.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// What the planner hands over, owned.
#[derive(Default)]
struct Ctx {
    env: BTreeMap<String, EnvValue>,
    props: Vec<Step>,
    sets: BTreeMap<String, Vec<Step>>,
}

impl Ctx {
    fn run(&self, section: &ManifestSection) -> Result<Vec<Step>, Vec<Diagnostic>> {
        factory_steps(
            section,
            &StepContext {
                env: &self.env,
                capability_props: &self.props,
                step_sets: &self.sets,
            },
        )
    }

    fn lines(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<String> {
        let section = ManifestSection::from_pairs(name, DIR, pairs);
        match self.run(&section) {
            Ok(steps) => steps.iter().map(|s| show(s, &self.env)).collect(),
            Err(d) => panic!("section {name}: unexpected diagnostics {d:#?}"),
        }
    }

    fn errors(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<Diagnostic> {
        let section = ManifestSection::from_pairs(name, DIR, pairs);
        match self.run(&section) {
            Ok(steps) => panic!("section {name}: expected diagnostics, got {steps:#?}"),
            Err(d) => d,
        }
    }
}

fn quote(arg: &str) -> String {
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        format!("'{arg}'")
    } else {
        arg.to_string()
    }
}

fn argv(step: &Step) -> String {
    match &step.command {
        Some(Command::Argv(v)) => v.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        Some(Command::Shell(s)) => format!("SHELL {s:?}"),
        None => "NO COMMAND".to_string(),
    }
}

fn show_env(env: &BTreeMap<String, EnvValue>) -> String {
    env.iter()
        .map(|(k, v)| match v {
            EnvValue::One(s) => format!("{k}={s}"),
            EnvValue::List(l) => format!("{k}=[{}]", l.join(",")),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// One step as a line: what it does, then the flags that differ from Buildbot's defaults.
/// `env` is shown as `env` when it is the capability environment of the context.
fn show(step: &Step, ctx_env: &BTreeMap<String, EnvValue>) -> String {
    let what = match &step.kind {
        StepKind::Shell => format!("$ {}", argv(step)),
        StepKind::MasterShell => format!("master$ {}", argv(step)),
        StepKind::Download { src, dest } => format!("download {src} -> {dest}"),
        StepKind::UploadFile { src, dest } => format!("upload-file {src} -> {dest}"),
        StepKind::UploadDirectory { src, dest } => format!("upload-dir {src} -> {dest}"),
        StepKind::SetProperties { properties } => format!(
            "set {}",
            properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        StepKind::SetCapabilityProperties {
            capability,
            version_property,
        } => format!(
            "cap-props {capability} by {}",
            version_property.as_deref().unwrap_or("-")
        ),
        StepKind::SetPropertyFromCommand { property } => {
            format!("{property} = $ {}", argv(step))
        }
        StepKind::ReservePort {
            property,
            min,
            max,
            step,
        } => format!("reserve-port {property} {min}..{max} step {step}"),
        StepKind::Checkout {
            vcs,
            repo,
            branch,
            revision,
            dest,
            subdir,
        } => {
            let mut s = format!("checkout {} {repo}", vcs.as_str());
            if let Some(b) = branch {
                s += &format!(" branch={b}");
            }
            if let Some(r) = revision {
                s += &format!(" rev={r}");
            }
            s += &format!(" -> {dest}");
            if let Some(d) = subdir {
                s += &format!(" subdir={d}");
            }
            s
        }
        StepKind::AnalyzeLog { step, log } => format!("analyze-log {step}/{log}"),
    };
    let mut flags = Vec::new();
    if step.halt_on_failure {
        flags.push("halt".to_string());
    }
    if !step.flunk_on_failure {
        flags.push("noflunk".to_string());
    }
    if step.warn_on_failure {
        flags.push("warn".to_string());
    }
    if step.hidden {
        flags.push("hidden".to_string());
    }
    if let Some(t) = step.timeout {
        flags.push(format!("timeout={t}"));
    }
    for lock in &step.locks {
        flags.push(format!("lock={}:{:?}", lock.name, lock.mode).to_lowercase());
    }
    for (name, path) in &step.logfiles {
        flags.push(format!("log:{name}={path}"));
    }
    if let Some(dir) = &step.workdir {
        flags.push(format!("in={dir}"));
    }
    if !step.env.is_empty() {
        if &step.env == ctx_env {
            flags.push("env".to_string());
        } else {
            flags.push(format!("env:{}", show_env(&step.env)));
        }
    }
    if flags.is_empty() {
        format!("{}: {what}", step.name)
    } else {
        format!("{}: {what} [{}]", step.name, flags.join(" "))
    }
}

#[track_caller]
fn assert_lines(got: &[String], expected: &[String]) {
    assert_eq!(
        got.join("\n"),
        expected.join("\n"),
        "\n--- got ---\n{}\n",
        got.join("\n")
    );
}

fn s(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

const BZR_REPO: &str = "bzr repo: $ bzr init-repo ../.. [noflunk hidden]";
const PY: &str = "%(cap_python_bin:-python)s";

fn standalone_downloads(path: &str) -> Vec<String> {
    let name = path.rsplit('/').next().unwrap();
    vec![
        format!("download_bootstrap: download {DIR}/bootstrap.py -> bootstrap.py"),
        format!("download_buildout: download {DIR}/{path} -> {name}"),
    ]
}

fn buildout_line(conf: &str, flags: &str) -> String {
    format!(
        "buildout: $ bin/buildout -c {conf} buildout:eggs-directory=../../buildout-caches/eggs \
         buildout:openerp-downloads-directory=../../buildout-caches/openerp \
         openerp:with_devtools=true openerp:vcs-clear-locks=true openerp:vcs-clear-retry=true \
         openerp:clean=true openerp:vcs-revert=on-merge \
         openerp:options.db_port=%(cap_postgresql_port:-5432)s \
         openerp:options.db_host=%(cap_postgresql_host:-False)s \
         openerp:options.db_user=%(cap_postgresql_user:-False)s \
         openerp:options.db_password=%(cap_postgresql_passwd:-False)s \
         openerp:options.db_name=%(testing_db)s [halt timeout=14400 lock=buildout:exclusive{flags}]"
    )
}

/// AC-F2 steps 4–9 (the analyze download, step 3, is gone: difference 4).
fn middle(section: &str, conf: &str, template: &str) -> Vec<String> {
    vec![
        format!("pg_cluster_props: set testing_db=%(db_prefix:-openerp_buildbot)s-{section}"),
        "cachedirs: $ mkdir -p ../../buildout-caches/eggs ../../buildout-caches/openerp"
            .to_string(),
        format!(
            "bootstrap: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c {conf} \
             --version=2.1.1 [halt]"
        ),
        buildout_line(conf, ""),
        "dropdb: $ psql postgres -c 'DROP DATABASE IF EXISTS \"%(testing_db)s\"' [halt]"
            .to_string(),
        format!(
            "createdb: $ psql postgres -c 'CREATE DATABASE \"%(testing_db)s\" TEMPLATE \
             \"{template}\"' [halt]"
        ),
    ]
}

fn test_openerp(addons: &str) -> Vec<String> {
    vec![
        "clean_log: $ rm -f test.log".to_string(),
        format!(
            "testing: $ bin/test_openerp -i {addons} --logfile=%(workdir)s/build/test.log \
             [halt log:test=test.log]"
        ),
        "analyze: analyze-log testing/test".to_string(),
    ]
}

fn concat(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

/// A standalone section at buildouts/7.0.cfg with `extra` options, whose lines after the
/// db steps are returned.
fn after_db(ctx: &Ctx, extra: &[(&str, &str)]) -> Vec<String> {
    let mut pairs = vec![("buildout", "standalone buildouts/7.0.cfg")];
    pairs.extend_from_slice(extra);
    let lines = ctx.lines("sec", &pairs);
    let at = lines
        .iter()
        .position(|l| l.starts_with("createdb:"))
        .expect("createdb step");
    lines[at + 1..].to_vec()
}

#[test]
fn ac_f1_addons_list_whitespace_removed() {
    let ctx = Ctx::default();
    for (addons, expected) in [
        ("stock, crm", "stock,crm"),
        ("stock ,crm ,  sale", "stock,crm,sale"),
        ("stock", "stock"),
    ] {
        let lines = ctx.lines(
            "addons-list",
            &[
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", addons),
            ],
        );
        let testing = lines.iter().find(|l| l.starts_with("testing:")).unwrap();
        assert!(
            testing.contains(&format!(" -i {expected} ")),
            "{addons}: {testing}"
        );
    }
}

#[test]
fn ac_f2_canonical_step_list() {
    let ctx = Ctx::default();
    let cases: &[(&str, Pairs, Vec<String>)] = &[
        (
            "addons-list",
            &[
                ("some_common", "/path/to/some/file"),
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", "stock, crm"),
            ],
            concat(&[
                vec![BZR_REPO.to_string()],
                standalone_downloads("buildouts/6.0-anybox.cfg"),
                middle("addons-list", "6.0-anybox.cfg", "template1"),
                test_openerp("stock,crm"),
            ]),
        ),
        (
            "simple",
            &[
                ("buildout", "standalone buildouts/6.1.cfg"),
                ("watch", "bzr lp:openobject-server/6.1"),
            ],
            concat(&[
                vec![BZR_REPO.to_string()],
                standalone_downloads("buildouts/6.1.cfg"),
                middle("simple", "6.1.cfg", "template1"),
                test_openerp("all"),
            ]),
        ),
        (
            "with-template",
            &[
                ("buildout", "standalone buildouts/6.1.cfg"),
                ("db_template", "template0"),
            ],
            concat(&[
                vec![BZR_REPO.to_string()],
                standalone_downloads("buildouts/6.1.cfg"),
                middle("with-template", "6.1.cfg", "template0"),
                test_openerp("all"),
            ]),
        ),
    ];
    for (name, pairs, expected) in cases {
        assert_lines(&ctx.lines(name, pairs), expected);
    }
}

#[test]
fn ac_f3_openerp_command_runner() {
    let ctx = Ctx::default();
    let head = |name| {
        concat(&[
            vec![BZR_REPO.to_string()],
            standalone_downloads("buildouts/6.0-anybox.cfg"),
            middle(name, "6.0-anybox.cfg", "template1"),
        ])
    };
    let cases: &[(&str, Pairs, &str)] = &[
        (
            "oecommand",
            &[
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("post-buildout-steps", "openerpcommand-initialize-tests"),
            ],
            "testing: $ bin/openerp_command initialize --no-create --tests --database \
             %(testing_db)s --all-modules --exclude auth_ldap --exclude document_ftp [halt]",
        ),
        (
            "oecommand-with-addons",
            &[
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", "stock, crm"),
                ("post-buildout-steps", "openerpcommand-initialize-tests"),
            ],
            "testing: $ bin/openerp_command initialize --no-create --tests --database \
             %(testing_db)s --module stock --module crm [halt]",
        ),
    ];
    for (name, pairs, testing) in cases {
        let expected = concat(&[head(name), vec![testing.to_string()]]);
        assert_lines(&ctx.lines(name, pairs), &expected);
    }
}

fn capability_ctx() -> Ctx {
    let one = |s: &str| EnvValue::One(s.to_string());
    let env = BTreeMap::from([
        ("PYTHONBIN".to_string(), one("%(cap_python_bin-)s")),
        ("PGPORT".to_string(), one("%(cap_postgresql_port:-)s")),
        ("PGHOST".to_string(), one("%(cap_postgresql_host:-)s")),
        (
            "LD_LIBRARY_PATH".to_string(),
            one("%(cap_postgresql_lib:-)s"),
        ),
        ("PGCLUSTER".to_string(), one("%(pg_version:-)s/main")),
        (
            "PATH".to_string(),
            EnvValue::List(vec![
                "%(cap_postgresql_bin:-)s".to_string(),
                "${PATH}".to_string(),
            ]),
        ),
    ]);
    let props = ["python", "postgresql"]
        .iter()
        .map(|cap| {
            Step::new(
                format!("props_{cap}"),
                StepKind::SetCapabilityProperties {
                    capability: cap.to_string(),
                    version_property: Some(
                        if *cap == "python" {
                            "py_version"
                        } else {
                            "pg_version"
                        }
                        .to_string(),
                    ),
                },
            )
        })
        .collect();
    Ctx {
        env,
        props,
        sets: BTreeMap::new(),
    }
}

#[test]
fn ac_f4_capability_env_and_props_placement() {
    let ctx = capability_ctx();
    let section = ManifestSection::from_pairs(
        "addons-list",
        DIR,
        &[
            ("buildout", "standalone buildouts/6.0-anybox.cfg"),
            ("openerp-addons", "stock, crm"),
            ("build-requires", "python"),
            ("build-for", "postgresql >= 8.0"),
        ],
    );
    let steps = ctx.run(&section).unwrap();
    // The seed's test looks at the second-to-last step.
    let testing = &steps[steps.len() - 2];
    assert_eq!(testing.name, "testing");
    assert_eq!(testing.env, ctx.env);

    let lines: Vec<String> = steps.iter().map(|s| show(s, &ctx.env)).collect();
    let expected = concat(&[
        vec![BZR_REPO.to_string()],
        standalone_downloads("buildouts/6.0-anybox.cfg"),
        s(&[
            "props_python: cap-props python by py_version",
            "props_postgresql: cap-props postgresql by pg_version",
            "pg_cluster_props: set testing_db=%(db_prefix:-openerp_buildbot)s-addons-list",
            "cachedirs: $ mkdir -p ../../buildout-caches/eggs ../../buildout-caches/openerp",
        ]),
        vec![format!(
            "bootstrap: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c \
             6.0-anybox.cfg --version=2.1.1 [halt]"
        )],
        vec![buildout_line("6.0-anybox.cfg", " env")],
        s(&[
            "dropdb: $ psql postgres -c 'DROP DATABASE IF EXISTS \"%(testing_db)s\"' [halt env]",
            "createdb: $ psql postgres -c 'CREATE DATABASE \"%(testing_db)s\" TEMPLATE \
             \"template1\"' [halt env]",
            "clean_log: $ rm -f test.log",
            "testing: $ bin/test_openerp -i stock,crm --logfile=%(workdir)s/build/test.log \
             [halt log:test=test.log env]",
            "analyze: analyze-log testing/test",
        ]),
    ]);
    assert_lines(&lines, &expected);
}

/// Which steps of every builtin subfactory get the capability environment: those the seed
/// gave `env=environ`, and no others.
#[test]
fn ac_f4_env_placement_in_every_subfactory() {
    let ctx = capability_ctx();
    let section = ManifestSection::from_pairs(
        "all",
        DIR,
        &[
            ("buildout", "hgtag http://hg.example/buildout frozen.cfg"),
            ("post-dl-steps", "packaging"),
            ("db-steps", "simple_create\npg_remote_copy"),
            (
                "post-buildout-steps",
                "standard\nopenerpcommand-initialize-tests\nupdate-openerp\nnose\n\
                 functional\nstatic-analysis\ndoc\npackaging\nautocommit",
            ),
            ("packaging.root-dir", "/srv/releases"),
            ("packaging.upload-dir", "proj"),
            ("packaging.prefix", "proj"),
            ("packaging.parts", "openerp"),
            ("pg_remote_copy.arguments", "prod"),
            ("nose.coverage", "true"),
            ("nose.upload-path", "/srv/nose"),
            ("functional.commands", "bin/ft"),
            ("functional.parts", "ft"),
            ("static-analysis.flake-directories", "src"),
            ("doc.upload-dir", "proj"),
        ],
    );
    let steps = ctx.run(&section).unwrap();
    let with_env: BTreeSet<&str> = steps
        .iter()
        .filter(|s| !s.env.is_empty())
        .map(|s| {
            assert_eq!(s.env, ctx.env, "{}", s.name);
            s.name.as_str()
        })
        .collect();
    let expected: BTreeSet<&str> = [
        "buildout",
        "dropdb",
        "createdb",
        "dropdb_1",
        "pg_remote_copy",
        "testing",
        "testing_1",
        "updating",
        "install",
        "mkdir",
        "tests",
        "functional tools",
        "cleanup",
        "start",
        "ft",
        "start_1",
        "analysis tools",
        "flake8",
        "sphinx",
        "autocommit",
    ]
    .into_iter()
    .collect();
    assert_eq!(with_env, expected);

    // Names are unique, as Buildbot made them, and every analysis points at its step.
    let names: BTreeSet<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), steps.len());
    let analyses: Vec<(&str, &str, &str)> = steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::AnalyzeLog { step, log } => {
                Some((s.name.as_str(), step.as_str(), log.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        analyses,
        [
            ("analyze", "testing", "test"),
            ("analyze_1", "updating", "update"),
            ("check", "install", "log")
        ]
    );
    // No shell strings: every command is an argument vector.
    assert!(steps
        .iter()
        .all(|s| !matches!(s.command, Some(Command::Shell(_)))));
}

#[test]
fn ac_f5_buildout_downloaders() {
    let ctx = Ctx::default();
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "standalone",
            "standalone buildouts/6.1.cfg",
            &[
                "download_bootstrap: download /srv/master/bootstrap.py -> bootstrap.py",
                "download_buildout: download /srv/master/buildouts/6.1.cfg -> 6.1.cfg",
            ],
            "6.1.cfg",
        ),
        (
            "standalone-absolute",
            "standalone /etc/abo/b.cfg",
            &[
                "download_bootstrap: download /srv/master/bootstrap.py -> bootstrap.py",
                "download_buildout: download /etc/abo/b.cfg -> b.cfg",
            ],
            "b.cfg",
        ),
        (
            "hg_buildout",
            "hg http://mercurial.example/buildout somebranch myconf.cfg",
            &[
                "checkout_buildout: checkout hg http://mercurial.example/buildout \
               branch=somebranch -> build [halt]",
            ],
            "myconf.cfg",
        ),
        (
            "git_buildout",
            "git user@git.example:my/buildout master conf/ci.cfg",
            &[
                "checkout_buildout: checkout git user@git.example:my/buildout branch=master \
               -> build [halt]",
            ],
            "conf/ci.cfg",
        ),
        (
            "bzr_buildout",
            "bzr lp:anybox.recipe.openerp/trunk recipe-7.0.cfg subdir=buildbot",
            &["checkout_buildout: checkout bzr \
               http://bazaar.launchpad.net/+branch/anybox.recipe.openerp/trunk -> build \
               subdir=buildbot [halt]"],
            "recipe-7.0.cfg",
        ),
        (
            "bzr_plain",
            "bzr bzr+ssh://bzr.example/buildout buildout.cfg",
            &["checkout_buildout: checkout bzr bzr+ssh://bzr.example/buildout -> build [halt]"],
            "buildout.cfg",
        ),
        (
            "hgtag_nowatch",
            "hgtag http://mercurial.example/buildout frozen.cfg",
            &[
                "checkout_buildout: checkout hg http://mercurial.example/buildout \
               rev=%(buildout-tag)s -> src [halt]",
            ],
            "frozen.cfg",
        ),
    ];
    for (name, buildout, downloads, conf) in cases {
        let expected = concat(&[
            vec![BZR_REPO.to_string()],
            s(downloads),
            middle(name, conf, "template1"),
            test_openerp("all"),
        ]);
        assert_lines(&ctx.lines(name, &[("buildout", buildout)]), &expected);
    }
}

#[test]
fn ac_f5_buildout_source_parsed() {
    let cases = [
        (
            "standalone buildouts/6.1.cfg",
            BuildoutSource::Standalone {
                conf_path: "buildouts/6.1.cfg".into(),
            },
            "6.1.cfg",
            None,
        ),
        (
            "hg http://h/b default b.cfg",
            BuildoutSource::Hg {
                url: "http://h/b".into(),
                branch: "default".into(),
                conf: "b.cfg".into(),
            },
            "b.cfg",
            Some(Vcs::Hg),
        ),
        (
            "bzr  lp:x   c.cfg\n  subdir=sub",
            BuildoutSource::Bzr {
                url: "lp:x".into(),
                conf: "c.cfg".into(),
                subdir: Some("sub".into()),
            },
            "c.cfg",
            Some(Vcs::Bzr),
        ),
        (
            "hgtag http://h/b f.cfg",
            BuildoutSource::HgTag {
                url: "http://h/b".into(),
                conf: "f.cfg".into(),
            },
            "f.cfg",
            Some(Vcs::Hg),
        ),
    ];
    for (value, expected, conf, vcs) in cases {
        let got = BuildoutSource::parse(value, "s").unwrap();
        assert_eq!(got, expected, "{value}");
        assert_eq!(got.conf_name(), conf, "{value}");
        assert_eq!(got.vcs(), vcs, "{value}");
    }
}

fn bootstrap_line(ctx: &Ctx, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("buildout", "standalone buildouts/7.0.cfg")];
    pairs.extend_from_slice(extra);
    ctx.lines("boot", &pairs)
        .into_iter()
        .find(|l| l.starts_with("bootstrap:"))
        .unwrap()
}

#[test]
fn ac_f6_bootstrap_options() {
    let ctx = Ctx::default();
    let cases: &[(&[(&str, &str)], String)] = &[
        (
            // The spec's case; `--script=` is not passed (deliberate difference 3).
            &[
                ("bootstrap-type", "v2"),
                ("bootstrap-version", "2.2.1"),
                ("bootstrap-virtualenv", "true"),
                ("bootstrap-script", "../src/bootstrap.py"),
            ],
            format!(
                "bootstrap: $ {PY} ../src/bootstrap.py --find-links ../../buildout-caches/eggs \
                 -c 7.0.cfg --version=2.2.1 [halt env:PATH=[${{HOME}}/openerp-env/bin,${{PATH}}]]"
            ),
        ),
        (
            &[],
            format!(
                "bootstrap: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c 7.0.cfg \
                 --version=2.1.1 [halt]"
            ),
        ),
        (
            &[
                ("bootstrap-type", " V1 "),
                ("bootstrap-virtualenv", "False"),
                ("bootstrap-setuptools-version", " 0.9.8 "),
                ("bootstrap-allow-site-packages", "1"),
            ],
            format!(
                "bootstrap: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c 7.0.cfg \
                 --allow-site-packages=1 --setuptools-version=0.9.8 --version=2.1.1 [halt]"
            ),
        ),
        (
            &[("bootstrap-type", "V2"), ("bootstrap-virtualenv", "TRUE")],
            format!(
                "bootstrap: $ {PY} bootstrap.py --find-links ../../buildout-caches/eggs -c \
                 7.0.cfg --version=2.1.1 [halt env:PATH=[${{HOME}}/openerp-env/bin,${{PATH}}]]"
            ),
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(&bootstrap_line(&ctx, extra), expected, "{extra:?}");
    }
}

/// Deliberate difference 3: `bootstrap-script` only chooses the script.
#[test]
fn difference_3_bootstrap_script_not_passed_on() {
    let line = bootstrap_line(
        &Ctx::default(),
        &[("bootstrap-script", "../src/bootstrap.py")],
    );
    assert!(line.contains(" ../src/bootstrap.py --eggs "), "{line}");
    assert!(!line.contains("--script"), "{line}");
}

/// Deliberate difference 7: the interpreter comes from the `python` capability, `python`
/// by default.
#[test]
fn difference_7_bootstrap_interpreter() {
    let steps = Ctx::default()
        .run(&ManifestSection::from_pairs(
            "s",
            DIR,
            &[("buildout", "standalone 7.0.cfg")],
        ))
        .unwrap();
    let boot = steps.iter().find(|s| s.name == "bootstrap").unwrap();
    let Some(Command::Argv(argv)) = &boot.command else {
        panic!("argv expected")
    };
    assert_eq!(argv[0], "%(cap_python_bin:-python)s");
}

/// Deliberate difference 4: nothing of the seed's build_utils goes to the worker.
#[test]
fn difference_4_no_helper_scripts() {
    let ctx = Ctx::default();
    for buildout in [
        "standalone 7.0.cfg",
        "hg http://h/b default b.cfg",
        "git http://g/b main b.cfg",
        "bzr lp:b b.cfg subdir=x",
        "hgtag http://h/b b.cfg",
    ] {
        let section = ManifestSection::from_pairs(
            "s",
            DIR,
            &[
                ("buildout", buildout),
                (
                    "post-buildout-steps",
                    "standard\nupdate-openerp\nnose\nfunctional",
                ),
                ("functional.commands", "bin/ft"),
            ],
        );
        for step in ctx.run(&section).unwrap() {
            if let StepKind::Download { src, .. } = &step.kind {
                assert!(
                    src.ends_with("/bootstrap.py") || src.ends_with(".cfg"),
                    "{src}"
                );
            }
            let text = format!("{:?}", step.command);
            for script in ["analyze_oerp_tests", "port_reserve", "_dl.py", "\"python\""] {
                assert!(!text.contains(script), "{buildout}: {}: {text}", step.name);
            }
        }
    }
}

#[test]
fn ac_f7_update_openerp() {
    let ctx = Ctx::default();
    let cases: &[(Pairs, &[&str])] = &[
        (
            &[("post-buildout-steps", "update-openerp")],
            &[
                "clean_log: $ rm -f update.log",
                "updating: $ bin/upgrade_openerp --log-file %(workdir)s/build/update.log \
                 [halt log:update=update.log]",
                "analyze: analyze-log updating/update",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "update-openerp"),
                ("upgrade.script", "bin/upgrade_project"),
                ("update.log_file_option", "--logfile"),
            ],
            &[
                "clean_log: $ rm -f update.log",
                "updating: $ bin/upgrade_project --logfile %(workdir)s/build/update.log \
                 [halt log:update=update.log]",
                "analyze: analyze-log updating/update",
            ],
        ),
    ];
    for (extra, expected) in cases {
        assert_lines(&after_db(&ctx, extra), &s(expected));
    }
}

#[test]
fn ac_f7_nose() {
    let ctx = Ctx::default();
    let cases: &[(Pairs, &[&str])] = &[
        (
            &[
                ("post-buildout-steps", "nose"),
                ("openerp-addons", "my_addon, other_addon"),
                ("nose.tests", "my_addon/tests\n other_addon/tests"),
            ],
            &[
                "Log cleanup: $ rm -f install.log",
                "install: $ bin/start_openerp --stop-after-init -i my_addon,other_addon \
                 --logfile=%(workdir)s/build/install.log [halt log:log=install.log]",
                "check: analyze-log install/log",
                "tests: $ bin/nosetests -v my_addon/tests other_addon/tests [halt timeout=14400]",
            ],
        ),
        (
            &[("post-buildout-steps", "nose")],
            &[
                "Log cleanup: $ rm -f install.log",
                "install: $ bin/start_openerp --stop-after-init -i all \
                 --logfile=%(workdir)s/build/install.log [halt log:log=install.log]",
                "check: analyze-log install/log",
                "tests: $ bin/nosetests -v [halt timeout=14400]",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "nose"),
                ("openerp-addons", "my_addon,other_addon"),
                ("install-as-upgrade", " True "),
                ("nose.coverage", "true"),
                ("nose.profile", "true"),
                ("nose.profile-restrict", "my_addon"),
                ("nose.cprofile", "TRUE"),
                (
                    "nose.upload-path",
                    "/srv/nose/$(buildername)s/$(buildnumber)s",
                ),
            ],
            &[
                "Log cleanup: $ rm -f install.log",
                "install: $ bin/upgrade_openerp --init-load-demo-data --log-file install.log \
                 [halt log:log=install.log]",
                "check: analyze-log install/log",
                "mkdir: $ mkdir -p nose_output [halt]",
                "tests: $ bin/nosetests -v --with-coverage --cover-html \
                 --cover-html-dir=nose_output/coverage --cover-erase --cover-branches \
                 --cover-package my_addon --cover-package other_addon --with-profile \
                 --profile-stats-file nose_output/profile.stats --profile-restrict my_addon \
                 --with-cprofile --cprofile-stats-erase --cprofile-stats-file \
                 nose_output/cprofile.stats [halt timeout=14400]",
                "nose_upload: upload-dir nose_output -> \
                 /srv/nose/%(buildername)s/%(buildnumber)s [halt]",
                "nose_read_permissions: master$ chmod -R a+r \
                 /srv/nose/%(buildername)s/%(buildnumber)s",
                "nose_dirx_permissions: master$ find /srv/nose/%(buildername)s/%(buildnumber)s \
                 -type d -exec chmod 755 {} ;",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "nose"),
                ("nose.coverage", "yes"),
                ("nose.cover-options", "--cover-min-percentage=80"),
            ],
            // Only `true` turns an option on, as the seed's bool_opt.
            &[
                "Log cleanup: $ rm -f install.log",
                "install: $ bin/start_openerp --stop-after-init -i all \
                 --logfile=%(workdir)s/build/install.log [halt log:log=install.log]",
                "check: analyze-log install/log",
                "tests: $ bin/nosetests -v [halt timeout=14400]",
            ],
        ),
    ];
    for (extra, expected) in cases {
        assert_lines(&after_db(&ctx, extra), &s(expected));
    }
}

#[test]
fn ac_f7_functional_after_standard() {
    let ctx = Ctx::default();
    let got = after_db(
        &ctx,
        &[
            ("post-buildout-steps", "standard\nfunctional"),
            ("openerp-addons", "sale"),
            (
                "functional.commands",
                "examples/sales_order/run-test.sh\n bin/other",
            ),
            ("functional.parts", "funkload"),
            ("functional.wait", "10"),
        ],
    );
    let expected = concat(&[
        test_openerp("sale"),
        s(&[
            "functional tools: $ bin/buildout -c 7.0.cfg \
             buildout:eggs-directory=../../buildout-caches/eggs install funkload [halt]",
            "port_reserve: reserve-port openerp_port 9069..11069 step 5 \
             [lock=port-reserve:exclusive]",
            "cleanup: $ rm -f %(workdir)s/openerp.pid [halt]",
            "Log cleanup: $ rm -f server-functional.log",
            "start: $ /sbin/start-stop-daemon --pidfile %(workdir)s/openerp.pid --exec \
             %(workdir)s/build/bin/start_openerp --background --make-pidfile -v --start -- \
             --xmlrpc-port %(openerp_port)s \
             --logfile=%(workdir)s/build/server-functional.log [halt]",
            "wait: $ sleep 10",
            "run-test.sh: $ examples/sales_order/run-test.sh %(openerp_port)s %(testing_db)s \
             [log:server=server-functional.log]",
            "other: $ bin/other %(openerp_port)s %(testing_db)s \
             [log:server=server-functional.log]",
            "start_1: $ /sbin/start-stop-daemon --pidfile %(workdir)s/openerp.pid --stop \
             --oknodo --retry 5 [halt]",
        ]),
    ]);
    assert_lines(&got, &expected);

    // Without parts, no tools step; the wait defaults to 30 s.
    let got = after_db(
        &ctx,
        &[
            ("post-buildout-steps", "functional"),
            ("functional.commands", "bin/ft"),
        ],
    );
    assert_eq!(
        got[0],
        "port_reserve: reserve-port openerp_port 9069..11069 step 5 [lock=port-reserve:exclusive]"
    );
    assert!(got.contains(&"wait: $ sleep 30".to_string()), "{got:#?}");
}

#[test]
fn ac_f7_static_analysis_doc_autocommit() {
    let ctx = Ctx::default();
    let cases: &[(Pairs, &[&str])] = &[
        (
            &[
                ("post-buildout-steps", "static-analysis"),
                ("static-analysis.flake-directories", "addons/a\naddons/b"),
            ],
            &[
                "analysis tools: $ bin/buildout -c 7.0.cfg \
                 buildout:eggs-directory=../../buildout-caches/eggs install static-analysis \
                 [halt]",
                "flake8: $ bin/flake8 --max-line-length 100 --show-source addons/a addons/b",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "static-analysis"),
                ("static-analysis.flake-directories", "src"),
                ("static-analysis.part", "qa"),
                ("static-analysis.max-line-length", "79"),
            ],
            &[
                "analysis tools: $ bin/buildout -c 7.0.cfg \
                 buildout:eggs-directory=../../buildout-caches/eggs install qa [halt]",
                "flake8: $ bin/flake8 --max-line-length 79 --show-source src",
            ],
        ),
        // No shell string built by abo: `sh bin/sphinx` is two arguments.
        (
            &[("post-buildout-steps", "doc")],
            &["sphinx: $ sh bin/sphinx"],
        ),
        (
            &[
                ("post-buildout-steps", "doc"),
                ("doc.upload-dir", "proj/"),
                ("doc.base-url", "http://docs.example"),
            ],
            &[
                "sphinx: $ sh bin/sphinx",
                "doc_upload: upload-dir doc/_build/html -> proj/%(buildout-tag:-current)s [halt]",
                "doc_read_permissions: master$ chmod -R a+r proj/%(buildout-tag:-current)s",
                "doc_dirx_permissions: master$ find proj/%(buildout-tag:-current)s -type d \
                 -exec chmod 755 {} ;",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "doc"),
                ("doc.sphinx-sourcedir", "doc"),
                ("doc.sphinx-mode", "full"),
                ("doc.upload-root", "/var/www/doc"),
                ("doc.upload-dir", "proj"),
                ("doc.version", "v-$(buildout-tag:-dev)s"),
            ],
            &[
                "sphinx: $ bin/sphinx-build -E doc doc/_build",
                "doc_upload: upload-dir doc/_build -> /var/www/doc/proj/v-%(buildout-tag:-dev)s \
                 [halt]",
                "doc_read_permissions: master$ chmod -R a+r \
                 /var/www/doc/proj/v-%(buildout-tag:-dev)s",
                "doc_dirx_permissions: master$ find /var/www/doc/proj/v-%(buildout-tag:-dev)s \
                 -type d -exec chmod 755 {} ;",
            ],
        ),
        (
            &[
                ("post-buildout-steps", "doc"),
                ("doc.sphinx-sourcedir", "docs"),
                ("doc.sphinx-builddir", "out"),
                ("doc.sphinx-bin", "bin/sphinx-build-2"),
            ],
            &["sphinx: $ bin/sphinx-build-2 docs out"],
        ),
        (
            &[("post-buildout-steps", "autocommit")],
            &["autocommit: $ bin/autocommit_openerp -c 7.0.cfg --push -m 'Commit by buildbot'"],
        ),
        (
            &[
                ("post-buildout-steps", "autocommit"),
                ("autocommit.script", "bin/ac"),
                ("autocommit.message", "Nightly freeze"),
            ],
            &["autocommit: $ bin/ac -c 7.0.cfg --push -m 'Nightly freeze'"],
        ),
    ];
    for (extra, expected) in cases {
        assert_lines(&after_db(&ctx, extra), &s(expected));
    }
}

#[test]
fn ac_f7_pg_remote_copy() {
    let ctx = Ctx::default();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("db-steps", "pg_remote_copy"),
                ("pg_remote_copy.arguments", "--from prod-server\n  mydb"),
            ],
            "pg_remote_copy: $ pg_remote_copy --copied_db_name %(testing_db)s --from \
             prod-server mydb [halt]",
        ),
        (
            &[
                ("db-steps", "pg_remote_copy"),
                ("pg_remote_copy.arguments", "mydb"),
                ("pg_remote_copy.executable", "/usr/local/bin/remount"),
                ("pg_remote_copy.db_option", ""),
            ],
            "pg_remote_copy: $ /usr/local/bin/remount %(testing_db)s mydb [halt]",
        ),
    ];
    for (extra, copy) in cases {
        let mut pairs = vec![("buildout", "standalone 7.0.cfg")];
        pairs.extend_from_slice(extra);
        let lines = ctx.lines("remote", &pairs);
        let at = lines
            .iter()
            .position(|l| l.starts_with("buildout:"))
            .unwrap();
        assert_lines(
            &lines[at + 1..],
            &concat(&[
                s(&[
                    "dropdb: $ psql postgres -c 'DROP DATABASE IF EXISTS \"%(testing_db)s\"' [halt]",
                    copy,
                ]),
                test_openerp("all"),
            ]),
        );
    }
}

#[test]
fn ac_f7_packaging() {
    let ctx = Ctx::default();
    let lines = ctx.lines(
        "release",
        &[
            ("buildout", "hgtag http://hg.example/buildout frozen.cfg"),
            ("post-dl-steps", "packaging"),
            ("post-buildout-steps", "standard\npackaging"),
            ("packaging.root-dir", "/srv/releases"),
            ("packaging.upload-dir", "proj"),
            ("packaging.prefix", "proj"),
            ("packaging.parts", "openerp"),
            ("packaging.base-url", "http://releases.example"),
        ],
    );
    let archive = "proj-%(buildout-tag)s";
    let caches = "buildout:eggs-directory=../../buildout-caches/eggs \
                  buildout:openerp-downloads-directory=../../buildout-caches/openerp";
    let expected = concat(&[
        vec![
            BZR_REPO.to_string(),
            "checkout_buildout: checkout hg http://hg.example/buildout rev=%(buildout-tag)s \
             -> src [halt]"
                .to_string(),
            "packaging_mkdir: master$ mkdir -p -m 755 /srv/releases/proj [halt hidden]".to_string(),
            "clean: $ rm -rf build dist [in=.]".to_string(),
            format!(
                "bootstrap: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c frozen.cfg \
                 --version=2.1.1 [halt in=src]"
            ),
            format!("archive: $ hg archive ../dist/{archive} [halt in=src]"),
            format!("buildout_install: $ bin/buildout -c frozen.cfg {caches} install openerp [halt in=src]"),
            format!(
                "extract_downloads: $ bin/buildout -o -c frozen.cfg {caches} \
                 openerp:extract-downloads-to=../dist/{archive} [halt in=src]"
            ),
            format!("tar: $ tar cjf {archive}.tar.bz2 {archive} [halt in=dist]"),
            format!("md5: $ sh -c 'md5sum \"$1\" > \"$1.md5\"' md5 {archive}.tar.bz2 [in=dist]"),
            format!("mv: $ mv ./dist/{archive} build [in=.]"),
            "pg_cluster_props: set testing_db=%(db_prefix:-openerp_buildbot)s-release".to_string(),
            "cachedirs: $ mkdir -p ../../buildout-caches/eggs ../../buildout-caches/openerp"
                .to_string(),
            format!(
                "bootstrap_1: $ {PY} bootstrap.py --eggs ../../buildout-caches/eggs -c \
                 release.cfg --version=2.1.1 [halt]"
            ),
            buildout_line("release.cfg", ""),
        ],
        middle("release", "release.cfg", "template1")[4..].to_vec(),
        test_openerp("all"),
        vec![
            format!(
                "upload_tarball: upload-file ../dist/{archive}.tar.bz2 -> \
                 /srv/releases/proj/{archive}.tar.bz2"
            ),
            format!(
                "upload_md5: upload-file ../dist/{archive}.tar.bz2.md5 -> \
                 /srv/releases/proj/{archive}.tar.bz2.md5"
            ),
        ],
    ]);
    assert_lines(&lines, &expected);
}

/// Several post-buildout-steps lines, applied in order; repeated names are numbered as
/// Buildbot did and the analyses follow.
#[test]
fn ac_f7_several_post_buildout_lines() {
    let got = after_db(
        &Ctx::default(),
        &[(
            "post-buildout-steps",
            "test-openerp\nupdate-openerp\n\nautocommit",
        )],
    );
    assert_lines(
        &got,
        &s(&[
            "clean_log: $ rm -f test.log",
            "testing: $ bin/test_openerp -i all --logfile=%(workdir)s/build/test.log \
             [halt log:test=test.log]",
            "analyze: analyze-log testing/test",
            "clean_log_1: $ rm -f update.log",
            "updating: $ bin/upgrade_openerp --log-file %(workdir)s/build/update.log \
             [halt log:update=update.log]",
            "analyze_1: analyze-log updating/update",
            "autocommit: $ bin/autocommit_openerp -c 7.0.cfg --push -m 'Commit by buildbot'",
        ]),
    );
    // The same subfactory twice: the second analysis follows the renamed step.
    let got = after_db(
        &Ctx::default(),
        &[("post-buildout-steps", "standard\nstandard")],
    );
    assert_lines(
        &got[3..],
        &s(&[
            "clean_log_1: $ rm -f test.log",
            "testing_1: $ bin/test_openerp -i all --logfile=%(workdir)s/build/test.log \
             [halt log:test=test.log]",
            "analyze_1: analyze-log testing_1/test",
        ]),
    );
    // Written empty: no post-buildout steps at all.
    assert!(after_db(&Ctx::default(), &[("post-buildout-steps", "")]).is_empty());
}

fn user_sets() -> BTreeMap<String, Vec<Step>> {
    BTreeMap::from([
        (
            "lint".to_string(),
            vec![Step::argv("ruff", ["ruff", "check", "."])],
        ),
        (
            "release".to_string(),
            vec![
                Step::argv("make", ["make", "dist"]).halt(),
                Step::new(
                    "publish",
                    StepKind::UploadFile {
                        src: "dist/x.tgz".into(),
                        dest: "x.tgz".into(),
                    },
                ),
            ],
        ),
    ])
}

#[test]
fn user_step_sets() {
    let mut ctx = capability_ctx();
    ctx.sets = user_sets();
    // `steps = NAME` without buildout: exactly that set (no props, no seed steps).
    assert_lines(
        &ctx.lines("tool", &[("steps", " release ")]),
        &s(&[
            "make: $ make dist [halt]",
            "publish: upload-file dist/x.tgz -> x.tgz",
        ]),
    );
    // In post-buildout-steps, among builtins.
    let got = after_db(&ctx, &[("post-buildout-steps", "lint\nstandard\nlint")]);
    assert_lines(
        &got,
        &s(&[
            "ruff: $ ruff check .",
            "clean_log: $ rm -f test.log",
            "testing: $ bin/test_openerp -i all --logfile=%(workdir)s/build/test.log \
             [halt log:test=test.log env]",
            "analyze: analyze-log testing/test",
            "ruff_1: $ ruff check .",
        ]),
    );
}

#[test]
fn template_escaping_of_user_values() {
    let ctx = Ctx::default();
    let lines = ctx.lines(
        "100%",
        &[
            ("buildout", "standalone b%1.cfg"),
            ("db_template", "tpl%1"),
            ("openerp-addons", "a%b"),
        ],
    );
    let expected = concat(&[
        vec![BZR_REPO.to_string()],
        s(&[
            "download_bootstrap: download /srv/master/bootstrap.py -> bootstrap.py",
            "download_buildout: download /srv/master/b%%1.cfg -> b%%1.cfg",
        ]),
        middle("100%%", "b%%1.cfg", "tpl%%1"),
        test_openerp("a%%b"),
    ]);
    assert_lines(&lines, &expected);
    assert_eq!(literal("a%(x)s"), "a%%(x)s");
    assert_eq!(dollar_template("$(x)s 5%"), "%(x)s 5%%");
}

struct ErrCase {
    name: &'static str,
    pairs: &'static [(&'static str, &'static str)],
    /// (line, message) of every diagnostic, in order.
    expected: &'static [(u32, &'static str)],
}

fn check_errors(ctx: &Ctx, cases: &[ErrCase]) {
    for case in cases {
        let got = ctx.errors(case.name, case.pairs);
        let summary: Vec<(u32, &str)> = got
            .iter()
            .map(|d| (d.line.unwrap(), d.message.as_str()))
            .collect();
        assert_eq!(summary, case.expected, "{}", case.name);
        for d in &got {
            assert_eq!(d.file, format!("{DIR}/MANIFEST.cfg"));
            assert!(
                d.help.as_deref().is_some_and(|h| !h.is_empty()),
                "{}: no help in {d:?}",
                case.name
            );
        }
    }
}

const FORBIDDEN: &str =
    "The following bootstrap options are forbidden: ['eggs', 'find-links', 'help']";

#[test]
fn ac_e2_to_e8_seed_errors() {
    check_errors(
        &Ctx::default(),
        &[
            ErrCase {
                name: "e2",
                pairs: &[
                    ("buildout", "standalone 7.0.cfg"),
                    ("bootstrap-eggs", "/tmp/eggs"),
                    ("bootstrap-help", "x"),
                    ("bootstrap-find-links", "http://x"),
                ],
                expected: &[(3, FORBIDDEN), (5, FORBIDDEN), (4, FORBIDDEN)],
            },
            ErrCase {
                name: "e3",
                pairs: &[("buildout", "standalone 7.0.cfg"), ("bootstrap-type", "V3")],
                expected: &[(
                    3,
                    "Unknown bootstrap type: 'v3'. Known ones are ('v1', 'v2')",
                )],
            },
            ErrCase {
                name: "e4",
                pairs: &[("buildout", "bzr lp:foo buildout.cfg depth=1")],
                expected: &[(
                    2,
                    "Wrong standalong bzr buildout specification: \
                     ['lp:foo', 'buildout.cfg', 'depth=1']",
                )],
            },
            ErrCase {
                name: "e4-short",
                pairs: &[("buildout", "bzr lp:foo")],
                expected: &[(2, "Wrong standalong bzr buildout specification: ['lp:foo']")],
            },
            ErrCase {
                name: "e5-hg",
                pairs: &[("buildout", "hg http://hg.example/b default")],
                expected: &[(
                    2,
                    "Wrong standalong buildout specification: ['http://hg.example/b', 'default']",
                )],
            },
            ErrCase {
                name: "e5-git",
                pairs: &[("buildout", "git http://g/b main b.cfg extra")],
                expected: &[(
                    2,
                    "Wrong standalong buildout specification: \
                     ['http://g/b', 'main', 'b.cfg', 'extra']",
                )],
            },
            ErrCase {
                name: "e5-hgtag",
                pairs: &[("buildout", "hgtag http://h/b")],
                expected: &[(2, "Wrong hgtag buildout specification: ['http://h/b']")],
            },
            ErrCase {
                name: "e6",
                pairs: &[("buildout", "standalone a.cfg b.cfg")],
                expected: &[(
                    2,
                    "Wrong standalong buildout specification: ['a.cfg', 'b.cfg']",
                )],
            },
            ErrCase {
                name: "e7",
                pairs: &[
                    ("buildout", "standalone 7.0.cfg"),
                    ("post-buildout-steps", "static-analysis"),
                ],
                expected: &[(
                    3,
                    "You must provide static-analysis.flake-directories option for static \
                     analysis. Currently provided options: {'buildout': 'standalone 7.0.cfg', \
                     'post-buildout-steps': 'static-analysis'}",
                )],
            },
            ErrCase {
                name: "x",
                pairs: &[("buildout", "svn http://svn.example/x x.cfg")],
                expected: &[(2, "Buildout type 'svn' in 'x' not supported")],
            },
            ErrCase {
                name: "empty",
                pairs: &[("buildout", "")],
                expected: &[(2, "the buildout option is empty")],
            },
        ],
    );
}

#[test]
fn ac_e9_unknown_subfactories() {
    let ctx = Ctx {
        sets: user_sets(),
        ..Ctx::default()
    };
    let section = ManifestSection::from_pairs(
        "e9",
        DIR,
        &[
            ("buildout", "standalone 7.0.cfg"),
            ("post-buildout-steps", "standard\nfrobnicate"),
        ],
    );
    let got = ctx.run(&section).unwrap_err();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, Some(3));
    assert_eq!(
        got[0].message,
        "unknown post-buildout subfactory \"frobnicate\""
    );
    let help = got[0].help.as_deref().unwrap();
    for name in [
        "standard",
        "nose",
        "openerpcommand-initialize-tests",
        "lint",
        "release",
    ] {
        assert!(help.contains(name), "{help}");
    }

    check_errors(
        &ctx,
        &[
            ErrCase {
                name: "db",
                pairs: &[
                    ("buildout", "standalone 7.0.cfg"),
                    ("db-steps", "simple_create\nrestore"),
                ],
                expected: &[(3, "unknown db-steps subfactory \"restore\"")],
            },
            ErrCase {
                name: "dl",
                pairs: &[("buildout", "standalone 7.0.cfg"), ("post-dl-steps", "zip")],
                expected: &[(3, "unknown post-download subfactory \"zip\"")],
            },
        ],
    );
}

/// Every mistake of a section comes back at once, each at its option's line.
#[test]
fn all_mistakes_together() {
    check_errors(
        &Ctx::default(),
        &[ErrCase {
            name: "many",
            pairs: &[
                ("buildout", "standalone a.cfg b.cfg"),
                ("bootstrap-type", "v3"),
                ("post-buildout-steps", "frobnicate\nfunctional\nnose"),
                ("nose.coverage", "true"),
                ("db-steps", "pg_remote_copy"),
            ],
            expected: &[
                (
                    2,
                    "Wrong standalong buildout specification: ['a.cfg', 'b.cfg']",
                ),
                (
                    3,
                    "Unknown bootstrap type: 'v3'. Known ones are ('v1', 'v2')",
                ),
                (
                    6,
                    "pg_remote_copy db-steps need the option pg_remote_copy.arguments",
                ),
                (4, "unknown post-buildout subfactory \"frobnicate\""),
                (
                    4,
                    "functional post-buildout steps need the option functional.commands",
                ),
                (
                    5,
                    "nose coverage and profiling need the option nose.upload-path",
                ),
            ],
        }],
    );
}

#[test]
fn missing_required_options() {
    check_errors(
        &Ctx::default(),
        &[
            ErrCase {
                name: "pkg",
                pairs: &[
                    ("buildout", "standalone 7.0.cfg"),
                    ("post-dl-steps", "packaging"),
                    ("post-buildout-steps", "packaging"),
                    ("packaging.prefix", "p"),
                ],
                expected: &[
                    (
                        3,
                        "packaging post-download steps need the option packaging.root-dir",
                    ),
                    (
                        3,
                        "packaging post-download steps need the option packaging.upload-dir",
                    ),
                    (
                        3,
                        "packaging post-download steps need the option packaging.parts",
                    ),
                    (
                        3,
                        "packaging post-download steps need an hgtag buildout (they archive \
                         the Mercurial clone in src/)",
                    ),
                    (
                        4,
                        "packaging post-buildout steps need the option packaging.upload-dir",
                    ),
                    (
                        4,
                        "packaging post-buildout steps need the option packaging.root-dir",
                    ),
                ],
            },
            ErrCase {
                name: "sphinx",
                pairs: &[
                    ("buildout", "standalone 7.0.cfg"),
                    ("post-buildout-steps", "doc"),
                    ("doc.sphinx-sourcedir", "doc"),
                    ("doc.sphinx-mode", "partial"),
                ],
                expected: &[(5, "Sphinx argument mode has unsupported value 'partial'")],
            },
        ],
    );
}

#[test]
fn steps_option_errors() {
    let ctx = Ctx {
        sets: user_sets(),
        ..Ctx::default()
    };
    check_errors(
        &ctx,
        &[
            ErrCase {
                name: "unknown",
                pairs: &[("steps", "deploy")],
                expected: &[(2, "unknown step set \"deploy\"")],
            },
            ErrCase {
                name: "both",
                pairs: &[("buildout", "standalone 7.0.cfg"), ("steps", "lint")],
                expected: &[(3, "a section cannot have both `buildout` and `steps`")],
            },
            ErrCase {
                name: "two",
                pairs: &[("steps", "lint release")],
                expected: &[(2, "steps = \"lint release\" must name exactly one step set")],
            },
        ],
    );
    let got = ctx.errors("unknown", &[("steps", "deploy")]);
    assert_eq!(
        got[0].help.as_deref(),
        Some("master.toml defines these step sets: lint, release")
    );
}

/// The plan's JSON form of the buildout step (`abo check --json`), and of a checkout.
#[test]
fn step_json() {
    let steps = Ctx::default()
        .run(&ManifestSection::from_pairs(
            "s",
            DIR,
            &[("buildout", "hg http://hg.example/b default b.cfg")],
        ))
        .unwrap();
    let buildout = steps.iter().find(|s| s.name == "buildout").unwrap();
    assert_eq!(
        serde_json::to_value(buildout).unwrap(),
        serde_json::json!({
            "name": "buildout",
            "kind": "shell",
            "command": [
                "bin/buildout", "-c", "b.cfg",
                "buildout:eggs-directory=../../buildout-caches/eggs",
                "buildout:openerp-downloads-directory=../../buildout-caches/openerp",
                "openerp:with_devtools=true",
                "openerp:vcs-clear-locks=true",
                "openerp:vcs-clear-retry=true",
                "openerp:clean=true",
                "openerp:vcs-revert=on-merge",
                "openerp:options.db_port=%(cap_postgresql_port:-5432)s",
                "openerp:options.db_host=%(cap_postgresql_host:-False)s",
                "openerp:options.db_user=%(cap_postgresql_user:-False)s",
                "openerp:options.db_password=%(cap_postgresql_passwd:-False)s",
                "openerp:options.db_name=%(testing_db)s"
            ],
            "env": {},
            "workdir": null,
            "halt_on_failure": true,
            "flunk_on_failure": true,
            "warn_on_failure": false,
            "hidden": false,
            "timeout": 14400,
            "locks": [{"name": "buildout", "mode": "exclusive"}],
            "logfiles": {}
        })
    );
    let checkout = steps
        .iter()
        .find(|s| s.name == "checkout_buildout")
        .unwrap();
    let json = serde_json::to_value(checkout).unwrap();
    assert_eq!(json["kind"], "checkout");
    assert_eq!(json["vcs"], "hg");
    assert_eq!(json["repo"], "http://hg.example/b");
    assert_eq!(json["branch"], "default");
    assert_eq!(json["revision"], serde_json::Value::Null);
    assert_eq!(json["dest"], "build");
    assert_eq!(json["command"], serde_json::Value::Null);
}
