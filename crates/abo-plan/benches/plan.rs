//! Planning a large generated configuration: 2,000 buildouts, 200 workers, 8 PostgreSQL
//! versions (the target: under 200 ms, cost linear in builders).
//!
//! Run with `cargo bench -p abo-plan --bench plan`. Besides criterion's figures, it prints
//! the time per builder at several sizes, which should stay flat if planning is linear.

use abo_config::{ini, read_manifest, read_workers, ManifestSection, MasterSettings, Worker};
use abo_plan::planner::{plan, PlanInput};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::fmt::Write;
use std::time::Instant;

const PG_VERSIONS: [&str; 8] = ["9.6", "10", "11", "12", "13", "14", "15", "16"];

/// A workers file: each worker offers 4 of the 8 PostgreSQL versions, some a python and a
/// private-code capability.
fn workers_text(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let _ = writeln!(s, "[worker-{i}]\npassword = secret-{i}\nmax_builds = 2");
        let _ = write!(s, "capability =");
        for k in 0..4 {
            let v = PG_VERSIONS[(i + k * 2) % 8];
            let _ = writeln!(
                s,
                " postgresql {v} port={} bin=/usr/lib/postgresql/{v}/bin",
                5432 + k
            );
            s.push_str("   ");
        }
        let _ = writeln!(
            s,
            " python 3.{} bin=/usr/bin/python3.{}",
            8 + i % 4,
            8 + i % 4
        );
        if i % 3 == 0 {
            s.push_str("    private-code-access\n");
        }
        s.push('\n');
    }
    s
}

/// A manifest of `n` buildouts mixing the options users write.
fn manifest_text(n: usize) -> String {
    let mut s = String::from("[DEFAULT]\nbootstrap-version = 2.13.8\n\n");
    for i in 0..n {
        let _ = writeln!(s, "[buildout-{i}]");
        let _ = writeln!(s, "buildout = standalone buildout-{}.cfg", i % 10);
        let _ = writeln!(s, "openerp-addons = sale, stock, account_{i}");
        match i % 4 {
            0 => {}
            1 => s.push_str("build-for = postgresql >= 12\n"),
            2 => s.push_str("build-for = postgresql >= 10 < 15 OR == 9.6\nbuild-requires = python >= 3.9\n"),
            _ => s.push_str("build-requires = private-code-access\npost-buildout-steps = standard\n  update-openerp\n"),
        }
        let _ = writeln!(
            s,
            "watch = git https://git.example/org/repo-{}.git 16.0\n",
            i % 500
        );
    }
    s
}

fn inputs(buildouts: usize, workers: usize) -> (Vec<ManifestSection>, Vec<Worker>) {
    let (m, d) = ini::parse("MANIFEST.cfg", &manifest_text(buildouts));
    assert!(d.is_empty(), "{d:?}");
    let (sections, d) = read_manifest(&m, "buildouts");
    assert!(d.is_empty(), "{d:?}");
    let (w, d) = ini::parse("workers.cfg", &workers_text(workers));
    assert!(d.is_empty(), "{d:?}");
    let (workers, d) = read_workers(&w);
    assert!(d.is_empty(), "{d:?}");
    (sections, workers)
}

fn bench(c: &mut Criterion) {
    let settings = MasterSettings::default();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    println!("\nbuildouts  builders  ms/plan  µs/builder");
    for buildouts in [500, 1000, 2000] {
        let (sections, workers) = inputs(buildouts, 200);
        let input = PlanInput {
            sections: &sections,
            workers: &workers,
            settings: &settings,
            settings_file: "master.toml",
        };
        let builders = plan(&input)
            .expect("the generated configuration is valid")
            .builders
            .len();
        let runs = 5;
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(plan(&input).unwrap());
        }
        let per_plan = start.elapsed().as_secs_f64() / runs as f64;
        println!(
            "{buildouts:>9}  {builders:>8}  {:>7.1}  {:>10.2}",
            per_plan * 1e3,
            per_plan * 1e6 / builders as f64
        );
        group.bench_with_input(
            BenchmarkId::new("buildouts", buildouts),
            &input,
            |b, input| b.iter(|| plan(input).unwrap()),
        );
    }
    group.finish();

    // Reading the files is part of what `abo check` costs: measure it too.
    let (m_text, w_text) = (manifest_text(2000), workers_text(200));
    c.bench_function("read 2000 buildouts + 200 workers", |b| {
        b.iter(|| {
            let (m, _) = ini::parse("MANIFEST.cfg", &m_text);
            let (w, _) = ini::parse("workers.cfg", &w_text);
            (read_manifest(&m, "buildouts"), read_workers(&w))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
