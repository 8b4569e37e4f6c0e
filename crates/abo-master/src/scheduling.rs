//! Changes drive builds. Every new change (from a poller, a webhook or `POST
//! /api/v1/changes`) is stored first, then published on the [`ChangeFeed`]; the scheduler
//! task ([`SchedulerTask`]) owns the pollers and the pure
//! [`Schedulers`](abo_engine::scheduler::Schedulers), feeds them changes and the clock, and
//! carries out what they decide:
//!
//! - a timer (re)started: persisted with the changes gathered so far, so a restart neither
//!   loses nor repeats it;
//! - a timer fired (or a nightly time came): one build request per builder, stored in the
//!   same transaction as the timer's removal, then handed to the build runner (mergeable:
//!   requests still waiting for a worker are built together).
//!
//! A reconfiguration reloads the schedulers (pending timers of schedulers that remain are
//! kept) and, when the plan's pollers changed, replaces the pollers (their last seen
//! revisions are in the store, so nothing is re-reported or missed); unchanged pollers go
//! on polling undisturbed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use abo_engine::scheduler::{ChangeRef, PendingTimer, SchedulerAction, Schedulers, Trigger};
use abo_plan::Plan;
use abo_store::{Change, Store};
use abo_vcs::{PollerOptions, PollerSet, PollerStatus};
use tokio::sync::{mpsc, oneshot, RwLock};
use tokio_util::sync::CancellationToken;

use crate::runner::RunnerHandle;

/// Where stored changes are published for the schedulers. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ChangeFeed {
    tx: mpsc::UnboundedSender<Change>,
}

impl ChangeFeed {
    /// A feed and the receiving end the scheduler task reads.
    pub(crate) fn new() -> (ChangeFeed, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ChangeFeed { tx }, rx)
    }

    /// Publishes a change already stored. Unbounded: changes are few and already on disk,
    /// and a publisher must never wait on the schedulers.
    pub(crate) fn publish(&self, change: Change) {
        let _ = self.tx.send(change);
    }
}

/// The running pollers, readable by the API while the scheduler task replaces them.
pub(crate) type Pollers = Arc<RwLock<Option<PollerSet>>>;

/// The pollers' statuses (empty while none run).
pub(crate) async fn poller_statuses(pollers: &Pollers) -> Vec<PollerStatus> {
    pollers
        .read()
        .await
        .as_ref()
        .map(PollerSet::statuses)
        .unwrap_or_default()
}

enum Control {
    Reload {
        plan: Arc<Plan>,
        done: oneshot::Sender<()>,
    },
}

/// The way to the scheduler task.
#[derive(Clone)]
pub(crate) struct SchedulingHandle {
    control: mpsc::UnboundedSender<Control>,
    pub pollers: Pollers,
}

impl SchedulingHandle {
    /// Puts a new plan in force: new pollers, reloaded schedulers. Returns once done.
    pub async fn reload(&self, plan: Arc<Plan>) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Reload { plan, done }).is_ok() {
            let _ = finished.await;
        }
    }
}

/// What the scheduler task needs.
pub(crate) struct SchedulingSetup {
    pub store: Store,
    pub plan: Arc<Plan>,
    pub master_dir: PathBuf,
    pub time_zone: jiff::tz::TimeZone,
    pub poller_options: PollerOptions,
    pub runner: RunnerHandle,
    pub feed: mpsc::UnboundedReceiver<Change>,
    pub shutdown: CancellationToken,
}

/// The task that runs pollers and schedulers; see the module documentation.
pub(crate) struct SchedulerTask {
    store: Store,
    master_dir: PathBuf,
    poller_options: PollerOptions,
    runner: RunnerHandle,
    schedulers: Schedulers,
    feed: mpsc::UnboundedReceiver<Change>,
    polled_tx: mpsc::Sender<Change>,
    polled: mpsc::Receiver<Change>,
    control: mpsc::UnboundedReceiver<Control>,
    pollers: Pollers,
    /// The plan's pollers the running set was started from.
    polling: Vec<abo_plan::Poller>,
    shutdown: CancellationToken,
}

/// How soon a timer whose firing could not be stored fires again.
const STORE_RETRY: Duration = Duration::from_secs(10);

fn now() -> abo_engine::Timestamp {
    abo_engine::Timestamp(abo_store::Timestamp::now().0)
}

impl SchedulerTask {
    /// Restores the persisted timers and starts the pollers.
    pub(crate) async fn start(
        setup: SchedulingSetup,
    ) -> Result<(SchedulerTask, SchedulingHandle), abo_store::Error> {
        let mut schedulers = Schedulers::new(&setup.plan, setup.time_zone.clone(), now());
        let timers: Vec<PendingTimer> = setup
            .store
            .scheduler_timers()
            .await?
            .into_iter()
            .map(|t| PendingTimer {
                scheduler: t.scheduler,
                fires_at: abo_engine::Timestamp(t.fires_at.0),
                changes: t.changes.iter().map(|c| c.0).collect(),
            })
            .collect();
        if !timers.is_empty() {
            tracing::info!(timers = timers.len(), "scheduler timers restored");
        }
        let restored = schedulers.restore(now(), timers);
        let (polled_tx, polled) = mpsc::channel(1024);
        let (control_tx, control) = mpsc::unbounded_channel();
        let pollers: Pollers = Arc::default();
        let mut task = SchedulerTask {
            store: setup.store,
            master_dir: setup.master_dir,
            poller_options: setup.poller_options,
            runner: setup.runner,
            schedulers,
            feed: setup.feed,
            polled_tx,
            polled,
            control,
            pollers: pollers.clone(),
            polling: Vec::new(),
            shutdown: setup.shutdown,
        };
        task.carry_out(restored).await;
        task.start_pollers(&setup.plan).await;
        Ok((
            task,
            SchedulingHandle {
                control: control_tx,
                pollers,
            },
        ))
    }

    async fn start_pollers(&mut self, plan: &Plan) {
        let set = PollerSet::start(
            &self.master_dir,
            &plan.pollers,
            self.store.clone(),
            self.poller_options.clone(),
            Some(self.polled_tx.clone()),
            &self.shutdown,
        );
        if !plan.pollers.is_empty() {
            tracing::info!(pollers = plan.pollers.len(), "pollers started");
        }
        *self.pollers.write().await = Some(set);
        self.polling = plan.pollers.clone();
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self) {
        loop {
            let deadline = self.schedulers.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let wait = at.0.saturating_sub(now().0);
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(change) = self.feed.recv() => self.on_change(change).await,
                Some(change) = self.polled.recv() => self.on_change(change).await,
                Some(control) = self.control.recv() => match control {
                    Control::Reload { plan, done } => {
                        self.reload(plan).await;
                        let _ = done.send(());
                    }
                },
                () = sleep => {}
            }
            let due = self.schedulers.due(now());
            self.carry_out(due).await;
        }
        if let Some(set) = self.pollers.write().await.take() {
            set.shutdown().await;
        }
    }

    async fn on_change(&mut self, change: Change) {
        let change = ChangeRef {
            id: change.id.0,
            repository: change.repository,
            branch: change.branch,
        };
        let actions = self.schedulers.on_change(now(), &change);
        if actions.is_empty() {
            tracing::debug!(change = change.id, repository = %change.repository, branch = %change.branch, "no scheduler watches this change");
        }
        self.carry_out(actions).await;
    }

    async fn reload(&mut self, plan: Arc<Plan>) {
        let actions = self.schedulers.reload(&plan, now());
        self.carry_out(actions).await;
        if plan.pollers == self.polling {
            // Same repositories, branches and intervals: the running pollers go on, without
            // the burst of polls (and the lost back-off) a restart of all of them would cost.
            tracing::debug!("pollers unchanged by the new configuration");
            return;
        }
        if let Some(old) = self.pollers.write().await.take() {
            // A poll in progress is abandoned; what it stored stays, and the new poller
            // starts from the last seen revisions in the store.
            old.shutdown().await;
        }
        self.start_pollers(&plan).await;
    }

    async fn carry_out(&mut self, actions: Vec<SchedulerAction>) {
        for action in actions {
            let retry = match &action {
                SchedulerAction::Fire {
                    scheduler,
                    changes,
                    trigger: Trigger::TreeStable,
                    ..
                } => Some(PendingTimer {
                    scheduler: scheduler.clone(),
                    fires_at: abo_engine::Timestamp(now().0 + STORE_RETRY.as_millis() as u64),
                    changes: changes.clone(),
                }),
                _ => None,
            };
            if let Err(e) = self.act(action).await {
                tracing::error!("scheduler: cannot store: {e}");
                // The fired timer is still in the store but no longer in the schedulers:
                // give it back to them, to fire again shortly (the store's copy is what a
                // restart would find anyway).
                if let Some(timer) = retry {
                    let _ = self.schedulers.restore(now(), [timer]);
                }
            }
        }
    }

    async fn act(&mut self, action: SchedulerAction) -> Result<(), abo_store::Error> {
        match action {
            SchedulerAction::SetTimer {
                scheduler,
                fires_at,
                changes,
            } => {
                let ids = changes.into_iter().map(abo_store::ChangeId).collect();
                self.store
                    .set_scheduler_timer(&scheduler, abo_store::Timestamp(fires_at.0), ids)
                    .await
            }
            SchedulerAction::DropTimer { scheduler } => {
                self.store.delete_scheduler_timer(&scheduler).await?;
                Ok(())
            }
            SchedulerAction::Fire {
                scheduler,
                builders,
                changes,
                reason,
                trigger,
            } => {
                self.fire(&scheduler, trigger, builders, changes, reason)
                    .await
            }
        }
    }

    /// One request per builder, stored with the timer's removal, then dispatched. No
    /// properties: requests of one builder that wait together are then built together
    /// (the changes are linked to each request, and the buildout fetches its own heads).
    async fn fire(
        &mut self,
        scheduler: &str,
        trigger: Trigger,
        builders: Vec<String>,
        changes: Vec<u64>,
        reason: String,
    ) -> Result<(), abo_store::Error> {
        let submitted_at = abo_store::Timestamp::now();
        let requests = builders
            .iter()
            .map(|builder| abo_store::NewRequest {
                builder: builder.clone(),
                properties: serde_json::Value::Object(serde_json::Map::new()),
                reason: reason.clone(),
                submitted_at,
                changes: changes.iter().copied().map(abo_store::ChangeId).collect(),
            })
            .collect();
        let ids = match trigger {
            Trigger::TreeStable => self.store.fire_scheduler_timer(scheduler, requests).await?,
            // A nightly build leaves the scheduler's tree-stable timer (if any) running.
            Trigger::Nightly => self.store.submit_requests(requests).await?,
        };
        tracing::info!(%scheduler, requests = ids.len(), changes = changes.len(), %reason, "scheduler fired");
        for (id, builder) in ids.into_iter().zip(builders) {
            self.runner.submitted(abo_engine::NewRequest {
                id: abo_engine::RequestId(id.0),
                builder: builder.as_str().into(),
                properties: BTreeMap::new(),
                reason: reason.clone(),
                submitted_at: abo_engine::Timestamp(submitted_at.0),
                mergeable: true,
            });
        }
        Ok(())
    }
}
