//! Dispatch throughput of the engine alone: N requests over 8 workers × `max_builds = 2`,
//! every store answer and every step finishing instantly, so that what is measured is the
//! engine's own cost per event (the end-to-end target is ≥ 44 builds/s; the engine
//! must be a small part of that). Also checks that the cost per build stays flat as the
//! queue grows (no work proportional to the queued requests per event).
//!
//! Run with `cargo bench -p abo-engine --bench dispatch`.

use abo_engine::*;
use abo_plan::{Builder, LockMode, LockUse, Plan, Step, StepKind, WorkerView};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

const WORKERS: usize = 8;

fn plan(builders: usize, steps: Arc<[Step]>) -> Arc<Plan> {
    let workers: Vec<WorkerView> = (0..WORKERS)
        .map(|i| WorkerView {
            name: format!("w{i}"),
            max_builds: Some(2),
            notify_on_missing: Vec::new(),
            capabilities: Vec::new(),
            properties: BTreeMap::from([("db_prefix".to_string(), format!("w{i}"))]),
        })
        .collect();
    let names: Vec<Arc<str>> = workers.iter().map(|w| Arc::from(w.name.as_str())).collect();
    let builders = (0..builders)
        .map(|i| Builder {
            name: format!("builder-{i}"),
            buildout: format!("builder-{i}"),
            // Each builder on 4 of the 8 workers.
            workers: (0..4)
                .map(|k| names[(i + k * 2) % WORKERS].clone())
                .collect(),
            category: String::new(),
            properties: BTreeMap::from([("pg_version".to_string(), "16".to_string())]),
            steps: steps.clone(),
        })
        .collect();
    Arc::new(Plan {
        workers,
        builders,
        schedulers: Vec::new(),
        pollers: Vec::new(),
    })
}

fn trivial_steps() -> Arc<[Step]> {
    vec![Step::argv("true", ["true"])].into()
}

/// The shape of a real build: property steps, a buildout under the exclusive lock, a port
/// reservation, templated commands and environments.
fn realistic_steps() -> Arc<[Step]> {
    let env = BTreeMap::from([
        (
            "PATH".to_string(),
            abo_plan::EnvValue::List(vec!["%(cap_postgresql_bin:-)s".into(), "${PATH}".into()]),
        ),
        (
            "PGPORT".to_string(),
            abo_plan::EnvValue::One("%(cap_postgresql_port:-)s".into()),
        ),
    ]);
    let mut buildout = Step::argv(
        "buildout",
        [
            "bin/buildout",
            "openerp:options.db_port=%(cap_postgresql_port:-5432)s",
            "openerp:options.db_name=%(testing_db)s",
        ],
    );
    buildout.env = env.clone();
    buildout.locks.push(LockUse {
        name: "buildout".into(),
        mode: LockMode::Exclusive,
    });
    let mut port = Step::new(
        "port_reserve",
        StepKind::ReservePort {
            property: "openerp_port".into(),
            min: 9069,
            max: 11069,
            step: 5,
        },
    );
    port.locks.push(LockUse {
        name: "port-reserve".into(),
        mode: LockMode::Exclusive,
    });
    let mut testing = Step::argv(
        "testing",
        ["bin/test_openerp", "--logfile=%(workdir)s/build/test.log"],
    );
    testing.env = env;
    vec![
        Step::new(
            "props_postgresql",
            StepKind::SetCapabilityProperties {
                capability: "postgresql".into(),
                version_property: Some("pg_version".into()),
            },
        ),
        Step::new(
            "pg_cluster_props",
            StepKind::SetProperties {
                properties: BTreeMap::from([(
                    "testing_db".to_string(),
                    "%(db_prefix:-openerp_buildbot)s-x".to_string(),
                )]),
            },
        ),
        Step::new(
            "download",
            StepKind::Download {
                src: "buildouts/x.cfg".into(),
                dest: "x.cfg".into(),
            },
        ),
        buildout,
        port,
        testing,
        Step::new(
            "analyze",
            StepKind::AnalyzeLog {
                step: "testing".into(),
                log: "test".into(),
            },
        ),
    ]
    .into()
}

struct Figures {
    events: u64,
    builds: u64,
    seconds: f64,
    max_actions: u64,
}

/// Submits `requests` requests at once (the deepest queue), then answers everything
/// instantly until all builds are done.
fn drive(plan: Arc<Plan>, requests: u64) -> Figures {
    let builders: Vec<String> = plan.builders.iter().map(|b| b.name.clone()).collect();
    let mut engine = Engine::new(plan);
    let mut now = 0u64;
    let mut events = 0u64;
    let mut builds = 0u64;
    let mut next_build = 1u64;
    let mut inbox: VecDeque<Event> = VecDeque::new();
    for i in 0..requests {
        inbox.push_back(Event::RequestSubmitted(NewRequest {
            id: RequestId(i + 1),
            builder: builders[i as usize % builders.len()].as_str().into(),
            properties: BTreeMap::new(),
            reason: "bench".into(),
            submitted_at: Timestamp(i),
            mergeable: false,
        }));
    }
    for w in 0..WORKERS {
        inbox.push_back(Event::WorkerConnected {
            worker: format!("w{w}").into(),
            basedir: format!("/srv/w{w}"),
        });
    }
    let mut max_actions = 0u64;
    let start = Instant::now();
    while let Some(event) = inbox.pop_front() {
        now += 1;
        events += 1;
        let actions = engine.handle(Timestamp(now), event);
        max_actions = max_actions.max(actions.len() as u64);
        for action in actions {
            match action {
                Action::CreateBuild { lease, .. } => {
                    inbox.push_back(Event::BuildCreated {
                        lease,
                        build: BuildId(next_build),
                        number: next_build,
                    });
                    next_build += 1;
                }
                Action::RunStep {
                    build, lease, step, ..
                } => inbox.push_back(Event::StepFinished {
                    build,
                    lease,
                    step: step.index,
                    outcome: StepOutcome::of(BuildResult::Success),
                }),
                Action::FinishBuild { .. } => builds += 1,
                Action::BuildStarted { .. }
                | Action::InterruptStep { .. }
                | Action::RecordStep { .. }
                | Action::RequeueRequest { .. }
                | Action::CompleteRequest { .. }
                | Action::RejectStale { .. } => {}
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(builds, requests, "every request built once");
    Figures {
        events,
        builds,
        seconds,
        max_actions,
    }
}

fn report(label: &str, f: &Figures) {
    println!(
        "{label:<44} {:>7} builds {:>8} events in {:>7.1} ms: {:>10.0} events/s, {:>9.0} builds/s, {:>5.2} µs/build (max {} actions/event)",
        f.builds,
        f.events,
        f.seconds * 1e3,
        f.events as f64 / f.seconds,
        f.builds as f64 / f.seconds,
        f.seconds * 1e6 / f.builds as f64,
        f.max_actions,
    );
}

fn main() {
    // `cargo test` runs benches with `--bench`-less arguments; keep that quick.
    let quick =
        std::env::args().any(|a| a == "--test") || std::env::var_os("ABO_BENCH_QUICK").is_some();
    let repeat = if quick { 1 } else { 5 };
    let best = |f: &dyn Fn() -> Figures| {
        (0..repeat)
            .map(|_| f())
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
            .expect("at least one run")
    };
    report(
        "2,000 trivial builds, 50 builders",
        &best(&|| drive(plan(50, trivial_steps()), 2_000)),
    );
    report(
        "2,000 trivial builds, 2,000 builders",
        &best(&|| drive(plan(2_000, trivial_steps()), 2_000)),
    );
    report(
        "2,000 realistic builds (7 steps), 50 builders",
        &best(&|| drive(plan(50, realistic_steps()), 2_000)),
    );
    if !quick {
        // Linear: µs/build should stay flat while the initial queue grows 10×.
        report(
            "20,000 trivial builds, 50 builders",
            &best(&|| drive(plan(50, trivial_steps()), 20_000)),
        );
        report(
            "20,000 trivial builds, 2,000 builders",
            &best(&|| drive(plan(2_000, trivial_steps()), 20_000)),
        );
    }
}
