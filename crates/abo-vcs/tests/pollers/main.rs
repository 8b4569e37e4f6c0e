//! Pollers against real repositories in temporary directories: git, Mercurial and Bazaar
//! (Breezy), the hostile corpus, and the poller set's scheduling. One test binary, so the
//! workspace links it once.
//!
//! Needs `git`, `hg` and `brz` (or `bzr`) on `PATH`: `scripts/test` installs them.

mod bzr;
mod common;
mod git;
mod hg;
mod hostile;
mod set;
