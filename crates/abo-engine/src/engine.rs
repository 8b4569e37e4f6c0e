//! The state machine: [`Engine::handle`] takes one [`Event`] and returns the [`Action`]s it
//! calls for. Dispatch (which worker builds which request), worker locks, port reservations
//! and step sequencing all live here; the runtime only persists and moves bytes.

use crate::event::{
    Action, Event, InterruptedBuild, NewRequest, PendingRequest, RunState, RunningBuild,
    StepOutcome, WaitReason,
};
use crate::ids::{BuildId, BuilderName, Lease, RequestId, Timestamp, WorkerName};
use crate::locks::{wanted, LockTable};
use crate::render::{builder_dir, render_one, render_step, StepError};
use crate::result::{step_counts, worst, BuildResult};
use abo_plan::props::capability_properties;
use abo_plan::{Plan, Step, StepKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Choices the engine leaves to the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Merge waiting requests of one builder into one build (Buildbot's request collapsing):
    /// when a request is dispatched, every other waiting request of its builder that is
    /// `mergeable` and has the same properties rides along. Off by default; the master turns
    /// it on (requests from changes are mergeable, forced ones are not).
    pub merge_requests: bool,
}

/// Queue order of requests: oldest first, then lowest id (ids are the store's, monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct QueueKey {
    submitted_at: Timestamp,
    request: RequestId,
}

#[derive(Debug, Default)]
struct BuilderState {
    /// Position in the current plan; `None` once the builder left the plan (its running
    /// builds still finish).
    plan_index: Option<usize>,
    /// Its workers: which of the engine's `lists` (one per distinct worker list of the
    /// current plan) is its own.
    list: usize,
    /// Waiting requests, in queue order.
    queue: Queue,
    /// The worker of its last dispatch: preferred next time, its caches are warm.
    last_worker: Option<WorkerName>,
}

/// A builder's waiting requests, in queue order: a sorted vector, usually of one request.
/// A BTreeMap took a 280-byte node for it (2,000 builders with a request waiting: 0.5 MB
/// more in a burst), and kept the node once emptied.
#[derive(Debug, Default)]
struct Queue(Vec<(QueueKey, RequestId)>);

impl Queue {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The oldest request.
    fn head(&self) -> Option<(QueueKey, RequestId)> {
        self.0.first().copied()
    }

    fn head_key(&self) -> Option<QueueKey> {
        self.head().map(|(key, _)| key)
    }

    fn iter(&self) -> impl Iterator<Item = (QueueKey, RequestId)> + '_ {
        self.0.iter().copied()
    }

    fn insert(&mut self, key: QueueKey, request: RequestId) {
        if self.0.is_empty() {
            // Room for one: the usual queue. Later requests grow it as usual.
            self.0.reserve_exact(1);
        }
        let at = self.0.partition_point(|(k, _)| *k < key);
        self.0.insert(at, (key, request));
    }

    fn remove(&mut self, key: QueueKey) {
        if let Ok(at) = self.0.binary_search_by_key(&key, |(k, _)| *k) {
            self.0.remove(at);
        }
        if self.0.is_empty() {
            // Idle builders hold no memory for their queue.
            self.0 = Vec::new();
        }
    }
}

/// Workers that builders share, in plan order (2,000 builders each held a copy of the same
/// eight names), and the dispatch index of those builders: the ones with waiting requests,
/// by their oldest request. A freed slot goes to the first entry of the lists its worker is
/// in (Buildbot's "oldest request first" across builders), without looking at any other
/// queued request. One entry per waiting builder: an index per worker listed each under
/// every one of its workers (2,000 builders × 8 workers: 0.9 MB).
#[derive(Debug)]
struct WorkerList {
    workers: Arc<[WorkerName]>,
    waiting: BTreeSet<(QueueKey, BuilderName)>,
}

#[derive(Debug, Default)]
struct WorkerState {
    /// Position in the current plan; `None` for a connected worker the plan does not know.
    plan_index: Option<usize>,
    max_builds: Option<u32>,
    /// How many builds it may have now: `max_builds`, or more right after a reload that
    /// lowered it below what runs there, shrinking back as those builds end. The engine
    /// never dispatches above `max_builds`; this bound is what the invariant check holds
    /// it to.
    ceiling: Option<usize>,
    /// The base directory of the live session; `None` when disconnected.
    basedir: Option<String>,
    /// Builds dispatched to it, starting ones included: each holds one of its slots.
    runs: BTreeSet<Lease>,
    /// The engine's `lists` it is in: a freed slot goes to the first waiting builder among
    /// them.
    lists: Vec<usize>,
    locks: LockTable,
    /// Ports reserved by its running builds.
    ports: BTreeMap<u16, Lease>,
}

impl WorkerState {
    fn has_free_slot(&self) -> bool {
        self.basedir.is_some()
            && self
                .max_builds
                .is_none_or(|max| self.runs.len() < max as usize)
    }
}

#[derive(Debug)]
struct RequestState {
    id: RequestId,
    builder: BuilderName,
    properties: BTreeMap<String, String>,
    submitted_at: Timestamp,
    mergeable: bool,
    /// The dispatch that holds it; `None` while it waits in its builder's queue.
    claimed: Option<Lease>,
}

impl RequestState {
    /// A submitted request as the engine keeps it: without its reason, which only the
    /// store and the pages show (2,000 waiting requests held 0.2 MB of reasons).
    fn waiting(request: NewRequest) -> RequestState {
        let NewRequest {
            id,
            builder,
            properties,
            reason: _,
            submitted_at,
            mergeable,
        } = request;
        RequestState {
            id,
            builder,
            properties,
            submitted_at,
            mergeable,
            claimed: None,
        }
    }

    fn key(&self) -> QueueKey {
        QueueKey {
            submitted_at: self.submitted_at,
            request: self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Dispatched, waiting for the store's build id.
    Starting,
    /// Between steps (only inside one `handle` call).
    Ready,
    Running(usize),
    WaitingForLock(usize, String),
}

/// One dispatch of requests to a worker, from `CreateBuild` to its end.
#[derive(Debug)]
struct Run {
    lease: Lease,
    build: Option<BuildId>,
    number: u64,
    builder: BuilderName,
    worker: WorkerName,
    requests: Vec<RequestId>,
    /// The plan the build started under: a reload does not change a running build.
    plan: Arc<Plan>,
    builder_index: usize,
    worker_index: Option<usize>,
    builder_dir: String,
    basedir: String,
    started_at: Timestamp,
    properties: BTreeMap<String, String>,
    phase: Phase,
    next_step: usize,
    result: BuildResult,
    /// A step ended the build (halt, exception, stop...): the rest are skipped.
    terminated: bool,
    stopping: bool,
    holds_locks: bool,
    ports: Vec<u16>,
}

impl Run {
    fn steps(&self) -> &Arc<[Step]> {
        &self.plan.builders[self.builder_index].steps
    }
}

/// A broken invariant, found by [`Engine::check_invariants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvariantViolation {}

/// Scheduler, dispatcher and build sequencer: a deterministic state machine with no I/O.
pub struct Engine {
    plan: Arc<Plan>,
    options: EngineOptions,
    builders: HashMap<BuilderName, BuilderState>,
    workers: HashMap<WorkerName, WorkerState>,
    /// Each distinct worker list of the plan once, with its part of the dispatch index.
    lists: Vec<WorkerList>,
    requests: HashMap<RequestId, RequestState>,
    runs: HashMap<Lease, Run>,
    builds: HashMap<BuildId, Lease>,
    next_lease: u64,
    stale: u64,
    /// Work found while handling one event, done before `handle` returns: builds that wait
    /// for a lock that may be free now, builders whose oldest request changed, workers that
    /// may have a free slot.
    wake: VecDeque<Lease>,
    dirty_builders: Vec<BuilderName>,
    dirty_workers: Vec<WorkerName>,
}

impl Engine {
    /// An engine for `plan`, with no request, no worker connected.
    pub fn new(plan: Arc<Plan>) -> Engine {
        Engine::with_options(plan, EngineOptions::default())
    }

    /// An engine with non-default options.
    pub fn with_options(plan: Arc<Plan>, options: EngineOptions) -> Engine {
        let mut engine = Engine {
            plan: Arc::new(Plan {
                workers: Vec::new(),
                builders: Vec::new(),
                schedulers: Vec::new(),
                pollers: Vec::new(),
            }),
            options,
            builders: HashMap::new(),
            workers: HashMap::new(),
            lists: Vec::new(),
            requests: HashMap::new(),
            runs: HashMap::new(),
            builds: HashMap::new(),
            next_lease: 1,
            stale: 0,
            wake: VecDeque::new(),
            dirty_builders: Vec::new(),
            dirty_workers: Vec::new(),
        };
        let mut ignored = Vec::new();
        engine.load_plan(plan, &mut ignored);
        engine
    }

    /// The plan in force.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Handles one event at time `now`; returns what the runtime must do, in order.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::RequestSubmitted(request) => self.submit(request, &mut out),
            Event::RequestCancelled { request } => self.cancel_request(request, &mut out),
            Event::WorkerConnected { worker, basedir } => {
                self.lose_worker(&worker, &mut out);
                let state = self.workers.entry(worker.clone()).or_default();
                state.basedir = Some(basedir);
                self.dirty_workers.push(worker);
            }
            Event::WorkerLost { worker } => self.lose_worker(&worker, &mut out),
            Event::BuildCreated {
                lease,
                build,
                number,
            } => self.build_created(lease, build, number, &mut out),
            Event::BuildCreateFailed { lease } => self.build_create_failed(lease, &mut out),
            Event::StepFinished {
                build,
                lease,
                step,
                outcome,
            } => self.step_finished(build, lease, step, outcome, &mut out),
            Event::StopRequested { build } => {
                if let Some(&lease) = self.builds.get(&build) {
                    self.stop(lease, &mut out);
                }
            }
            Event::PlanReloaded(plan) => self.load_plan(plan, &mut out),
            Event::Restored {
                requests,
                interrupted,
            } => self.restore(requests, interrupted, &mut out),
        }
        self.settle(now, &mut out);
        out
    }

    /// Whether `lease` is the live lease of `build`: the runtime checks this before it
    /// stores anything a worker sends about a build (log chunks), so that a worker that lost
    /// its build cannot write into it.
    pub fn lease_is_current(&self, build: BuildId, lease: Lease) -> bool {
        self.builds.get(&build) == Some(&lease)
    }

    /// How many late or foreign writes were refused so far.
    pub fn stale_writes(&self) -> u64 {
        self.stale
    }

    /// The workers the plan gives a builder, in plan order.
    fn workers_of(&self, builder: &BuilderState) -> &[WorkerName] {
        self.lists.get(builder.list).map_or(&[], |l| &l.workers)
    }

    /// Every waiting request with the reason it waits, in queue order per builder.
    pub fn pending(&self) -> Vec<PendingRequest> {
        let mut names: Vec<&BuilderName> = self
            .builders
            .iter()
            .filter(|(_, b)| !b.queue.is_empty())
            .map(|(name, _)| name)
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let builder = &self.builders[name];
            let workers = self.workers_of(builder);
            let reason = if workers.is_empty() {
                WaitReason::NoWorkerConfigured
            } else if workers
                .iter()
                .all(|w| self.workers.get(w).is_none_or(|s| s.basedir.is_none()))
            {
                WaitReason::NoWorkerConnected
            } else {
                WaitReason::AllWorkersBusy
            };
            out.extend(builder.queue.iter().map(|(key, _)| PendingRequest {
                request: key.request,
                builder: name.clone(),
                submitted_at: key.submitted_at,
                reason,
            }));
        }
        out
    }

    /// Every dispatched build, oldest dispatch first.
    pub fn running(&self) -> Vec<RunningBuild> {
        let mut runs: Vec<&Run> = self.runs.values().collect();
        runs.sort_by_key(|r| r.lease);
        runs.into_iter()
            .map(|run| {
                let step_name = |i: usize| {
                    run.steps()
                        .get(i)
                        .map(|s| s.name.clone())
                        .unwrap_or_default()
                };
                let state = match &run.phase {
                    Phase::Starting => RunState::Starting,
                    // Not observable between calls; shown as the step it is about to run.
                    Phase::Ready => RunState::Running {
                        step: run.next_step,
                        name: step_name(run.next_step),
                    },
                    Phase::Running(i) => RunState::Running {
                        step: *i,
                        name: step_name(*i),
                    },
                    Phase::WaitingForLock(i, lock) => RunState::WaitingForLock {
                        step: *i,
                        name: step_name(*i),
                        lock: lock.clone(),
                    },
                };
                RunningBuild {
                    build: run.build,
                    lease: run.lease,
                    builder: run.builder.clone(),
                    worker: run.worker.clone(),
                    requests: run.requests.clone(),
                    started_at: run.started_at,
                    state,
                    stopping: run.stopping,
                    result: run.result,
                }
            })
            .collect()
    }

    // ----- events -----

    fn submit(&mut self, request: NewRequest, out: &mut Vec<Action>) {
        if self.requests.contains_key(&request.id) {
            return; // already known: a duplicate submission changes nothing
        }
        let known = self
            .builders
            .get(&request.builder)
            .is_some_and(|b| b.plan_index.is_some());
        if !known {
            // Persisted, but for a builder the plan does not have: finish it rather than
            // leave it waiting forever.
            out.push(Action::CompleteRequest {
                request: request.id,
                result: BuildResult::Cancelled,
            });
            return;
        }
        let id = request.id;
        self.requests.insert(id, RequestState::waiting(request));
        self.enqueue(id);
    }

    fn cancel_request(&mut self, id: RequestId, out: &mut Vec<Action>) {
        let Some(state) = self.requests.get(&id) else {
            return;
        };
        match state.claimed {
            Some(lease) => self.stop(lease, out),
            None => {
                let key = state.key();
                let builder = state.builder.clone();
                self.forget(id);
                self.unqueue(&builder, key);
                out.push(Action::CompleteRequest {
                    request: id,
                    result: BuildResult::Cancelled,
                });
            }
        }
    }

    fn lose_worker(&mut self, worker: &WorkerName, out: &mut Vec<Action>) {
        let Some(state) = self.workers.get_mut(worker) else {
            return;
        };
        if state.basedir.take().is_none() {
            return;
        }
        let leases: Vec<Lease> = state.runs.iter().copied().collect();
        for lease in leases {
            let Some(run) = self.runs.get_mut(&lease) else {
                continue;
            };
            match run.phase.clone() {
                Phase::Starting => {
                    // No build exists yet: the requests go back at once; the store's late
                    // answer for this lease is refused (and its build finished as retry).
                    self.drop_starting(lease, out);
                }
                Phase::Running(step) => {
                    let name = run.steps()[step].name.clone();
                    let result = lost_result(run.stopping);
                    if let Some(build) = run.build {
                        out.push(Action::RecordStep {
                            build,
                            step,
                            name,
                            result,
                            summary: Some("worker lost".to_string()),
                            properties: BTreeMap::new(),
                        });
                    }
                    run.result = worst(run.result, result);
                    run.terminated = true;
                    run.next_step = step + 1;
                    run.phase = Phase::Ready;
                    self.finish(lease, out);
                }
                Phase::Ready | Phase::WaitingForLock(..) => {
                    run.result = worst(run.result, lost_result(run.stopping));
                    run.terminated = true;
                    run.phase = Phase::Ready;
                    self.finish(lease, out);
                }
            }
        }
        // Every build of the session is gone, so are its locks and ports.
        if let Some(state) = self.workers.get_mut(worker) {
            state.locks = LockTable::default();
            state.ports.clear();
        }
    }

    fn build_created(&mut self, lease: Lease, build: BuildId, number: u64, out: &mut Vec<Action>) {
        let starting = self
            .runs
            .get(&lease)
            .is_some_and(|r| r.phase == Phase::Starting);
        if !starting || self.builds.contains_key(&build) {
            self.stale += 1;
            if !self.builds.contains_key(&build) {
                // The store made a build nobody will run: close it.
                out.push(Action::FinishBuild {
                    build,
                    result: BuildResult::Retry,
                });
            }
            out.push(Action::RejectStale {
                lease,
                build: Some(build),
                what: "build created",
            });
            return;
        }
        self.builds.insert(build, lease);
        let Some(run) = self.runs.get_mut(&lease) else {
            return;
        };
        run.build = Some(build);
        run.number = number;
        run.phase = Phase::Ready;
        let mut props = run.plan.builders[run.builder_index].properties.clone();
        if let Some(w) = run.worker_index.and_then(|i| run.plan.workers.get(i)) {
            props.extend(w.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(first) = run.requests.first().and_then(|r| self.requests.get(r)) {
            props.extend(first.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        // Set last: a forced property may tune the build, but not redirect its directory
        // or misname its builder and worker.
        let workdir = format!("{}/{}", run.basedir.trim_end_matches('/'), run.builder_dir);
        props.insert("buildername".into(), run.builder.to_string());
        props.insert("workername".into(), run.worker.to_string());
        props.insert("buildnumber".into(), number.to_string());
        props.insert("builddir".into(), workdir.clone());
        props.insert("workdir".into(), workdir);
        run.properties = props;
        out.push(Action::BuildStarted {
            build,
            lease,
            worker: run.worker.clone(),
            number,
            properties: run.properties.clone(),
        });
        if run.stopping {
            run.result = worst(run.result, BuildResult::Cancelled);
            run.terminated = true;
        }
        self.advance(lease, out);
    }

    fn build_create_failed(&mut self, lease: Lease, out: &mut Vec<Action>) {
        let Some(run) = self.runs.get(&lease) else {
            self.stale += 1;
            out.push(Action::RejectStale {
                lease,
                build: None,
                what: "build creation failed",
            });
            return;
        };
        if run.phase != Phase::Starting {
            self.stale += 1;
            out.push(Action::RejectStale {
                lease,
                build: run.build,
                what: "build creation failed",
            });
            return;
        }
        self.drop_starting(lease, out);
    }

    fn step_finished(
        &mut self,
        build: BuildId,
        lease: Lease,
        step: usize,
        outcome: StepOutcome,
        out: &mut Vec<Action>,
    ) {
        let live = self.builds.get(&build) == Some(&lease)
            && self
                .runs
                .get(&lease)
                .is_some_and(|r| r.phase == Phase::Running(step));
        if !live {
            self.stale += 1;
            out.push(Action::RejectStale {
                lease,
                build: Some(build),
                what: "step finished",
            });
            return;
        }
        self.release_locks(lease);
        let Some(run) = self.runs.get_mut(&lease) else {
            return;
        };
        let result = if run.stopping {
            worst(outcome.result, BuildResult::Cancelled)
        } else {
            outcome.result
        };
        run.properties.extend(
            outcome
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let plan_step = &run.steps()[step];
        out.push(Action::RecordStep {
            build,
            step,
            name: plan_step.name.clone(),
            result,
            summary: outcome.summary,
            properties: outcome.properties,
        });
        let (result, terminate) = step_counts(plan_step, result, run.result);
        run.result = result;
        run.terminated |= terminate;
        run.next_step = step + 1;
        run.phase = Phase::Ready;
        self.advance(lease, out);
    }

    fn stop(&mut self, lease: Lease, out: &mut Vec<Action>) {
        let Some(run) = self.runs.get_mut(&lease) else {
            return;
        };
        if run.stopping {
            return;
        }
        run.stopping = true;
        match run.phase.clone() {
            // The store's answer finishes it.
            Phase::Starting => {}
            Phase::Running(step) => {
                if let Some(build) = run.build {
                    out.push(Action::InterruptStep {
                        build,
                        lease,
                        worker: run.worker.clone(),
                        step,
                    });
                }
            }
            Phase::Ready | Phase::WaitingForLock(..) => {
                run.result = worst(run.result, BuildResult::Cancelled);
                run.terminated = true;
                run.phase = Phase::Ready;
                self.release_locks(lease);
                self.finish(lease, out);
            }
        }
    }

    fn load_plan(&mut self, plan: Arc<Plan>, out: &mut Vec<Action>) {
        for worker in self.workers.values_mut() {
            worker.plan_index = None;
            worker.max_builds = None;
            worker.lists.clear();
        }
        for (i, w) in plan.workers.iter().enumerate() {
            let state = self
                .workers
                .entry(WorkerName::from(w.name.as_str()))
                .or_default();
            state.plan_index = Some(i);
            state.max_builds = w.max_builds;
        }
        for state in self.workers.values_mut() {
            state.ceiling = state.max_builds.map(|m| (m as usize).max(state.runs.len()));
        }
        for builder in self.builders.values_mut() {
            builder.plan_index = None;
        }
        // Each distinct worker list once, numbered.
        let mut lists: Vec<WorkerList> = Vec::new();
        let mut list_numbers: HashMap<&[Arc<str>], usize> = HashMap::new();
        for (i, b) in plan.builders.iter().enumerate() {
            let list = *list_numbers.entry(&b.workers).or_insert_with(|| {
                let workers: Arc<[WorkerName]> =
                    b.workers.iter().cloned().map(WorkerName::from).collect();
                // A worker a builder lists but the plan does not declare still gets a
                // state, so that the dispatch index reaches it if it ever connects.
                for w in workers.iter() {
                    self.workers
                        .entry(w.clone())
                        .or_default()
                        .lists
                        .push(lists.len());
                }
                lists.push(WorkerList {
                    workers,
                    waiting: BTreeSet::new(),
                });
                lists.len() - 1
            });
            let state = self
                .builders
                .entry(BuilderName::from(b.name.as_str()))
                .or_default();
            state.plan_index = Some(i);
            state.list = list;
        }
        self.plan = plan;
        // Waiting requests of builders that left the plan are cancelled.
        let mut gone: Vec<(QueueKey, RequestId)> = self
            .builders
            .values()
            .filter(|b| b.plan_index.is_none())
            .flat_map(|b| b.queue.iter())
            .collect();
        gone.sort();
        for (_, request) in gone {
            self.forget(request);
            out.push(Action::CompleteRequest {
                request,
                result: BuildResult::Cancelled,
            });
        }
        self.builders.retain(|_, b| b.plan_index.is_some());
        // The dispatch index, rebuilt from scratch: worker lists may have changed. (Until
        // here the old lists served the requests of builders that left the plan.)
        self.lists = lists;
        for (name, builder) in &self.builders {
            if let Some(head) = builder.queue.head_key() {
                self.lists[builder.list]
                    .waiting
                    .insert((head, name.clone()));
                self.dirty_builders.push(name.clone());
            }
        }
        self.dirty_workers.extend(self.workers.keys().cloned());
    }

    fn restore(
        &mut self,
        requests: Vec<NewRequest>,
        interrupted: Vec<InterruptedBuild>,
        out: &mut Vec<Action>,
    ) {
        for InterruptedBuild { build, requests } in interrupted {
            if self.builds.contains_key(&build) {
                continue; // a build of this engine's life: not interrupted
            }
            out.push(Action::FinishBuild {
                build,
                result: BuildResult::Retry,
            });
            for request in requests {
                if self
                    .requests
                    .get(&request)
                    .is_none_or(|r| r.claimed.is_none())
                {
                    out.push(Action::RequeueRequest { request });
                }
            }
        }
        let mut requests = requests;
        requests.sort_by_key(|r| (r.submitted_at, r.id));
        for request in requests {
            self.submit(request, out);
        }
    }

    // ----- build sequencing -----

    /// Runs the build's steps from `next_step` until one must wait for the runtime (a
    /// `RunStep`) or for a lock, or the build is over.
    fn advance(&mut self, lease: Lease, out: &mut Vec<Action>) {
        loop {
            let Some(run) = self.runs.get_mut(&lease) else {
                return;
            };
            let Some(build) = run.build else { return };
            let steps = Arc::clone(run.steps());
            let index = run.next_step;
            if run.terminated || index >= steps.len() {
                self.finish(lease, out);
                return;
            }
            let step = &steps[index];
            let locks = wanted(&step.locks);
            if !locks.is_empty() {
                let Some(worker) = self.workers.get_mut(&run.worker) else {
                    return;
                };
                if let Err(lock) = worker.locks.try_acquire(lease, &locks) {
                    run.phase = Phase::WaitingForLock(index, lock);
                    return;
                }
                run.holds_locks = true;
                run.phase = Phase::Ready;
            }
            let done = match &step.kind {
                StepKind::SetProperties { properties } => Some(
                    properties
                        .iter()
                        .map(|(k, t)| Ok((k.clone(), render_one(t, &run.properties)?)))
                        .collect::<Result<BTreeMap<_, _>, StepError>>(),
                ),
                StepKind::SetCapabilityProperties {
                    capability,
                    version_property,
                } => {
                    let version = version_property
                        .as_deref()
                        .and_then(|p| run.properties.get(p))
                        .map(String::as_str);
                    let caps = run
                        .worker_index
                        .and_then(|i| run.plan.workers.get(i))
                        .map(|w| w.capabilities.as_slice())
                        .unwrap_or_default();
                    Some(capability_properties(caps, capability, version).map_err(StepError::from))
                }
                StepKind::ReservePort {
                    property,
                    min,
                    max,
                    step: stride,
                } => {
                    let worker = self.workers.get_mut(&run.worker);
                    let port = worker.as_ref().and_then(|w| {
                        // A stride of 0 would never move on: read it as 1.
                        (*min..*max)
                            .step_by(usize::from((*stride).max(1)))
                            .find(|p| !w.ports.contains_key(p))
                    });
                    Some(match (port, worker) {
                        (Some(port), Some(worker)) => {
                            worker.ports.insert(port, lease);
                            run.ports.push(port);
                            Ok(BTreeMap::from([(property.clone(), port.to_string())]))
                        }
                        _ => Err(StepError::NoFreePort {
                            min: *min,
                            max: *max,
                            step: *stride,
                            worker: run.worker.to_string(),
                        }),
                    })
                }
                StepKind::Shell
                | StepKind::MasterShell
                | StepKind::Download { .. }
                | StepKind::UploadFile { .. }
                | StepKind::UploadDirectory { .. }
                | StepKind::SetPropertyFromCommand { .. }
                | StepKind::Checkout { .. }
                | StepKind::AnalyzeLog { .. } => None,
            };
            let (result, summary, properties) = match done {
                Some(Ok(properties)) => (BuildResult::Success, None, properties),
                Some(Err(e)) => (BuildResult::Exception, Some(e.to_string()), BTreeMap::new()),
                None => match render_step(&steps, index, &run.properties) {
                    Some(Ok(rendered)) => {
                        run.phase = Phase::Running(index);
                        out.push(Action::RunStep {
                            build,
                            lease,
                            worker: run.worker.clone(),
                            builder_dir: run.builder_dir.clone(),
                            step: Box::new(rendered),
                        });
                        return;
                    }
                    Some(Err(e)) => (BuildResult::Exception, Some(e.to_string()), BTreeMap::new()),
                    // Not reachable: engine kinds are handled above. Count it as an exception
                    // rather than trust that forever.
                    None => (
                        BuildResult::Exception,
                        Some("step kind not runnable".into()),
                        BTreeMap::new(),
                    ),
                },
            };
            run.properties
                .extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
            out.push(Action::RecordStep {
                build,
                step: index,
                name: step.name.clone(),
                result,
                summary,
                properties,
            });
            let (total, terminate) = step_counts(step, result, run.result);
            run.result = total;
            run.terminated |= terminate;
            run.next_step = index + 1;
            self.release_locks(lease);
        }
    }

    /// Ends a build that has its id: the steps not run are skipped, the slot, locks and
    /// ports are given back, and its requests are completed (or queued again on `retry`).
    fn finish(&mut self, lease: Lease, out: &mut Vec<Action>) {
        let Some(run) = self.runs.get(&lease) else {
            return;
        };
        let Some(build) = run.build else {
            return;
        };
        let steps = Arc::clone(run.steps());
        for (i, step) in steps.iter().enumerate().skip(run.next_step) {
            out.push(Action::RecordStep {
                build,
                step: i,
                name: step.name.clone(),
                result: BuildResult::Skipped,
                summary: None,
                properties: BTreeMap::new(),
            });
        }
        let result = run.result;
        let requests = run.requests.clone();
        self.remove_run(lease);
        out.push(Action::FinishBuild { build, result });
        for request in requests {
            if result == BuildResult::Retry {
                self.requeue(request, out);
            } else {
                self.complete_request(request, result, out);
            }
        }
    }

    /// Forgets a run that has no build yet; its requests wait again, unless somebody
    /// cancelled them meanwhile.
    fn drop_starting(&mut self, lease: Lease, out: &mut Vec<Action>) {
        let Some(run) = self.runs.get(&lease) else {
            return;
        };
        let requests = run.requests.clone();
        let stopping = run.stopping;
        self.remove_run(lease);
        for request in requests {
            if stopping {
                self.complete_request(request, BuildResult::Cancelled, out);
            } else {
                self.requeue(request, out);
            }
        }
    }

    /// Removes a run and everything it holds; its worker may take another build.
    fn remove_run(&mut self, lease: Lease) {
        self.release_locks(lease);
        let Some(run) = self.runs.remove(&lease) else {
            return;
        };
        if let Some(build) = run.build {
            self.builds.remove(&build);
        }
        if let Some(worker) = self.workers.get_mut(&run.worker) {
            worker.runs.remove(&lease);
            if let (Some(max), Some(ceiling)) = (worker.max_builds, worker.ceiling.as_mut()) {
                *ceiling = (*ceiling).min(worker.runs.len()).max(max as usize);
            }
            for port in &run.ports {
                worker.ports.remove(port);
            }
        }
        self.dirty_workers.push(run.worker);
    }

    /// Gives back the locks a run holds and withdraws the claims it waits on. Not
    /// conditional on the run's phase, so that no path can leave a claim behind.
    fn release_locks(&mut self, lease: Lease) {
        let Some(run) = self.runs.get_mut(&lease) else {
            return;
        };
        run.holds_locks = false;
        if let Some(worker) = self.workers.get_mut(&run.worker) {
            worker.locks.release(lease, &mut self.wake);
        }
    }

    // ----- requests and dispatch -----

    fn requeue(&mut self, request: RequestId, out: &mut Vec<Action>) {
        let Some(state) = self.requests.get_mut(&request) else {
            return;
        };
        state.claimed = None;
        out.push(Action::RequeueRequest { request });
        let known = self
            .builders
            .get(&state.builder)
            .is_some_and(|b| b.plan_index.is_some());
        if known {
            self.enqueue(request);
        } else {
            // Its builder left the plan while it ran: nothing can build it any more.
            self.complete_request(request, BuildResult::Cancelled, out);
        }
    }

    fn complete_request(&mut self, request: RequestId, result: BuildResult, out: &mut Vec<Action>) {
        if self.forget(request).is_some() {
            out.push(Action::CompleteRequest { request, result });
        }
    }

    /// Drops a finished request's state. After a burst the table keeps the capacity it
    /// reached (thousands of entries): given back once mostly empty.
    fn forget(&mut self, request: RequestId) -> Option<RequestState> {
        let state = self.requests.remove(&request);
        if self.requests.capacity() > 4 * self.requests.len().max(64) {
            self.requests.shrink_to_fit();
        }
        state
    }

    /// Puts a known, unclaimed request in its builder's queue.
    fn enqueue(&mut self, request: RequestId) {
        let Some(state) = self.requests.get(&request) else {
            return;
        };
        let key = state.key();
        let name = state.builder.clone();
        let Some(builder) = self.builders.get_mut(&name) else {
            return;
        };
        let old_head = builder.queue.head_key();
        builder.queue.insert(key, request);
        if old_head.is_none_or(|h| key < h) {
            self.set_head(&name, old_head, Some(key));
            self.dirty_builders.push(name);
        }
    }

    /// Takes a request out of its builder's queue.
    fn unqueue(&mut self, name: &BuilderName, key: QueueKey) {
        let Some(builder) = self.builders.get_mut(name) else {
            return;
        };
        let old_head = builder.queue.head_key();
        builder.queue.remove(key);
        let new_head = builder.queue.head_key();
        if old_head != new_head {
            self.set_head(name, old_head, new_head);
        }
    }

    /// Keeps the workers' dispatch index in step with a builder's oldest request.
    fn set_head(&mut self, name: &BuilderName, old: Option<QueueKey>, new: Option<QueueKey>) {
        let Some(waiting) = self
            .builders
            .get(name)
            .and_then(|b| self.lists.get_mut(b.list))
            .map(|list| &mut list.waiting)
        else {
            return;
        };
        if let Some(old) = old {
            waiting.remove(&(old, name.clone()));
        }
        if let Some(new) = new {
            waiting.insert((new, name.clone()));
        }
    }

    /// Does the work an event left: lock waiters first (they are builds already under
    /// way), then new requests, then freed slots; until nothing moves.
    fn settle(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        loop {
            if let Some(lease) = self.wake.pop_front() {
                let waiting = self
                    .runs
                    .get(&lease)
                    .is_some_and(|r| matches!(r.phase, Phase::WaitingForLock(..)));
                if waiting {
                    self.advance(lease, out);
                }
                continue;
            }
            if !self.dirty_builders.is_empty() {
                let mut names = std::mem::take(&mut self.dirty_builders);
                // Oldest waiting request first, so that one event that frees several
                // builders serves them in queue order.
                names.sort_by_cached_key(|n| self.builders.get(n).and_then(|b| b.queue.head_key()));
                names.dedup();
                for name in names {
                    self.dispatch_builder(&name, now, out);
                }
                continue;
            }
            if !self.dirty_workers.is_empty() {
                let mut names = std::mem::take(&mut self.dirty_workers);
                names.sort();
                names.dedup();
                for name in names {
                    self.dispatch_worker(&name, now, out);
                }
                continue;
            }
            return;
        }
    }

    /// Gives a builder's waiting requests to its free workers: its last worker first (warm
    /// caches), then the least busy.
    fn dispatch_builder(&mut self, name: &BuilderName, now: Timestamp, out: &mut Vec<Action>) {
        loop {
            let Some(builder) = self.builders.get(name) else {
                return;
            };
            if builder.queue.is_empty() {
                return;
            }
            let free = |w: &WorkerName| self.workers.get(w).is_some_and(WorkerState::has_free_slot);
            let workers = self.workers_of(builder);
            let chosen = builder
                .last_worker
                .as_ref()
                .filter(|w| workers.contains(w) && free(w))
                .or_else(|| {
                    workers
                        .iter()
                        .filter(|w| free(w))
                        .min_by_key(|w| self.workers.get(*w).map_or(0, |s| s.runs.len()))
                })
                .cloned();
            let Some(worker) = chosen else { return };
            if !self.start(name, &worker, now, out) {
                return;
            }
        }
    }

    /// Fills a worker's free slots with the oldest waiting requests it can build.
    fn dispatch_worker(&mut self, name: &WorkerName, now: Timestamp, out: &mut Vec<Action>) {
        loop {
            let Some(worker) = self.workers.get(name) else {
                return;
            };
            if !worker.has_free_slot() {
                return;
            }
            let oldest = worker
                .lists
                .iter()
                .filter_map(|&list| self.lists.get(list).and_then(|l| l.waiting.first()))
                .min();
            let Some((_, builder)) = oldest.cloned() else {
                return;
            };
            if !self.start(&builder, name, now, out) {
                return;
            }
        }
    }

    /// Dispatches the oldest request of `builder` (with what merges into it) to `worker`.
    fn start(
        &mut self,
        name: &BuilderName,
        worker_name: &WorkerName,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(builder) = self.builders.get_mut(name) else {
            return false;
        };
        let (Some(plan_index), Some((head_key, head))) = (builder.plan_index, builder.queue.head())
        else {
            return false;
        };
        let mut requests = vec![head];
        builder.queue.remove(head_key);
        if self.options.merge_requests {
            if let Some(first) = self.requests.get(&head).filter(|r| r.mergeable) {
                let merged: Vec<(QueueKey, RequestId)> = builder
                    .queue
                    .iter()
                    .filter(|(_, id)| {
                        self.requests
                            .get(id)
                            .is_some_and(|r| r.mergeable && r.properties == first.properties)
                    })
                    .collect();
                for (key, id) in merged {
                    builder.queue.remove(key);
                    requests.push(id);
                }
            }
        }
        builder.last_worker = Some(worker_name.clone());
        let new_head = builder.queue.head_key();
        self.set_head(name, Some(head_key), new_head);
        let lease = Lease(self.next_lease);
        self.next_lease += 1;
        for id in &requests {
            if let Some(state) = self.requests.get_mut(id) {
                state.claimed = Some(lease);
            }
        }
        let Some(worker) = self.workers.get_mut(worker_name) else {
            return false;
        };
        worker.runs.insert(lease);
        let run = Run {
            lease,
            build: None,
            number: 0,
            builder: name.clone(),
            worker: worker_name.clone(),
            requests: requests.clone(),
            plan: Arc::clone(&self.plan),
            builder_index: plan_index,
            worker_index: worker.plan_index,
            builder_dir: builder_dir(name.as_str()),
            basedir: worker.basedir.clone().unwrap_or_default(),
            started_at: now,
            properties: BTreeMap::new(),
            phase: Phase::Starting,
            next_step: 0,
            result: BuildResult::Success,
            terminated: false,
            stopping: false,
            holds_locks: false,
            ports: Vec::new(),
        };
        self.runs.insert(lease, run);
        out.push(Action::CreateBuild {
            lease,
            builder: name.clone(),
            worker: worker_name.clone(),
            requests,
        });
        true
    }

    // ----- invariants -----

    /// Checks the engine's invariants (for tests and debugging; linear in the state):
    /// no worker above `max_builds`, no request both waiting and running, no exclusive lock
    /// held twice or beside counting holders, no port reserved twice on a worker, and the
    /// dispatch index in step with the queues.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |msg: String| Err(InvariantViolation(msg));
        for (name, w) in &self.workers {
            if let Some(ceiling) = w.ceiling {
                if w.runs.len() > ceiling {
                    return fail(format!(
                        "{name}: {} builds > max_builds {:?}",
                        w.runs.len(),
                        w.max_builds
                    ));
                }
            }
            if w.basedir.is_none() && !w.runs.is_empty() {
                return fail(format!("{name}: builds on a disconnected worker"));
            }
            for lease in &w.runs {
                if self.runs.get(lease).is_none_or(|r| &r.worker != name) {
                    return fail(format!("{name}: slot held by unknown run {lease}"));
                }
            }
            for (lock, exclusive, counting) in w.locks.holders() {
                if exclusive.is_some() && !counting.is_empty() {
                    return fail(format!(
                        "{name}: lock {lock} exclusive and counting at once"
                    ));
                }
                for lease in exclusive.iter().chain(counting) {
                    let holder = self.runs.get(lease);
                    if holder.is_none_or(|r| &r.worker != name || !r.holds_locks) {
                        return fail(format!("{name}: lock {lock} held by stray run {lease}"));
                    }
                }
            }
            for lease in w.locks.waiters() {
                if self
                    .runs
                    .get(&lease)
                    .is_none_or(|r| !matches!(r.phase, Phase::WaitingForLock(..)))
                {
                    return fail(format!(
                        "{name}: run {lease} queued on a lock but not waiting"
                    ));
                }
            }
            for (port, lease) in &w.ports {
                if self.runs.get(lease).is_none_or(|r| !r.ports.contains(port)) {
                    return fail(format!("{name}: port {port} reserved by stray run {lease}"));
                }
            }
        }
        for (list, WorkerList { waiting, .. }) in self.lists.iter().enumerate() {
            for (key, builder) in waiting {
                let state = self.builders.get(builder);
                if state.and_then(|b| b.queue.head_key()) != Some(*key) {
                    return fail(format!("stale dispatch entry for {builder}"));
                }
                if state.is_some_and(|b| b.list != list) {
                    return fail(format!("{builder} indexed under another worker list"));
                }
            }
        }
        for (lease, run) in &self.runs {
            if !self
                .workers
                .get(&run.worker)
                .is_some_and(|w| w.runs.contains(lease))
            {
                return fail(format!("run {lease} holds no slot on {}", run.worker));
            }
            if let Some(build) = run.build {
                if self.builds.get(&build) != Some(lease) {
                    return fail(format!("build {build} not indexed"));
                }
            }
            for id in &run.requests {
                if self.requests.get(id).and_then(|r| r.claimed) != Some(*lease) {
                    return fail(format!("request {id} of run {lease} not claimed by it"));
                }
            }
        }
        let mut queued = 0;
        for (name, b) in &self.builders {
            for (key, id) in b.queue.iter() {
                queued += 1;
                let Some(state) = self.requests.get(&id) else {
                    return fail(format!("{name}: unknown request {id} queued"));
                };
                if state.claimed.is_some() {
                    return fail(format!("request {id} both queued and running"));
                }
                if state.key() != key || state.builder != *name {
                    return fail(format!("request {id} queued under the wrong key"));
                }
            }
            if let Some(head) = b.queue.head_key() {
                let indexed = self
                    .lists
                    .get(b.list)
                    .is_some_and(|l| l.waiting.contains(&(head, name.clone())));
                if !indexed {
                    return fail(format!("{name}: head not indexed"));
                }
            }
            for w in self.workers_of(b) {
                if !self
                    .workers
                    .get(w)
                    .is_some_and(|s| s.lists.contains(&b.list))
                {
                    return fail(format!("{name}: worker list not reachable from {w}"));
                }
            }
        }
        let claimed = self
            .requests
            .values()
            .filter(|r| r.claimed.is_some())
            .count();
        if queued + claimed != self.requests.len() {
            return fail(format!(
                "{} requests known, {queued} queued, {claimed} running",
                self.requests.len()
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("requests", &self.requests.len())
            .field("runs", &self.runs.len())
            .field("next_lease", &self.next_lease)
            .finish_non_exhaustive()
    }
}

/// What a build whose worker was lost ends with: `retry` (its requests wait again), or
/// `cancelled` when a stop was asked for (nobody wants it rebuilt).
fn lost_result(stopping: bool) -> BuildResult {
    if stopping {
        BuildResult::Cancelled
    } else {
        BuildResult::Retry
    }
}
