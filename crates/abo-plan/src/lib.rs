//! Planning: from configuration to a [`Plan`] of builders, steps, schedulers and pollers.

pub mod model;

pub use model::*;
