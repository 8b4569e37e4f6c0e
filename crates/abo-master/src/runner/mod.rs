//! The build runner: the one task that owns the [`Engine`] and feeds it what happens
//! (workers connecting and lost, requests submitted, steps finished, stops asked for), and
//! carries out what it decides, in order, against the [`Store`] and the workers.
//!
//! The rules it keeps (the engine's contract):
//! - **Persist first, then tell.** A request is in the store before the engine hears of it;
//!   a build is created in the store (`start_build`: claim, merges and build in one
//!   transaction) before the engine gets `BuildCreated`.
//! - **Actions in order.** The actions of one `handle` call are carried out one after the
//!   other; events they produce (`BuildCreated`, a failed `RunStep`) are queued and handled
//!   before any outside input.
//! - **Leases.** Every build row is written with the lease of its dispatch (the engine's
//!   lease offset by a per-start epoch, so leases never repeat across restarts); a step task
//!   whose build was taken away finds its writes refused by the store.
//! - **Rows come from the engine.** Step results and build results are written only from
//!   `RecordStep` and `FinishBuild`; a step row is opened when its `RunStep` starts it (so
//!   its logs have a place while it runs).
//!
//! Step work (worker commands, transfers, master commands, log analysis) runs in one
//! tracked task per step ([`step`]), which answers with `StepFinished`.

mod paths;
mod step;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use abo_engine::{
    Action, BuildId, BuildResult, Engine, Event, Lease, NewRequest, RequestId, StepOutcome,
    Timestamp, WorkerName,
};
use abo_plan::{Plan, Step, StepKind};
use abo_store::{LogOptions, Masker, Store};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::BuildSetup;
use crate::error::Error;
use crate::handle::WorkerConnection;
use crate::registry::{RegistryEvent, WorkerRegistry};

pub(crate) use paths::resolve_under;

/// The settings key holding the number of master starts, from which leases are offset.
const LEASE_EPOCH_KEY: &str = "lease-epoch";

/// What every part of the build runtime shares: the store, the plan, where files go, and
/// how secrets are masked.
pub(crate) struct Shared {
    pub store: Store,
    /// The current plan; replaced whole by a reconfiguration (builds keep the steps they
    /// started with).
    plan: RwLock<Arc<Plan>>,
    pub master_dir: PathBuf,
    /// Canonical (symlinks resolved), created at start.
    pub artifacts_dir: PathBuf,
    pub allowed_roots: Vec<PathBuf>,
    pub log_options: LogOptions,
    /// For whole values (properties, descriptions, API answers).
    pub masker: Masker,
    /// Forge secrets and URL rewriting, for pushed changes (webhooks, `POST changes`);
    /// replaced by a reconfiguration.
    push: RwLock<Arc<crate::webhook::PushSettings>>,
}

impl Shared {
    /// The plan in force now.
    pub fn plan(&self) -> Arc<Plan> {
        self.plan
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts a new plan in force (a reconfiguration).
    pub fn set_plan(&self, plan: Arc<Plan>) {
        *self
            .plan
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = plan;
    }

    /// The push settings in force now.
    pub fn push(&self) -> Arc<crate::webhook::PushSettings> {
        self.push
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts new push settings in force (a reconfiguration).
    pub fn set_push(&self, push: crate::webhook::PushSettings) {
        *self
            .push
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(push);
    }

    /// The builder's entry in the current plan.
    pub fn builder(&self, name: &str) -> Option<abo_plan::Builder> {
        self.plan()
            .builders
            .iter()
            .find(|b| b.name == name)
            .cloned()
    }

    /// Masks every secret in a value.
    pub fn mask(&self, s: &str) -> String {
        self.masker.mask_str(s)
    }

    /// Properties as stored and shown (API answers, build rows): every secret masked.
    pub fn masked_properties(&self, props: &BTreeMap<String, String>) -> serde_json::Value {
        serde_json::Value::Object(
            props
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(self.mask(v))))
                .collect(),
        )
    }
}

/// The store and plan prepared before anything listens: interrupted builds are marked,
/// the queue is read back.
pub(crate) struct Prepared {
    pub shared: Arc<Shared>,
    restored: Vec<NewRequest>,
    lease_base: u64,
}

/// Opens the store, marks what a previous run left running (`retry`: their requests are
/// queued again), and reads the queue to restore.
pub(crate) async fn prepare(
    setup: &BuildSetup,
    extra_secrets: &[String],
) -> Result<Prepared, Error> {
    let store = Store::open(&setup.database).await?;
    std::fs::create_dir_all(&setup.artifacts_dir).map_err(|e| {
        Error::Setup(format!(
            "cannot create the artifacts directory {}: {e}",
            setup.artifacts_dir.display()
        ))
    })?;
    let artifacts_dir = std::fs::canonicalize(&setup.artifacts_dir)
        .map_err(|e| Error::Setup(format!("{}: {e}", setup.artifacts_dir.display())))?;
    let secrets: Vec<String> = setup
        .secrets
        .iter()
        .chain(extra_secrets)
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    let masker = Masker::new(&secrets)?;
    let log_options = LogOptions::default()
        .with_cap(setup.log_cap_bytes)
        .with_masker(masker.clone());
    let now = abo_store::Timestamp::now();
    let interrupted = store
        .mark_interrupted_builds(abo_store::BuildResult::Retry, now)
        .await?;
    if !interrupted.builds.is_empty() {
        tracing::warn!(
            builds = ?interrupted.builds.iter().map(|b| b.0).collect::<Vec<_>>(),
            "builds interrupted by the previous stop are marked retry; their requests are queued again"
        );
    }
    // Leases of this run start above every lease of earlier runs.
    let epoch = match store.setting(LEASE_EPOCH_KEY).await? {
        Some(v) => v.trim().parse::<u64>().unwrap_or(0) + 1,
        None => 1,
    };
    store
        .set_setting(LEASE_EPOCH_KEY, &epoch.to_string())
        .await?;
    let restored = store
        .queued_requests()
        .await?
        .into_iter()
        .map(|r| NewRequest {
            id: RequestId(r.id.0),
            builder: r.builder.as_str().into(),
            properties: json_properties(&r.properties),
            reason: r.reason,
            submitted_at: Timestamp(r.submitted_at.0),
            // Forced requests (no changes) are never merged with others.
            mergeable: !r.changes.is_empty(),
        })
        .collect();
    Ok(Prepared {
        shared: Arc::new(Shared {
            store,
            plan: RwLock::new(setup.plan.clone()),
            master_dir: setup.master_dir.clone(),
            artifacts_dir,
            allowed_roots: setup.allowed_upload_roots.clone(),
            log_options,
            masker,
            push: RwLock::new(Arc::new(crate::webhook::PushSettings::new(setup))),
        }),
        restored,
        lease_base: epoch << 32,
    })
}

/// A JSON object of properties as strings (non-string values as their JSON text).
pub(crate) fn json_properties(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let s = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the runner is told from outside its own actions.
pub(crate) enum Input {
    /// A request was stored (by the API): dispatch it.
    Submitted(NewRequest),
    /// Stop a build; answers whether it was running.
    Stop {
        build: u64,
        reply: oneshot::Sender<bool>,
    },
    /// A reconfiguration put a new plan in force (already in `Shared`).
    Reload(Arc<Plan>),
    /// What the engine is doing now, for the status pages.
    Snapshot { reply: oneshot::Sender<Snapshot> },
    /// A step task ended.
    StepDone {
        build: BuildId,
        lease: Lease,
        step: usize,
        outcome: StepOutcome,
    },
}

/// The engine's view of the queue and the running builds, at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Requests waiting for a worker, with why.
    pub pending: Vec<abo_engine::PendingRequest>,
    /// Builds dispatched and not finished, with where they are.
    pub running: Vec<abo_engine::RunningBuild>,
}

/// The API's way to the runner.
#[derive(Clone)]
pub(crate) struct RunnerHandle {
    tx: mpsc::UnboundedSender<Input>,
}

impl RunnerHandle {
    /// Hands a stored request to the runner; false when the runner has stopped.
    pub fn submitted(&self, request: NewRequest) -> bool {
        self.tx.send(Input::Submitted(request)).is_ok()
    }

    /// Asks to stop a build; `Some(true)` when it was running.
    pub async fn stop(&self, build: u64) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Input::Stop { build, reply }).ok()?;
        answer.await.ok()
    }

    /// Tells the engine about a new plan (after [`Shared::set_plan`]); false when the runner
    /// has stopped.
    pub fn reload(&self, plan: Arc<Plan>) -> bool {
        self.tx.send(Input::Reload(plan)).is_ok()
    }

    /// The engine's pending requests and running builds; `None` when the runner has
    /// stopped.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Input::Snapshot { reply }).ok()?;
        answer.await.ok()
    }
}

/// One build the engine runs, as the runtime needs it.
struct BuildCtx {
    lease: Lease,
    store_lease: abo_store::Lease,
    builder: String,
    /// The worker the build runs on.
    worker: String,
    steps: Arc<[Step]>,
    /// Steps whose row exists.
    started: BTreeSet<usize>,
    properties: BTreeMap<String, String>,
    /// Interrupt tokens of running step tasks.
    running: HashMap<usize, CancellationToken>,
}

pub(crate) struct Runner {
    engine: Engine,
    shared: Arc<Shared>,
    registry: Arc<WorkerRegistry>,
    events: broadcast::Receiver<RegistryEvent>,
    inputs: mpsc::UnboundedReceiver<Input>,
    tx: mpsc::UnboundedSender<Input>,
    conns: HashMap<String, WorkerConnection>,
    builds: HashMap<BuildId, BuildCtx>,
    lease_base: u64,
    restored: Vec<NewRequest>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

fn now() -> Timestamp {
    Timestamp(abo_store::Timestamp::now().0)
}

fn store_result(r: BuildResult) -> abo_store::BuildResult {
    // Both are Buildbot's seven results under the same names.
    r.as_str()
        .parse()
        .unwrap_or(abo_store::BuildResult::Exception)
}

impl Runner {
    /// A runner over `prepared`, listening to `events` (subscribed before any worker could
    /// connect). Returns it with the API's handle.
    pub(crate) fn new(
        prepared: Prepared,
        registry: Arc<WorkerRegistry>,
        events: broadcast::Receiver<RegistryEvent>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> (Runner, RunnerHandle) {
        let (tx, inputs) = mpsc::unbounded_channel();
        let runner = Runner {
            // Requests from changes that wait for a worker are built together (Buildbot's
            // request collapsing); forced ones are not mergeable.
            engine: Engine::with_options(
                prepared.shared.plan(),
                abo_engine::EngineOptions {
                    merge_requests: true,
                },
            ),
            shared: prepared.shared,
            registry,
            events,
            inputs,
            tx: tx.clone(),
            conns: HashMap::new(),
            builds: HashMap::new(),
            lease_base: prepared.lease_base,
            restored: prepared.restored,
            shutdown,
            tracker,
        };
        (runner, RunnerHandle { tx })
    }

    /// Runs until shutdown. Step tasks are tracked by the same tracker and stop on the same
    /// token; builds still running then are marked interrupted at the next start.
    pub(crate) async fn run(mut self) {
        let requests = std::mem::take(&mut self.restored);
        if !requests.is_empty() {
            tracing::info!(
                "{} build request(s) waiting from before the restart",
                requests.len()
            );
        }
        self.handle(Event::Restored {
            requests,
            interrupted: Vec::new(),
        })
        .await;
        self.resync().await;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                input = self.inputs.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => return,
                },
                event = self.events.recv() => match event {
                    Ok(event) => self.registry_event(event).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} worker events missed; reading the registry again");
                        self.resync().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Submitted(request) => self.handle(Event::RequestSubmitted(request)).await,
            Input::Stop { build, reply } => {
                let build = BuildId(build);
                let running = self.builds.contains_key(&build);
                let _ = reply.send(running);
                if running {
                    self.handle(Event::StopRequested { build }).await;
                }
            }
            Input::Reload(plan) => self.handle(Event::PlanReloaded(plan)).await,
            Input::Snapshot { reply } => {
                let _ = reply.send(Snapshot {
                    pending: self.engine.pending(),
                    running: self.engine.running(),
                });
            }
            Input::StepDone {
                build,
                lease,
                step,
                outcome,
            } => {
                let mut closed_worker = None;
                if let Some(ctx) = self.builds.get_mut(&build) {
                    if ctx.lease == lease {
                        ctx.running.remove(&step);
                    }
                    if self
                        .conns
                        .get(&ctx.worker)
                        .is_some_and(WorkerConnection::is_closed)
                    {
                        closed_worker = Some(ctx.worker.clone());
                    }
                }
                if let Some(worker) = closed_worker {
                    // The step ended because its worker went away, and the registry's Lost
                    // event has not reached us yet. Tell the engine first: otherwise the
                    // step's retry would send the request straight back to the dead worker.
                    self.conns.remove(&worker);
                    tracing::info!(worker = %worker, "worker connection closed; its builds are retried");
                    self.handle(Event::WorkerLost {
                        worker: worker.as_str().into(),
                    })
                    .await;
                }
                self.handle(Event::StepFinished {
                    build,
                    lease,
                    step,
                    outcome,
                })
                .await
            }
        }
    }

    /// Makes the engine's view of connections match the registry's (at start, and after
    /// missed events).
    async fn resync(&mut self) {
        for status in self.registry.status() {
            let name = status.name;
            match self.registry.connection(&name) {
                Some(conn) => {
                    let known = self.conns.get(&name).map(WorkerConnection::generation);
                    if known != Some(conn.generation()) {
                        self.connected(conn).await;
                    }
                }
                None => {
                    if self.conns.remove(&name).is_some() {
                        self.handle(Event::WorkerLost {
                            worker: name.as_str().into(),
                        })
                        .await;
                    }
                }
            }
        }
    }

    async fn registry_event(&mut self, event: RegistryEvent) {
        match event {
            RegistryEvent::Connected { name, .. } => {
                // The registry's current connection (a newer one may have replaced the
                // one this event is about; its own event follows).
                if let Some(conn) = self.registry.connection(&name) {
                    let known = self.conns.get(&name).map(WorkerConnection::generation);
                    if known != Some(conn.generation()) {
                        self.connected(conn).await;
                    }
                }
            }
            RegistryEvent::Lost {
                name, generation, ..
            } => {
                let current = self.conns.get(&name).map(WorkerConnection::generation);
                if current == Some(generation) {
                    self.conns.remove(&name);
                    tracing::info!(worker = %name, "worker lost; its builds are retried");
                    self.handle(Event::WorkerLost {
                        worker: name.as_str().into(),
                    })
                    .await;
                }
            }
        }
    }

    async fn connected(&mut self, conn: WorkerConnection) {
        let name = conn.name().to_owned();
        let Some(basedir) = conn.info().basedir.clone().filter(|b| !b.is_empty()) else {
            tracing::warn!(worker = %name, "the worker reported no base directory; no build is given to it");
            return;
        };
        self.conns.insert(name.clone(), conn);
        self.handle(Event::WorkerConnected {
            worker: name.as_str().into(),
            basedir,
        })
        .await;
    }

    /// Feeds one event, carries out the actions in order, and handles the events they
    /// produce before returning.
    async fn handle(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let actions = self.engine.handle(now(), event);
            for action in actions {
                self.act(action, &mut queue).await;
            }
        }
    }

    fn store_lease(&self, lease: Lease) -> abo_store::Lease {
        abo_store::Lease(self.lease_base + lease.0)
    }

    async fn act(&mut self, action: Action, queue: &mut VecDeque<Event>) {
        let store = self.shared.store.clone();
        let stamp = abo_store::Timestamp::now();
        match action {
            Action::CreateBuild {
                lease,
                builder,
                worker,
                requests,
            } => {
                let store_lease = self.store_lease(lease);
                match self
                    .create_build(&requests, worker.as_str(), store_lease, stamp)
                    .await
                {
                    Ok((id, number)) => {
                        let build = BuildId(id.0);
                        let steps = self
                            .shared
                            .builder(builder.as_str())
                            .map(|b| b.steps.clone())
                            .unwrap_or_else(|| Arc::from(Vec::new()));
                        self.builds.insert(
                            build,
                            BuildCtx {
                                lease,
                                store_lease,
                                builder: builder.to_string(),
                                worker: worker.to_string(),
                                steps,
                                started: BTreeSet::new(),
                                properties: BTreeMap::new(),
                                running: HashMap::new(),
                            },
                        );
                        tracing::info!(build = build.0, %builder, %worker, number, "build started");
                        queue.push_back(Event::BuildCreated {
                            lease,
                            build,
                            number: u64::from(number),
                        });
                    }
                    Err(e) => {
                        tracing::error!(%builder, %worker, "cannot create the build: {e}");
                        queue.push_back(Event::BuildCreateFailed { lease });
                    }
                }
            }
            Action::BuildStarted {
                build, properties, ..
            } => {
                let Some(ctx) = self.builds.get_mut(&build) else {
                    return;
                };
                ctx.properties = properties;
                let json = self.shared.masked_properties(&ctx.properties);
                let lease = ctx.store_lease;
                if let Err(e) = store
                    .set_build_properties(abo_store::BuildId(build.0), lease, json)
                    .await
                {
                    tracing::warn!(build = build.0, "cannot store the build's properties: {e}");
                }
            }
            Action::RunStep {
                build,
                lease,
                worker,
                builder_dir,
                step,
            } => {
                self.run_step(build, lease, worker, builder_dir, *step, queue)
                    .await
            }
            Action::InterruptStep { build, step, .. } => {
                if let Some(token) = self.builds.get(&build).and_then(|c| c.running.get(&step)) {
                    token.cancel();
                }
            }
            Action::RecordStep {
                build,
                step,
                name,
                result,
                summary,
                properties,
            } => {
                self.record_step(build, step, &name, result, summary, properties, stamp)
                    .await
            }
            Action::FinishBuild { build, result } => {
                let lease = match self.builds.remove(&build) {
                    Some(ctx) => {
                        for token in ctx.running.values() {
                            // A step still running (its worker was lost) is not followed
                            // any more; its late writes are refused by the store anyway.
                            token.cancel();
                        }
                        Some(ctx.store_lease)
                    }
                    // A build of an earlier run (restore): the store finished it at start.
                    None => None,
                };
                let Some(lease) = lease else { return };
                tracing::info!(build = build.0, %result, "build finished");
                if let Err(e) = store
                    .finish_build(
                        abo_store::BuildId(build.0),
                        lease,
                        store_result(result),
                        stamp,
                    )
                    .await
                {
                    tracing::error!(build = build.0, "cannot store the build's end: {e}");
                }
            }
            Action::RequeueRequest { request } => {
                // `finish_build(retry)` already put a built request back in the queue;
                // this is for requests whose build was never created.
                match store.requeue_request(abo_store::RequestId(request.0)).await {
                    Ok(()) | Err(abo_store::Error::RequestState { .. }) => {}
                    Err(e) => tracing::warn!(request = request.0, "cannot requeue: {e}"),
                }
            }
            Action::CompleteRequest { request, result } => {
                match store
                    .complete_request(abo_store::RequestId(request.0), store_result(result), stamp)
                    .await
                {
                    // Completed with its build by `finish_build` already.
                    Ok(()) | Err(abo_store::Error::RequestState { .. }) => {}
                    Err(e) => tracing::warn!(request = request.0, "cannot complete: {e}"),
                }
            }
            Action::RejectStale { lease, build, what } => {
                tracing::warn!(
                    lease = lease.0,
                    build = build.map(|b| b.0),
                    "refused a late {what}: its build was given up or taken over"
                );
            }
        }
    }

    /// Claims the requests with the lease and creates their build, in one transaction:
    /// if it fails, nothing is claimed.
    async fn create_build(
        &self,
        requests: &[RequestId],
        worker: &str,
        lease: abo_store::Lease,
        now: abo_store::Timestamp,
    ) -> Result<(abo_store::BuildId, u32), abo_store::Error> {
        let ids = requests.iter().map(|r| abo_store::RequestId(r.0)).collect();
        let started = self
            .shared
            .store
            .start_build(ids, worker, lease, now)
            .await?;
        for (request, e) in &started.not_merged {
            tracing::warn!(
                request = request.0,
                "cannot merge into request {}: {e}",
                requests[0].0
            );
        }
        Ok((started.id, started.number))
    }

    async fn run_step(
        &mut self,
        build: BuildId,
        lease: Lease,
        worker: WorkerName,
        builder_dir: String,
        step: abo_engine::RenderedStep,
        queue: &mut VecDeque<Event>,
    ) {
        let index = step.index;
        let fail = |queue: &mut VecDeque<Event>, result, summary: String| {
            queue.push_back(Event::StepFinished {
                build,
                lease,
                step: index,
                outcome: StepOutcome {
                    result,
                    properties: BTreeMap::new(),
                    summary: Some(summary),
                },
            });
        };
        let Some(ctx) = self.builds.get_mut(&build) else {
            return;
        };
        let stamp = abo_store::Timestamp::now();
        let index32 = u32::try_from(index).unwrap_or(u32::MAX);
        if let Err(e) = self
            .shared
            .store
            .start_step(
                abo_store::BuildId(build.0),
                ctx.store_lease,
                index32,
                &step.name,
                stamp,
            )
            .await
        {
            fail(
                queue,
                BuildResult::Exception,
                format!("cannot record the step: {e}"),
            );
            return;
        }
        ctx.started.insert(index);
        let conn = self.conns.get(worker.as_str()).cloned();
        let needs_worker = !matches!(
            step.kind,
            abo_engine::RenderedKind::MasterShell | abo_engine::RenderedKind::AnalyzeLog { .. }
        );
        if needs_worker && conn.as_ref().is_none_or(WorkerConnection::is_closed) {
            // The connection died before the registry's Lost event reached us. Tell the
            // engine first, so that it stops dispatching to this worker (and retries its
            // builds); otherwise the retried request would go straight back to the dead
            // connection, over and over. The registry's own Lost event is then ignored,
            // since the connection is no longer ours.
            if self.conns.remove(worker.as_str()).is_some() {
                tracing::info!(worker = %worker, "worker connection closed; its builds are retried");
                queue.push_back(Event::WorkerLost {
                    worker: worker.clone(),
                });
            }
            fail(
                queue,
                BuildResult::Retry,
                format!("worker {worker} is not connected"),
            );
            return;
        }
        let download_template = match ctx.steps.get(index).map(|s| &s.kind) {
            Some(StepKind::Download { src, .. }) => Some(src.clone()),
            _ => None,
        };
        let interrupt = CancellationToken::new();
        ctx.running.insert(index, interrupt.clone());
        let job = step::Job {
            shared: self.shared.clone(),
            build: abo_store::BuildId(build.0),
            lease: ctx.store_lease,
            builder: ctx.builder.clone(),
            builder_dir,
            step,
            conn,
            download_template,
            interrupt,
            shutdown: self.shutdown.clone(),
        };
        let tx = self.tx.clone();
        self.tracker.spawn(async move {
            let outcome = job.run().await;
            let _ = tx.send(Input::StepDone {
                build,
                lease,
                step: index,
                outcome,
            });
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_step(
        &mut self,
        build: BuildId,
        step: usize,
        name: &str,
        result: BuildResult,
        summary: Option<String>,
        properties: BTreeMap<String, String>,
        stamp: abo_store::Timestamp,
    ) {
        let store = self.shared.store.clone();
        let Some(ctx) = self.builds.get_mut(&build) else {
            return;
        };
        let id = abo_store::BuildId(build.0);
        let index = u32::try_from(step).unwrap_or(u32::MAX);
        if ctx.started.insert(step) {
            // Steps the engine ran itself, or skipped, never had a RunStep.
            if let Err(e) = store
                .start_step(id, ctx.store_lease, index, name, stamp)
                .await
            {
                tracing::warn!(build = build.0, step, "cannot record the step: {e}");
                return;
            }
        }
        let hidden = ctx.steps.get(step).is_some_and(|s| s.hidden);
        let outcome = abo_store::StepOutcome {
            result: store_result(result),
            description: summary.map(|s| self.shared.mask(&s)),
            hidden,
        };
        if let Err(e) = store
            .finish_step(id, ctx.store_lease, index, outcome, stamp)
            .await
        {
            tracing::warn!(
                build = build.0,
                step,
                "cannot record the step's result: {e}"
            );
        }
        if !properties.is_empty() {
            ctx.properties.extend(properties);
            let json = self.shared.masked_properties(&ctx.properties);
            if let Err(e) = store.set_build_properties(id, ctx.store_lease, json).await {
                tracing::warn!(build = build.0, "cannot store the build's properties: {e}");
            }
        }
    }
}
