//! The schedulers' rules with a fake clock: tree-stable timers, change filters (after URL
//! rewriting, hg/git branches, bzr branches as URLs), restart and reload, nightly times
//! (weekdays, midnight, DST). Plans come from the real readers and planner.

use abo_config::{ini, read_manifest, read_settings, read_workers};
use abo_engine::scheduler::{next_occurrence, NightlyView};
use abo_engine::{
    ChangeRef, PendingTimer, SchedulerAction, Schedulers, TimeZone, Timestamp, Trigger,
};
use abo_plan::planner::{plan, PlanInput};
use abo_plan::{Nightly, Plan, Weekday};

const WORKERS: &str = "
[w]
password = secret
capability = postgresql 9.3
             postgresql 10
";

const MANIFEST: &str = "
[hg-sec]
buildout = standalone a.cfg
watch = hg http://hg.example/repo default
tree-stable-timer = 60

[git-sec]
buildout = standalone a.cfg
watch = git http://git.example/repo.git master
tree-stable-timer = 120

[bzr-sec]
buildout = standalone a.cfg
watch = bzr lp:proj/trunk
tree-stable-timer = 30

[both]
buildout = standalone a.cfg
watch = hg http://hg.example/repo default
        git http://git.example/repo.git master
tree-stable-timer = 300

[instant]
buildout = standalone a.cfg
watch = git http://git.example/repo.git develop
tree-stable-timer = 0

[clock]
buildout = standalone a.cfg
nightly = 02:30 mon-fri
          23:00 sat,sun

[watched-clock]
buildout = standalone a.cfg
watch = git http://git.example/other.git main
tree-stable-timer = 600
nightly = 03:00
";

const SETTINGS: &str = r#"
[[url-rewrite]]
from = "http://hg.example/"
to = "ssh://hg@hg.example/"
"#;

const HG: &str = "ssh://hg@hg.example/repo";
const HG_UNREWRITTEN: &str = "http://hg.example/repo";
const GIT: &str = "http://git.example/repo.git";
const LP: &str = "http://bazaar.launchpad.net/+branch/proj/trunk";

fn plan_from(manifest: &str, settings: &str) -> Plan {
    let (m, d) = ini::parse("MANIFEST.cfg", manifest);
    assert!(d.is_empty(), "{d:?}");
    let (sections, d) = read_manifest(&m, "/m");
    assert!(d.is_empty(), "{d:?}");
    let (w, d) = ini::parse("workers.cfg", WORKERS);
    assert!(d.is_empty(), "{d:?}");
    let (workers, d) = read_workers(&w);
    assert!(d.is_empty(), "{d:?}");
    let settings = read_settings("master.toml", settings).unwrap();
    plan(&PlanInput {
        sections: &sections,
        workers: &workers,
        settings: &settings,
        settings_file: "master.toml",
    })
    .unwrap()
}

fn the_plan() -> Plan {
    plan_from(MANIFEST, SETTINGS)
}

/// An instant, from RFC 3339.
fn at(s: &str) -> Timestamp {
    let t: jiff::Timestamp = s.parse().unwrap();
    Timestamp(u64::try_from(t.as_millisecond()).unwrap())
}

fn secs(t: Timestamp, s: u64) -> Timestamp {
    Timestamp(t.0 + s * 1000)
}

fn change(id: u64, repository: &str, branch: &str) -> ChangeRef {
    ChangeRef {
        id,
        repository: repository.into(),
        branch: branch.into(),
    }
}

/// Schedulers whose timer a change starts, in order.
fn started(s: &mut Schedulers, now: Timestamp, c: &ChangeRef) -> Vec<String> {
    s.on_change(now, c)
        .into_iter()
        .map(|a| match a {
            SchedulerAction::SetTimer { scheduler, .. } => scheduler,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn set_timer(scheduler: &str, fires_at: Timestamp, changes: &[u64]) -> SchedulerAction {
    SchedulerAction::SetTimer {
        scheduler: scheduler.into(),
        fires_at,
        changes: changes.to_vec(),
    }
}

fn builders(section: &str) -> Vec<String> {
    vec![
        format!("{section}-postgresql-9.3"),
        format!("{section}-postgresql-10"),
    ]
}

fn fire(section: &str, changes: &[u64], reason: &str) -> SchedulerAction {
    SchedulerAction::Fire {
        scheduler: section.into(),
        builders: builders(section),
        changes: changes.to_vec(),
        reason: reason.into(),
        trigger: Trigger::TreeStable,
    }
}

fn nightly_fire(section: &str, reason: &str) -> SchedulerAction {
    SchedulerAction::Fire {
        scheduler: section.into(),
        builders: builders(section),
        changes: Vec::new(),
        reason: reason.into(),
        trigger: Trigger::Nightly,
    }
}

/// A Tuesday, noon UTC.
fn t0() -> Timestamp {
    at("2026-11-24T12:00:00Z")
}

fn schedulers() -> Schedulers {
    Schedulers::new(&the_plan(), TimeZone::UTC, t0())
}

#[test]
fn the_plan_has_the_schedulers() {
    let p = the_plan();
    let names: Vec<&str> = p.schedulers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hg-sec",
            "git-sec",
            "bzr-sec",
            "both",
            "instant",
            "clock",
            "watched-clock"
        ]
    );
    let clock = p.schedulers.iter().find(|s| s.name == "clock").unwrap();
    assert!(clock.watch.is_empty());
    assert_eq!(clock.builders, builders("clock"));
    let shown: Vec<String> = clock.nightly.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["02:30 mon-fri", "23:00 sat,sun"]);
}

#[test]
fn a_second_change_restarts_the_timer_and_changes_are_gathered() {
    let mut s = schedulers();
    let t = t0();
    // Accepted by `hg-sec` and `both`: one SetTimer each, by name.
    assert_eq!(
        s.on_change(t, &change(1, HG, "default")),
        vec![
            set_timer("both", secs(t, 300), &[1]),
            set_timer("hg-sec", secs(t, 60), &[1]),
        ]
    );
    assert_eq!(s.next_deadline(), Some(secs(t, 60)));
    assert_eq!(s.due(secs(t, 59)), vec![]);
    // 30 s later: both timers restart from now, with both changes.
    let t1 = secs(t, 30);
    assert_eq!(
        s.on_change(t1, &change(2, HG, "default")),
        vec![
            set_timer("both", secs(t1, 300), &[1, 2]),
            set_timer("hg-sec", secs(t1, 60), &[1, 2]),
        ]
    );
    // The old time passes without a fire.
    assert_eq!(s.due(secs(t, 60)), vec![]);
    assert_eq!(s.next_deadline(), Some(secs(t1, 60)));
    // One Fire per scheduler, with all its builders and all the changes.
    assert_eq!(
        s.due(secs(t1, 60)),
        vec![fire("hg-sec", &[1, 2], "2 changes on default")]
    );
    assert_eq!(s.due(secs(t1, 60)), vec![], "fires once");
    assert_eq!(
        s.timers(),
        vec![PendingTimer {
            scheduler: "both".into(),
            fires_at: secs(t1, 300),
            changes: vec![1, 2],
        }]
    );
    // A late `due` fires everything past, in order of due time.
    s.on_change(secs(t1, 100), &change(3, LP, LP));
    assert_eq!(
        s.due(secs(t1, 1000)),
        vec![
            fire("bzr-sec", &[3], &format!("1 change on {LP}")),
            fire("both", &[1, 2], "2 changes on default"),
        ]
    );
    assert!(s.timers().is_empty());
}

#[test]
fn the_same_change_twice_counts_once() {
    let mut s = schedulers();
    s.on_change(t0(), &change(7, GIT, "master"));
    assert_eq!(
        s.on_change(secs(t0(), 1), &change(7, GIT, "master")),
        vec![
            set_timer("both", secs(t0(), 301), &[7]),
            set_timer("git-sec", secs(t0(), 121), &[7]),
        ]
    );
}

#[test]
fn filters_use_rewritten_urls() {
    let mut s = schedulers();
    // AC-C11: the filter's keys are the rewritten URLs, which pollers record.
    assert!(started(&mut s, t0(), &change(1, HG_UNREWRITTEN, "default")).is_empty());
    assert_eq!(
        started(&mut s, t0(), &change(2, HG, "default")),
        ["both", "hg-sec"]
    );
    // lp: is resolved the same way in the filter and in the poller.
    assert_eq!(started(&mut s, t0(), &change(3, LP, LP)), ["bzr-sec"]);
    assert!(started(&mut s, t0(), &change(4, "lp:proj/trunk", "lp:proj/trunk")).is_empty());
}

#[test]
fn hg_and_git_branches_are_checked() {
    let mut s = schedulers();
    // hg: `default` is a branch name like any other.
    assert!(started(&mut s, t0(), &change(1, HG, "other")).is_empty());
    assert!(started(&mut s, t0(), &change(2, HG, "")).is_empty());
    assert!(started(&mut s, t0(), &change(3, HG, "Default")).is_empty());
    // git: each scheduler its branch (0.9 accepted any git branch; abo checks them).
    assert_eq!(
        started(&mut s, t0(), &change(4, GIT, "master")),
        ["both", "git-sec"]
    );
    assert_eq!(
        started(&mut s, t0(), &change(5, GIT, "develop")),
        ["instant"]
    );
    assert!(started(&mut s, t0(), &change(6, GIT, "feature")).is_empty());
    assert!(started(&mut s, t0(), &change(7, GIT, "refs/heads/master")).is_empty());
    // Other repositories.
    assert!(started(&mut s, t0(), &change(8, "http://elsewhere/x", "master")).is_empty());
    assert!(started(&mut s, t0(), &change(9, "", "")).is_empty());
}

#[test]
fn bzr_branches_are_urls() {
    let mut s = schedulers();
    // AC-C7: no repository, the branch is the URL.
    assert_eq!(started(&mut s, t0(), &change(1, "", LP)), ["bzr-sec"]);
    // What abo's bzr poller records: repository and branch both the URL.
    assert_eq!(started(&mut s, t0(), &change(2, LP, LP)), ["bzr-sec"]);
    // AC-C9: a watched bzr repository accepts any branch value.
    assert_eq!(
        started(&mut s, t0(), &change(3, LP, "anything")),
        ["bzr-sec"]
    );
    // AC-C8.
    assert!(started(&mut s, t0(), &change(4, "", "bzr+ssh://illusion.test")).is_empty());
    assert!(started(&mut s, t0(), &change(5, "", &format!("{LP}/sub"))).is_empty());
}

#[test]
fn a_zero_second_timer_fires_on_the_next_due() {
    let mut s = schedulers();
    let t = t0();
    assert_eq!(
        s.on_change(t, &change(1, GIT, "develop")),
        vec![set_timer("instant", t, &[1])]
    );
    assert_eq!(s.next_deadline(), Some(t));
    assert_eq!(s.due(t), vec![fire("instant", &[1], "1 change on develop")]);
}

#[test]
fn restore_keeps_known_timers_and_drops_the_others() {
    let mut s = schedulers();
    let now = t0();
    let actions = s.restore(
        now,
        vec![
            // Past: fires on the next due.
            PendingTimer {
                scheduler: "hg-sec".into(),
                fires_at: Timestamp(now.0 - 5000),
                changes: vec![5, 4],
            },
            PendingTimer {
                scheduler: "gone".into(),
                fires_at: secs(now, 10),
                changes: vec![6],
            },
            // Longer than git-sec's 120 s from now (its timer was shortened meanwhile).
            PendingTimer {
                scheduler: "git-sec".into(),
                fires_at: secs(now, 3600),
                changes: vec![7],
            },
            PendingTimer {
                scheduler: "both".into(),
                fires_at: secs(now, 200),
                changes: vec![8],
            },
        ],
    );
    assert_eq!(
        actions,
        vec![
            SchedulerAction::DropTimer {
                scheduler: "gone".into()
            },
            set_timer("git-sec", secs(now, 120), &[7]),
        ]
    );
    assert_eq!(s.due(now), vec![fire("hg-sec", &[4, 5], "2 changes")]);
    // A new change adds to a restored timer.
    s.on_change(secs(now, 10), &change(9, GIT, "master"));
    assert_eq!(
        s.due(secs(now, 10 + 300)),
        vec![
            fire("git-sec", &[7, 9], "2 changes on master"),
            fire("both", &[8, 9], "2 changes on master"),
        ]
    );
}

#[test]
fn reload_keeps_the_timers_of_remaining_schedulers() {
    let mut s = schedulers();
    let t = t0();
    s.on_change(t, &change(1, HG, "default"));
    s.on_change(t, &change(2, GIT, "master"));
    s.on_change(t, &change(3, GIT, "develop"));
    // New configuration: hg-sec waits 10 s and has one more section's worth of builders
    // (same names here), git-sec and instant are gone, both keeps its timer length.
    let manifest = MANIFEST
        .replace("tree-stable-timer = 60", "tree-stable-timer = 10")
        .replace("[git-sec]", "[git-sec-renamed]")
        .replace("[instant]\nbuildout = standalone a.cfg\n", "[instant]\n");
    let new_plan = plan_from(&manifest, SETTINGS);
    let actions = s.reload(&new_plan, secs(t, 5));
    assert_eq!(
        actions,
        vec![
            SchedulerAction::DropTimer {
                scheduler: "git-sec".into()
            },
            set_timer("hg-sec", secs(t, 10), &[1]),
            SchedulerAction::DropTimer {
                scheduler: "instant".into()
            },
        ]
    );
    assert_eq!(
        s.due(secs(t, 10)),
        vec![fire("hg-sec", &[1], "1 change on default")]
    );
    // The renamed section is a new scheduler: it has no timer, but takes new changes.
    assert_eq!(
        started(&mut s, secs(t, 20), &change(4, GIT, "master")),
        ["both", "git-sec-renamed"]
    );
    // Nothing watches develop any more.
    assert!(started(&mut s, secs(t, 20), &change(5, GIT, "develop")).is_empty());
}

#[test]
fn reload_uses_the_new_builders() {
    let mut s = schedulers();
    s.on_change(t0(), &change(1, LP, LP));
    let manifest = MANIFEST.replace(
        "[bzr-sec]\nbuildout = standalone a.cfg\n",
        "[bzr-sec]\nbuildout = standalone a.cfg\nbuild-for = postgresql == 10\n",
    );
    assert_eq!(s.reload(&plan_from(&manifest, SETTINGS), t0()), vec![]);
    assert_eq!(
        s.due(secs(t0(), 30)),
        vec![SchedulerAction::Fire {
            scheduler: "bzr-sec".into(),
            builders: vec!["bzr-sec-postgresql-10".into()],
            changes: vec![1],
            reason: format!("1 change on {LP}"),
            trigger: Trigger::TreeStable,
        }]
    );
}

#[test]
fn nightly_fires_on_its_weekdays() {
    // Tuesday 2026-11-24, noon UTC.
    let mut s = schedulers();
    let views = s.nightly();
    let next = |name: &str, shown: &str| {
        views
            .iter()
            .find(|v: &&NightlyView| v.scheduler == name && v.nightly.to_string() == shown)
            .unwrap()
            .next
    };
    assert_eq!(
        next("clock", "02:30 mon-fri"),
        Some(at("2026-11-25T02:30:00Z"))
    );
    assert_eq!(
        next("clock", "23:00 sat,sun"),
        Some(at("2026-11-28T23:00:00Z"))
    );
    assert_eq!(
        next("watched-clock", "03:00"),
        Some(at("2026-11-25T03:00:00Z"))
    );
    assert_eq!(s.next_deadline(), Some(at("2026-11-25T02:30:00Z")));

    assert_eq!(s.due(at("2026-11-25T02:29:59.999Z")), vec![]);
    assert_eq!(
        s.due(at("2026-11-25T02:30:00Z")),
        vec![nightly_fire("clock", "nightly 02:30 mon-fri")]
    );
    assert_eq!(s.next_deadline(), Some(at("2026-11-25T03:00:00Z")));
    assert_eq!(
        s.due(at("2026-11-25T03:00:00Z")),
        vec![nightly_fire("watched-clock", "nightly 03:00")]
    );
    // Friday's, then the weekend's, then Monday's.
    s.due(at("2026-11-26T12:00:00Z"));
    assert_eq!(
        s.due(at("2026-11-27T02:30:00Z")),
        vec![nightly_fire("clock", "nightly 02:30 mon-fri")]
    );
    s.due(at("2026-11-27T03:00:00Z"));
    assert_eq!(s.next_deadline(), Some(at("2026-11-28T03:00:00Z")));
    s.due(at("2026-11-28T03:00:00Z"));
    assert_eq!(s.next_deadline(), Some(at("2026-11-28T23:00:00Z")));
    // A master that slept through Saturday and Sunday nights fires once, then waits for
    // Monday.
    assert_eq!(
        s.due(at("2026-11-30T01:00:00Z")),
        vec![
            nightly_fire("clock", "nightly 23:00 sat,sun"),
            nightly_fire("watched-clock", "nightly 03:00"),
        ]
    );
    assert_eq!(s.next_deadline(), Some(at("2026-11-30T02:30:00Z")));
}

#[test]
fn a_nightly_build_leaves_the_change_timer_alone() {
    let mut s = schedulers();
    let t = at("2026-11-25T02:55:00Z");
    s.on_change(t, &change(1, "http://git.example/other.git", "main"));
    assert_eq!(
        s.due(at("2026-11-25T03:00:00Z"))
            .into_iter()
            .filter(|a| matches!(a, SchedulerAction::Fire { scheduler, .. } if scheduler == "watched-clock"))
            .collect::<Vec<_>>(),
        vec![nightly_fire("watched-clock", "nightly 03:00")]
    );
    assert_eq!(s.timers().len(), 1);
    assert_eq!(
        s.due(secs(t, 600)),
        vec![fire("watched-clock", &[1], "1 change on main")]
    );
}

#[test]
fn reload_keeps_the_next_occurrence_of_unchanged_nightly_times() {
    let mut s = schedulers();
    // Due but not fired yet when the reload comes: still fires.
    let late = at("2026-11-25T02:31:00Z");
    let manifest = MANIFEST.replace("nightly = 03:00", "nightly = 04:00 mon");
    assert_eq!(s.reload(&plan_from(&manifest, SETTINGS), late), vec![]);
    assert_eq!(
        s.due(late),
        vec![nightly_fire("clock", "nightly 02:30 mon-fri")]
    );
    let changed = s
        .nightly()
        .into_iter()
        .find(|v| v.scheduler == "watched-clock")
        .unwrap();
    assert_eq!(changed.nightly.to_string(), "04:00 mon");
    assert_eq!(changed.next, Some(at("2026-11-30T04:00:00Z")));
}

fn nightly(hour: u8, minute: u8, weekdays: &[Weekday]) -> Nightly {
    Nightly {
        hour,
        minute,
        weekdays: weekdays.to_vec(),
    }
}

#[test]
fn next_occurrences_in_utc() {
    use Weekday::*;
    let utc = TimeZone::UTC;
    let every = Weekday::ALL;
    // Later today, or tomorrow once past; never the instant itself.
    let n = nightly(2, 30, &every);
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-24T01:00:00Z")),
        Some(at("2026-11-24T02:30:00Z"))
    );
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-24T02:30:00Z")),
        Some(at("2026-11-25T02:30:00Z"))
    );
    // Crossing midnight.
    let n = nightly(0, 15, &every);
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-24T23:50:00Z")),
        Some(at("2026-11-25T00:15:00Z"))
    );
    // Crossing the week (Friday night → Monday), and the year.
    let n = nightly(2, 30, &[Mon, Tue, Wed, Thu, Fri]);
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-27T03:00:00Z")),
        Some(at("2026-11-30T02:30:00Z"))
    );
    let n = nightly(23, 0, &[Sat, Sun]);
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-28T23:30:00Z")),
        Some(at("2026-11-29T23:00:00Z"))
    );
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-11-29T23:30:00Z")),
        Some(at("2026-12-05T23:00:00Z"))
    );
    let n = nightly(12, 0, &[Fri]);
    assert_eq!(
        next_occurrence(&utc, &n, at("2026-12-31T12:00:00Z")),
        Some(at("2027-01-01T12:00:00Z"))
    );
    // Nothing to find, nothing to panic about.
    assert_eq!(next_occurrence(&utc, &nightly(2, 30, &[]), t0()), None);
    assert_eq!(next_occurrence(&utc, &nightly(24, 0, &every), t0()), None);
    assert_eq!(next_occurrence(&utc, &nightly(2, 60, &every), t0()), None);
    assert_eq!(
        next_occurrence(&utc, &nightly(2, 0, &every), Timestamp(u64::MAX)),
        None
    );
}

fn brussels() -> TimeZone {
    abo_plan::nightly::time_zone("Europe/Brussels").unwrap()
}

#[test]
fn next_occurrences_across_daylight_saving_time() {
    let tz = brussels();
    let n = nightly(2, 30, &Weekday::ALL);
    // Winter: 02:30 CET is 01:30 UTC.
    assert_eq!(
        next_occurrence(&tz, &n, at("2026-03-27T12:00:00Z")),
        Some(at("2026-03-28T01:30:00Z"))
    );
    // Sunday 2026-03-29, clocks jump from 02:00 to 03:00: 02:30 does not exist and fires
    // at 03:30 CEST (01:30 UTC), once.
    let spring = next_occurrence(&tz, &n, at("2026-03-28T01:30:00Z"));
    assert_eq!(spring, Some(at("2026-03-29T01:30:00Z")));
    // Summer: 02:30 CEST is 00:30 UTC.
    assert_eq!(
        next_occurrence(&tz, &n, spring.unwrap()),
        Some(at("2026-03-30T00:30:00Z"))
    );
    // Sunday 2026-10-25, clocks go back from 03:00 to 02:00: 02:30 happens twice, fires at
    // the first (00:30 UTC), not again an hour later.
    let fall = next_occurrence(&tz, &n, at("2026-10-24T12:00:00Z"));
    assert_eq!(fall, Some(at("2026-10-25T00:30:00Z")));
    assert_eq!(
        next_occurrence(&tz, &n, fall.unwrap()),
        Some(at("2026-10-26T01:30:00Z"))
    );
    // A weekday list is about local days: 00:30 on Mondays in Brussels is Sunday in UTC.
    let n = nightly(0, 30, &[Weekday::Mon]);
    assert_eq!(
        next_occurrence(&tz, &n, at("2026-11-24T12:00:00Z")),
        Some(at("2026-11-29T23:30:00Z"))
    );
}

#[test]
fn the_time_zone_can_change() {
    let mut s = schedulers();
    s.set_time_zone(brussels(), t0());
    assert_eq!(s.time_zone().iana_name(), Some("Europe/Brussels"));
    // 02:30 in Brussels in November is 01:30 UTC.
    assert_eq!(s.next_deadline(), Some(at("2026-11-25T01:30:00Z")));
    let mut s = Schedulers::new(&the_plan(), brussels(), t0());
    assert_eq!(s.next_deadline(), Some(at("2026-11-25T01:30:00Z")));
    assert_eq!(
        s.due(at("2026-11-25T01:30:00Z")),
        vec![nightly_fire("clock", "nightly 02:30 mon-fri")]
    );
}

#[test]
fn a_plan_without_schedulers_has_no_deadline() {
    let p = plan_from("[x]\nbuildout = standalone a.cfg\n", "");
    let mut s = Schedulers::new(&p, TimeZone::UTC, t0());
    assert_eq!(s.next_deadline(), None);
    assert!(s.on_change(t0(), &change(1, GIT, "master")).is_empty());
    assert!(s.due(Timestamp(u64::MAX)).is_empty());
}

mod random {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Debug, Clone)]
    enum Op {
        /// A change on one of the repository/branch pairs below.
        Change(usize),
        /// Time passes (ms), then `due`.
        Wait(u64),
        /// The same plan again.
        Reload,
    }

    const SOURCES: [(&str, &str); 8] = [
        (HG, "default"),
        (HG, "other"),
        (HG_UNREWRITTEN, "default"),
        (GIT, "master"),
        (GIT, "develop"),
        (GIT, "feature"),
        (LP, LP),
        ("", LP),
    ];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..SOURCES.len()).prop_map(Op::Change),
            4 => (0u64..400_000).prop_map(Op::Wait),
            1 => Just(Op::Reload),
        ]
    }

    proptest! {
        /// Every change a scheduler takes is built exactly once by that scheduler, at or
        /// after the time it was last promised, and never before; a reload with the same
        /// plan changes nothing.
        #[test]
        fn every_change_taken_is_fired_once(ops in proptest::collection::vec(op(), 1..60)) {
            let plan = the_plan();
            let mut s = Schedulers::new(&plan, TimeZone::UTC, t0());
            let mut now = t0();
            let mut next_id = 1;
            let mut taken: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
            let mut promised: BTreeMap<String, Timestamp> = BTreeMap::new();
            let mut fired: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut check = |actions: Vec<SchedulerAction>, now: Timestamp,
                             promised: &mut BTreeMap<String, Timestamp>| {
                for a in actions {
                    match a {
                        SchedulerAction::Fire { scheduler, changes, trigger: Trigger::TreeStable, builders, .. } => {
                            assert_eq!(builders, super::builders(&scheduler));
                            let at = promised.remove(&scheduler).expect("a fire without a timer");
                            assert!(at <= now, "fired early");
                            fired.entry(scheduler).or_default().extend(changes);
                        }
                        SchedulerAction::Fire { trigger: Trigger::Nightly, changes, .. } => {
                            assert!(changes.is_empty());
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Change(i) => {
                        let (repository, branch) = SOURCES[i];
                        for a in s.on_change(now, &change(next_id, repository, branch)) {
                            let SchedulerAction::SetTimer { scheduler, fires_at, changes } = a else {
                                panic!("unexpected {a:?}");
                            };
                            prop_assert!(changes.contains(&next_id));
                            taken.entry(scheduler.clone()).or_default().insert(next_id);
                            promised.insert(scheduler, fires_at);
                        }
                        next_id += 1;
                        // The runtime calls due right after a change.
                        check(s.due(now), now, &mut promised);
                    }
                    Op::Wait(ms) => {
                        now = Timestamp(now.0 + ms);
                        check(s.due(now), now, &mut promised);
                    }
                    Op::Reload => prop_assert_eq!(s.reload(&plan, now), vec![]),
                }
                // Nothing is left overdue after a due.
                if let Some(deadline) = s.next_deadline() {
                    prop_assert!(deadline > now, "{deadline:?} <= {now:?}");
                }
            }
            now = Timestamp(now.0 + 3_600_000);
            check(s.due(now), now, &mut promised);
            prop_assert!(promised.is_empty());
            prop_assert!(s.timers().is_empty());
            let fired: BTreeMap<String, BTreeSet<u64>> = fired
                .into_iter()
                .map(|(name, ids)| {
                    let set: BTreeSet<u64> = ids.iter().copied().collect();
                    assert_eq!(set.len(), ids.len(), "{name}: a change fired twice");
                    (name, set)
                })
                .collect();
            prop_assert_eq!(fired, taken);
        }
    }
}
