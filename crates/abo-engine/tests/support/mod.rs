//! Test harness: small plans built in code, and a driver that answers the engine as a
//! runtime would (store build ids, outstanding steps) and prints actions as short lines.
#![allow(dead_code)]

use abo_engine::*;
use abo_plan::{Builder, CapabilityView, LockMode, LockUse, Plan, Step, StepKind, WorkerView};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn worker(name: &str, max_builds: Option<u32>) -> WorkerView {
    WorkerView {
        name: name.into(),
        max_builds,
        notify_on_missing: Vec::new(),
        capabilities: Vec::new(),
        properties: BTreeMap::new(),
    }
}

pub fn cap(name: &str, version: Option<&str>, options: &[(&str, &str)]) -> CapabilityView {
    CapabilityView {
        name: name.into(),
        version: version.map(Into::into),
        options: map(options),
    }
}

pub fn builder(name: &str, workers: &[&str], steps: Vec<Step>) -> Builder {
    Builder {
        name: name.into(),
        buildout: name.into(),
        workers: workers.iter().map(|w| Arc::from(*w)).collect(),
        category: String::new(),
        properties: BTreeMap::new(),
        steps: steps.into(),
    }
}

pub fn plan(workers: Vec<WorkerView>, builders: Vec<Builder>) -> Arc<Plan> {
    Arc::new(Plan {
        workers,
        builders,
        schedulers: Vec::new(),
        pollers: Vec::new(),
    })
}

/// A shell step running `true`.
pub fn sh(name: &str) -> Step {
    Step::argv(name, ["true"])
}

pub fn locked(mut step: Step, lock: &str, mode: LockMode) -> Step {
    step.locks.push(LockUse {
        name: lock.into(),
        mode,
    });
    step
}

pub fn reserve_port(name: &str) -> Step {
    locked(
        Step::new(
            name,
            StepKind::ReservePort {
                property: "openerp_port".into(),
                min: 9069,
                max: 11069,
                step: 5,
            },
        ),
        "port-reserve",
        LockMode::Exclusive,
    )
}

/// One action as a short line.
pub fn line(a: &Action) -> String {
    match a {
        Action::CreateBuild {
            lease,
            builder,
            worker,
            requests,
        } => {
            let r: Vec<String> = requests.iter().map(|r| format!("r{r}")).collect();
            format!("create L{lease} {builder} on {worker} for {}", r.join(","))
        }
        Action::BuildStarted {
            build,
            worker,
            number,
            ..
        } => format!("started B{build} #{number} on {worker}"),
        Action::RunStep { build, step, .. } => {
            format!("run B{build} {} {}", step.index, step.name)
        }
        Action::InterruptStep { build, step, .. } => format!("interrupt B{build} {step}"),
        Action::RecordStep {
            build,
            step,
            name,
            result,
            summary,
            properties,
        } => {
            let mut s = format!("step B{build} {step} {name}: {result}");
            if let Some(summary) = summary {
                s.push_str(&format!(" ({summary})"));
            }
            if !properties.is_empty() {
                let p: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!(" {{{}}}", p.join(",")));
            }
            s
        }
        Action::FinishBuild { build, result } => format!("finish B{build} {result}"),
        Action::RequeueRequest { request } => format!("requeue r{request}"),
        Action::CompleteRequest { request, result } => format!("complete r{request} {result}"),
        Action::RejectStale { lease, what, .. } => format!("stale L{lease} {what}"),
    }
}

/// A fake runtime around an engine, with a fake clock (1 ms per event).
pub struct Harness {
    pub engine: Engine,
    pub now: u64,
    /// Answer `CreateBuild` at once with a fresh build id.
    pub auto_create: bool,
    next_build: u64,
    numbers: HashMap<String, u64>,
    /// Steps asked for and not answered yet: build → (lease, step).
    pub outstanding: BTreeMap<BuildId, (Lease, RenderedStep)>,
    /// `CreateBuild`s not answered (when `auto_create` is off): lease → builder.
    pub creating: BTreeMap<Lease, String>,
    pub started_props: HashMap<BuildId, BTreeMap<String, String>>,
    /// Every action so far.
    pub actions: Vec<Action>,
}

impl Harness {
    pub fn new(plan: Arc<Plan>) -> Harness {
        Harness::with_engine(Engine::new(plan))
    }

    pub fn with_engine(engine: Engine) -> Harness {
        Harness {
            engine,
            now: 1_000,
            auto_create: true,
            next_build: 1,
            numbers: HashMap::new(),
            outstanding: BTreeMap::new(),
            creating: BTreeMap::new(),
            started_props: HashMap::new(),
            actions: Vec::new(),
        }
    }

    /// Feeds one event, answers what the store answers, checks the invariants; the lines
    /// of every action that followed.
    pub fn send(&mut self, event: Event) -> Vec<String> {
        let mut lines = Vec::new();
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            self.now += 1;
            let actions = self.engine.handle(Timestamp(self.now), event);
            if let Err(e) = self.engine.check_invariants() {
                panic!("invariant broken: {e}\nafter: {lines:#?}\n{actions:#?}");
            }
            let mut answers = Vec::new();
            for a in &actions {
                lines.push(line(a));
                match a {
                    Action::CreateBuild { lease, builder, .. } => {
                        if self.auto_create {
                            answers.push(self.created(*lease, builder.as_str()));
                        } else {
                            self.creating.insert(*lease, builder.to_string());
                        }
                    }
                    Action::RunStep {
                        build, lease, step, ..
                    } => {
                        self.outstanding.insert(*build, (*lease, (**step).clone()));
                    }
                    Action::BuildStarted {
                        build, properties, ..
                    } => {
                        self.started_props.insert(*build, properties.clone());
                    }
                    Action::FinishBuild { build, .. } => {
                        self.outstanding.remove(build);
                    }
                    Action::InterruptStep { .. }
                    | Action::RecordStep { .. }
                    | Action::RequeueRequest { .. }
                    | Action::CompleteRequest { .. }
                    | Action::RejectStale { .. } => {}
                }
            }
            self.actions.extend(actions);
            // Answered in order, as a runtime processing its actions one by one would.
            answers.reverse();
            queue.extend(answers);
        }
        lines
    }

    fn created(&mut self, lease: Lease, builder: &str) -> Event {
        let build = BuildId(self.next_build);
        self.next_build += 1;
        let n = self.numbers.entry(builder.to_string()).or_insert(0);
        *n += 1;
        Event::BuildCreated {
            lease,
            build,
            number: *n,
        }
    }

    /// Answers a `CreateBuild` held back (when `auto_create` is off).
    pub fn create(&mut self, lease: Lease) -> Vec<String> {
        let builder = self.creating.remove(&lease).unwrap_or_default();
        let event = self.created(lease, &builder);
        self.send(event)
    }

    pub fn connect(&mut self, worker: &str) -> Vec<String> {
        self.send(Event::WorkerConnected {
            worker: worker.into(),
            basedir: format!("/srv/{worker}"),
        })
    }

    pub fn lose(&mut self, worker: &str) -> Vec<String> {
        self.send(Event::WorkerLost {
            worker: worker.into(),
        })
    }

    pub fn submit(&mut self, id: u64, builder: &str) -> Vec<String> {
        self.submit_with(id, builder, &[])
    }

    pub fn submit_with(&mut self, id: u64, builder: &str, props: &[(&str, &str)]) -> Vec<String> {
        let request = NewRequest {
            id: RequestId(id),
            builder: builder.into(),
            properties: map(props),
            reason: "test".into(),
            submitted_at: Timestamp(self.now),
            mergeable: true,
        };
        self.send(Event::RequestSubmitted(request))
    }

    /// Answers the outstanding step of `build` with `result`.
    pub fn finish(&mut self, build: u64, result: BuildResult) -> Vec<String> {
        self.finish_with(build, StepOutcome::of(result))
    }

    pub fn finish_with(&mut self, build: u64, outcome: StepOutcome) -> Vec<String> {
        let build = BuildId(build);
        let (lease, step) = self
            .outstanding
            .remove(&build)
            .unwrap_or_else(|| panic!("no step outstanding for B{build}"));
        self.send(Event::StepFinished {
            build,
            lease,
            step: step.index,
            outcome,
        })
    }

    /// The outstanding step of `build`.
    pub fn step(&self, build: u64) -> &RenderedStep {
        &self.outstanding[&BuildId(build)].1
    }

    pub fn stop(&mut self, build: u64) -> Vec<String> {
        self.send(Event::StopRequested {
            build: BuildId(build),
        })
    }

    /// Answers every outstanding step with success until nothing is outstanding.
    pub fn run_out(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some((&build, _)) = self.outstanding.iter().next() {
            lines.extend(self.finish(build.0, BuildResult::Success));
        }
        lines
    }

    /// What each running build is doing, as short lines.
    pub fn running(&self) -> Vec<String> {
        self.engine
            .running()
            .iter()
            .map(|r| {
                let build = r.build.map_or("-".to_string(), |b| format!("B{b}"));
                let state = match &r.state {
                    RunState::Starting => "starting".to_string(),
                    RunState::Running { name, .. } => format!("running {name}"),
                    RunState::WaitingForLock { name, lock, .. } => {
                        format!("{name} waits for {lock}")
                    }
                };
                format!("{build} on {}: {state}", r.worker)
            })
            .collect()
    }

    /// Waiting requests as short lines.
    pub fn pending(&self) -> Vec<String> {
        self.engine
            .pending()
            .iter()
            .map(|p| format!("r{} {}: {:?}", p.request, p.builder, p.reason))
            .collect()
    }
}
