//! Planning: from configuration to a [`Plan`] of builders, steps, schedulers and pollers.
//!
//! - [`planner::plan`]: the pure function from manifests, workers and settings to a plan.
//! - [`model`]: the plan's types ([`Plan`], [`Builder`], [`Step`], [`Scheduler`], [`Poller`]),
//!   serialized as `abo check --json`.
//! - [`version`]: versions and the version-filter language (`>= 9.1 < 9.3 OR == 8.4`).
//! - [`watch`]: watch lists, URL rewriting, change filters and pollers.
//! - [`nightly`]: the `nightly` option (builds on the clock) and master.toml's `timezone`.
//! - [`steps`]: the step lists of builders (the seed's subfactories).
//! - [`props`]: build-time capability properties (`cap_<capability>_<option>`).
//! - [`template`]: property templates (`%(prop)s`, `%(prop:-default)s`).
//!
//! Pure: no I/O, no clock.

pub mod model;
pub mod nightly;
pub mod planner;
pub mod props;
pub mod steps;
pub mod template;
pub mod version;
pub mod watch;

pub use model::*;
