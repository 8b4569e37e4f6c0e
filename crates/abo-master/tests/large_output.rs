//! 100 MB of output through each kind of worker: every byte arrives, and the master's memory
//! stays flat while it streams (the consumer counts bytes and keeps none).
//!
//! Alone in its test binary, and the two peers take turns, so that this process's resident
//! memory measures the master and nothing else.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use abo_proto::UpdateEntry;
use common::*;

peers!(hundred_megabytes_with_flat_memory);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOTAL: u64 = 100_000_000;
/// How much the process may grow while 100 MB stream through it: the update queue (16
/// updates of about 64 KiB), the socket buffers and the allocator's slack, with a wide margin;
/// an implementation that kept the output would grow by 100 MB or more.
const MAX_GROWTH: u64 = 48 * 1024 * 1024;

async fn hundred_megabytes_with_flat_memory(peer: Peer) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let f = fixture(peer).await;
    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Lines of 999 characters and a newline: 100,000 whole lines.
    let text = format!(
        "yes {} | head -c {TOTAL}",
        "0123456789abcdefghijklmnopqrstuvwxyz"
            .repeat(28)
            .get(..999)
            .unwrap()
    );
    let started = std::time::Instant::now();
    let mut cmd = f
        .conn
        .run(shell(script(&f.wpath("build"), &text)))
        .await
        .unwrap();
    let (mut bytes, mut lines, mut longest) = (0u64, 0u64, 0usize);
    while let Some(entry) = within(Duration::from_secs(300), cmd.next()).await {
        if let UpdateEntry::Stdout(l) = entry {
            bytes += l.text.len() as u64;
            lines += l.text.matches('\n').count() as u64;
            longest = longest.max(l.text.split('\n').map(str::len).max().unwrap_or(0));
        }
    }
    let result = cmd.result().await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "{peer:?}: {bytes} bytes in {took:.1?} ({:.0} MB/s), master grew by {:.1} MiB",
        bytes as f64 / took.as_secs_f64() / 1e6,
        growth as f64 / 1048576.0
    );
    assert!(result.is_success(), "{result:?}");
    assert_eq!(bytes, TOTAL, "every byte arrives");
    assert_eq!(lines, TOTAL / 1000, "every line arrives");
    assert_eq!(longest, 999);
    assert!(
        growth < MAX_GROWTH,
        "the master grew by {growth} bytes while streaming"
    );
    f.stop().await;
}
