//! The engine's rules, one scenario each, driven through `Engine::handle` with a fake clock
//! and a fake runtime (`support::Harness`); every event is followed by an invariant check.

mod support;

use abo_engine::*;
use abo_plan::{LockMode, Step, StepKind};
use support::*;

use BuildResult::{Exception, Failure, Success, Warnings};

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

#[test]
fn dispatch_follows_the_worker_list() {
    let p = plan(
        vec![worker("w1", Some(2)), worker("w2", Some(2))],
        vec![
            builder("a", &["w1"], vec![sh("one")]),
            builder("b", &["w2"], vec![sh("one")]),
            builder("orphan", &[], vec![sh("one")]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    assert_eq!(
        h.submit(1, "a"),
        lines(&[
            "create L1 a on w1 for r1",
            "started B1 #1 on w1",
            "run B1 0 one"
        ])
    );
    assert_eq!(h.submit(2, "b"), Vec::<String>::new());
    assert_eq!(h.submit(3, "orphan"), Vec::<String>::new());
    assert_eq!(
        h.pending(),
        lines(&["r2 b: NoWorkerConnected", "r3 orphan: NoWorkerConfigured"])
    );
    assert_eq!(
        h.connect("w2"),
        lines(&[
            "create L2 b on w2 for r2",
            "started B2 #1 on w2",
            "run B2 0 one"
        ])
    );
    // A request for a builder the plan lacks is not left waiting forever.
    assert_eq!(h.submit(4, "nope"), lines(&["complete r4 cancelled"]));
    // A duplicate submission changes nothing.
    assert_eq!(h.submit(1, "a"), Vec::<String>::new());
    assert_eq!(
        h.finish(1, Success),
        lines(&[
            "step B1 0 one: success",
            "finish B1 success",
            "complete r1 success"
        ])
    );
}

#[test]
fn max_builds_caps_a_worker() {
    let p = plan(
        vec![worker("w1", Some(2)), worker("free", None)],
        vec![
            builder("a", &["w1"], vec![sh("one")]),
            builder("u", &["free"], vec![sh("one")]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.connect("free");
    for r in 1..=3 {
        h.submit(r, "a");
    }
    assert_eq!(h.running().len(), 2);
    assert_eq!(h.pending(), lines(&["r3 a: AllWorkersBusy"]));
    let after = h.finish(1, Success);
    assert_eq!(
        after[3..],
        lines(&[
            "create L3 a on w1 for r3",
            "started B3 #3 on w1",
            "run B3 0 one"
        ])
    );
    // No max_builds: no limit.
    for r in 10..20 {
        h.submit(r, "u");
    }
    assert_eq!(h.pending(), Vec::<String>::new());
    assert_eq!(h.running().len(), 12);
}

#[test]
fn oldest_request_first_across_builders() {
    let p = plan(
        vec![worker("w1", Some(1))],
        vec![
            builder("a", &["w1"], vec![sh("one")]),
            builder("b", &["w1"], vec![sh("one")]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "a");
    h.submit(2, "a");
    h.submit(3, "b");
    h.submit(4, "a");
    let mut order = Vec::new();
    while let Some((&build, _)) = h.outstanding.iter().next() {
        for l in h.finish(build.0, Success) {
            if l.starts_with("create") {
                order.push(l);
            }
        }
    }
    assert_eq!(
        order,
        lines(&[
            "create L2 a on w1 for r2",
            "create L3 b on w1 for r3",
            "create L4 a on w1 for r4"
        ])
    );
}

#[test]
fn buildout_lock_serialises_buildout_steps_only() {
    let steps = vec![
        sh("pre"),
        locked(sh("buildout"), "buildout", LockMode::Exclusive),
        sh("post"),
    ];
    let p = plan(
        vec![worker("w1", Some(2))],
        vec![
            builder("x", &["w1"], steps.clone()),
            builder("y", &["w1"], steps),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "x");
    h.submit(2, "y");
    assert_eq!(
        h.running(),
        lines(&["B1 on w1: running pre", "B2 on w1: running pre"])
    );
    assert_eq!(
        h.finish(1, Success),
        lines(&["step B1 0 pre: success", "run B1 1 buildout"])
    );
    assert_eq!(h.finish(2, Success), lines(&["step B2 0 pre: success"]));
    assert_eq!(
        h.running(),
        lines(&[
            "B1 on w1: running buildout",
            "B2 on w1: buildout waits for buildout"
        ])
    );
    // B1's buildout ends: B2's starts while B1 goes on with `post`.
    assert_eq!(
        h.finish(1, Success),
        lines(&[
            "step B1 1 buildout: success",
            "run B1 2 post",
            "run B2 1 buildout"
        ])
    );
    assert_eq!(
        h.running(),
        lines(&["B1 on w1: running post", "B2 on w1: running buildout"])
    );
}

#[test]
fn counting_locks_share_and_exclusive_waits_its_turn() {
    let p = plan(
        vec![worker("w1", Some(5))],
        vec![
            builder(
                "reader",
                &["w1"],
                vec![locked(sh("read"), "db", LockMode::Counting)],
            ),
            builder(
                "writer",
                &["w1"],
                vec![locked(sh("write"), "db", LockMode::Exclusive)],
            ),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "reader");
    h.submit(2, "reader");
    h.submit(3, "writer");
    h.submit(4, "reader");
    assert_eq!(
        h.running(),
        lines(&[
            "B1 on w1: running read",
            "B2 on w1: running read",
            "B3 on w1: write waits for db",
            // Behind a waiting exclusive claim: no starvation of the writer.
            "B4 on w1: read waits for db",
        ])
    );
    assert_eq!(h.finish(1, Success)[0], "step B1 0 read: success");
    assert_eq!(h.running()[1], "B3 on w1: write waits for db");
    let after = h.finish(2, Success);
    assert!(after.contains(&"run B3 0 write".to_string()), "{after:?}");
    assert_eq!(h.running()[1], "B4 on w1: read waits for db");
    let after = h.finish(3, Success);
    assert!(after.contains(&"run B4 0 read".to_string()), "{after:?}");
}

#[test]
fn concurrent_builds_never_share_a_port() {
    let steps = vec![
        reserve_port("port_reserve"),
        Step::argv(
            "start",
            ["start_openerp", "--xmlrpc-port", "%(openerp_port)s"],
        ),
    ];
    let p = plan(
        vec![worker("w1", Some(2)), worker("w2", Some(2))],
        vec![
            builder("a", &["w1", "w2"], steps.clone()),
            builder("b", &["w1"], steps),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    assert_eq!(
        h.submit(1, "a"),
        lines(&[
            "create L1 a on w1 for r1",
            "started B1 #1 on w1",
            "step B1 0 port_reserve: success {openerp_port=9069}",
            "run B1 1 start"
        ])
    );
    assert_eq!(
        h.step(1).command,
        Some(RenderedCommand::Argv(vec![
            "start_openerp".into(),
            "--xmlrpc-port".into(),
            "9069".into()
        ]))
    );
    assert!(h
        .submit(2, "b")
        .contains(&"step B2 0 port_reserve: success {openerp_port=9074}".to_string()));
    // Released when the build ends, and free again for the next one.
    h.finish(1, Success);
    assert!(h
        .submit(3, "b")
        .contains(&"step B3 0 port_reserve: success {openerp_port=9069}".to_string()));
    // Another worker has its own ports.
    h.connect("w2");
    assert!(h
        .submit(4, "a")
        .contains(&"step B4 0 port_reserve: success {openerp_port=9069}".to_string()));
}

#[test]
fn a_full_port_range_is_an_exception() {
    let mut step = reserve_port("port_reserve");
    step.kind = StepKind::ReservePort {
        property: "p".into(),
        min: 8000,
        max: 8001,
        step: 0,
    };
    let p = plan(
        vec![worker("w1", Some(2))],
        vec![builder("a", &["w1"], vec![step, sh("after")])],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "a");
    assert_eq!(
        h.submit(2, "a")[2..],
        lines(&[
            "step B2 0 port_reserve: exception (no free port in 8000..8001 (step 0) on worker w1: all are reserved by running builds)",
            "step B2 1 after: skipped",
            "finish B2 exception",
            "complete r2 exception",
        ])
    );
}

#[test]
fn the_last_worker_of_a_builder_is_preferred() {
    let p = plan(
        vec![worker("w1", Some(1)), worker("w2", Some(1))],
        vec![
            builder("a", &["w1"], vec![sh("one")]),
            builder("b", &["w1", "w2"], vec![sh("one")]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.connect("w2");
    h.submit(1, "a");
    assert_eq!(h.submit(2, "b")[0], "create L2 b on w2 for r2");
    h.run_out();
    // Both idle now; w1 comes first in the list, but w2 has b's caches.
    assert_eq!(h.submit(3, "b")[0], "create L3 b on w2 for r3");
    h.run_out();
    // Only among free workers: with w2 busy, w1 takes it.
    h.send(Event::WorkerLost {
        worker: "w2".into(),
    });
    assert_eq!(h.submit(4, "b")[0], "create L4 b on w1 for r4");
}

#[test]
fn worker_lost_mid_build_retries_on_another_worker_and_refuses_late_writes() {
    let p = plan(
        vec![worker("w1", Some(1)), worker("w2", Some(1))],
        vec![builder("a", &["w1", "w2"], vec![sh("one"), sh("two")])],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "a");
    h.finish(1, Success);
    let (old_lease, old_step) = h.outstanding[&BuildId(1)].clone();
    assert_eq!(old_step.name, "two");
    h.connect("w2");
    assert_eq!(
        h.lose("w1"),
        lines(&[
            "step B1 1 two: retry (worker lost)",
            "finish B1 retry",
            "requeue r1",
            "create L2 a on w2 for r1",
            "started B2 #2 on w2",
            "run B2 0 one",
        ])
    );
    // The SIGSTOP-ed w1 resumes and reports its step: refused, nothing recorded.
    assert!(!h.engine.lease_is_current(BuildId(1), old_lease));
    assert!(h.engine.lease_is_current(BuildId(2), Lease(2)));
    let late = h.send(Event::StepFinished {
        build: BuildId(1),
        lease: old_lease,
        step: 1,
        outcome: StepOutcome::of(Success),
    });
    assert_eq!(late, lines(&["stale L1 step finished"]));
    // Even naming the new build with its old lease.
    let late = h.send(Event::StepFinished {
        build: BuildId(2),
        lease: old_lease,
        step: 0,
        outcome: StepOutcome::of(Failure),
    });
    assert_eq!(late, lines(&["stale L1 step finished"]));
    assert_eq!(h.engine.stale_writes(), 2);
    assert_eq!(h.running(), lines(&["B2 on w2: running one"]));
    // A duplicate answer for a step already answered is refused too.
    let (lease, _) = h.outstanding[&BuildId(2)].clone();
    h.finish(2, Success);
    let dup = h.send(Event::StepFinished {
        build: BuildId(2),
        lease,
        step: 0,
        outcome: StepOutcome::of(Failure),
    });
    assert_eq!(dup, lines(&["stale L2 step finished"]));
    assert_eq!(
        h.finish(2, Success),
        lines(&[
            "step B2 1 two: success",
            "finish B2 success",
            "complete r1 success"
        ])
    );
}

#[test]
fn worker_lost_before_the_build_is_stored() {
    let p = plan(
        vec![worker("w1", Some(1)), worker("w2", Some(1))],
        vec![builder("a", &["w1", "w2"], vec![sh("one")])],
    );
    let mut h = Harness::new(p);
    h.auto_create = false;
    h.connect("w1");
    assert_eq!(h.submit(1, "a"), lines(&["create L1 a on w1 for r1"]));
    assert_eq!(h.running(), lines(&["- on w1: starting"]));
    assert_eq!(h.lose("w1"), lines(&["requeue r1"]));
    assert_eq!(h.connect("w2"), lines(&["create L2 a on w2 for r1"]));
    // The store's late answer for the first dispatch: its build is closed, never run.
    assert_eq!(
        h.create(Lease(1)),
        lines(&["finish B1 retry", "stale L1 build created"])
    );
    assert_eq!(
        h.create(Lease(2)),
        lines(&["started B2 #2 on w2", "run B2 0 one"])
    );
    // And a second answer for a lease already answered.
    assert_eq!(
        h.send(Event::BuildCreated {
            lease: Lease(2),
            build: BuildId(2),
            number: 2
        }),
        lines(&["stale L2 build created"])
    );
    // A failed creation puts the request back.
    h.run_out();
    h.submit(2, "a");
    let creating: Vec<Lease> = h.creating.keys().copied().collect();
    assert_eq!(creating, [Lease(3)]);
    h.creating.clear();
    assert_eq!(
        h.send(Event::BuildCreateFailed { lease: Lease(3) }),
        lines(&["requeue r2", "create L4 a on w2 for r2"])
    );
}

#[test]
fn a_worker_reconnecting_loses_its_previous_session() {
    let p = plan(
        vec![worker("w1", Some(1))],
        vec![builder("a", &["w1"], vec![sh("one")])],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "a");
    assert_eq!(
        h.connect("w1"),
        lines(&[
            "step B1 0 one: retry (worker lost)",
            "finish B1 retry",
            "requeue r1",
            "create L2 a on w1 for r1",
            "started B2 #2 on w1",
            "run B2 0 one",
        ])
    );
}

#[test]
fn stop_cancels() {
    let p = plan(
        vec![worker("w1", Some(2))],
        vec![
            builder(
                "a",
                &["w1"],
                vec![locked(sh("one"), "l", LockMode::Exclusive), sh("two")],
            ),
            builder("b", &["w1"], vec![sh("one")]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "a");
    h.submit(2, "a");
    assert_eq!(h.stop(1), lines(&["interrupt B1 0"]));
    assert_eq!(
        h.stop(1),
        Vec::<String>::new(),
        "a second stop changes nothing"
    );
    // The worker answers the interrupted step (as a failure): the build is cancelled, and
    // the waiting B2 gets the lock.
    assert_eq!(
        h.finish(1, Failure),
        lines(&[
            "step B1 0 one: cancelled",
            "step B1 1 two: skipped",
            "finish B1 cancelled",
            "complete r1 cancelled",
            "run B2 0 one",
        ])
    );
    // Stopping a build that waits for a lock ends it at once.
    h.submit(3, "a");
    assert_eq!(h.running()[1], "B3 on w1: one waits for l");
    assert_eq!(
        h.stop(3),
        lines(&[
            "step B3 0 one: skipped",
            "step B3 1 two: skipped",
            "finish B3 cancelled",
            "complete r3 cancelled",
        ])
    );
    // Cancelling a waiting request; cancelling a running one stops its build.
    h.submit(4, "a");
    h.submit(5, "b");
    h.submit(6, "a");
    assert_eq!(
        h.pending(),
        lines(&["r6 a: AllWorkersBusy", "r5 b: AllWorkersBusy"])
    );
    assert_eq!(
        h.send(Event::RequestCancelled {
            request: RequestId(6)
        }),
        lines(&["complete r6 cancelled"])
    );
    assert_eq!(
        h.send(Event::RequestCancelled {
            request: RequestId(2)
        }),
        lines(&["interrupt B2 0"])
    );
    // Unknown builds and requests: nothing.
    assert_eq!(h.stop(99), Vec::<String>::new());
    assert_eq!(
        h.send(Event::RequestCancelled {
            request: RequestId(99)
        }),
        Vec::<String>::new()
    );
}

#[test]
fn stop_before_the_build_is_stored() {
    let p = plan(
        vec![worker("w1", Some(1))],
        vec![builder("a", &["w1"], vec![sh("one")])],
    );
    let mut h = Harness::new(p);
    h.auto_create = false;
    h.connect("w1");
    h.submit(1, "a");
    assert_eq!(
        h.send(Event::RequestCancelled {
            request: RequestId(1)
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        h.create(Lease(1)),
        lines(&[
            "started B1 #1 on w1",
            "step B1 0 one: skipped",
            "finish B1 cancelled",
            "complete r1 cancelled",
        ])
    );
}

/// Step flags × step results → what the build does (Buildbot's rules).
#[test]
fn halt_flunk_warn_in_a_build() {
    fn flags(mut s: Step, halt: bool, flunk: bool, warn: bool) -> Step {
        s.halt_on_failure = halt;
        s.flunk_on_failure = flunk;
        s.warn_on_failure = warn;
        s
    }
    type Case = (bool, bool, bool, BuildResult, &'static [&'static str]);
    let cases: &[Case] = &[
        (
            true,
            true,
            false,
            Failure,
            &[
                "step B1 0 s: failure",
                "step B1 1 next: skipped",
                "finish B1 failure",
            ],
        ),
        (
            true,
            false,
            false,
            Failure,
            &[
                "step B1 0 s: failure",
                "step B1 1 next: skipped",
                "finish B1 success",
            ],
        ),
        (
            false,
            false,
            true,
            Failure,
            &[
                "step B1 0 s: failure",
                "run B1 1 next",
                "finish B1 warnings",
            ],
        ),
        (
            false,
            true,
            true,
            Failure,
            &["step B1 0 s: failure", "run B1 1 next", "finish B1 failure"],
        ),
        (
            false,
            false,
            false,
            Failure,
            &["step B1 0 s: failure", "run B1 1 next", "finish B1 success"],
        ),
        (
            false,
            true,
            false,
            Warnings,
            &[
                "step B1 0 s: warnings",
                "run B1 1 next",
                "finish B1 warnings",
            ],
        ),
        (
            false,
            false,
            false,
            Exception,
            &[
                "step B1 0 s: exception",
                "step B1 1 next: skipped",
                "finish B1 exception",
            ],
        ),
    ];
    for &(halt, flunk, warn, result, expected) in cases {
        let p = plan(
            vec![worker("w1", None)],
            vec![builder(
                "a",
                &["w1"],
                vec![flags(sh("s"), halt, flunk, warn), sh("next")],
            )],
        );
        let mut h = Harness::new(p);
        h.connect("w1");
        h.submit(1, "a");
        let mut got = h.finish(1, result);
        got.extend(h.run_out());
        let got: Vec<String> = got
            .into_iter()
            .filter(|l| !l.contains("next: success") && !l.starts_with("complete"))
            .collect();
        assert_eq!(
            got,
            lines(expected),
            "halt={halt} flunk={flunk} warn={warn} {result}"
        );
    }
}

#[test]
fn a_render_error_is_an_exception() {
    let p = plan(
        vec![worker("w1", None)],
        vec![builder(
            "a",
            &["w1"],
            vec![
                Step::argv("dropdb", ["psql", "-c", "DROP DATABASE %(testing_db)s"]),
                sh("after"),
            ],
        )],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    assert_eq!(
        h.submit(1, "a")[2..],
        lines(&[
            "step B1 0 dropdb: exception (cannot render `DROP DATABASE %(testing_db)s`: property `testing_db` is not set)",
            "step B1 1 after: skipped",
            "finish B1 exception",
            "complete r1 exception",
        ])
    );
    // The same build with the property forced renders.
    h.submit_with(2, "a", &[("testing_db", "t")]);
    assert_eq!(
        h.step(2).command,
        Some(RenderedCommand::Argv(vec![
            "psql".into(),
            "-c".into(),
            "DROP DATABASE t".into()
        ]))
    );
}

/// AC-R1, AC-R2: capability properties from the worker's declared capabilities.
#[test]
fn capability_properties_steps() {
    let mut w = worker("w1", None);
    w.capabilities = vec![
        cap("postgresql", Some("9.1"), &[("port", "5432")]),
        cap(
            "postgresql",
            Some("9.2"),
            &[("port", "5433"), ("bin", "/pg92/bin")],
        ),
        cap("python", Some("2.6"), &[("bin", "python2.6")]),
        cap("twice", Some("1"), &[("bin", "t1")]),
        cap("twice", Some("2"), &[("bin", "t2")]),
    ];
    let props = |c: &str, v: Option<&str>| {
        Step::new(
            format!("props_{c}"),
            StepKind::SetCapabilityProperties {
                capability: c.into(),
                version_property: v.map(Into::into),
            },
        )
    };
    let mut pg = builder(
        "pg",
        &["w1"],
        vec![
            props("postgresql", Some("pg_version")),
            props("python", None),
            Step::argv(
                "use",
                [
                    "%(cap_python_bin:-python)s",
                    "%(cap_postgresql_port:-5432)s",
                ],
            ),
        ],
    );
    pg.properties = map(&[("pg_version", "9.2")]);
    let ambiguous = builder("amb", &["w1"], vec![props("twice", None), sh("after")]);
    let mut h = Harness::new(plan(vec![w], vec![pg, ambiguous]));
    h.connect("w1");
    assert_eq!(
        h.submit(1, "pg")[2..],
        lines(&[
            "step B1 0 props_postgresql: success {cap_postgresql_bin=/pg92/bin,cap_postgresql_port=5433}",
            "step B1 1 props_python: success {cap_python_bin=python2.6}",
            "run B1 2 use",
        ])
    );
    assert_eq!(
        h.step(1).command,
        Some(RenderedCommand::Argv(vec![
            "python2.6".into(),
            "5433".into()
        ]))
    );
    let out = h.submit(2, "amb");
    assert!(
        out[2].starts_with(
            "step B2 0 props_twice: exception (the worker declares twice versions 1, 2"
        ),
        "{out:?}"
    );
    assert_eq!(
        out[3..],
        lines(&[
            "step B2 1 after: skipped",
            "finish B2 exception",
            "complete r2 exception"
        ])
    );
}

/// AC-R3 through the seed's real step list: the sample master's plan, built by the planner
/// from `examples/master`, run to the end on both sample workers.
#[test]
fn the_sample_master_builds_render() {
    let p = sample_plan();
    let mut h = Harness::new(p.clone());
    h.connect("ci-worker");
    h.connect("my-slave");
    h.submit(1, "openerp-6.1-postgresql-9.1");
    let started = &h.started_props[&BuildId(1)];
    assert_eq!(
        started["workdir"],
        "/srv/ci-worker/openerp-6.1-postgresql-9.1"
    );
    assert_eq!(started["pg_version"], "9.1");
    assert_eq!(started["buildnumber"], "1");
    let mut log = Vec::new();
    let mut rendered = Vec::new();
    while let Some((&b, (_, step))) = h.outstanding.iter().next() {
        rendered.push(step.clone());
        log.extend(h.finish(b.0, Success));
    }
    let names: Vec<&str> = rendered.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bzr repo",
            "download_bootstrap",
            "download_buildout",
            "cachedirs",
            "bootstrap",
            "buildout",
            "dropdb",
            "createdb",
            "clean_log",
            "testing",
            "analyze"
        ]
    );
    assert!(
        log.contains(
            &"step B1 4 pg_cluster_props: success {testing_db=openerp_buildbot-openerp-6.1}"
                .to_string()
        ),
        "{log:#?}"
    );
    assert!(
        log.contains(&"step B1 3 props_postgresql: success {cap_postgresql_port=5433}".to_string()),
        "{log:#?}"
    );
    let buildout = &rendered[5];
    let Some(RenderedCommand::Argv(argv)) = &buildout.command else {
        panic!("{buildout:?}")
    };
    assert!(
        argv.contains(&"openerp:options.db_port=5433".to_string()),
        "{argv:?}"
    );
    assert!(argv.contains(&"openerp:options.db_name=openerp_buildbot-openerp-6.1".to_string()));
    assert_eq!(
        buildout.env["PATH"],
        RenderedEnv::List(vec!["${PATH}".into()])
    );
    assert_eq!(
        buildout.env["PGCLUSTER"],
        RenderedEnv::One("9.1/main".into())
    );
    assert_eq!(buildout.workdir, "build");
    assert_eq!(buildout.timeout, Some(14400));
    let testing = &rendered[9];
    assert_eq!(
        testing.command,
        Some(RenderedCommand::Argv(vec![
            "bin/test_openerp".into(),
            "-i".into(),
            "crm,sale,purchase,stock,account".into(),
            "--logfile=/srv/ci-worker/openerp-6.1-postgresql-9.1/build/test.log".into()
        ]))
    );
    assert_eq!(
        rendered[10].kind,
        RenderedKind::AnalyzeLog {
            step: "testing".into(),
            step_index: 11,
            log: "test".into()
        }
    );
    assert_eq!(
        log[log.len() - 2..],
        lines(&["finish B1 success", "complete r1 success"])
    );
    // AC-R3 with a worker `db_prefix`, through the same real step list.
    let mut with_prefix = (*p).clone();
    for w in &mut with_prefix.workers {
        w.properties.insert("db_prefix".into(), "ci".into());
    }
    h.send(Event::PlanReloaded(std::sync::Arc::new(with_prefix)));
    let mut out = h.submit(2, "openerp-6.1-postgresql-9.1");
    out.extend(h.run_out());
    assert!(
        out.contains(
            &"step B2 4 pg_cluster_props: success {testing_db=ci-openerp-6.1}".to_string()
        ),
        "{out:#?}"
    );
}

fn sample_plan() -> std::sync::Arc<abo_plan::Plan> {
    use abo_config::{ini, read_manifest, read_workers, MasterSettings};
    use abo_plan::planner::{plan, PlanInput};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/master/");
    let read = |name: &str| {
        let text = std::fs::read_to_string(format!("{dir}{name}")).unwrap();
        let (parsed, diags) = ini::parse(name, &text);
        assert!(diags.is_empty(), "{diags:?}");
        parsed
    };
    let (sections, d) = read_manifest(&read("buildouts/MANIFEST.cfg"), "/master/buildouts");
    assert!(d.is_empty(), "{d:?}");
    let (workers, d) = read_workers(&read("slaves.cfg"));
    assert!(d.is_empty(), "{d:?}");
    let settings = MasterSettings::default();
    std::sync::Arc::new(
        plan(&PlanInput {
            sections: &sections,
            workers: &workers,
            settings: &settings,
            settings_file: "master.toml",
        })
        .unwrap(),
    )
}

#[test]
fn testing_db_from_db_prefix() {
    let set = Step::new(
        "pg_cluster_props",
        StepKind::SetProperties {
            properties: map(&[("testing_db", "%(db_prefix:-openerp_buildbot)s-range")]),
        },
    );
    let mut with_prefix = worker("w1", None);
    with_prefix.properties = map(&[("db_prefix", "ci")]);
    let p = plan(
        vec![with_prefix, worker("w2", None)],
        vec![
            builder("range", &["w1"], vec![set.clone()]),
            builder("simple", &["w2"], vec![set]),
        ],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.connect("w2");
    assert!(h
        .submit(1, "range")
        .contains(&"step B1 0 pg_cluster_props: success {testing_db=ci-range}".to_string()));
    assert!(h.submit(2, "simple").contains(
        &"step B2 0 pg_cluster_props: success {testing_db=openerp_buildbot-range}".to_string()
    ));
    // A forced property wins over the worker's.
    assert!(h
        .submit_with(3, "range", &[("db_prefix", "forced")])
        .contains(&"step B3 0 pg_cluster_props: success {testing_db=forced-range}".to_string()));
}

#[test]
fn restart_retries_interrupted_builds_and_requeues_their_requests() {
    let p = plan(
        vec![worker("w1", Some(1))],
        vec![builder("a", &["w1"], vec![sh("one")])],
    );
    let mut h = Harness::new(p);
    let request = |id: u64, at: u64| NewRequest {
        id: RequestId(id),
        builder: "a".into(),
        properties: Default::default(),
        reason: "r".into(),
        submitted_at: Timestamp(at),
        mergeable: false,
    };
    assert_eq!(
        h.send(Event::Restored {
            requests: vec![request(8, 20), request(7, 10)],
            interrupted: vec![InterruptedBuild {
                build: BuildId(41),
                requests: vec![RequestId(7)],
            }],
        }),
        lines(&["finish B41 retry", "requeue r7"])
    );
    assert_eq!(
        h.pending(),
        lines(&["r7 a: NoWorkerConnected", "r8 a: NoWorkerConnected"])
    );
    assert_eq!(h.connect("w1")[0], "create L1 a on w1 for r7");
    assert_eq!(h.finish(1, Success)[3], "create L2 a on w1 for r8");
}

#[test]
fn plan_reload_removing_a_builder_mid_build() {
    let old = plan(
        vec![worker("w1", Some(1))],
        vec![
            builder("gone", &["w1"], vec![sh("one"), sh("two")]),
            builder("kept", &["w1"], vec![sh("one")]),
        ],
    );
    let new = plan(
        vec![worker("w1", Some(1))],
        vec![builder("kept", &["w1"], vec![sh("uno")])],
    );
    let mut h = Harness::new(old);
    h.connect("w1");
    h.submit(1, "gone");
    h.submit(2, "gone");
    h.submit(3, "kept");
    assert_eq!(
        h.send(Event::PlanReloaded(new)),
        lines(&["complete r2 cancelled"])
    );
    assert_eq!(h.submit(4, "gone"), lines(&["complete r4 cancelled"]));
    // The running build ends with its own steps; then the kept builder's new steps run.
    assert_eq!(
        h.finish(1, Success),
        lines(&["step B1 0 one: success", "run B1 1 two"])
    );
    assert_eq!(
        h.finish(1, Success),
        lines(&[
            "step B1 1 two: success",
            "finish B1 success",
            "complete r1 success",
            "create L2 kept on w1 for r3",
            "started B2 #1 on w1",
            "run B2 0 uno",
        ])
    );
}

#[test]
fn a_retried_build_of_a_removed_builder_is_cancelled() {
    let old = plan(
        vec![worker("w1", Some(1))],
        vec![builder("gone", &["w1"], vec![sh("one")])],
    );
    let mut h = Harness::new(old);
    h.connect("w1");
    h.submit(1, "gone");
    h.send(Event::PlanReloaded(plan(
        vec![worker("w1", Some(1))],
        vec![],
    )));
    assert_eq!(
        h.lose("w1"),
        lines(&[
            "step B1 0 one: retry (worker lost)",
            "finish B1 retry",
            "requeue r1",
            "complete r1 cancelled"
        ])
    );
}

#[test]
fn merged_requests_share_one_build() {
    let p = plan(
        vec![worker("w1", Some(1))],
        vec![builder("a", &["w1"], vec![sh("one")])],
    );
    let engine = Engine::with_options(
        p,
        EngineOptions {
            merge_requests: true,
        },
    );
    let mut h = Harness::with_engine(engine);
    h.connect("w1");
    h.submit(1, "a");
    h.submit(2, "a");
    h.submit_with(3, "a", &[("x", "1")]);
    h.submit(4, "a");
    assert_eq!(
        h.finish(1, Success)[3..],
        lines(&[
            "create L2 a on w1 for r2,r4",
            "started B2 #2 on w1",
            "run B2 0 one"
        ])
    );
    assert_eq!(
        h.finish(2, Success)[1..4],
        lines(&[
            "finish B2 success",
            "complete r2 success",
            "complete r4 success"
        ])
    );
}

#[test]
fn rendered_step_kinds() {
    let mut upload = Step::new(
        "upload",
        StepKind::UploadDirectory {
            src: "dist-%(buildnumber)s".into(),
            dest: "%(buildername)s/%(buildnumber)s".into(),
        },
    );
    upload.workdir = Some("build/%(pg_version:-none)s".into());
    upload.logfiles = map(&[("server", "%(workdir)s/server.log")]);
    let checkout = Step::new(
        "checkout",
        StepKind::Checkout {
            vcs: abo_plan::Vcs::Hg,
            repo: "https://example.org/r".into(),
            branch: Some("default".into()),
            revision: Some("%(buildout-tag:-tip)s".into()),
            dest: "src".into(),
            subdir: None,
        },
    );
    let mut shell = Step::new("shell", StepKind::Shell);
    shell.command = Some(abo_plan::Command::Shell("echo %(workername)s 100%%".into()));
    let no_command = Step::new("nothing", StepKind::Shell);
    let p = plan(
        vec![worker("w1", None)],
        vec![builder(
            "b c/..",
            &["w1"],
            vec![upload, checkout, shell, no_command],
        )],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.submit(1, "b c/..");
    let step = h.step(1).clone();
    assert_eq!(
        step.kind,
        RenderedKind::UploadDirectory {
            src: "dist-1".into(),
            dest: "b c/../1".into()
        }
    );
    assert_eq!(step.workdir, "build/none");
    assert_eq!(step.logfiles["server"], "/srv/w1/b_c_../server.log");
    let builder_dir = h.actions.iter().find_map(|a| match a {
        Action::RunStep { builder_dir, .. } => Some(builder_dir.clone()),
        _ => None,
    });
    assert_eq!(builder_dir.as_deref(), Some("b_c_.."));
    h.finish(1, Success);
    assert_eq!(
        h.step(1).kind,
        RenderedKind::Checkout {
            vcs: abo_plan::Vcs::Hg,
            repo: "https://example.org/r".into(),
            branch: Some("default".into()),
            revision: Some("tip".into()),
            dest: "src".into(),
            subdir: None
        }
    );
    h.finish(1, Success);
    assert_eq!(
        h.step(1).command,
        Some(RenderedCommand::Shell("echo w1 100%".into()))
    );
    assert_eq!(
        h.finish(1, Success)[1..],
        lines(&[
            "step B1 3 nothing: exception (step `nothing` has no command to run)",
            "finish B1 exception",
            "complete r1 exception"
        ])
    );
    assert_eq!(builder_dir_of(".."), "__");
    assert_eq!(builder_dir_of(""), "_");
}

fn builder_dir_of(name: &str) -> String {
    abo_engine::builder_dir(name)
}

#[test]
fn a_stopped_build_whose_worker_is_lost_is_cancelled_not_retried() {
    let p = plan(
        vec![worker("w1", Some(1)), worker("w2", Some(1))],
        vec![builder("a", &["w1", "w2"], vec![sh("one"), sh("two")])],
    );
    let mut h = Harness::new(p);
    h.connect("w1");
    h.connect("w2");
    h.submit(1, "a");
    h.stop(1);
    assert_eq!(
        h.lose("w1"),
        lines(&[
            "step B1 0 one: cancelled (worker lost)",
            "step B1 1 two: skipped",
            "finish B1 cancelled",
            "complete r1 cancelled",
        ])
    );
    // The same before the store answered: the request is not queued again either.
    h.auto_create = false;
    h.submit(2, "a");
    h.send(Event::RequestCancelled {
        request: RequestId(2),
    });
    assert_eq!(h.lose("w2"), lines(&["complete r2 cancelled"]));
    assert_eq!(h.pending(), Vec::<String>::new());
}

#[test]
fn a_reload_lowering_max_builds_drains_before_dispatching_again() {
    let with = |max| {
        plan(
            vec![worker("w1", Some(max))],
            vec![builder("a", &["w1"], vec![sh("one")])],
        )
    };
    let mut h = Harness::new(with(2));
    h.connect("w1");
    h.submit(1, "a");
    h.submit(2, "a");
    h.submit(3, "a");
    h.send(Event::PlanReloaded(with(1)));
    // Two builds run on a worker now allowed one: the first to end frees no slot.
    assert_eq!(
        h.finish(1, Success),
        lines(&[
            "step B1 0 one: success",
            "finish B1 success",
            "complete r1 success"
        ])
    );
    assert_eq!(h.finish(2, Success)[3], "create L3 a on w1 for r3");
}

#[test]
fn a_worker_the_plan_does_not_declare() {
    // A builder may list a worker that workers.cfg lacks (a hand-made plan): it is used if
    // it connects. A connected worker no builder lists takes nothing.
    let p = plan(vec![], vec![builder("a", &["ghost"], vec![sh("one")])]);
    let mut h = Harness::new(p);
    h.connect("stranger");
    h.submit(1, "a");
    assert_eq!(h.pending(), lines(&["r1 a: NoWorkerConnected"]));
    assert_eq!(h.connect("ghost")[0], "create L1 a on ghost for r1");
}
