//! What goes into the engine ([`Event`]) and what comes out ([`Action`]), plus the read-only
//! views the API shows ([`PendingRequest`], [`RunningBuild`]).

use crate::ids::{BuildId, BuilderName, Lease, RequestId, Timestamp, WorkerName};
use crate::render::RenderedStep;
use crate::result::BuildResult;
use abo_plan::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A build request, already persisted by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub id: RequestId,
    pub builder: BuilderName,
    /// Properties given with the request (a forced build's `--prop`, the scheduler's).
    pub properties: BTreeMap<String, String>,
    /// Why the build was asked for (shown in the UI).
    pub reason: String,
    /// Queue order: older first, then lower id.
    pub submitted_at: Timestamp,
    /// May be merged with other waiting requests of its builder into one build (only when
    /// [`EngineOptions::merge_requests`](crate::EngineOptions) is on).
    pub mergeable: bool,
}

/// A build that was running when the master stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedBuild {
    pub build: BuildId,
    /// The requests the build was for: they go back to the queue.
    pub requests: Vec<RequestId>,
}

/// What a runtime step ended with, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub result: BuildResult,
    /// Properties the step sets: a `set-property-from-command` step's output.
    pub properties: BTreeMap<String, String>,
    /// One line for the UI (`exit code 2`, the log analysis's summary).
    pub summary: Option<String>,
}

impl StepOutcome {
    /// An outcome with no properties and no summary.
    pub fn of(result: BuildResult) -> Self {
        StepOutcome {
            result,
            properties: BTreeMap::new(),
            summary: None,
        }
    }
}

/// Everything that can happen to the engine. The runtime persists first, then tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A build request was stored.
    RequestSubmitted(NewRequest),
    /// Somebody cancelled a request: dropped if waiting, its build stopped if running.
    RequestCancelled { request: RequestId },
    /// A worker connected (again); `basedir` is its base directory (from
    /// `get_worker_info`), under which builder directories live. A worker that connects
    /// while the engine thinks it is connected lost its previous session: its builds are
    /// retried first.
    WorkerConnected { worker: WorkerName, basedir: String },
    /// A worker's connection ended (closed, or keepalives unanswered).
    WorkerLost { worker: WorkerName },
    /// The store created the build asked for by [`Action::CreateBuild`] with `lease`;
    /// `number` is the builder's build counter.
    BuildCreated {
        lease: Lease,
        build: BuildId,
        number: u64,
    },
    /// The store could not create that build: its requests go back to the queue.
    BuildCreateFailed { lease: Lease },
    /// A step the engine asked for with [`Action::RunStep`] ended.
    StepFinished {
        build: BuildId,
        lease: Lease,
        step: usize,
        outcome: StepOutcome,
    },
    /// Somebody asked to stop a running build: it ends `cancelled`.
    StopRequested { build: BuildId },
    /// The configuration was reloaded. Running builds finish with the steps they started
    /// with; waiting requests of builders that disappeared are cancelled.
    PlanReloaded(Arc<Plan>),
    /// After a master restart, before anything else: the requests still unfinished in the
    /// store, and the builds that were running. Those builds end `retry` and their requests
    /// are queued again at once.
    Restored {
        requests: Vec<NewRequest>,
        interrupted: Vec<InterruptedBuild>,
    },
}

/// What the engine asks the runtime to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store a build of `builder` on `worker` for `requests` (claiming them), then answer
    /// [`Event::BuildCreated`] with the same `lease` (or [`Event::BuildCreateFailed`]).
    CreateBuild {
        lease: Lease,
        builder: BuilderName,
        worker: WorkerName,
        requests: Vec<RequestId>,
    },
    /// The build has started: store its starting properties.
    BuildStarted {
        build: BuildId,
        lease: Lease,
        worker: WorkerName,
        number: u64,
        properties: BTreeMap<String, String>,
    },
    /// Run one step (on the worker, or on the master for master-side kinds), then answer
    /// [`Event::StepFinished`] with the same build, lease and step index.
    /// `builder_dir` is the builder's directory relative to the worker's base directory.
    RunStep {
        build: BuildId,
        lease: Lease,
        worker: WorkerName,
        builder_dir: String,
        /// Boxed: a rendered step is large, and most actions are small.
        step: Box<RenderedStep>,
    },
    /// Interrupt the running step (a stop was asked for); it still answers
    /// [`Event::StepFinished`].
    InterruptStep {
        build: BuildId,
        lease: Lease,
        worker: WorkerName,
        step: usize,
    },
    /// Store one step's result: the engine's verdict, for every step, including the ones it
    /// ran itself and the ones skipped. `properties` are the properties the step set.
    RecordStep {
        build: BuildId,
        step: usize,
        name: String,
        result: BuildResult,
        summary: Option<String>,
        properties: BTreeMap<String, String>,
    },
    /// The build is over.
    FinishBuild { build: BuildId, result: BuildResult },
    /// Unclaim the request: it waits again for a worker (its build was retried).
    RequeueRequest { request: RequestId },
    /// The request is done (its build finished, or it was cancelled).
    CompleteRequest {
        request: RequestId,
        result: BuildResult,
    },
    /// A late or foreign write was refused (a stale lease: the worker that sent it lost
    /// the build). The runtime logs it and counts it; nothing of it is stored.
    RejectStale {
        lease: Lease,
        build: Option<BuildId>,
        what: &'static str,
    },
}

/// Why a request is still waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The plan gives its builder no worker.
    NoWorkerConfigured,
    /// None of its builder's workers is connected.
    NoWorkerConnected,
    /// Every connected worker of its builder has `max_builds` builds.
    AllWorkersBusy,
}

/// A waiting request, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub request: RequestId,
    pub builder: BuilderName,
    pub submitted_at: Timestamp,
    pub reason: WaitReason,
}

/// Where a running build is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Dispatched; the store is creating the build.
    Starting,
    /// Step `step` runs on the worker (or the master).
    Running { step: usize, name: String },
    /// Step `step` waits for worker lock `lock`, held by another build.
    WaitingForLock {
        step: usize,
        name: String,
        lock: String,
    },
}

/// A dispatched build, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningBuild {
    /// `None` until the store has created it.
    pub build: Option<BuildId>,
    pub lease: Lease,
    pub builder: BuilderName,
    pub worker: WorkerName,
    pub requests: Vec<RequestId>,
    pub started_at: Timestamp,
    pub state: RunState,
    /// A stop was asked for; the build ends `cancelled`.
    pub stopping: bool,
    /// The result so far.
    pub result: BuildResult,
}
