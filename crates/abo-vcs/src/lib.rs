//! abo's pollers: the repositories the plan watches, polled through the `git`, `hg` and
//! `bzr`/`brz` command lines, each new revision stored as a change.
//!
//! # Principal types
//!
//! - [`PollerRuntime`]: one [`abo_plan::Poller`] (one repository, its branches, its
//!   interval) with a mirror under the master directory (`gitpoller/<hash>`,
//!   `hgpoller/<hash>`, `bzrpoller/<hash>`: the sha1 of the URL as written, so rewriting
//!   rules can change without losing it). [`PollerRuntime::poll_once`] fetches, compares
//!   each branch's head with the last seen one in the store, and stores the new changes
//!   with the new head in one transaction per branch. The first poll of a poller records
//!   the heads and reports nothing.
//! - [`PollerSet`]: one task per poller, first polls spread over the start, exponential
//!   back-off with jitter while a poller fails, a [`PollerStatus`] per poller for the API,
//!   [`PollerSet::poll_now`] for webhooks, cancellation for shutdown.
//! - [`validate`]: the checks every URL, branch name and revision passes before it reaches
//!   a command line. [`parse`]: pure parsers of the tools' outputs. [`backoff`]: when to
//!   poll next.
//! - [`WorkingCopy`]: a checkout kept at a remote branch's head (the master's manifests
//!   directory from `config-repository`): cloned once, then only fast-forwarded, never over
//!   local modifications.
//!
//! # Safety against hostile data
//!
//! Every command is an argument vector (no shell), with `--` before URLs and paths, no
//! standard input, its own process group (killed on timeout or cancellation) and bounded
//! output. URLs are checked against an allowlist ([`validate_url`]); branch names and
//! revisions against the VCS's rules ([`validate_branch`], [`validate_revision`]); branch
//! names never enter a revset or a shell. git runs with `ext::` and hooks disabled and only
//! the allowed protocols; hg with no configuration file (no hooks, no extensions) unless
//! [`PollerOptions::hgrc`] names one; bzr without plugins and aliases. Commit data (messages,
//! authors, paths) is only ever data: parsed from NUL-separated, JSON or indented output,
//! stored, shown.

mod backend;
pub mod backoff;
mod command;
mod error;
pub mod parse;
mod poller;
mod set;
pub mod validate;
pub mod workcopy;

pub use error::{Result, VcsError, WorkingCopyProblem};
pub use parse::Commit;
pub use poller::{PollReport, PollerOptions, PollerRuntime};
pub use set::{PollerSet, PollerState, PollerStatus};
pub use validate::{validate_branch, validate_revision, validate_url};
pub use workcopy::WorkingCopy;
