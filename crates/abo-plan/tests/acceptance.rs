//! The seed's acceptance cases (`semantics-0.9.md` §1, §2, §3 AC-F4, §6) run on the
//! seed's own test data, through the real readers and the planner.

use abo_config::{
    ini, read_manifest, read_workers, Diagnostic, ManifestSection, MasterSettings, Worker,
};
use abo_plan::planner::{plan, PlanInput};
use abo_plan::{Builder, EnvValue, Plan, StepKind};
use std::collections::{BTreeMap, BTreeSet};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/upstream/");

fn read(name: &str) -> ini::Ini {
    let text = std::fs::read_to_string(format!("{DATA}{name}")).unwrap();
    let (parsed, diags) = ini::parse(name, &text);
    assert!(diags.is_empty(), "{name}: {diags:?}");
    parsed
}

fn sections(manifest: &str) -> Vec<ManifestSection> {
    let (s, d) = read_manifest(&read(manifest), "/master/buildouts");
    assert!(d.is_empty(), "{d:?}");
    s
}

fn workers(file: &str) -> Vec<Worker> {
    let (w, d) = read_workers(&read(file));
    assert!(d.is_empty(), "{d:?}");
    w
}

fn plan_of(
    sections: &[ManifestSection],
    workers: &[Worker],
    settings: &MasterSettings,
) -> Result<Plan, Vec<Diagnostic>> {
    plan(&PlanInput {
        sections,
        workers,
        settings,
        settings_file: "master.toml",
    })
}

fn plan_with(
    manifest: &str,
    workers_file: &str,
    settings: &MasterSettings,
) -> Result<Plan, Vec<Diagnostic>> {
    plan_of(&sections(manifest), &workers(workers_file), settings)
}

fn planned(manifest: &str, workers_file: &str) -> Plan {
    plan_with(manifest, workers_file, &MasterSettings::default()).unwrap()
}

/// Builder name → its workers.
fn builders(p: &Plan) -> BTreeMap<String, Vec<String>> {
    p.builders
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                b.workers.iter().map(|w| w.to_string()).collect(),
            )
        })
        .collect()
}

fn builder<'a>(p: &'a Plan, name: &str) -> &'a Builder {
    p.builders
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no builder {name} in {:?}", builders(p).keys()))
}

fn expect(p: &Plan, cases: &[(&str, &[&str])]) {
    let expected: BTreeMap<String, Vec<String>> = cases
        .iter()
        .map(|(n, w)| (n.to_string(), w.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(builders(p), expected);
}

#[test]
fn ac_s1_s2_capabilities_and_worker_options() {
    let w = workers("slaves_capability.cfg");
    assert_eq!(w.len(), 1);
    let w = &w[0];
    assert_eq!(w.name, "two-pg-one-py");
    type Cap = (String, Option<String>, Vec<(String, String)>);
    let caps: Vec<Cap> = w
        .capabilities
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.version.clone(),
                c.options.clone().into_iter().collect(),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        caps,
        vec![
            (
                s("postgresql"),
                Some(s("9.1")),
                vec![(s("port"), s("5432"))]
            ),
            (
                s("python"),
                Some(s("2.6")),
                vec![(s("bin"), s("python2.6"))]
            ),
            (
                s("postgresql"),
                Some(s("9.2")),
                vec![(s("port"), s("5433"))]
            ),
            (s("selenium"), None, vec![]),
        ]
    );
    assert_eq!(w.max_builds, Some(2));
    assert_eq!(w.notify_on_missing, vec!["joe@example.org"]);
}

#[test]
fn ac_s3_one_slave() {
    let w = workers("one_slave.cfg");
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].name.as_str(), w[0].password.as_str()),
        ("slave", "secret")
    );
    assert_eq!(w[0].capabilities.len(), 1);
    assert_eq!(w[0].capabilities[0].version.as_deref(), Some("8.4"));
    assert_eq!(w[0].max_builds, None);
    assert!(w[0].notify_on_missing.is_empty());
}

#[test]
fn capability_option_without_value_is_an_error() {
    let (parsed, _) = ini::parse(
        "w.cfg",
        "[w]\npassword = x\ncapability = postgresql 9.1 port\n",
    );
    let (_, d) = read_workers(&parsed);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, Some(3));
    assert!(d[0].to_string().contains("`port` has no value"), "{}", d[0]);
}

/// abo's deliberate difference #6: a worker without password is an error (0.9 dropped it).
#[test]
fn worker_without_password_is_an_error() {
    let (parsed, _) = ini::parse(
        "w.cfg",
        "[ok]\npassword = x\n\n[nopass]\ncapability = postgresql 9.1\n",
    );
    let (_, d) = read_workers(&parsed);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "w.cfg:4: worker `nopass` has no password, add `password = ...` (the worker authenticates with it)"
    );
}

#[test]
fn ac_b1_category() {
    let p = planned("manifest_category.cfg", "one_slave.cfg");
    expect(
        &p,
        &[
            ("ready-postgresql-8.4", &["slave"]),
            ("wip-postgresql-8.4", &["slave"]),
        ],
    );
    assert_eq!(builder(&p, "ready-postgresql-8.4").category, "mature");
    assert_eq!(builder(&p, "wip-postgresql-8.4").category, "unstable");
}

#[test]
fn ac_b2_build_for() {
    let p = planned("manifest_build_for.cfg", "slaves_build_for.cfg");
    expect(
        &p,
        &[
            ("sup90-postgresql-9.1-devel", &["sl90-91"]),
            ("range-postgresql-9.1-devel", &["sl90-91"]),
            ("range-postgresql-9.0", &["sl90-91"]),
            ("range-postgresql-8.4", &["sl84"]),
            ("or-statement-postgresql-9.1-devel", &["sl90-91"]),
            ("or-statement-postgresql-8.4", &["sl84"]),
        ],
    );
    assert_eq!(
        builder(&p, "range-postgresql-9.0").properties,
        BTreeMap::from([("pg_version".to_string(), "9.0".to_string())])
    );
}

#[test]
fn ac_b3_build_requires() {
    let p = planned("manifest_build_requires.cfg", "slaves_build_requires.cfg");
    expect(
        &p,
        &[
            ("priv-pgall-postgresql-8.4", &["privcode", "privcode-84"]),
            (
                "priv-pgall-postgresql-9.1-devel",
                &["privcode", "privcode-91"],
            ),
            (
                "priv-sup90-postgresql-9.1-devel",
                &["privcode", "privcode-91"],
            ),
            ("rabb-sup20-postgresql-9.0", &["rabb284"]),
            (
                "sup90-postgresql-9.1-devel",
                &["privcode", "privcode-91", "pg90-91"],
            ),
        ],
    );
}

#[test]
fn ac_b4_build_requires_version() {
    let p = planned("manifest_build_requires2.cfg", "slaves_build_requires.cfg");
    expect(&p, &[("rabb-18-postgresql-9.0", &["rabb18"])]);
}

#[test]
fn ac_b5_build_only_if_requires() {
    let p = planned(
        "manifest_build_requires.cfg",
        "slaves_build_requires_only_if.cfg",
    );
    expect(
        &p,
        &[
            ("priv-pgall-postgresql-8.4", &["privcode", "privcode-84"]),
            (
                "priv-pgall-postgresql-9.1-devel",
                &["privcode", "privcode-91"],
            ),
            (
                "priv-sup90-postgresql-9.1-devel",
                &["privcode", "privcode-91"],
            ),
            ("rabb-sup20-postgresql-9.0", &["rabb284"]),
            ("sup90-postgresql-9.1-devel", &["privcode-91", "pg90-91"]),
        ],
    );
}

#[test]
fn ac_b6_inherit() {
    let s = sections("manifest_inherit.cfg");
    let inheritor = s.iter().find(|s| s.name == "inheritor").unwrap();
    assert_eq!(inheritor.get("openerp-addons"), Some("stock, crm"));
    let p = planned("manifest_inherit.cfg", "slaves_build_requires.cfg");
    expect(
        &p,
        &[
            ("simple-postgresql-8.4", &["privcode", "privcode-84"]),
            ("simple-postgresql-9.0", &["pg90-91", "rabb284", "rabb18"]),
            (
                "simple-postgresql-9.1-devel",
                &["privcode", "privcode-91", "pg90-91"],
            ),
            ("inheritor-postgresql-8.4", &["privcode", "privcode-84"]),
            (
                "inheritor-postgresql-9.1-devel",
                &["privcode", "privcode-91"],
            ),
        ],
    );
}

#[test]
fn ac_b7_capability_builders() {
    let p = planned("manifest_capability.cfg", "slaves_capability.cfg");
    expect(
        &p,
        &[
            ("addons-list-postgresql-9.1", &["two-pg-one-py"]),
            ("addons-list-postgresql-9.2", &["two-pg-one-py"]),
        ],
    );
}

#[test]
fn ac_b8_manifest_1() {
    let p = planned("manifest_1.cfg", "one_slave.cfg");
    expect(
        &p,
        &[
            ("simple-postgresql-8.4", &["slave"]),
            ("addons-list-postgresql-8.4", &["slave"]),
            ("oecommand-postgresql-8.4", &["slave"]),
            ("oecommand-with-addons-postgresql-8.4", &["slave"]),
        ],
    );
}

#[test]
fn default_section_is_not_a_factory_but_reaches_options() {
    let s = sections("manifest_1.cfg");
    assert!(s.iter().all(|s| s.name != "DEFAULT"));
    let addons = s.iter().find(|s| s.name == "addons-list").unwrap();
    assert_eq!(addons.get("some_common"), Some("/path/to/some/file"));
}

fn python_env_settings(version_property: Option<&str>) -> MasterSettings {
    let mut text =
        String::from("[capability-env.python]\nenviron = { PYTHONBIN = \"%(cap(bin)-)s\" }\n");
    if let Some(v) = version_property {
        text.push_str(&format!("version-property = \"{v}\"\n"));
    }
    abo_config::read_settings("master.toml", &text).unwrap()
}

/// AC-F4: the capability environment of the `testing` step, and the props steps.
#[test]
fn ac_f4_capability_env() {
    for (version_property, expected_prop) in
        [(Some("py_version"), Some("py_version")), (None, None)]
    {
        let p = plan_with(
            "manifest_capability.cfg",
            "slaves_capability.cfg",
            &python_env_settings(version_property),
        )
        .unwrap();
        let b = builder(&p, "addons-list-postgresql-9.1");
        let testing = b.steps.iter().find(|s| s.name == "testing").unwrap();
        let one = |s: &str| EnvValue::One(s.to_string());
        assert_eq!(
            testing.env.get("PYTHONBIN"),
            Some(&one("%(cap_python_bin-)s"))
        );
        assert_eq!(
            testing.env.get("PGPORT"),
            Some(&one("%(cap_postgresql_port:-)s"))
        );
        assert_eq!(
            testing.env.get("PGHOST"),
            Some(&one("%(cap_postgresql_host:-)s"))
        );
        assert_eq!(
            testing.env.get("LD_LIBRARY_PATH"),
            Some(&one("%(cap_postgresql_lib:-)s"))
        );
        assert_eq!(
            testing.env.get("PGCLUSTER"),
            Some(&one("%(pg_version:-)s/main"))
        );
        assert_eq!(
            testing.env.get("PATH"),
            Some(&EnvValue::List(vec![
                "%(cap_postgresql_bin:-)s".into(),
                "${PATH}".into()
            ]))
        );
        let props: BTreeSet<(String, Option<String>)> = b
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::SetCapabilityProperties {
                    capability,
                    version_property,
                } => Some((capability.clone(), version_property.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            props,
            BTreeSet::from([
                ("python".to_string(), expected_prop.map(str::to_string)),
                ("postgresql".to_string(), Some("pg_version".to_string())),
            ])
        );
    }
}

/// AC-F4 (end): a factory with neither build-for nor build-requires has an empty env.
#[test]
fn ac_f4_no_requirement_no_env() {
    let p = planned("manifest_1.cfg", "one_slave.cfg");
    for b in &p.builders {
        for s in b.steps.iter() {
            assert!(
                s.env.is_empty() || s.name == "bootstrap",
                "{} {}: {:?}",
                b.name,
                s.name,
                s.env
            );
            assert!(!matches!(s.kind, StepKind::SetCapabilityProperties { .. }));
        }
    }
}

#[test]
fn ac_k1_k2_simple_schedulers() {
    let p = planned("manifest_1.cfg", "one_slave.cfg");
    assert_eq!(p.schedulers.len(), 1);
    let s = &p.schedulers[0];
    assert_eq!(s.name, "simple");
    assert_eq!(s.builders, vec!["simple-postgresql-8.4"]);
    assert_eq!(s.tree_stable_timer, 600);
    assert_eq!(s.watch.len(), 1);
    assert!(s.watch[0].url.contains("openobject-server/6.1"));
    assert_eq!(s.watch[0].branch, None);
    let settings = MasterSettings {
        tree_stable_timer: 123,
        ..MasterSettings::default()
    };
    let p = plan_with("manifest_1.cfg", "one_slave.cfg", &settings).unwrap();
    assert_eq!(p.schedulers[0].tree_stable_timer, 123);
}

#[test]
fn ac_k3_local_tree_stable_timer() {
    let settings = MasterSettings {
        tree_stable_timer: 123,
        ..MasterSettings::default()
    };
    let p = plan_with("manifest_tree_stable_timer.cfg", "one_slave.cfg", &settings).unwrap();
    assert_eq!(p.schedulers.len(), 1);
    assert_eq!(
        (
            p.schedulers[0].name.as_str(),
            p.schedulers[0].tree_stable_timer
        ),
        ("simple", 314)
    );
}

#[test]
fn ac_k4_inherit_schedulers() {
    let p = planned("manifest_inherit.cfg", "slaves_build_requires.cfg");
    let s: BTreeMap<&str, usize> = p
        .schedulers
        .iter()
        .map(|s| (s.name.as_str(), s.builders.len()))
        .collect();
    assert_eq!(s, BTreeMap::from([("simple", 3), ("inheritor", 2)]));
    for s in &p.schedulers {
        assert!(s.watch[0].url.ends_with("openobject-server/6.1"));
    }
    assert_eq!(p.pollers.len(), 1);
}

#[test]
fn ac_k5_watch_schedulers() {
    let p = planned("manifest_watch.cfg", "one_slave.cfg");
    let names: Vec<&str> = p.schedulers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["w_bzr", "w_hg", "w_hg_inh", "w_git", "w_git_develop"]
    );
    for s in &p.schedulers {
        assert_eq!(s.builders, vec![format!("{}-postgresql-8.4", s.name)]);
        assert_eq!(s.tree_stable_timer, 600);
    }
}

#[test]
fn ac_k6_auto_watch_schedulers() {
    let p = planned("manifest_auto_watch.cfg", "one_slave.cfg");
    let names: BTreeSet<&str> = p.schedulers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["hg_buildout", "bzr_buildout", "hg_buildout_precedence"])
    );
    assert!(p.builders.iter().any(|b| b.buildout == "hgtag_nowatch"));
}

#[test]
fn ac_w11_no_buildout_section_only_polls() {
    let p = planned("manifest_watch_nobuildout.cfg", "one_slave.cfg");
    assert!(p.builders.is_empty());
    assert!(p.schedulers.is_empty());
    assert_eq!(p.pollers.len(), 1);
    assert!(p.pollers[0].url.contains("anybox.buildbot.openerp"));
}

/// abo's deliberate difference #5 (later upstream): `postgresql not-used`.
#[test]
fn pg_not_used_gives_one_builder_per_section() {
    let s = sections("later-master-c71e0b5/manifest_build_requires_pg_not_used.cfg");
    let p = plan_of(
        &s,
        &workers("slaves_build_requires.cfg"),
        &MasterSettings::default(),
    )
    .unwrap();
    expect(
        &p,
        &[("priv-pgall", &["privcode", "privcode-84", "privcode-91"])],
    );
}

/// `build-for` lines for other capabilities expand the matrix.
#[test]
fn build_for_python_expands_the_matrix() {
    let sections = vec![ManifestSection::from_pairs(
        "range",
        ".",
        &[
            ("buildout", "standalone buildouts/6.0-anybox.cfg"),
            ("build-for", "postgresql >= 9.1\npython >= 2.6"),
        ],
    )];
    let (parsed, _) = ini::parse(
        "w.cfg",
        "[a]\npassword = x\ncapability = postgresql 9.1\n  postgresql 9.2\n  python 2.7 bin=/usr/bin/python2.7\n  python 3.11\n[b]\npassword = y\ncapability = postgresql 9.2\n  python 2.5\n",
    );
    let (workers, d) = read_workers(&parsed);
    assert!(d.is_empty(), "{d:?}");
    let p = plan_of(&sections, &workers, &MasterSettings::default()).unwrap();
    expect(
        &p,
        &[
            ("range-postgresql-9.1-python-2.7", &["a"]),
            ("range-postgresql-9.1-python-3.11", &["a"]),
            ("range-postgresql-9.2-python-2.7", &["a"]),
            ("range-postgresql-9.2-python-3.11", &["a"]),
        ],
    );
    assert_eq!(
        builder(&p, "range-postgresql-9.2-python-3.11").properties,
        BTreeMap::from([
            ("pg_version".to_string(), "9.2".to_string()),
            ("python_version".to_string(), "3.11".to_string())
        ])
    );
}

/// AC-E12 / AC-W14: a section name may appear in one manifest only.
#[test]
fn duplicate_section_over_two_manifests() {
    let mut s = sections("manifest_1.cfg");
    let mut again = sections("manifest_tree_stable_timer.cfg");
    for x in &mut again {
        x.file = "other/MANIFEST.cfg".into();
    }
    s.extend(again);
    let d = plan_of(&s, &workers("one_slave.cfg"), &MasterSettings::default()).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].to_string().starts_with(
            "other/MANIFEST.cfg:1: section `simple` is already defined at manifest_1.cfg:"
        ),
        "{}",
        d[0]
    );
}

/// Every mistake of every section is reported at once, each with its line.
#[test]
fn all_mistakes_at_once() {
    let sections = vec![
        ManifestSection::from_pairs(
            "a",
            ".",
            &[
                ("buildout", "svn http://x"),
                ("build-for", "postgresql 9.1"),
            ],
        ),
        ManifestSection::from_pairs(
            "b",
            ".",
            &[("buildout", "standalone b.cfg"), ("watch", "svn http://y")],
        ),
        ManifestSection::from_pairs(
            "c",
            ".",
            &[
                ("buildout", "standalone c.cfg"),
                ("post-buildout-steps", "frobnicate"),
            ],
        ),
    ];
    let d = plan_of(
        &sections,
        &workers("one_slave.cfg"),
        &MasterSettings::default(),
    )
    .unwrap_err();
    let text: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert!(d.len() >= 4, "{text:#?}");
    for needle in ["svn", "9.1", "frobnicate"] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle} not in {text:#?}"
        );
    }
    assert!(d.iter().all(|d| d.line.is_some()), "{text:#?}");
}

/// AC-R3: `pg_cluster_props` names the testing database `<db_prefix>-<section>`.
#[test]
fn ac_r3_testing_db() {
    let p = planned("manifest_build_for.cfg", "slaves_build_for.cfg");
    for (builder_name, db_prefix, expected) in [
        ("range-postgresql-9.0", Some("ci"), "ci-range"),
        ("sup90-postgresql-9.1-devel", None, "openerp_buildbot-sup90"),
    ] {
        let step = builder(&p, builder_name)
            .steps
            .iter()
            .find(|s| s.name == "pg_cluster_props")
            .unwrap();
        let StepKind::SetProperties { properties } = &step.kind else {
            panic!("{step:?}")
        };
        let rendered = abo_plan::template::render(&properties["testing_db"], |k| {
            (k == "db_prefix")
                .then(|| db_prefix.map(str::to_string))
                .flatten()
        })
        .unwrap();
        assert_eq!(rendered, expected);
    }
}

fn doc_section(pairs: &[(&str, &str)]) -> Vec<ManifestSection> {
    let mut all = vec![
        ("buildout", "standalone buildouts/6.1.cfg"),
        ("post-buildout-steps", "doc"),
    ];
    all.extend_from_slice(pairs);
    vec![ManifestSection::from_pairs("docs", ".", &all)]
}

/// Absolute upload destinations are accepted only under `allowed-upload-roots`; relative
/// ones may not climb out of the artifacts directory.
#[test]
fn upload_destinations_are_confined() {
    let workers = workers("one_slave.cfg");
    let absolute = doc_section(&[
        ("doc.upload-dir", "mydoc"),
        ("doc.upload-root", "/var/www/docs"),
    ]);
    let d = plan_of(&absolute, &workers, &MasterSettings::default()).unwrap_err();
    assert!(
        d[0].to_string()
            .contains("outside the master's artifacts directory"),
        "{}",
        d[0]
    );
    let allowed = MasterSettings {
        allowed_upload_roots: vec!["/var/www".into()],
        ..MasterSettings::default()
    };
    assert!(plan_of(&absolute, &workers, &allowed).is_ok());
    let sneaky = doc_section(&[("doc.upload-dir", "../../etc")]);
    let d = plan_of(&sneaky, &workers, &allowed).unwrap_err();
    assert!(d[0].to_string().contains("climbs out"), "{}", d[0]);
    let fine = doc_section(&[("doc.upload-dir", "mydoc")]);
    assert!(plan_of(&fine, &workers, &MasterSettings::default()).is_ok());
}

/// A template mistake is found by `abo check`, not in the middle of a build.
#[test]
fn template_mistakes_are_found_when_planning() {
    let workers = workers("one_slave.cfg");
    let bad = doc_section(&[
        ("doc.upload-dir", "mydoc"),
        ("doc.version", "$HOME-$(tag)s"),
    ]);
    let d = plan_of(&bad, &workers, &MasterSettings::default()).unwrap_err();
    assert!(
        d[0].to_string().contains("must be `%%` or `%(name)s`"),
        "{}",
        d[0]
    );
}

/// Builders with equal steps, or equal workers, share one list: with 2,000 sections of one
/// step set each builder held a copy. Different steps stay apart.
#[test]
fn equal_steps_and_worker_lists_are_shared() {
    let settings = abo_config::read_settings(
        "master.toml",
        "[[step-sets.trivial]]\nname = \"true\"\ncommand = [\"true\"]\n\n\
         [[step-sets.other]]\nname = \"false\"\ncommand = [\"false\"]\n",
    )
    .unwrap();
    let (manifest, d) = ini::parse(
        "MANIFEST.cfg",
        "[DEFAULT]\nbuild-for = postgresql not-used\n\n\
         [a]\nsteps = trivial\n\n[b]\nsteps = trivial\n\n[c]\nsteps = other\n",
    );
    assert!(d.is_empty(), "{d:?}");
    let (sections, d) = read_manifest(&manifest, "/master/buildouts");
    assert!(d.is_empty(), "{d:?}");
    let (workers, d) = ini::parse("workers.cfg", "[w1]\npassword = s\n\n[w2]\npassword = s\n");
    assert!(d.is_empty(), "{d:?}");
    let (workers, d) = read_workers(&workers);
    assert!(d.is_empty(), "{d:?}");
    let p = plan_of(&sections, &workers, &settings).unwrap();
    let (a, b, c) = (builder(&p, "a"), builder(&p, "b"), builder(&p, "c"));
    assert!(std::sync::Arc::ptr_eq(&a.steps, &b.steps));
    assert!(!std::sync::Arc::ptr_eq(&a.steps, &c.steps));
    assert_eq!(c.steps[0].name, "false");
    assert!(std::sync::Arc::ptr_eq(&a.workers, &b.workers));
    assert!(std::sync::Arc::ptr_eq(&a.workers, &c.workers));
    assert_eq!(builders(&p)["c"], ["w1", "w2"]);
}
