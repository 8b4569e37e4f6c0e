//! Reading abo's configuration files into typed values.
//!
//! - [`ini`]: INI files with Python 2.7 `ConfigParser` semantics and line numbers
//!   (the seed's `MANIFEST.cfg` and `slaves.cfg`/`workers.cfg`).
//! - [`manifest`]: [`ManifestSection`], a manifest section with `DEFAULT` and `inherit`
//!   resolved.
//! - [`diag`]: [`Diagnostic`], one mistake with its `file:line`.
//!
//! This crate is pure: it reads text handed to it and touches no filesystem.

pub mod diag;
pub mod ini;
pub mod manifest;

pub use diag::{Diagnostic, Diagnostics};
pub use manifest::{ManifestSection, OptValue};
