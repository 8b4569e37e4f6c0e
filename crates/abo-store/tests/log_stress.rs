//! A 200 MB log (64 MB on PostgreSQL, where every chunk is a round trip to the server)
//! written in 4 KiB writes: memory stays flat, and the log reads back byte for byte by
//! ranges while it is written and after. Its own test binary, so that no other test moves
//! the resident set size it measures; the two backends run one after the other for the
//! same reason.

mod common;

use abo_store::{Lease, LogKind, LogOptions, Stream, CHUNK_BYTES, MAX_LINE_BYTES};
use common::{rss_bytes, running_build, store_on, t, Backend};

const BLOCK: usize = 4096;
const TOTAL: usize = 200 * 1024 * 1024;
const BLOCKS: usize = TOTAL / BLOCK;
const PG_TOTAL: usize = 64 * 1024 * 1024;

/// Write number `i`: 4 KiB of log-like lines (timestamps, levels, module names, counters),
/// computed from `i` alone so any range can be checked without keeping the log.
fn block(i: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK + 200);
    let mut x = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut n = 0;
    while out.len() < BLOCK {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let level = ["INFO", "DEBUG", "WARNING", "INFO"][(x >> 60) as usize % 4];
        let module = [
            "odoo.modules.loading",
            "odoo.addons.base",
            "odoo.tests",
            "werkzeug",
        ][(x >> 58) as usize % 4];
        out.extend_from_slice(
            format!(
                "2024-05-{:02} 12:{:02}:{:02},{:03} {} {level} db {module}: step {i}.{n} x={:x}\n",
                1 + (x >> 50) % 28,
                (x >> 40) % 60,
                (x >> 30) % 60,
                (x >> 20) % 1000,
                1000 + (x >> 10) % 9000,
                x >> 32
            )
            .as_bytes(),
        );
        n += 1;
    }
    out.truncate(BLOCK);
    out
}

/// The expected bytes `[offset, offset + len)`.
fn expected(offset: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = offset / BLOCK;
    let mut skip = offset % BLOCK;
    while out.len() < len && i < BLOCKS {
        let b = block(i);
        let take = (BLOCK - skip).min(len - out.len());
        out.extend_from_slice(&b[skip..skip + take]);
        skip = 0;
        i += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_keeps_memory_flat_and_reads_back_exactly() {
    large_log(Backend::Sqlite, TOTAL).await;
    large_log(Backend::Postgres, PG_TOTAL).await;
}

async fn large_log(backend: Backend, total: usize) {
    let blocks = total / BLOCK;
    let (_db, s) = store_on(backend).await;
    let (_, build) = running_build(&s, "b", 1).await;
    s.start_step(build, Lease(1), 0, "test", t(4))
        .await
        .unwrap();
    // A cap above the size, and a secret that never occurs: the masking path runs at scale
    // without changing a byte.
    let options = LogOptions::default()
        .with_cap(total as u64 * 2)
        .with_secrets(["never-printed-secret-value"])
        .unwrap();
    let mut w = s
        .open_log(build, Lease(1), 0, "test.log", LogKind::Text, options)
        .await
        .unwrap();
    let r = s.log_reader(w.id()).await.unwrap();

    let warmup = 16 * 1024 * 1024 / BLOCK;
    let mut baseline = 0;
    let mut peak_rss = 0;
    let mut peak_buffer = 0;
    let mut checked_while_writing = 0;
    let started = std::time::Instant::now();
    for i in 0..blocks {
        w.write(Stream::Stdout, &block(i)).await.unwrap();
        peak_buffer = peak_buffer.max(w.buffered_bytes());
        if i == warmup {
            baseline = rss_bytes();
        }
        if i > warmup && i % 256 == 0 {
            peak_rss = peak_rss.max(rss_bytes());
        }
        // Every 8 MB, read back the stored end of the log while it is being written.
        if i % 2048 == 2047 {
            let stored = r.info().await.unwrap().byte_len as usize;
            let len = 300_000.min(stored);
            let got = r.read_range((stored - len) as u64, len).await.unwrap();
            assert!(
                got == expected(stored - len, len),
                "range ending at {stored}"
            );
            checked_while_writing += 1;
        }
    }
    let info = w.finish().await.unwrap();
    let write_secs = started.elapsed().as_secs_f64();
    assert_eq!(info.byte_len as usize, total);
    assert!(!info.truncated);

    // Read it all back by ranges (and check memory while reading, too).
    let started = std::time::Instant::now();
    let step = 3 * 1024 * 1024 + 17;
    let mut off = 0;
    while off < total {
        let got = r.read_range(off as u64, step).await.unwrap();
        assert_eq!(got.len(), step.min(total - off));
        assert!(got == expected(off, got.len()), "range at {off}");
        off += got.len();
        peak_rss = peak_rss.max(rss_bytes());
    }
    let read_secs = started.elapsed().as_secs_f64();
    let growth = peak_rss.saturating_sub(baseline);
    println!(
        "{backend:?}, {} MB log: write {:.1} MB/s, read back {:.1} MB/s, {} chunks, rss baseline {} MB, \
         growth {} MB, peak writer buffer {} KiB, {checked_while_writing} ranges checked while writing",
        total / 1_000_000,
        total as f64 / 1e6 / write_secs,
        total as f64 / 1e6 / read_secs,
        info.chunk_count,
        baseline / 1_000_000,
        growth / 1_000_000,
        peak_buffer / 1024
    );
    assert!(
        peak_buffer <= CHUNK_BYTES + MAX_LINE_BYTES,
        "writer buffer {peak_buffer}"
    );
    // Holding the log would take 200 (64) MB; flat means a few chunks, the database
    // client's buffers and page caches, and allocator slack.
    assert!(
        growth < 48 * 1024 * 1024,
        "resident memory grew by {growth} bytes"
    );
}
