//! The `nightly` option and master.toml's `timezone`, through the real readers and the
//! planner: schedulers on the clock, diagnostics at their line, the JSON shape.

use abo_config::{ini, read_manifest, read_settings, read_workers, Diagnostic, MasterSettings};
use abo_plan::planner::{plan, PlanInput};
use abo_plan::{Plan, Weekday};

const WORKERS: &str = "[w]\npassword = secret\ncapability = postgresql 14\n";

fn plan_text(manifest: &str, settings: &MasterSettings) -> Result<Plan, Vec<Diagnostic>> {
    let (m, d) = ini::parse("MANIFEST.cfg", manifest);
    assert!(d.is_empty(), "{d:?}");
    let (sections, d) = read_manifest(&m, "/m");
    assert!(d.is_empty(), "{d:?}");
    let (w, _) = ini::parse("workers.cfg", WORKERS);
    let (workers, d) = read_workers(&w);
    assert!(d.is_empty(), "{d:?}");
    plan(&PlanInput {
        sections: &sections,
        workers: &workers,
        settings,
        settings_file: "master.toml",
    })
}

fn planned(manifest: &str) -> Plan {
    plan_text(manifest, &MasterSettings::default()).unwrap()
}

fn mistakes(manifest: &str) -> Vec<String> {
    plan_text(manifest, &MasterSettings::default())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_nightly_section_gets_a_scheduler_without_watch() {
    let p = planned("[n]\nbuildout = standalone a.cfg\nnightly = 02:30 mon-fri\n");
    assert_eq!(p.schedulers.len(), 1);
    let s = &p.schedulers[0];
    assert_eq!(s.name, "n");
    assert_eq!(s.builders, ["n-postgresql-14"]);
    assert!(s.watch.is_empty());
    assert_eq!(s.nightly.len(), 1);
    assert_eq!((s.nightly[0].hour, s.nightly[0].minute), (2, 30));
    assert_eq!(
        s.nightly[0].weekdays,
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri
        ]
    );
}

#[test]
fn watch_and_nightly_make_one_scheduler() {
    let p = planned(
        "[n]\nbuildout = standalone a.cfg\nwatch = git https://g/r.git main\nnightly = 02:30\n  23:00 sat,sun\n  02:30\n",
    );
    assert_eq!(p.schedulers.len(), 1);
    let s = &p.schedulers[0];
    assert_eq!(s.watch.len(), 1);
    let shown: Vec<String> = s.nightly.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["02:30", "23:00 sat,sun"],
        "repeated lines count once"
    );
    // No nightly: the scheduler is as before, with an empty list.
    let p = planned("[n]\nbuildout = standalone a.cfg\nwatch = git https://g/r.git main\n");
    assert!(p.schedulers[0].nightly.is_empty());
}

#[test]
fn nightly_comes_from_default_and_inherit_and_an_empty_one_drops_it() {
    let p = planned(
        "[DEFAULT]\nnightly = 01:00\n\n[a]\nbuildout = standalone a.cfg\n\n[b]\nbuildout = standalone b.cfg\nnightly =\n\n[c]\ninherit = a\nnightly = 05:00 sun\n\n[watch-only]\nwatch = git https://g/r.git main\n",
    );
    let got: Vec<(String, Vec<String>)> = p
        .schedulers
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.nightly.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_string(), vec!["01:00".to_string()]),
            ("c".to_string(), vec!["05:00 sun".to_string()]),
        ],
        "b drops it; a watch-only section builds nothing, so it has no scheduler"
    );
}

#[test]
fn bad_nightly_values_are_reported_at_their_line() {
    assert_eq!(
        mistakes("[n]\nbuildout = standalone a.cfg\nnightly = 2h30\n"),
        ["MANIFEST.cfg:3: nightly: '2h30' is not a time of day, write `nightly = HH:MM` on a 24-hour clock, optionally followed by weekdays: `nightly = 02:30`, `nightly = 02:30 mon-fri`, `nightly = 23:00 sat,sun`"]
    );
    // Every bad line, each at its own line.
    assert_eq!(
        mistakes("[n]\nbuildout = standalone a.cfg\nnightly = 24:00\n  02:30 mon-fry\n  03:00\n"),
        [
            "MANIFEST.cfg:3: nightly: '24:00' is out of range, hours go from 00 to 23 and minutes from 00 to 59: midnight is `00:00`",
            "MANIFEST.cfg:4: nightly: 'fry' is not a weekday, weekdays are mon, tue, wed, thu, fri, sat and sun, separated by commas, with `A-B` for every day from A to B: `mon-fri`, `sat,sun`",
        ]
    );
}

#[test]
fn the_time_zone_must_exist() {
    let manifest = "[n]\nbuildout = standalone a.cfg\nnightly = 02:30\n";
    for name in ["Europe/Brussels", "UTC", "america/new_york"] {
        let settings = read_settings("master.toml", &format!("timezone = {name:?}\n")).unwrap();
        assert!(plan_text(manifest, &settings).is_ok(), "{name}");
    }
    let settings = read_settings("master.toml", "timezone = \"Europe/Brusels\"\n").unwrap();
    let d = plan_text(manifest, &settings).unwrap_err();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].to_string().starts_with(
            "master.toml: timezone = \"Europe/Brusels\" is not a known time zone, did you mean Europe/Brussels"
        ),
        "{}",
        d[0]
    );
    // Checked even without nightly times: the setting is wrong either way.
    let d = plan_text("[n]\nbuildout = standalone a.cfg\n", &settings).unwrap_err();
    assert_eq!(d.len(), 1);
}

#[test]
fn json_shape() {
    let p = planned("[n]\nbuildout = standalone a.cfg\nnightly = 23:00 sat,sun\n");
    let json = serde_json::to_value(&p.schedulers[0]).unwrap();
    assert_eq!(
        json["nightly"],
        serde_json::json!([{"hour": 23, "minute": 0, "weekdays": ["sat", "sun"]}])
    );
    assert_eq!(json["watch"], serde_json::json!([]));
}

#[test]
fn the_nightly_testdata_master_plans() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/nightly");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let settings = read_settings("master.toml", &read("master.toml")).unwrap();
    assert_eq!(settings.timezone.as_deref(), Some("Europe/Brussels"));
    let p = plan_text(&read("buildouts/MANIFEST.cfg"), &settings).unwrap();
    let got: Vec<(&str, usize, usize)> = p
        .schedulers
        .iter()
        .map(|s| (s.name.as_str(), s.watch.len(), s.nightly.len()))
        .collect();
    assert_eq!(got, [("odoo-16", 1, 2), ("odoo-17-weekly", 0, 1)]);
}
