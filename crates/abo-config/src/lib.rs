//! Reading abo's configuration files into typed values.
//!
//! - [`ini`]: INI files with Python 2.7 `ConfigParser` semantics and line numbers
//!   (the seed's `MANIFEST.cfg` and `slaves.cfg`/`workers.cfg`).
//! - [`manifest`]: [`ManifestSection`], a manifest section with `DEFAULT`, interpolation
//!   and `inherit` resolved.
//! - [`workers`]: [`Worker`] and its [`Capability`] lines.
//! - [`settings`]: [`MasterSettings`], abo's own `master.toml`.
//! - [`diag`]: [`Diagnostic`], one mistake with its `file:line`.
//!
//! This crate is pure: it reads text handed to it and touches no filesystem. Readers keep
//! going after a mistake and return every diagnostic they found.

pub mod diag;
pub mod ini;
pub mod manifest;
pub mod settings;
pub mod workers;

pub use diag::{Diagnostic, Diagnostics};
pub use manifest::{read_manifest, ManifestSection, OptValue};
pub use settings::{read_settings, MasterSettings};
pub use workers::{read_workers, Capability, Worker};
