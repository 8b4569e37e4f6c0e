//! Watching, URL rewriting, change filters and pollers: `semantics-0.9.md` §4 (AC-W2..W12),
//! §5 (AC-C1..C12) and AC-E10, AC-E11.
//!
//! Manifest sections are transcribed from the seed's test data with `inherit` already
//! resolved (the merged options), as the manifest reader hands them over.

use abo_config::ManifestSection;
use abo_plan::watch::{change_filter, pollers, watch_table, ChangeFilter, UrlRewriter};
use abo_plan::{Poller, Vcs, WatchedBranch};

const DIR: &str = "/master/buildouts";
const FILE: &str = "/master/buildouts/MANIFEST.cfg";

const HG_REPO: &str = "http://mercurial.example/some/repo";
const HG_REPO_SSH: &str = "ssh://hg@mercurial.example/some/repo";
const HG_BUILDOUT: &str = "http://mercurial.example/buildout";
const GIT_REPO: &str = "user@git.example:my/repo";
const LP_SERVER_61: &str = "http://bazaar.launchpad.net/+branch/openobject-server/6.1";
const LP_RECIPE: &str = "http://bazaar.launchpad.net/+branch/anybox.recipe.openerp/trunk";
const LP_THIS: &str = "http://bazaar.launchpad.net/+branch/anybox.buildbot.openerp";
/// The AC-W4 rule.
const HG_SSH_RULE: (&str, &str) = ("http://mercurial.example/", "ssh://hg@mercurial.example/");

fn rewriter(rules: &[(&str, &str)]) -> UrlRewriter {
    UrlRewriter::new(
        rules
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect(),
    )
}

fn section(name: &str, pairs: &[(&str, &str)]) -> ManifestSection {
    ManifestSection::from_pairs(name, DIR, pairs)
}

/// `manifest_watch.cfg`.
fn manifest_watch() -> Vec<ManifestSection> {
    vec![
        section(
            "w_bzr",
            &[
                ("buildout", "standalone buildouts/6.1.cfg"),
                ("watch", "bzr lp:openobject-server/6.1"),
            ],
        ),
        section(
            "w_hg",
            &[
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", "stock, crm"),
                ("watch", "hg http://mercurial.example/some/repo default"),
            ],
        ),
        section(
            "w_hg_inh",
            &[
                ("inherit", "w_hg"),
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", "stock, sale"),
                ("watch", "hg http://mercurial.example/some/repo default"),
            ],
        ),
        section(
            "w_git",
            &[
                ("buildout", "standalone buildouts/7.0.cfg"),
                ("watch", "git user@git.example:my/repo master"),
            ],
        ),
        section(
            "w_git_develop",
            &[
                ("buildout", "standalone buildouts/7.0.cfg"),
                ("watch", "git user@git.example:my/repo develop"),
            ],
        ),
    ]
}

/// `manifest_auto_watch.cfg`.
fn manifest_auto_watch() -> Vec<ManifestSection> {
    vec![
        section(
            "hg_buildout",
            &[
                (
                    "buildout",
                    "hg http://mercurial.example/buildout somebranch myconf.cfg",
                ),
                ("watch", "hg http://mercurial.example/some/repo default"),
            ],
        ),
        section(
            "bzr_buildout",
            &[
                (
                    "buildout",
                    "bzr lp:anybox.recipe.openerp/trunk recipe-7.0.cfg subdir=buildbot",
                ),
                ("watch", "hg http://mercurial.example/some/repo default"),
            ],
        ),
        section(
            "hg_buildout_precedence",
            &[
                (
                    "buildout",
                    "hg http://mercurial.example/buildout somebranch myconf.cfg",
                ),
                ("watch", "hg http://mercurial.example/buildout default"),
            ],
        ),
        // Inherits hg_buildout; its own empty `watch` overrides the parent's.
        section(
            "hgtag_nowatch",
            &[
                (
                    "buildout",
                    "hgtag http://mercurial.example/buildout frozen.cfg",
                ),
                ("inherit", "hg_buildout"),
                ("watch", ""),
            ],
        ),
    ]
}

/// `manifest_watch_nobuildout.cfg`.
fn manifest_watch_nobuildout() -> Vec<ManifestSection> {
    vec![section(
        "w_no_buildout",
        &[("watch", "bzr lp:anybox.buildbot.openerp")],
    )]
}

/// `manifest_1.cfg`, `[DEFAULT]` merged into every section.
fn manifest_1() -> Vec<ManifestSection> {
    let common = ("some_common", "/path/to/some/file");
    vec![
        section(
            "simple",
            &[
                common,
                ("buildout", "standalone buildouts/6.1.cfg"),
                ("watch", "bzr lp:openobject-server/6.1"),
            ],
        ),
        section(
            "addons-list",
            &[
                common,
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("openerp-addons", "stock, crm"),
            ],
        ),
        section(
            "oecommand",
            &[
                common,
                ("buildout", "standalone buildouts/6.0-anybox.cfg"),
                ("post-buildout-steps", "openerpcommand-initialize-tests"),
            ],
        ),
    ]
}

fn named<'a>(sections: &'a [ManifestSection], name: &str) -> &'a ManifestSection {
    sections
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no section {name}"))
}

fn wb(vcs: Vcs, url: &str, branch: Option<&str>) -> WatchedBranch {
    WatchedBranch {
        vcs,
        url: url.to_string(),
        branch: branch.map(str::to_string),
    }
}

fn table_of(sections: &[ManifestSection], name: &str, rw: &UrlRewriter) -> Vec<WatchedBranch> {
    watch_table(named(sections, name), rw)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} is not watched"))
}

fn pollers_of(sections: &[ManifestSection], rw: &UrlRewriter) -> Vec<Poller> {
    let refs: Vec<&ManifestSection> = sections.iter().collect();
    pollers(&refs, rw, 600).unwrap()
}

fn poller(vcs: Vcs, url: &str, branches: &[&str], workdir: &str) -> Poller {
    Poller {
        vcs,
        url: url.to_string(),
        branches: branches.iter().map(|b| b.to_string()).collect(),
        workdir: workdir.to_string(),
        interval: 600,
    }
}

#[test]
fn ac_w2_make_pollers() {
    assert_eq!(
        pollers_of(&manifest_watch(), &UrlRewriter::default()),
        vec![
            poller(
                Vcs::Git,
                GIT_REPO,
                &["develop", "master"],
                "gitpoller/4baeaad658426ab26d63a8ab1d0b1b7f556ed8ef",
            ),
            poller(
                Vcs::Hg,
                HG_REPO,
                &["default"],
                "hgpoller/9bd346b13f71d397180f03c24517806e6213f4df",
            ),
            // The workdir hashes the URL as written, `lp:` and all.
            poller(
                Vcs::Bzr,
                LP_SERVER_61,
                &[],
                "bzrpoller/f29f0de874ac1af8cc03b516a149b8d4f0b4e6c9",
            ),
        ]
    );
}

#[test]
fn ac_w3_url_rewrite() {
    let mut rw = rewriter(&[
        ("protocol://special/", "http://hg.example/"),
        ("http://hg.example/", "ssh://hg@example/"),
    ]);
    assert_eq!(
        rw.remember("http://hg.example/myrepo"),
        "ssh://hg@example/myrepo"
    );
    assert_eq!(
        rw.remember("http://hg.example/myrepo"),
        "ssh://hg@example/myrepo"
    );
    assert_eq!(
        rw.original("ssh://hg@example/myrepo"),
        Some("http://hg.example/myrepo")
    );
    // Each rule applies to the result of the previous ones.
    assert_eq!(
        rw.remember("protocol://special/repo2"),
        "ssh://hg@example/repo2"
    );
    let table: Vec<(&str, &str)> = rw
        .rewritten_table()
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        table,
        vec![
            ("http://hg.example/myrepo", "ssh://hg@example/myrepo"),
            ("protocol://special/repo2", "ssh://hg@example/repo2"),
        ]
    );
    assert_eq!(
        rw.original("ssh://hg@example/repo2"),
        Some("protocol://special/repo2")
    );
    // `rewrite` is the same function without the bookkeeping.
    assert_eq!(
        rw.rewrite("protocol://special/repo3"),
        "ssh://hg@example/repo3"
    );
    assert_eq!(rw.rewrite("file:///elsewhere"), "file:///elsewhere");
    assert_eq!(rw.original("ssh://hg@example/repo3"), None);
}

#[test]
fn ac_w4_rewritten_filter_and_poller() {
    let sections = manifest_watch();
    let rw = rewriter(&[HG_SSH_RULE]);
    assert_eq!(
        table_of(&sections, "w_hg", &rw),
        vec![wb(Vcs::Hg, HG_REPO_SSH, Some("default"))]
    );
    let hg: Vec<Poller> = pollers_of(&sections, &rw)
        .into_iter()
        .filter(|p| p.vcs == Vcs::Hg)
        .collect();
    // Polls the rewritten URL, keeps the state directory of the original one.
    assert_eq!(
        hg,
        vec![poller(
            Vcs::Hg,
            HG_REPO_SSH,
            &["default"],
            "hgpoller/9bd346b13f71d397180f03c24517806e6213f4df",
        )]
    );
}

#[test]
fn watch_tables() {
    let watch = manifest_watch();
    let auto = manifest_auto_watch();
    let none = UrlRewriter::default();
    let cases: Vec<(&str, &[ManifestSection], &str, Vec<WatchedBranch>)> = vec![
        (
            "AC-W5",
            &watch,
            "w_hg_inh",
            vec![wb(Vcs::Hg, HG_REPO, Some("default"))],
        ),
        (
            "AC-W6",
            &auto,
            "hg_buildout",
            vec![
                wb(Vcs::Hg, HG_REPO, Some("default")),
                wb(Vcs::Hg, HG_BUILDOUT, Some("somebranch")),
            ],
        ),
        (
            // Options (`subdir=`) and the conf file are dropped; `lp:` resolved.
            "AC-W7",
            &auto,
            "bzr_buildout",
            vec![
                wb(Vcs::Hg, HG_REPO, Some("default")),
                wb(Vcs::Bzr, LP_RECIPE, None),
            ],
        ),
        (
            // The buildout comes last, so it replaces the `default` line for its URL.
            "AC-W8",
            &auto,
            "hg_buildout_precedence",
            vec![wb(Vcs::Hg, HG_BUILDOUT, Some("somebranch"))],
        ),
        // An `hgtag` buildout is not watched; the empty `watch` leaves nothing.
        ("AC-W9", &auto, "hgtag_nowatch", vec![]),
        (
            "AC-W10",
            &watch,
            "w_bzr",
            vec![wb(Vcs::Bzr, LP_SERVER_61, None)],
        ),
    ];
    for (id, sections, name, expected) in cases {
        assert_eq!(table_of(sections, name, &none), expected, "{id}");
    }
}

#[test]
fn ac_w9_no_change_filter_for_empty_watch() {
    let auto = manifest_auto_watch();
    let s = named(&auto, "hgtag_nowatch");
    assert_eq!(change_filter(s, &UrlRewriter::default()), Ok(None));
}

#[test]
fn a_section_without_watch_is_not_watched() {
    // Even with a VCS buildout: only a `watch` option (possibly empty) turns watching on.
    let s = section(
        "vcs_buildout",
        &[(
            "buildout",
            "hg http://mercurial.example/buildout default b.cfg",
        )],
    );
    let rw = UrlRewriter::default();
    assert_eq!(watch_table(&s, &rw), Ok(None));
    assert_eq!(change_filter(&s, &rw), Ok(None));
    assert_eq!(pollers(&[&s], &rw, 600), Ok(vec![]));
}

#[test]
fn ac_w8_one_poller_for_both_branches() {
    // 0.9 made one hg poller per branch here, `default` and `somebranch`, both in the same
    // working directory, polling one repository twice and racing on its clone. abo makes
    // one poller that follows both branches.
    let hg_buildout: Vec<Poller> = pollers_of(&manifest_auto_watch(), &UrlRewriter::default())
        .into_iter()
        .filter(|p| p.url == HG_BUILDOUT)
        .collect();
    assert_eq!(
        hg_buildout,
        vec![poller(
            Vcs::Hg,
            HG_BUILDOUT,
            &["default", "somebranch"],
            "hgpoller/52680ea8823a98ee8da24014569bb00793b4a7bf",
        )]
    );
}

#[test]
fn auto_watch_pollers() {
    // Every repository of manifest_auto_watch.cfg, hgtag_nowatch adding none.
    let urls: Vec<(Vcs, String, Vec<String>)> =
        pollers_of(&manifest_auto_watch(), &UrlRewriter::default())
            .into_iter()
            .map(|p| (p.vcs, p.url, p.branches))
            .collect();
    assert_eq!(
        urls,
        vec![
            (
                Vcs::Hg,
                HG_BUILDOUT.to_string(),
                vec!["default".to_string(), "somebranch".to_string()]
            ),
            (Vcs::Hg, HG_REPO.to_string(), vec!["default".to_string()]),
            (Vcs::Bzr, LP_RECIPE.to_string(), vec![]),
        ]
    );
}

#[test]
fn ac_w11_watch_without_buildout() {
    let sections = manifest_watch_nobuildout();
    let rw = UrlRewriter::default();
    let all = pollers_of(&sections, &rw);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].vcs, Vcs::Bzr);
    assert_eq!(all[0].url, LP_THIS);
    assert!(all[0].url.contains("anybox.buildbot.openerp"));
    assert_eq!(
        table_of(&sections, "w_no_buildout", &rw),
        vec![wb(Vcs::Bzr, LP_THIS, None)]
    );
}

#[test]
fn ac_w12_manifest_1() {
    let all = pollers_of(&manifest_1(), &UrlRewriter::default());
    assert_eq!(all.len(), 1);
    assert!(all[0].url.contains("openobject-server/6.1"), "{all:?}");
}

#[test]
fn ac_w10_bzr_poller_and_filter_agree() {
    let sections = manifest_watch();
    let rw = UrlRewriter::default();
    let bzr: Vec<Poller> = pollers_of(&sections, &rw)
        .into_iter()
        .filter(|p| p.vcs == Vcs::Bzr)
        .collect();
    assert_eq!(bzr.len(), 1);
    assert!(bzr[0].url.ends_with("openobject-server/6.1"));
    assert_eq!(
        table_of(&sections, "w_bzr", &rw),
        vec![wb(Vcs::Bzr, &bzr[0].url, None)]
    );
}

#[test]
fn table_order_is_first_appearance() {
    let s = section(
        "s",
        &[(
            "watch",
            "hg http://a default\n\ngit http://b main\nhg http://a stable",
        )],
    );
    assert_eq!(
        watch_table(&s, &UrlRewriter::default()),
        Ok(Some(vec![
            wb(Vcs::Hg, "http://a", Some("stable")),
            wb(Vcs::Git, "http://b", Some("main")),
        ]))
    );
}

#[test]
fn change_filters() {
    let watch = manifest_watch();
    let auto = manifest_auto_watch();
    let plain = UrlRewriter::default();
    let ssh = rewriter(&[HG_SSH_RULE]);
    // (id, sections, section, rewriter, repository, branch, accepted)
    type Case<'a> = (
        &'a str,
        &'a [ManifestSection],
        &'a str,
        &'a UrlRewriter,
        Option<&'a str>,
        Option<&'a str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "AC-C1",
            &watch,
            "w_hg",
            &plain,
            Some(HG_REPO),
            Some("default"),
            true,
        ),
        (
            "AC-C2",
            &watch,
            "w_hg",
            &plain,
            Some(HG_REPO),
            Some("other"),
            false,
        ),
        (
            "AC-C3",
            &watch,
            "w_hg",
            &plain,
            Some("http://mercurial.example/other/repo"),
            Some("default"),
            false,
        ),
        (
            "AC-C4",
            &watch,
            "w_hg",
            &plain,
            Some(HG_REPO_SSH),
            Some("default"),
            false,
        ),
        (
            "AC-C5",
            &watch,
            "w_git",
            &plain,
            Some(GIT_REPO),
            Some("master"),
            true,
        ),
        // abo checks git branches like hg ones; 0.9 answered yes here (it never looked at
        // a git change's branch).
        (
            "AC-C6",
            &watch,
            "w_git",
            &plain,
            Some(GIT_REPO),
            Some("develop"),
            false,
        ),
        (
            "AC-C7",
            &watch,
            "w_bzr",
            &plain,
            None,
            Some(LP_SERVER_61),
            true,
        ),
        (
            "AC-C7",
            &watch,
            "w_bzr",
            &plain,
            Some(""),
            Some(LP_SERVER_61),
            true,
        ),
        (
            "AC-C8",
            &watch,
            "w_bzr",
            &plain,
            None,
            Some("bzr+ssh://illusion.test"),
            false,
        ),
        (
            "AC-C9",
            &watch,
            "w_bzr",
            &plain,
            Some(LP_SERVER_61),
            Some("anything"),
            true,
        ),
        (
            "AC-C9",
            &watch,
            "w_bzr",
            &plain,
            Some(LP_SERVER_61),
            None,
            true,
        ),
        (
            "AC-C10",
            &watch,
            "w_hg",
            &ssh,
            Some(HG_REPO_SSH),
            Some("default"),
            true,
        ),
        (
            "AC-C10",
            &watch,
            "w_hg",
            &ssh,
            Some(HG_REPO_SSH),
            Some("other"),
            false,
        ),
        // Filter keys are rewritten URLs.
        (
            "AC-C11",
            &watch,
            "w_hg",
            &ssh,
            Some(HG_REPO),
            Some("default"),
            false,
        ),
        (
            "AC-C12",
            &auto,
            "hg_buildout_precedence",
            &plain,
            Some(HG_BUILDOUT),
            Some("default"),
            false,
        ),
        (
            "AC-C12",
            &auto,
            "hg_buildout_precedence",
            &plain,
            Some(HG_BUILDOUT),
            Some("somebranch"),
            true,
        ),
        // Nothing to look up.
        ("none", &watch, "w_bzr", &plain, None, None, false),
        ("none", &watch, "w_hg", &plain, Some(HG_REPO), None, false),
    ];
    for (id, sections, name, rw, repository, branch, expected) in cases {
        let filter = change_filter(named(sections, name), rw)
            .unwrap()
            .unwrap_or_else(|| panic!("{id}: no filter"));
        assert_eq!(
            filter.accepts(repository, branch),
            expected,
            "{id}: {name} {repository:?} {branch:?}"
        );
    }
}

#[test]
fn change_filter_keeps_the_later_entry_for_a_url() {
    let filter = ChangeFilter::new(vec![
        wb(Vcs::Hg, "http://a", Some("default")),
        wb(Vcs::Hg, "http://a", Some("stable")),
    ]);
    assert_eq!(filter.entries(), &[wb(Vcs::Hg, "http://a", Some("stable"))]);
    assert!(filter.accepts(Some("http://a"), Some("stable")));
    assert!(!filter.accepts(Some("http://a"), Some("default")));
}

#[test]
fn watch_line_errors() {
    // (watch value, messages, helps): AC-E10, AC-E11, and every bad line reported.
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "svn http://svn.example/trunk",
            &["Sorry, 'svn' VCS not supported."],
            &["supported are `bzr URL`, `hg URL BRANCH` and `git URL BRANCH`"],
        ),
        (
            "hg URL",
            &["Wrong number of arguments for branch specification in ['hg', 'URL']"],
            &["write `hg URL BRANCH`, e.g. `hg URL default`"],
        ),
        (
            "hg http://a default\ngit http://b\nbzr http://c trunk",
            &[
                "Wrong number of arguments for branch specification in ['git', 'http://b']",
                "Wrong number of arguments for branch specification in ['bzr', 'http://c', 'trunk']",
            ],
            &[
                "write `git http://b BRANCH`, e.g. `git http://b master`",
                "write `bzr http://c`: a bzr branch is its URL",
            ],
        ),
    ];
    for (value, messages, helps) in cases {
        // `watch` is the second option: line 3 of the manifest.
        let s = section("bad", &[("buildout", "standalone b.cfg"), ("watch", value)]);
        let diags = watch_table(&s, &UrlRewriter::default()).unwrap_err();
        let got: Vec<(&str, Option<u32>, &str, Option<&str>)> = diags
            .iter()
            .map(|d| {
                (
                    d.file.as_str(),
                    d.line,
                    d.message.as_str(),
                    d.help.as_deref(),
                )
            })
            .collect();
        let expected: Vec<(&str, Option<u32>, &str, Option<&str>)> = messages
            .iter()
            .zip(helps.iter())
            .map(|(m, h)| (FILE, Some(3), *m, Some(*h)))
            .collect();
        assert_eq!(got, expected, "{value}");
        // Pollers leave bad lines to watch_table's report and keep the good ones.
        let polled = pollers(&[&s], &UrlRewriter::default(), 600).unwrap();
        assert!(polled.iter().all(|p| p.url == "http://a"), "{polled:?}");
    }
}

#[test]
fn malformed_vcs_buildout_is_left_to_the_buildout_parser() {
    // `hg URL CONF` lacks its branch (AC-E5, reported by the buildout parser): not watched.
    let s = section(
        "s",
        &[
            (
                "buildout",
                "hg http://mercurial.example/buildout myconf.cfg",
            ),
            ("watch", "hg http://a default"),
        ],
    );
    assert_eq!(
        watch_table(&s, &UrlRewriter::default()),
        Ok(Some(vec![wb(Vcs::Hg, "http://a", Some("default"))]))
    );
}

#[test]
fn poll_intervals() {
    let a = section(
        "a",
        &[("watch", "hg http://a default"), ("poll-interval", "300")],
    );
    let b = section(
        "b",
        &[
            ("watch", "hg http://a stable\nbzr lp:x"),
            ("poll-interval", "120"),
        ],
    );
    let c = section("c", &[("watch", "git http://c main")]);
    let intervals: Vec<(String, u64)> = pollers(&[&a, &b, &c], &UrlRewriter::default(), 600)
        .unwrap()
        .into_iter()
        .map(|p| (p.url, p.interval))
        .collect();
    assert_eq!(
        intervals,
        vec![
            ("http://c".to_string(), 600),
            ("http://a".to_string(), 120),
            ("http://bazaar.launchpad.net/+branch/x".to_string(), 120),
        ]
    );

    let bad = section(
        "bad",
        &[("watch", "hg http://a default"), ("poll-interval", "5m")],
    );
    let diags = pollers(&[&bad], &UrlRewriter::default(), 600).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].to_string(),
        "/master/buildouts/MANIFEST.cfg:3: poll-interval must be a whole number of seconds, \
         not '5m', write e.g. `poll-interval = 300`"
    );
}

#[test]
fn one_url_two_vcses() {
    let a = section("a", &[("watch", "hg http://x default")]);
    let b = section("b", &[("watch", "git http://x main")]);
    let diags = pollers(&[&a, &b], &UrlRewriter::default(), 600).unwrap_err();
    assert_eq!(
        diags.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        vec![
            "/master/buildouts/MANIFEST.cfg:2: 'http://x' is watched with git here but with hg \
             in [a], a repository has one VCS: use the same one everywhere"
        ]
    );
}
