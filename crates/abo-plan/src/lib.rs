//! Planning: from configuration to a [`Plan`] of builders, steps, schedulers and pollers.

pub mod model;
pub mod steps;
pub mod version;
pub mod watch;

pub use model::*;
