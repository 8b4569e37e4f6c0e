//! The dispatch benchmark's quick run (100 trivial builds over 8 `abo worker` processes with
//! `max_builds = 2`): every build succeeds, and the figures are printed. The full run is
//! `cargo bench -p abo --bench dispatch`.

mod e2e_support;

use e2e_support::dispatch::{run, Options};

#[test]
fn quick_dispatch_benchmark() {
    let report = run(&Options::quick());
    assert_eq!(report.not_success, 0, "{report:?}");
    assert!(report.per_second > 0.0, "{report:?}");
    assert!(report.ready.as_secs_f64() < 30.0, "{report:?}");
}
