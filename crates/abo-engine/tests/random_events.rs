//! Random event sequences, including late, duplicate and nonsensical ones: the engine never
//! panics, its invariants hold after every event (the harness checks them), and once every
//! worker is connected and every answer given, no request is lost or completed twice.

mod support;

use abo_engine::*;
use abo_plan::{LockMode, Step, StepKind};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use support::*;

/// `ghost` is listed by a builder but not declared in the plan.
const WORKERS: [&str; 4] = ["w0", "w1", "w2", "ghost"];
const BUILDERS: [&str; 5] = ["b0", "b1", "b2", "b3", "unknown"];

fn plan_variant(variant: u8) -> Arc<abo_plan::Plan> {
    // Variant 1 lowers max_builds: builds running above it must drain first.
    let workers = vec![
        worker("w0", Some(1)),
        worker("w1", Some(if variant.is_multiple_of(2) { 2 } else { 1 })),
        worker("w2", Some(3)),
    ];
    let b0 = |ws: &[&str]| {
        builder(
            "b0",
            ws,
            vec![
                sh("pre"),
                locked(sh("buildout"), "buildout", LockMode::Exclusive),
                reserve_port("port"),
                Step::argv("post", ["run", "%(openerp_port)s"]),
            ],
        )
    };
    let b1 = builder(
        "b1",
        &["w1", "w2"],
        vec![
            locked(sh("read"), "db", LockMode::Counting),
            reserve_port("port"),
            locked(
                locked(sh("both"), "db", LockMode::Counting),
                "buildout",
                LockMode::Exclusive,
            ),
        ],
    );
    let b2 = builder(
        "b2",
        &["w2", "w0"],
        vec![
            locked(sh("write"), "db", LockMode::Exclusive),
            Step::new(
                "props",
                StepKind::SetProperties {
                    properties: map(&[("x", "%(maybe)s")]),
                },
            ),
            sh("last"),
        ],
    );
    let b3 = builder("b3", &[], vec![sh("never")]);
    let b3_ghost = builder("b3", &["ghost"], vec![sh("never")]);
    match variant % 2 {
        0 => plan(workers, vec![b0(&["w0", "w1"]), b1, b2, b3]),
        _ => plan(workers, vec![b0(&["w1", "w2"]), b2, b3_ghost]),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Submit(usize, bool),
    Connect(usize),
    Lose(usize),
    Create(usize),
    CreateFail(usize),
    Finish(usize, usize),
    StaleFinish(usize, u64),
    Stop(u64),
    Cancel(u64),
    Reload(u8),
    Restore(u64),
    BogusCreate(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..BUILDERS.len(), any::<bool>()).prop_map(|(b, p)| Op::Submit(b, p)),
        2 => (0..WORKERS.len()).prop_map(Op::Connect),
        1 => (0..WORKERS.len()).prop_map(Op::Lose),
        3 => (0..4usize).prop_map(Op::Create),
        1 => (0..4usize).prop_map(Op::CreateFail),
        6 => (0..4usize, 0..7usize).prop_map(|(i, r)| Op::Finish(i, r)),
        1 => (0..4usize, 0..3u64).prop_map(|(i, d)| Op::StaleFinish(i, d)),
        1 => (0..12u64).prop_map(Op::Stop),
        1 => (0..40u64).prop_map(Op::Cancel),
        1 => any::<u8>().prop_map(Op::Reload),
        1 => (0..12u64).prop_map(Op::Restore),
        1 => (0..12u64, 0..12u64).prop_map(|(l, b)| Op::BogusCreate(l, b)),
    ]
}

fn nth<K: Copy, V>(map: &BTreeMap<K, V>, i: usize) -> Option<K> {
    map.keys().nth(i % map.len().max(1)).copied()
}

fn run(ops: Vec<Op>) {
    let mut h = Harness::new(plan_variant(0));
    h.auto_create = false;
    let mut next_request = 1;
    for op in ops {
        match op {
            Op::Submit(b, with_props) => {
                let props: &[(&str, &str)] = if with_props { &[("maybe", "y")] } else { &[] };
                h.submit_with(next_request, BUILDERS[b], props);
                next_request += 1;
            }
            Op::Connect(w) => {
                h.connect(WORKERS[w]);
            }
            Op::Lose(w) => {
                h.lose(WORKERS[w]);
            }
            Op::Create(i) => {
                if let Some(lease) = nth(&h.creating, i) {
                    h.create(lease);
                }
            }
            Op::CreateFail(i) => {
                if let Some(lease) = nth(&h.creating, i) {
                    h.creating.remove(&lease);
                    h.send(Event::BuildCreateFailed { lease });
                }
            }
            Op::Finish(i, r) => {
                if let Some(build) = nth(&h.outstanding, i) {
                    h.finish(build.0, BuildResult::ALL[r]);
                }
            }
            Op::StaleFinish(i, d) => {
                if let Some(build) = nth(&h.outstanding, i) {
                    let (lease, step) = h.outstanding[&build].clone();
                    // A wrong lease, or the right lease with a step not asked for.
                    let (lease, index) = match d {
                        0 => (Lease(lease.0 + 100), step.index),
                        1 => (Lease(lease.0.saturating_sub(1)), step.index),
                        _ => (lease, step.index + 1),
                    };
                    let out = h.send(Event::StepFinished {
                        build,
                        lease,
                        step: index,
                        outcome: StepOutcome::of(BuildResult::Success),
                    });
                    assert!(out.iter().all(|l| l.starts_with("stale")), "{out:?}");
                }
            }
            Op::Stop(b) => {
                h.stop(b);
            }
            Op::Cancel(r) => {
                h.send(Event::RequestCancelled {
                    request: RequestId(r),
                });
            }
            Op::Reload(v) => {
                h.send(Event::PlanReloaded(plan_variant(v)));
            }
            Op::Restore(b) => {
                // The store restores unfinished requests only: a fresh id each time.
                let id = RequestId(1000 + next_request);
                next_request += 1;
                let request = NewRequest {
                    id,
                    builder: "b0".into(),
                    properties: Default::default(),
                    reason: "restored".into(),
                    submitted_at: Timestamp(0),
                    mergeable: false,
                };
                h.send(Event::Restored {
                    requests: vec![request],
                    interrupted: vec![InterruptedBuild {
                        build: BuildId(b),
                        requests: vec![id],
                    }],
                });
            }
            Op::BogusCreate(l, b) => {
                h.creating.remove(&Lease(l));
                h.send(Event::BuildCreated {
                    lease: Lease(l),
                    build: BuildId(b),
                    number: 1,
                });
            }
        }
    }
    // Drain: every worker connected, every answer given.
    h.send(Event::PlanReloaded(plan_variant(0)));
    for w in WORKERS {
        h.connect(w);
    }
    for _ in 0..10_000 {
        if let Some(lease) = h.creating.keys().next().copied() {
            h.create(lease);
        } else if let Some(build) = h.outstanding.keys().next().copied() {
            h.finish(build.0, BuildResult::Success);
        } else {
            break;
        }
    }
    assert!(h.outstanding.is_empty() && h.creating.is_empty());
    assert!(h.engine.running().is_empty(), "{:?}", h.running());
    // Nothing lost: every request is completed once, or waits for a builder without workers.
    let mut completed = BTreeSet::new();
    for a in &h.actions {
        if let Action::CompleteRequest { request, .. } = a {
            assert!(completed.insert(*request), "r{request} completed twice");
        }
    }
    let mut pending = BTreeSet::new();
    for p in h.engine.pending() {
        assert_eq!(p.reason, WaitReason::NoWorkerConfigured, "{p:?}");
        assert!(!completed.contains(&p.request));
        pending.insert(p.request);
    }
    let dispatched: BTreeSet<RequestId> = h
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateBuild { requests, .. } => Some(requests.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    for r in dispatched {
        assert!(
            completed.contains(&r) || pending.contains(&r),
            "r{r} dispatched, then lost"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_event_sequences(ops in proptest::collection::vec(op(), 0..120)) {
        run(ops);
    }
}
