//! The changes benchmark (tests/e2e_support/changes_bench.rs): 500 watched git repositories
//! of 10 branches on one `abo start` (the master's CPU time and wall time per cycle of
//! polls, its memory), then 100 pushes announced by signed GitHub webhooks with
//! tree-stable-timer 0 (notification to stored build request, p50 and p99).
//!
//!     cargo bench -p abo --bench changes
//!     ABO_BENCH_QUICK=1 cargo bench -p abo --bench changes   # 20 repositories × 3, 10 pushes

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use e2e_support::changes_bench::{run, Options};

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("usage: [ABO_BENCH_QUICK=1] cargo bench -p abo --bench changes");
        return;
    }
    let report = run(&Options::from_env());
    if report.missing_polls > 0 || report.requests_seen < report.pushes {
        eprintln!("changes: incomplete run: {report:?}");
        std::process::exit(1);
    }
}
