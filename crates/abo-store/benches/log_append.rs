//! Appends a 200 MB log in 64 KiB writes (a build printing as fast as it can) and reports
//! the throughput, the compressed size, the speed of reading it back, and the peak resident
//! memory. Run with `cargo bench -p abo-store --bench log_append`; `ABO_BENCH_MB` changes
//! the size.

use abo_store::{BuildResult, Lease, LogKind, LogOptions, NewRequest, Store, Stream, Timestamp};
use std::time::Instant;

const WRITE: usize = 64 * 1024;

/// Log-like text: lines with timestamps, levels, modules and counters.
fn fill(buf: &mut Vec<u8>, seed: u64) {
    use std::fmt::Write as _;
    buf.clear();
    let mut x = seed.wrapping_mul(6364136223846793005) | 1;
    let mut line = String::new();
    while buf.len() < WRITE {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        line.clear();
        let _ = writeln!(
            line,
            "2024-05-01 12:{:02}:{:02},{:03} 4242 {} db odoo.modules.loading: loading {} modules x={:x}",
            (x >> 40) % 60,
            (x >> 30) % 60,
            (x >> 20) % 1000,
            ["INFO", "DEBUG", "WARNING"][(x >> 61) as usize % 3],
            (x >> 8) % 500,
            x >> 32
        );
        buf.extend_from_slice(line.as_bytes());
    }
    buf.truncate(WRITE);
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// A size line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mb: usize = std::env::var("ABO_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let total = mb * 1024 * 1024;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().to_str().expect("utf-8 path"))
            .await
            .expect("open");
        let now = Timestamp(0);
        let req = store
            .submit_request(NewRequest::new("bench", now))
            .await
            .expect("submit");
        store
            .claim_request(req, Lease(1), now)
            .await
            .expect("claim");
        let (build, _) = store
            .create_build(req, "w", Lease(1), now)
            .await
            .expect("build");
        store
            .start_step(build, Lease(1), 0, "test", now)
            .await
            .expect("step");
        println!(
            "resident memory with the store open: {:.1} MB",
            status_bytes("VmRSS:") as f64 / 1e6
        );
        for (kind, secrets) in [
            (LogKind::Text, vec![]),
            (LogKind::Stdio, vec![]),
            (LogKind::Text, vec!["some-secret-password".to_owned()]),
        ] {
            let name = format!("{kind}-{}", secrets.len());
            let options = LogOptions::default()
                .with_cap(total as u64 * 2)
                .with_secrets(&secrets)
                .unwrap();
            let mut w = store
                .open_log(build, Lease(1), 0, &name, kind, options)
                .await
                .expect("open log");
            let id = w.id();
            let mut buf = Vec::with_capacity(WRITE);
            let started = Instant::now();
            for i in 0..total / WRITE {
                fill(&mut buf, i as u64);
                w.write(Stream::Stdout, &buf).await.expect("write");
            }
            let info = w.finish().await.expect("finish");
            let secs = started.elapsed().as_secs_f64();
            let peak_after_write = peak_rss();
            let reader = store.log_reader(id).await.expect("reader");
            let started = Instant::now();
            let mut off = 0;
            loop {
                let got = reader
                    .read_range(off, abo_store::MAX_READ_BYTES)
                    .await
                    .expect("read");
                if got.is_empty() {
                    break;
                }
                off += got.len() as u64;
            }
            let read_secs = started.elapsed().as_secs_f64();
            println!(
                "{name:>8}: {mb} MB in {WRITE}-byte writes: {:.0} MB/s write, {:.0} MB/s read, \
                 {} chunks, database {:.1} MB so far, peak RSS {:.1} MB after writing, \
                 {:.1} MB after reading back in {} MiB ranges",
                total as f64 / 1e6 / secs,
                off as f64 / 1e6 / read_secs,
                info.chunk_count,
                db_size(dir.path()) as f64 / 1e6,
                peak_after_write as f64 / 1e6,
                peak_rss() as f64 / 1e6,
                abo_store::MAX_READ_BYTES >> 20
            );
        }
        store
            .finish_build(build, Lease(1), BuildResult::Success, now)
            .await
            .expect("finish build");
    });
}

/// The size of the database file plus its WAL.
fn db_size(dir: &std::path::Path) -> u64 {
    ["abo.sqlite", "abo.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}
