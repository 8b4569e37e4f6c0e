//! [`PollerSet`]: every poller of the plan, each in its own task, polling on its interval,
//! backing off while it fails, with a status per poller for the API.
//!
//! A poller's failure is its own: it is logged, shown in its status and retried later,
//! while the others keep polling. A poller whose URL or branches are unsafe never starts
//! and shows why.

use crate::backoff::{retry_delay, start_delay};
use crate::error::VcsError;
use crate::poller::{PollerOptions, PollerRuntime};
use crate::validate::redact_url;
use abo_plan::Vcs;
use abo_store::{Change, Store, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a poller is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollerState {
    /// Waiting for its next poll (see `next_attempt`).
    Waiting,
    /// Polling now.
    Polling,
    /// Never started: its URL, a branch or its working directory is unsafe (see
    /// `last_error`).
    Refused,
    /// Stopped by shutdown.
    Stopped,
}

/// A poller's status, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PollerStatus {
    /// The poller's name, its working directory (`gitpoller/<hash>`).
    pub poller: String,
    /// Its VCS.
    pub vcs: Vcs,
    /// The URL polled, password masked.
    pub url: String,
    /// The branches watched (none for bzr).
    pub branches: Vec<String>,
    /// Milliseconds between polls.
    pub interval_ms: u64,
    /// What it is doing.
    pub state: PollerState,
    /// When the last poll started.
    pub last_attempt: Option<Timestamp>,
    /// When a poll last succeeded.
    pub last_success: Option<Timestamp>,
    /// Why the last poll failed, `None` once one succeeds; why it was refused.
    pub last_error: Option<String>,
    /// When a poll last failed.
    pub last_error_at: Option<Timestamp>,
    /// Polls failed in a row (0 after a success).
    pub consecutive_failures: u32,
    /// When it polls next.
    pub next_attempt: Option<Timestamp>,
    /// Watched branches the repository lacked at the last successful poll.
    pub missing_branches: Vec<String>,
    /// Changes reported since the master started.
    pub changes_found: u64,
}

impl PollerStatus {
    fn new(plan: &abo_plan::Poller, interval: Duration, state: PollerState) -> PollerStatus {
        PollerStatus {
            poller: plan.workdir.clone(),
            vcs: plan.vcs,
            url: redact_url(&plan.url),
            branches: plan.branches.clone(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            state,
            last_attempt: None,
            last_success: None,
            last_error: None,
            last_error_at: None,
            consecutive_failures: 0,
            next_attempt: None,
            missing_branches: Vec::new(),
            changes_found: 0,
        }
    }
}

type Statuses = Arc<Mutex<BTreeMap<String, PollerStatus>>>;

/// The statuses, also after a panic elsewhere: they are plain data, always consistent.
fn lock(statuses: &Statuses) -> MutexGuard<'_, BTreeMap<String, PollerStatus>> {
    statuses
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn after(delay: Duration) -> Timestamp {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    Timestamp(Timestamp::now().0.saturating_add(ms))
}

/// The running pollers. Dropping it does not stop them: call [`PollerSet::shutdown`], or
/// cancel the token given to [`PollerSet::start`] and await [`PollerSet::wait`].
#[derive(Debug)]
pub struct PollerSet {
    statuses: Statuses,
    wakers: BTreeMap<String, Arc<Notify>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl PollerSet {
    /// Starts one task per poller of the plan, mirrors under `master_dir`. New changes are
    /// stored, then sent to `changes` if given (the schedulers' input); pollers stop when
    /// `cancel` is cancelled. Must be called within a tokio runtime.
    pub fn start(
        master_dir: &Path,
        pollers: &[abo_plan::Poller],
        store: Store,
        options: PollerOptions,
        changes: Option<mpsc::Sender<Change>>,
        cancel: &CancellationToken,
    ) -> PollerSet {
        let mut runtimes = Vec::new();
        let mut refused = Vec::new();
        for plan in pollers {
            match PollerRuntime::new(master_dir, plan, store.clone(), &options) {
                Ok(runtime) => runtimes.push(runtime),
                Err(error) => refused.push((plan.clone(), error)),
            }
        }
        PollerSet::from_runtimes(runtimes, refused, options, changes, cancel)
    }

    /// [`PollerSet::start`] with runtimes built by the caller, and the pollers it refused
    /// with why: tests use it to poll on sub-second intervals.
    pub fn from_runtimes(
        runtimes: Vec<PollerRuntime>,
        refused: Vec<(abo_plan::Poller, VcsError)>,
        options: PollerOptions,
        changes: Option<mpsc::Sender<Change>>,
        cancel: &CancellationToken,
    ) -> PollerSet {
        let cancel = cancel.child_token();
        let tracker = TaskTracker::new();
        let statuses: Statuses = Arc::default();
        let mut wakers = BTreeMap::new();
        for (plan, error) in refused {
            tracing::error!(poller = %plan.workdir, url = %redact_url(&plan.url), %error, "poller refused");
            let mut status = PollerStatus::new(
                &plan,
                Duration::from_secs(plan.interval),
                PollerState::Refused,
            );
            status.last_error = Some(error.to_string());
            lock(&statuses).insert(plan.workdir.clone(), status);
        }
        for runtime in runtimes {
            let name = runtime.name().to_string();
            if lock(&statuses).contains_key(&name) {
                tracing::error!(poller = %name, "two pollers share a working directory: the second is ignored");
                continue;
            }
            let status =
                PollerStatus::new(runtime.plan(), runtime.interval(), PollerState::Waiting);
            lock(&statuses).insert(name.clone(), status);
            let waker = Arc::new(Notify::new());
            wakers.insert(name.clone(), waker.clone());
            let task = PollTask {
                runtime,
                options: options.clone(),
                statuses: statuses.clone(),
                waker,
                changes: changes.clone(),
                cancel: cancel.clone(),
            };
            tracker.spawn(task.run());
        }
        tracker.close();
        PollerSet {
            statuses,
            wakers,
            cancel,
            tracker,
        }
    }

    /// Every poller's status, by name.
    pub fn statuses(&self) -> Vec<PollerStatus> {
        lock(&self.statuses).values().cloned().collect()
    }

    /// One poller's status.
    pub fn status(&self, poller: &str) -> Option<PollerStatus> {
        lock(&self.statuses).get(poller).cloned()
    }

    /// Makes `poller` poll now (a webhook said its repository changed) instead of at the
    /// end of its wait; if it is polling, it polls again right after. `false` for an
    /// unknown or refused poller.
    pub fn poll_now(&self, poller: &str) -> bool {
        match self.wakers.get(poller) {
            Some(waker) => {
                waker.notify_one();
                true
            }
            None => false,
        }
    }

    /// Stops every poller (a poll in progress is abandoned, its commands killed; what it
    /// stored stays) and waits for their tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }

    /// Waits until every poller task has ended (after cancellation).
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}

/// One poller's task.
struct PollTask {
    runtime: PollerRuntime,
    options: PollerOptions,
    statuses: Statuses,
    waker: Arc<Notify>,
    changes: Option<mpsc::Sender<Change>>,
    cancel: CancellationToken,
}

impl PollTask {
    fn update(&self, f: impl FnOnce(&mut PollerStatus)) {
        if let Some(status) = lock(&self.statuses).get_mut(self.runtime.name()) {
            f(status);
        }
    }

    /// Sleeps `delay` (shown as the next attempt), or less if woken; `false` if cancelled.
    async fn wait(&self, delay: Duration) -> bool {
        self.update(|s| {
            s.state = PollerState::Waiting;
            s.next_attempt = Some(after(delay));
        });
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
            _ = self.waker.notified() => true,
        }
    }

    async fn run(self) {
        let name = self.runtime.name().to_string();
        let url = self.runtime.display_url();
        let interval = self.runtime.interval();
        let spread = self.options.start_spread.min(interval);
        let mut failures: u32 = 0;
        let mut delay = start_delay(spread, fastrand::f64());
        while self.wait(delay).await {
            self.update(|s| {
                s.state = PollerState::Polling;
                s.last_attempt = Some(Timestamp::now());
                s.next_attempt = None;
            });
            let result = tokio::select! {
                _ = self.cancel.cancelled() => break,
                result = self.runtime.poll_once() => result,
            };
            delay = match result {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(poller = %name, %url, "polling again after {failures} failures");
                    }
                    failures = 0;
                    if report.first_poll {
                        tracing::info!(poller = %name, %url, "first poll: heads recorded");
                    }
                    if !report.changes.is_empty() {
                        tracing::info!(poller = %name, %url, changes = report.changes.len(), "new changes");
                    }
                    let found = report.changes.len() as u64;
                    self.update(|s| {
                        s.last_success = Some(Timestamp::now());
                        s.last_error = None;
                        s.consecutive_failures = 0;
                        s.missing_branches = report.missing_branches.clone();
                        s.changes_found += found;
                    });
                    if let Some(sink) = &self.changes {
                        for change in report.changes {
                            tokio::select! {
                                _ = self.cancel.cancelled() => break,
                                sent = sink.send(change) => if sent.is_err() { break },
                            }
                        }
                    }
                    interval
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let retry = retry_delay(
                        failures,
                        interval,
                        self.options.backoff_initial,
                        self.options.backoff_max,
                        fastrand::f64(),
                    );
                    tracing::warn!(
                        poller = %name, %url, %error, failures,
                        retry_in_ms = retry.as_millis() as u64,
                        "poll failed"
                    );
                    let text = error.to_string();
                    self.update(|s| {
                        s.last_error = Some(text);
                        s.last_error_at = Some(Timestamp::now());
                        s.consecutive_failures = failures;
                    });
                    retry
                }
            };
        }
        self.update(|s| {
            s.state = PollerState::Stopped;
            s.next_attempt = None;
        });
    }
}
