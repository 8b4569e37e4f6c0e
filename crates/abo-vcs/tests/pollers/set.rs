//! The poller set: intervals, back-off on failure, statuses, other pollers unaffected,
//! poll-now, shutdown.

use crate::common::{options, Fixture};
use crate::git;
use abo_plan::Vcs;
use abo_vcs::{PollerRuntime, PollerSet, PollerState};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Polls `check` every 20 ms until it holds, for at most 20 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unreachable_repository_backs_off_while_others_poll() {
    let fx = Fixture::new().await;
    let up = git::Up::new(&fx, "up");
    let good = fx.plan(Vcs::Git, &up.url(), &["master"]);
    let missing_path = fx.path("not-yet");
    let bad = fx.plan(Vcs::Git, missing_path.to_str().unwrap(), &["master"]);
    let refused = fx.plan(Vcs::Git, "ext::sh", &["master"]);
    let interval = Duration::from_millis(100);
    let runtime = |plan: &abo_plan::Poller| {
        PollerRuntime::new(&fx.master(), plan, fx.store.clone(), &options())
            .map(|rt| rt.with_interval(interval))
    };
    let refusal = runtime(&refused).unwrap_err();
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let set = PollerSet::from_runtimes(
        vec![runtime(&good).unwrap(), runtime(&bad).unwrap()],
        vec![(refused.clone(), refusal)],
        options(),
        Some(tx),
        &cancel,
    );

    // The refused poller never starts and says why.
    let status = set.status(&refused.workdir).unwrap();
    assert_eq!(status.state, PollerState::Refused);
    assert!(status.last_error.unwrap().contains("remote helper"));
    assert!(!set.poll_now(&refused.workdir));

    // The unreachable one fails, is reported, and retries with a growing delay.
    eventually("four failures", || {
        set.status(&bad.workdir).unwrap().consecutive_failures >= 4
    })
    .await;
    let status = set.status(&bad.workdir).unwrap();
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("git ls-remote"), "{error}");
    assert!(status.last_success.is_none());
    assert!(status.last_error_at.is_some());
    // Back-off starts at 50 ms, doubles, and is capped at 400 ms: four failures take at
    // least 50 + 100 + 200 ms (less jitter), where a fixed 50 ms retry fails seven times.
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Meanwhile the healthy poller works: first poll, then a new commit arrives.
    eventually("the good poller's first poll", || {
        set.status(&good.workdir).unwrap().last_success.is_some()
    })
    .await;
    let rev = up.commit("a", "1\n", "while the other fails");
    let change = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a change within 20 s")
        .unwrap();
    assert_eq!(change.revision, rev);
    assert_eq!(change.repository, up.url());
    let status = set.status(&good.workdir).unwrap();
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
    assert_eq!(status.changes_found, 1);
    assert!(set.status(&bad.workdir).unwrap().consecutive_failures >= 4);

    // The repository appears: the next attempt succeeds and clears the error.
    std::fs::rename(&up.dir, &missing_path).unwrap();
    assert!(set.poll_now(&bad.workdir));
    eventually("the bad poller's recovery", || {
        let s = set.status(&bad.workdir).unwrap();
        s.last_success.is_some() && s.last_error.is_none() && s.consecutive_failures == 0
    })
    .await;

    cancel.cancel();
    set.wait().await;
    for plan in [&good, &bad] {
        assert_eq!(
            set.status(&plan.workdir).unwrap().state,
            PollerState::Stopped
        );
    }
    assert_eq!(
        set.status(&refused.workdir).unwrap().state,
        PollerState::Refused
    );
}

#[tokio::test]
async fn backoff_delays_grow_until_capped() {
    let fx = Fixture::new().await;
    let bad = fx.plan(Vcs::Git, fx.path("nothing").to_str().unwrap(), &["master"]);
    let opts = abo_vcs::PollerOptions {
        backoff_initial: Duration::from_millis(40),
        backoff_max: Duration::from_millis(320),
        ..options()
    };
    let runtime = PollerRuntime::new(&fx.master(), &bad, fx.store.clone(), &opts)
        .unwrap()
        .with_interval(Duration::from_millis(100));
    let cancel = CancellationToken::new();
    let set = PollerSet::from_runtimes(vec![runtime], Vec::new(), opts, None, &cancel);
    let mut gaps = Vec::new();
    let mut seen = 0;
    let mut last = Instant::now();
    while gaps.len() < 6 {
        let s = set.status(&bad.workdir).unwrap();
        if s.consecutive_failures > seen {
            seen = s.consecutive_failures;
            let now = Instant::now();
            if seen > 1 {
                gaps.push(now - last);
            }
            last = now;
            // The status says when the next attempt is, once the failure is recorded.
            assert!(s.next_attempt.is_some() || s.state == PollerState::Polling);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(seen < 50, "no back-off");
    }
    // 40, 80, 160, 320, 320, 320 ms (±10% jitter, plus the time a failing git takes).
    let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    assert!(ms[0] >= 30 && ms[1] >= 65 && ms[2] >= 140, "{ms:?}");
    assert!(ms[3] >= 280 && ms[5] >= 280, "{ms:?}");
    assert!(ms[5] < 1000, "capped: {ms:?}");
    cancel.cancel();
    set.wait().await;
    assert_eq!(
        set.status(&bad.workdir).unwrap().state,
        PollerState::Stopped
    );
}
