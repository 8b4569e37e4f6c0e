//! The dispatch benchmark: N trivial builds over W local `abo worker` processes with
//! `max_builds = 2`, against `abo start` on loopback (tests/e2e_support/dispatch.rs).
//!
//!     cargo bench -p abo --bench dispatch                 # 2,000 builds, 8 workers
//!     cargo bench -p abo --bench dispatch -- --quick      # 100 builds: a smoke run
//!     ABO_BENCH_QUICK=1 cargo bench -p abo --bench dispatch   # the same, as the other benches
//!     cargo bench -p abo --bench dispatch -- --builds 500 --workers 4
//!
//! Prints the master's time to ready, builds per second, request-to-start latency (p50,
//! p99) and the master's memory at ready and at its peak, split into anonymous (data) and
//! file-backed (code) pages, with Buildbot 4.3's figures on this machine.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use e2e_support::dispatch::{run, Options};

fn main() {
    let mut options = if std::env::var("ABO_BENCH_QUICK").is_ok_and(|v| v == "1") {
        Options::quick()
    } else {
        Options::full()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> usize {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => {
                    eprintln!("dispatch: {what} needs a positive number");
                    std::process::exit(2);
                }
            }
        };
        match arg.as_str() {
            "--quick" => options = Options::quick(),
            "--builds" => options.builds = number("--builds"),
            "--workers" => options.workers = number("--workers"),
            "--max-builds" => options.max_builds = number("--max-builds"),
            "--idle-requests" => options.idle_requests = number("--idle-requests"),
            "--help" | "-h" => {
                println!(
                    "usage: [ABO_BENCH_QUICK=1] cargo bench -p abo --bench dispatch -- [--quick] [--builds N] \
                     [--workers N] [--max-builds N] [--idle-requests N]"
                );
                return;
            }
            // `cargo bench` passes --bench; test-harness flags are ignored too.
            _ => {}
        }
    }
    let report = run(&options);
    if report.not_success > 0 {
        std::process::exit(1);
    }
}
