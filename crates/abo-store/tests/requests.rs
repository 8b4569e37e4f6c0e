//! Build requests, builds and steps: every operation, claim races, stale leases and what a
//! master restart does.

mod common;

use abo_store::{
    BuildResult, Error, Lease, LogKind, LogOptions, NewChange, NewRequest, Properties, RequestId,
    RequestState, StepOutcome, StepUrl, Store, Stream,
};
use common::{running_build, store_on, t, Backend, TestDb};
use serde_json::json;

fn outcome(result: BuildResult) -> StepOutcome {
    StepOutcome {
        result,
        description: Some(format!("done: {result}")),
        hidden: false,
    }
}

#[tokio::test]
async fn open_accepts_paths_dirs_sqlite_and_postgresql_urls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    assert_eq!(s.path(), Some(dir.path().join("abo.sqlite").as_path()));
    let file = dir.path().join("other.db");
    let url = format!("sqlite:{}", file.display());
    let s2 = Store::open(&url).await.unwrap();
    assert_eq!(s2.path(), Some(file.as_path()));
    let s3 = Store::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert_eq!(s3.path(), Some(file.as_path()));
    assert_eq!(s3.location(), file.display().to_string());
    for bad in ["postgres:db", "sqlite::memory:", "mysql://h", ""] {
        assert!(
            matches!(Store::open(bad).await, Err(Error::UnsupportedDatabase(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_postgresql_url_opens_a_database_and_masks_its_password() {
    let db = TestDb::new(Backend::Postgres).await;
    let s = db.open().await;
    assert_eq!(s.path(), None);
    assert_eq!(s.location(), db.url);
    // A password in the URL never reaches a message.
    let url = "postgresql://abo:hunter2@127.0.0.1:1/abo?connect_timeout=2";
    let err = Store::open(url).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot connect to PostgreSQL at postgresql://abo:***@127.0.0.1:1/abo"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert_eq!(
        abo_store::masked_location("postgres://u:pw@h/db?password=pw"),
        "postgres://u:***@h/db?password=***"
    );
}

async fn submitted_requests_are_durable_and_queued_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = db.open().await;
    let change = s
        .add_change(NewChange {
            repository: "https://example.org/r.git".into(),
            branch: "16.0".into(),
            revision: "abc".into(),
            received_at: t(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut with_changes = NewRequest::new("b1", t(5));
    with_changes.properties = json!({"odoo": "16.0", "n": 3});
    with_changes.reason = "1 change".into();
    with_changes.changes = vec![change, change];
    let a = s.submit_request(with_changes).await.unwrap();
    let b = s.submit_request(NewRequest::new("b2", t(6))).await.unwrap();
    assert!(b > a);
    drop(s);

    // A new store on the same database (a restarted master) sees them.
    let s = db.open().await;
    let queued = s.queued_requests().await.unwrap();
    assert_eq!(queued.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(queued[0].builder, "b1");
    assert_eq!(queued[0].properties, json!({"odoo": "16.0", "n": 3}));
    assert_eq!(queued[0].reason, "1 change");
    assert_eq!(queued[0].submitted_at, t(5));
    assert_eq!(queued[0].changes, [change]);
    assert_eq!(queued[0].state, RequestState::Queued);
    assert!(queued[1].changes.is_empty());
    assert_eq!(s.get_request(a).await.unwrap().unwrap(), queued[0]);
    assert_eq!(s.get_request(RequestId(999)).await.unwrap(), None);
    assert!(matches!(
        s.submit_request(NewRequest::new("", t(1))).await,
        Err(Error::Invalid(_))
    ));
}

async fn of_two_claimers_one_wins(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    for _ in 0..20 {
        let req = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
        let (x, y) = tokio::join!(
            s.claim_request(req, Lease(1), t(2)),
            s.claim_request(req, Lease(2), t(2))
        );
        assert_eq!(x.is_ok() as u8 + y.is_ok() as u8, 1, "{x:?} {y:?}");
        let loser = if x.is_ok() { y } else { x };
        assert!(matches!(
            loser,
            Err(Error::RequestState {
                state: RequestState::Claimed,
                ..
            })
        ));
    }
    assert!(matches!(
        s.claim_request(RequestId(12345), Lease(1), t(1)).await,
        Err(Error::RequestNotFound(_))
    ));
}

async fn two_masters_on_one_database_never_claim_the_same_request(backend: Backend) {
    // Two stores are two connections sets, as two processes would have: the claim is
    // atomic in the database itself, not only behind the in-process mutex.
    let (db, a) = store_on(backend).await;
    let b = db.open().await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(a.submit_request(NewRequest::new("b", t(1))).await.unwrap());
    }
    let claim_all = |s: Store, lease: u64, ids: Vec<RequestId>| {
        tokio::spawn(async move {
            let mut won = Vec::new();
            for id in ids {
                match s.claim_request(id, Lease(lease), t(2)).await {
                    Ok(()) => won.push(id),
                    Err(Error::RequestState { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            won
        })
    };
    let (wa, wb) = tokio::join!(
        claim_all(a.clone(), 1, ids.clone()),
        claim_all(b.clone(), 2, ids.clone())
    );
    let (wa, wb) = (wa.unwrap(), wb.unwrap());
    assert_eq!(wa.len() + wb.len(), ids.len());
    assert!(wa.iter().all(|id| !wb.contains(id)));
    for id in &wa {
        assert_eq!(
            a.get_request(*id).await.unwrap().unwrap().claimed_by,
            Some(Lease(1))
        );
    }
}

async fn requeue_complete_and_merge(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let r1 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    let r2 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    let r3 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();

    assert!(matches!(
        s.requeue_request(r1).await,
        Err(Error::RequestState { .. })
    ));
    s.claim_request(r1, Lease(7), t(2)).await.unwrap();
    s.requeue_request(r1).await.unwrap();
    let r = s.get_request(r1).await.unwrap().unwrap();
    assert_eq!((r.state, r.claimed_by), (RequestState::Queued, None));

    // r2 rides with r1: same lease, completed with it.
    s.claim_request(r1, Lease(8), t(3)).await.unwrap();
    s.merge_request(r2, r1, t(3)).await.unwrap();
    let r = s.get_request(r2).await.unwrap().unwrap();
    assert_eq!(r.state, RequestState::Claimed);
    assert_eq!(r.claimed_by, Some(Lease(8)));
    assert_eq!(r.merged_into, Some(r1));
    assert!(matches!(
        s.merge_request(r3, r2, t(3)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        s.create_build(r2, "w", Lease(8), t(3)).await,
        Err(Error::Invalid(_))
    ));
    let (build, number) = s.create_build(r1, "w", Lease(8), t(4)).await.unwrap();
    assert_eq!(number, 1);
    assert!(matches!(
        s.requeue_request(r1).await,
        Err(Error::BuildRunning { .. })
    ));
    assert!(matches!(
        s.complete_request(r1, BuildResult::Cancelled, t(4)).await,
        Err(Error::BuildRunning { .. })
    ));
    s.finish_build(build, Lease(8), BuildResult::Warnings, t(9))
        .await
        .unwrap();
    for id in [r1, r2] {
        let r = s.get_request(id).await.unwrap().unwrap();
        assert_eq!(r.state, RequestState::Complete);
        assert_eq!(r.result, Some(BuildResult::Warnings));
        assert_eq!(r.completed_at, Some(t(9)));
    }

    // A queued request can be completed without a build (cancelled), once.
    s.complete_request(r3, BuildResult::Cancelled, t(10))
        .await
        .unwrap();
    assert!(matches!(
        s.complete_request(r3, BuildResult::Cancelled, t(10)).await,
        Err(Error::RequestState {
            state: RequestState::Complete,
            ..
        })
    ));
    assert!(s.queued_requests().await.unwrap().is_empty());
}

/// `start_build`: claim, merges and build in one transaction. A request taken meanwhile
/// is left out (and returned); a refused claim changes nothing, not even the merges.
async fn start_build_claims_merges_and_creates_at_once(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let r1 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    let r2 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    let taken = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    s.claim_request(taken, Lease(9), t(2)).await.unwrap();

    let started = s
        .start_build(vec![r1, r2, taken], "w", Lease(3), t(3))
        .await
        .unwrap();
    assert_eq!(started.number, 1);
    assert_eq!(started.not_merged.len(), 1);
    assert_eq!(started.not_merged[0].0, taken);
    assert!(
        matches!(started.not_merged[0].1, Error::RequestState { .. }),
        "{:?}",
        started.not_merged
    );
    let build = s.get_build(started.id).await.unwrap().unwrap().build;
    assert_eq!((build.request, build.lease), (r1, Lease(3)));
    let rider = s.get_request(r2).await.unwrap().unwrap();
    assert_eq!(
        (rider.state, rider.claimed_by, rider.merged_into),
        (RequestState::Claimed, Some(Lease(3)), Some(r1))
    );
    let other = s.get_request(taken).await.unwrap().unwrap();
    assert_eq!(
        (other.claimed_by, other.merged_into),
        (Some(Lease(9)), None)
    );

    // The first request is no longer queued: refused, and the second is not merged.
    let r4 = s.submit_request(NewRequest::new("b", t(4))).await.unwrap();
    assert!(matches!(
        s.start_build(vec![r1, r4], "w", Lease(4), t(4)).await,
        Err(Error::RequestState { .. })
    ));
    let r = s.get_request(r4).await.unwrap().unwrap();
    assert_eq!((r.state, r.merged_into), (RequestState::Queued, None));
    assert!(matches!(
        s.start_build(Vec::new(), "w", Lease(5), t(5)).await,
        Err(Error::Invalid(_))
    ));
}

async fn retry_puts_the_request_and_its_riders_back_in_the_queue(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let r1 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    let r2 = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
    s.claim_request(r1, Lease(1), t(2)).await.unwrap();
    s.merge_request(r2, r1, t(2)).await.unwrap();
    let (build, _) = s.create_build(r1, "w", Lease(1), t(3)).await.unwrap();
    s.finish_build(build, Lease(1), BuildResult::Retry, t(4))
        .await
        .unwrap();
    let queued = s.queued_requests().await.unwrap();
    assert_eq!(queued.iter().map(|r| r.id).collect::<Vec<_>>(), [r1, r2]);
    assert!(queued.iter().all(|r| r.merged_into.is_none()));
    // Dispatched again: the next number, the old lease dead.
    s.claim_request(r1, Lease(2), t(5)).await.unwrap();
    let (again, number) = s.create_build(r1, "w", Lease(2), t(5)).await.unwrap();
    assert_eq!(number, 2);
    assert!(matches!(
        s.start_step(build, Lease(1), 0, "late", t(6)).await,
        Err(Error::StaleLease { .. })
    ));
    s.start_step(again, Lease(2), 0, "ok", t(6)).await.unwrap();
}

async fn builds_are_numbered_per_builder_and_need_the_claim_lease(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let (_, a1) = running_build(&s, "a", 1).await;
    let (_, a2) = running_build(&s, "a", 2).await;
    let (_, b1) = running_build(&s, "b", 3).await;
    let n = |id| {
        let s = s.clone();
        async move { s.get_build(id).await.unwrap().unwrap().build.number }
    };
    assert_eq!((n(a1).await, n(a2).await, n(b1).await), (1, 2, 1));

    let req = s.submit_request(NewRequest::new("a", t(1))).await.unwrap();
    assert!(matches!(
        s.create_build(req, "w", Lease(4), t(1)).await,
        Err(Error::RequestState { .. })
    ));
    s.claim_request(req, Lease(4), t(1)).await.unwrap();
    assert!(matches!(
        s.create_build(req, "w", Lease(5), t(1)).await,
        Err(Error::RequestLease { .. })
    ));
    let (build, number) = s.create_build(req, "w2", Lease(4), t(1)).await.unwrap();
    assert_eq!(number, 3);
    // Nothing runs twice at once.
    assert!(matches!(
        s.create_build(req, "w3", Lease(4), t(1)).await,
        Err(Error::BuildRunning { build: b, .. }) if b == build
    ));
    assert_eq!(
        s.find_build("a", 3).await.unwrap().map(|b| b.id),
        Some(build)
    );
    assert_eq!(s.find_build("a", 4).await.unwrap(), None);
}

async fn steps_are_written_only_with_the_current_lease(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let (req, build) = running_build(&s, "b", 10).await;
    let step = s
        .start_step(build, Lease(10), 0, "checkout", t(4))
        .await
        .unwrap();
    assert!(matches!(
        s.start_step(build, Lease(10), 0, "again", t(4)).await,
        Err(Error::StepExists { index: 0, .. })
    ));
    s.set_step_description(build, Lease(10), 0, "checking out")
        .await
        .unwrap();
    s.add_step_url(
        build,
        Lease(10),
        0,
        StepUrl {
            name: "report".into(),
            url: "https://example.org/r".into(),
        },
    )
    .await
    .unwrap();
    s.set_build_state(build, Lease(10), "running checkout")
        .await
        .unwrap();
    s.set_build_properties(build, Lease(10), json!({"revision": "abc"}))
        .await
        .unwrap();

    // A stale lease changes nothing.
    for stale in [Lease(9), Lease(11)] {
        assert!(matches!(
            s.finish_step(build, stale, 0, outcome(BuildResult::Failure), t(5))
                .await,
            Err(Error::StaleLease { .. })
        ));
        assert!(matches!(
            s.set_build_state(build, stale, "x").await,
            Err(Error::StaleLease { .. })
        ));
        assert!(matches!(
            s.finish_build(build, stale, BuildResult::Failure, t(5))
                .await,
            Err(Error::StaleLease { .. })
        ));
    }
    assert!(matches!(
        s.finish_step(build, Lease(10), 5, outcome(BuildResult::Success), t(5))
            .await,
        Err(Error::StepNotFound { index: 5, .. })
    ));
    s.finish_step(build, Lease(10), 0, outcome(BuildResult::Success), t(6))
        .await
        .unwrap();
    s.start_step(build, Lease(10), 1, "test", t(6))
        .await
        .unwrap();
    let details = s.get_build(build).await.unwrap().unwrap();
    assert_eq!(details.build.request, req);
    assert_eq!(details.build.worker, "w1");
    assert_eq!(details.build.state_string, "running checkout");
    assert_eq!(details.build.properties, json!({"revision": "abc"}));
    assert_eq!(details.build.finished_at, None);
    let s0 = &details.steps[0].step;
    assert_eq!(s0.id, step);
    assert_eq!(s0.name, "checkout");
    assert_eq!(s0.result, Some(BuildResult::Success));
    assert_eq!(s0.description, "done: success");
    assert_eq!(s0.finished_at, Some(t(6)));
    assert_eq!(s0.urls.len(), 1);
    assert_eq!(details.steps[1].step.result, None);

    s.finish_build(build, Lease(10), BuildResult::Failure, t(7))
        .await
        .unwrap();
    // After the build is over, even its own lease is stale.
    assert!(matches!(
        s.finish_step(build, Lease(10), 1, outcome(BuildResult::Success), t(8))
            .await,
        Err(Error::StaleLease { .. })
    ));
    assert!(matches!(
        s.open_log(
            build,
            Lease(10),
            1,
            "stdio",
            LogKind::Stdio,
            LogOptions::default()
        )
        .await,
        Err(Error::StaleLease { .. })
    ));
    let details = s.get_build(build).await.unwrap().unwrap();
    assert_eq!(details.build.result, Some(BuildResult::Failure));
    // The open step was closed with the build.
    assert_eq!(details.steps[1].step.result, Some(BuildResult::Failure));
    let r = s.get_request(req).await.unwrap().unwrap();
    assert_eq!(r.result, Some(BuildResult::Failure));
}

async fn a_log_writer_of_a_finished_build_is_refused(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let (_, build) = running_build(&s, "b", 1).await;
    s.start_step(build, Lease(1), 0, "s", t(1)).await.unwrap();
    let mut w = s
        .open_log(
            build,
            Lease(1),
            0,
            "stdio",
            LogKind::Stdio,
            LogOptions::default(),
        )
        .await
        .unwrap();
    w.write(Stream::Stdout, b"before\n").await.unwrap();
    w.flush().await.unwrap();
    s.finish_build(build, Lease(1), BuildResult::Exception, t(2))
        .await
        .unwrap();
    w.write(Stream::Stdout, b"after\n").await.unwrap();
    assert!(matches!(w.finish().await, Err(Error::StaleLease { .. })));
    let info = s.find_log(build, 0, "stdio").await.unwrap().unwrap();
    assert!(info.finished);
    let page = s
        .log_reader(info.id)
        .await
        .unwrap()
        .read_lines(0, 10)
        .await
        .unwrap();
    assert_eq!(page.lines.len(), 1);
    assert_eq!(page.lines[0].text, b"before");
}

async fn a_restart_finishes_interrupted_builds_and_requeues_their_requests(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (running1, running2, claimed, done, queued);
    let (b1, b2, bdone);
    {
        let s = db.open().await;
        (running1, b1) = running_build(&s, "a", 1).await;
        (running2, b2) = running_build(&s, "b", 2).await;
        s.start_step(b1, Lease(1), 0, "compile", t(4))
            .await
            .unwrap();
        let mut w = s
            .open_log(
                b1,
                Lease(1),
                0,
                "stdio",
                LogKind::Stdio,
                LogOptions::default(),
            )
            .await
            .unwrap();
        w.write(Stream::Stdout, b"half a log\n").await.unwrap();
        w.flush().await.unwrap();
        // The master dies here: the writer is never finished.
        std::mem::forget(w);
        (done, bdone) = running_build(&s, "a", 3).await;
        s.finish_build(bdone, Lease(3), BuildResult::Success, t(5))
            .await
            .unwrap();
        claimed = s.submit_request(NewRequest::new("a", t(6))).await.unwrap();
        s.claim_request(claimed, Lease(4), t(6)).await.unwrap();
        queued = s.submit_request(NewRequest::new("b", t(7))).await.unwrap();
    }

    let s = db.open().await;
    let report = s
        .mark_interrupted_builds(BuildResult::Retry, t(100))
        .await
        .unwrap();
    assert_eq!(report.builds, [b1, b2]);
    assert_eq!(report.requeued, [running1, running2, claimed]);
    for b in [b1, b2] {
        let d = s.get_build(b).await.unwrap().unwrap();
        assert_eq!(d.build.result, Some(BuildResult::Retry));
        assert_eq!(d.build.finished_at, Some(t(100)));
        assert!(d
            .steps
            .iter()
            .all(|st| st.step.result == Some(BuildResult::Retry)));
        assert!(d.steps.iter().flat_map(|st| &st.logs).all(|l| l.finished));
    }
    let d = s.get_build(bdone).await.unwrap().unwrap();
    assert_eq!(d.build.result, Some(BuildResult::Success));
    assert_eq!(d.build.finished_at, Some(t(5)));
    assert_eq!(
        s.get_request(done).await.unwrap().unwrap().state,
        RequestState::Complete
    );
    // Nothing lost: every unfinished request is queued again, in submission order.
    let ids: Vec<_> = s
        .queued_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [running1, running2, claimed, queued]);
    // The old dispatch cannot write; a new one runs the request again.
    assert!(matches!(
        s.finish_step(b1, Lease(1), 0, outcome(BuildResult::Success), t(101))
            .await,
        Err(Error::StaleLease { .. })
    ));
    s.claim_request(running1, Lease(50), t(101)).await.unwrap();
    let (again, number) = s
        .create_build(running1, "w2", Lease(50), t(101))
        .await
        .unwrap();
    assert_ne!(again, b1);
    assert_eq!(number, 3);
    // Called again (as at the next start), it interrupts only what runs now.
    let again_report = s
        .mark_interrupted_builds(BuildResult::Exception, t(102))
        .await
        .unwrap();
    assert_eq!(again_report.builds, [again]);
    assert_eq!(again_report.requeued, [running1]);
}

async fn builders_summary_and_build_pages(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let (_, a1) = running_build(&s, "a", 1).await;
    s.finish_build(a1, Lease(1), BuildResult::Success, t(5))
        .await
        .unwrap();
    let (_, a2) = running_build(&s, "a", 2).await;
    let (_, b1) = running_build(&s, "b", 3).await;
    s.submit_request(NewRequest::new("c", t(9))).await.unwrap();
    s.submit_request(NewRequest::new("a", t(9))).await.unwrap();

    let summary = s.builders_summary().await.unwrap();
    let names: Vec<_> = summary.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(summary[0].builds, 2);
    assert_eq!(summary[0].last_build.as_ref().map(|b| b.id), Some(a2));
    assert_eq!(summary[0].last_finished.as_ref().map(|b| b.id), Some(a1));
    assert_eq!(summary[0].queued, 1);
    assert_eq!(summary[1].last_build.as_ref().map(|b| b.id), Some(b1));
    assert_eq!(summary[1].last_finished, None);
    assert_eq!((summary[2].builds, summary[2].queued), (0, 1));

    let all = s
        .list_builds(None, None, 10, Properties::Read)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|b| b.id).collect::<Vec<_>>(), [b1, a2, a1]);
    assert!(all.iter().all(|b| b.properties.is_object()));
    let without = s
        .list_builds(None, None, 10, Properties::Skipped)
        .await
        .unwrap();
    let brief = |b: &abo_store::Build| (b.id, b.builder.clone(), b.number, b.result);
    assert_eq!(
        without.iter().map(brief).collect::<Vec<_>>(),
        all.iter().map(brief).collect::<Vec<_>>()
    );
    assert!(without.iter().all(|b| b.properties.is_null()));
    let of_a = s
        .list_builds(Some("a"), None, 1, Properties::Read)
        .await
        .unwrap();
    assert_eq!(of_a[0].id, a2);
    let next = s
        .list_builds(Some("a"), Some(of_a[0].id), 10, Properties::Read)
        .await
        .unwrap();
    assert_eq!(next.iter().map(|b| b.id).collect::<Vec<_>>(), [a1]);
    assert!(s
        .list_builds(Some("zz"), None, 10, Properties::Read)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.running_builds()
            .await
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [a2, b1]
    );
}

async fn unreadable_stored_values_are_errors_not_panics(backend: Backend) {
    let (db, s) = store_on(backend).await;
    let (_, build) = running_build(&s, "b", 1).await;
    s.start_step(build, Lease(1), 0, "s", t(1)).await.unwrap();
    db.sql(
        "UPDATE steps SET result = 'exploded';
         UPDATE builds SET properties = '{not json';",
    )
    .await;
    assert!(matches!(s.get_build(build).await, Err(Error::Corrupt(_))));
    assert!(matches!(
        s.list_builds(None, None, 5, Properties::Read).await,
        Err(Error::Corrupt(_))
    ));
    // A list without the properties does not read them.
    assert_eq!(
        s.list_builds(None, None, 5, Properties::Skipped)
            .await
            .unwrap()
            .len(),
        1
    );
}

on_both!(tokio::test => submitted_requests_are_durable_and_queued_in_order,
    of_two_claimers_one_wins,
    a_restart_finishes_interrupted_builds_and_requeues_their_requests,
    unreadable_stored_values_are_errors_not_panics, requeue_complete_and_merge, start_build_claims_merges_and_creates_at_once, retry_puts_the_request_and_its_riders_back_in_the_queue, builds_are_numbered_per_builder_and_need_the_claim_lease, steps_are_written_only_with_the_current_lease, a_log_writer_of_a_finished_build_is_refused, builders_summary_and_build_pages);

on_both!(tokio::test(flavor = "multi_thread", worker_threads = 2) =>
    two_masters_on_one_database_never_claim_the_same_request);

async fn two_masters_number_builds_and_write_logs_consistently(backend: Backend) {
    // Four tasks over two handles (two masters' connection sets) run whole builds of one
    // builder at once: every read-then-write (claim, build number, lease check, log
    // append) must behave as if they ran one after the other.
    let (db, a) = store_on(backend).await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for (k, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for i in 0..8 {
                let lease = Lease((k * 100 + i + 1) as u64);
                let req = s.submit_request(NewRequest::new("b", t(1))).await.unwrap();
                s.claim_request(req, lease, t(2)).await.unwrap();
                let (build, number) = s.create_build(req, "w", lease, t(3)).await.unwrap();
                s.start_step(build, lease, 0, "s", t(4)).await.unwrap();
                let mut w = s
                    .open_log(
                        build,
                        lease,
                        0,
                        "stdio",
                        LogKind::Stdio,
                        LogOptions::default(),
                    )
                    .await
                    .unwrap();
                for j in 0..4 {
                    w.write(Stream::Stdout, format!("{k} {i} {j}\n").as_bytes())
                        .await
                        .unwrap();
                    w.flush().await.unwrap();
                }
                assert_eq!(w.finish().await.unwrap().line_count, 4);
                s.finish_build(build, lease, BuildResult::Success, t(5))
                    .await
                    .unwrap();
                numbers.push(number);
            }
            numbers
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.extend(task.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=32).collect::<Vec<u32>>());

    // A log writer on one master racing the other master finishing its build: every write
    // lands before the finish or is refused with StaleLease, never after it.
    let (_, build) = running_build(&a, "c", 7).await;
    a.start_step(build, Lease(7), 0, "s", t(4)).await.unwrap();
    let mut w = a
        .open_log(
            build,
            Lease(7),
            0,
            "stdio",
            LogKind::Stdio,
            LogOptions::default(),
        )
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        let mut stored = 0u64;
        loop {
            if let Err(e) = w.write(Stream::Stdout, b"line\n").await {
                return (stored, e);
            }
            match w.flush().await {
                Ok(()) => stored += 1,
                Err(e) => return (stored, e),
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    b.finish_build(build, Lease(7), BuildResult::Cancelled, t(9))
        .await
        .unwrap();
    let (stored, err) = writer.await.unwrap();
    assert!(matches!(err, Error::StaleLease { .. }), "{err:?}");
    let log = &a.get_build(build).await.unwrap().unwrap().steps[0].logs[0];
    assert!(log.finished);
    assert_eq!(log.line_count, stored);
}

on_both!(tokio::test(flavor = "multi_thread", worker_threads = 2) =>
    two_masters_number_builds_and_write_logs_consistently);
