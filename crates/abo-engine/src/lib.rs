//! abo's engine: dispatch, worker locks and build sequencing as one deterministic state
//! machine, `Engine::handle(now, Event) -> Vec<Action>`. No I/O, no clock, no async: the
//! master runtime persists, talks to workers and feeds the engine what happened; time comes
//! in as a [`Timestamp`].
//!
//! # Principal types
//!
//! - [`Engine`]: the state (waiting requests per builder, connected workers with their
//!   slots, locks and reserved ports, running builds) and [`Engine::handle`]; read-only views
//!   [`Engine::pending`] (with a [`WaitReason`]) and [`Engine::running`];
//!   [`EngineOptions`] (request merging).
//! - [`Event`] in, [`Action`] out: closed enums. A dispatch is a handshake: the engine emits
//!   [`Action::CreateBuild`] with a fresh [`Lease`], the runtime stores the build and answers
//!   [`Event::BuildCreated`] with the store's [`BuildId`]. Every later write about the build
//!   carries the lease; a stale one is refused ([`Action::RejectStale`]).
//! - [`RenderedStep`]: a plan step with its templates rendered from the build's properties,
//!   sent with [`Action::RunStep`]. The engine runs `set-properties`,
//!   `set-capability-properties` and `reserve-port` itself.
//! - [`BuildResult`] with Buildbot's [`worst`] order and [`step_counts`]
//!   (halt/flunk/warn on failure).
//! - Identifiers are newtypes: [`RequestId`], [`BuildId`], [`Lease`], [`WorkerName`],
//!   [`BuilderName`].
//!
//! Nothing panics on any event sequence: a late, duplicate or unknown event is ignored or
//! answered.

mod engine;
mod event;
mod ids;
mod locks;
mod render;
mod result;
pub mod scheduler;

pub use engine::{Engine, EngineOptions, InvariantViolation};
pub use event::{
    Action, Event, InterruptedBuild, NewRequest, PendingRequest, RunState, RunningBuild,
    StepOutcome, WaitReason,
};
pub use ids::{BuildId, BuilderName, Lease, RequestId, Timestamp, WorkerName};
pub use render::{
    builder_dir, RenderedCommand, RenderedEnv, RenderedKind, RenderedStep, StepError,
    DEFAULT_WORKDIR,
};
pub use result::{step_counts, worst, BuildResult, UnknownResult};
pub use scheduler::{ChangeRef, PendingTimer, SchedulerAction, Schedulers, TimeZone, Trigger};
