//! The worker path's two figures, against real worker processes on loopback:
//!
//! - output throughput: one command printing 200 MB (lines of 1,000 bytes) through a worker
//!   to the master, against the same command with its output read directly from a pipe;
//!   the master's peak resident memory while it streams;
//! - round trip: `true` run 200 times, start to result, p50 and p99.
//!
//! ```text
//! cargo bench -p abo-master --bench throughput                  # the stock worker
//! cargo build --release -p abo && \
//!   cargo bench -p abo-master --bench throughput -- --peer abo   # abo's worker
//! cargo bench -p abo-master --bench throughput -- --peer all --bytes 50000000 --runs 100
//! ```
//!
//! The stock worker comes from `$ABO_BUILDBOT_WORKER` or `.cache/` (`scripts/test` installs
//! it); abo's worker from `$ABO_BIN` or the `abo` binary beside this benchmark.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abo_master::Timing;
use abo_proto::UpdateEntry;
use common::*;

struct Options {
    peers: Vec<Peer>,
    bytes: u64,
    runs: usize,
    repeats: usize,
}

fn options() -> Options {
    let mut o = Options {
        peers: vec![Peer::Stock],
        bytes: 200_000_000,
        runs: 200,
        repeats: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(p) = value("--peer") {
        o.peers = match p.as_str() {
            "stock" => vec![Peer::Stock],
            "abo" => vec![Peer::Abo],
            "all" => vec![Peer::Stock, Peer::Abo],
            other => panic!("--peer {other}: expected stock, abo or all"),
        };
    }
    if let Some(n) = value("--bytes") {
        o.bytes = n.parse().expect("--bytes N");
    }
    if let Some(n) = value("--runs") {
        o.runs = n.parse().expect("--runs N");
    }
    if let Some(n) = value("--repeats") {
        o.repeats = n.parse().expect("--repeats N");
    }
    o
}

/// Lines of 999 characters and a newline.
fn producer(bytes: u64) -> String {
    let line: String = "0123456789abcdefghijklmnopqrstuvwxyz"
        .chars()
        .cycle()
        .take(999)
        .collect();
    format!("yes {line} | head -c {bytes}")
}

/// The same command, its output read from a pipe by this process.
fn direct(bytes: u64) -> Duration {
    let started = Instant::now();
    let mut child = Process::new("/bin/sh")
        .args(["-c", &producer(bytes)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => panic!("reading the pipe: {e}"),
        }
    }
    assert!(child.wait().expect("sh ends").success());
    assert_eq!(total, bytes);
    started.elapsed()
}

/// CPU time (user + system) this process has used.
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (user + system) of another process, from /proc.
fn process_cpu(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench_peer(peer: Peer, o: &Options, direct_best: Duration) {
    let mut config = master_config(&[(NAME, PASSWORD)]);
    config.timing = Timing::default();
    let f = fixture_with(peer, config).await;
    let work = f.wpath("build");

    // Throughput.
    let mut best = Duration::MAX;
    let mut peak_growth = 0u64;
    let (mut master_cpu, mut worker_cpu) = (Duration::MAX, Duration::MAX);
    for _ in 0..o.repeats {
        let baseline = rss_bytes();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let (cpu0, wcpu0) = (own_cpu(), process_cpu(f.worker.pid()));
        let started = Instant::now();
        let mut cmd = f
            .conn
            .run(shell(script(&work, &producer(o.bytes))))
            .await
            .expect("command starts");
        let mut got = 0u64;
        while let Some(entry) = cmd.next().await {
            if let UpdateEntry::Stdout(l) = entry {
                got += l.text.len() as u64;
            }
        }
        let result = cmd.result().await;
        let took = started.elapsed();
        master_cpu = master_cpu.min(own_cpu().saturating_sub(cpu0));
        worker_cpu = worker_cpu.min(process_cpu(f.worker.pid()).saturating_sub(wcpu0));
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        assert!(result.is_success(), "{result:?}");
        assert_eq!(got, o.bytes, "every byte arrives");
        best = best.min(took);
        peak_growth = peak_growth.max(peak.load(Ordering::Relaxed).saturating_sub(baseline));
    }
    let slower = (best.as_secs_f64() / direct_best.as_secs_f64() - 1.0) * 100.0;
    println!(
        "{peer:?} worker: {} MB in {best:.2?} ({:.0} MB/s), {slower:+.0}% vs direct; \
         master peak RSS growth {:.1} MiB; CPU: master {master_cpu:.2?}, worker {worker_cpu:.2?} \
         (its own process, children excluded)",
        o.bytes / 1_000_000,
        mb_per_s(o.bytes, best),
        peak_growth as f64 / 1048576.0
    );

    // Round trip of a trivial command.
    let mut rtts = Vec::with_capacity(o.runs);
    for i in 0..o.runs + 10 {
        let started = Instant::now();
        let r = f
            .conn
            .run(shell(argv(&work, &["true"])))
            .await
            .expect("command starts")
            .result()
            .await;
        let took = started.elapsed();
        assert!(r.is_success(), "{r:?}");
        if i >= 10 {
            rtts.push(took);
        }
    }
    rtts.sort();
    println!(
        "{peer:?} worker: `true` round trip over {} runs: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        o.runs,
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
        rtts[rtts.len() - 1]
    );
    f.stop().await;
}

fn main() {
    let o = options();
    let direct_best = (0..o.repeats)
        .map(|_| direct(o.bytes))
        .min()
        .expect("at least one repeat");
    println!(
        "direct: {} MB in {direct_best:.2?} ({:.0} MB/s)",
        o.bytes / 1_000_000,
        mb_per_s(o.bytes, direct_best)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for peer in &o.peers {
        runtime.block_on(bench_peer(*peer, &o, direct_best));
    }
}
