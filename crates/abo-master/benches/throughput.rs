//! The worker path's two figures, against real worker processes on loopback:
//!
//! - output throughput: one command printing 200 MB (lines of 1,000 bytes) through a worker
//!   to the master, against the same command with its output read directly from a pipe,
//!   and against the floor: that output only relayed through a loopback TCP connection;
//!   the CPU time of each side, and the peak resident memory each gains while it streams;
//! - round trip: `true` run 200 times, start to result, p50 and p99.
//!
//! ```text
//! cargo bench -p abo-master --bench throughput                  # the stock worker
//! cargo build --release -p abo && \
//!   cargo bench -p abo-master --bench throughput -- --peer abo   # abo's worker
//! cargo bench -p abo-master --bench throughput -- --peer all --bytes 50000000 --runs 100
//! ```
//!
//! Options: `--peer stock|abo|all`, `--bytes N`, `--runs N` (round trips), `--repeats N`
//! (throughput runs, default 5), `--buffer-size N` (the `buffer_size` the master sends, else
//! its default).
//!
//! How the comparison is kept fair:
//! - both sides run the very same `/bin/sh -c` command line, and both consumers do the same
//!   work with what arrives (count the bytes);
//! - a direct run and a run through the worker alternate, and each figure is the best of
//!   `--repeats`, so that both see the same machine: on a shared machine, running all the
//!   direct runs first (as this benchmark used to) compares a quiet moment with a busy one;
//! - the consumer runs as a task of the master's runtime, as the build runner does, and not
//!   on the thread that called `block_on` (as it used to): there every update crossed threads
//!   with a futex wake-up, a cost no real consumer pays;
//! - CPU times come from `/proc/<pid>/schedstat` (nanoseconds; `/proc/<pid>/stat` counts
//!   10 ms ticks, too coarse for runs of a few hundred ms). The producer's CPU (`yes`, `head`,
//!   `sh`) is shown too: on a 2-core machine, producer + worker + master CPU over 2 is a floor
//!   for the time through the worker.
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
    buffer_size: Option<u64>,
}

fn options() -> Options {
    let mut o = Options {
        peers: vec![Peer::Stock],
        bytes: 200_000_000,
        runs: 200,
        repeats: 5,
        buffer_size: None,
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
        o.repeats = n.parse::<usize>().expect("--repeats N").max(1);
    }
    if let Some(n) = value("--buffer-size") {
        o.buffer_size = Some(n.parse().expect("--buffer-size N"));
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

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    took: Duration,
    /// CPU of the producer (`sh`, `yes`, `head`).
    producer_cpu: Duration,
    /// CPU of the consumer: this process for a direct run; the master (this process, with
    /// the consumer) for a run through the worker.
    master_cpu: Duration,
    /// CPU of the worker process (its children excluded).
    worker_cpu: Duration,
    /// Peak resident memory gained during the run.
    master_growth: u64,
    worker_growth: u64,
}

/// CPU time (user + system) of this process's children that were waited for.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time a process (all its threads) has run, in nanoseconds, from `schedstat`.
fn process_cpu(pid: &str) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// CPU time of the children a process has waited for (`cutime` + `cstime`, 10 ms ticks:
/// fine for the producer, which runs long).
fn waited_children_cpu(pid: i32) -> Duration {
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
    // cutime and cstime are fields 16 and 17 of the line, 14 and 15 after the name.
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(13) + ticks(14)) * 1000 / hz)
}

/// Resident memory of a process, from its `status`.
fn rss_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples the peak resident memory of this process and of `worker` until dropped.
struct Peaks {
    stop: Arc<AtomicBool>,
    master: Arc<AtomicU64>,
    worker: Arc<AtomicU64>,
    baseline: (u64, u64),
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peaks {
    fn start(worker: Option<i32>) -> Peaks {
        let worker_pid = worker.map(|p| p.to_string());
        let baseline = (rss_bytes(), worker_pid.as_deref().map_or(0, rss_of));
        let stop = Arc::new(AtomicBool::new(false));
        let master = Arc::new(AtomicU64::new(baseline.0));
        let worker = Arc::new(AtomicU64::new(baseline.1));
        let thread = {
            let (stop, master, worker) = (stop.clone(), master.clone(), worker.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    master.fetch_max(rss_bytes(), Ordering::Relaxed);
                    if let Some(pid) = &worker_pid {
                        worker.fetch_max(rss_of(pid), Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Peaks {
            stop,
            master,
            worker,
            baseline,
            thread: Some(thread),
        }
    }

    /// Growth of the master and of the worker.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.master
                .load(Ordering::Relaxed)
                .saturating_sub(self.baseline.0),
            self.worker
                .load(Ordering::Relaxed)
                .saturating_sub(self.baseline.1),
        )
    }
}

/// The same command, its output read from a pipe by this process, counting bytes; with
/// `relay`, the output first crosses a loopback TCP connection (a thread copies the pipe
/// into the socket, this process reads the other end): the least any worker that sends
/// output over a network does, with no framing, parsing or storing.
fn direct(bytes: u64, relay: bool) -> Run {
    let peaks = Peaks::start(None);
    let (cpu0, children0) = (process_cpu("self"), children_cpu());
    let started = Instant::now();
    let mut child = Process::new("/bin/sh")
        .args(["-c", &producer(bytes)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let mut pipe = child.stdout.take().expect("piped");
    let (mut out, relaying): (Box<dyn Read>, _) = if relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let relaying = std::thread::spawn(move || {
            let mut socket = std::net::TcpStream::connect(addr).expect("connects");
            std::io::copy(&mut pipe, &mut socket).expect("relays");
        });
        let (socket, _) = listener.accept().expect("accepts");
        (Box::new(socket), Some(relaying))
    } else {
        (Box::new(pipe), None)
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => panic!("reading the output: {e}"),
        }
    }
    if let Some(relaying) = relaying {
        relaying.join().expect("the relay");
    }
    assert!(child.wait().expect("sh ends").success());
    let took = started.elapsed();
    assert_eq!(total, bytes);
    let (master_growth, _) = peaks.finish();
    Run {
        took,
        producer_cpu: children_cpu().saturating_sub(children0),
        master_cpu: process_cpu("self").saturating_sub(cpu0),
        worker_cpu: Duration::ZERO,
        master_growth,
        worker_growth: 0,
    }
}

/// The command through the worker, the consumer counting the bytes of stdout.
async fn through(f: &Fixture, bytes: u64) -> Run {
    let work = f.wpath("build");
    let worker_pid = f.worker.pid();
    let worker = worker_pid.to_string();
    let peaks = Peaks::start(Some(worker_pid));
    let (cpu0, wcpu0, pcpu0) = (
        process_cpu("self"),
        process_cpu(&worker),
        waited_children_cpu(worker_pid),
    );
    let started = Instant::now();
    let mut cmd = f
        .conn
        .run(shell(script(&work, &producer(bytes))))
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
    let run = Run {
        took,
        producer_cpu: waited_children_cpu(worker_pid).saturating_sub(pcpu0),
        master_cpu: process_cpu("self").saturating_sub(cpu0),
        worker_cpu: process_cpu(&worker).saturating_sub(wcpu0),
        master_growth: 0,
        worker_growth: 0,
    };
    let (master_growth, worker_growth) = peaks.finish();
    assert!(result.is_success(), "{result:?}");
    assert_eq!(got, bytes, "every byte arrives");
    Run {
        master_growth,
        worker_growth,
        ..run
    }
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Best (smallest) of each figure over the runs, and the median time.
struct Summary {
    best: Duration,
    median: Duration,
    producer_cpu: Duration,
    master_cpu: Duration,
    worker_cpu: Duration,
    master_growth: u64,
    worker_growth: u64,
}

fn summary(runs: &[Run]) -> Summary {
    let mut times: Vec<Duration> = runs.iter().map(|r| r.took).collect();
    times.sort();
    let min = |f: fn(&Run) -> Duration| runs.iter().map(f).min().unwrap_or_default();
    Summary {
        best: times[0],
        median: percentile(&times, 0.5),
        producer_cpu: min(|r| r.producer_cpu),
        master_cpu: min(|r| r.master_cpu),
        worker_cpu: min(|r| r.worker_cpu),
        // Memory: the worst run counts.
        master_growth: runs.iter().map(|r| r.master_growth).max().unwrap_or(0),
        worker_growth: runs.iter().map(|r| r.worker_growth).max().unwrap_or(0),
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / 1048576.0
}

async fn bench_peer(peer: Peer, o: Arc<Options>) {
    let mut config = master_config(&[(NAME, PASSWORD)]);
    config.timing = Timing::default();
    if let (Some(n), Some(settings)) = (o.buffer_size, config.connect_settings.as_mut()) {
        settings.buffer_size = n;
    }
    let f = fixture_with(peer, config).await;

    // Throughput: direct, relayed and through the worker, alternating.
    let (mut directs, mut relays, mut throughs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..o.repeats {
        let bytes = o.bytes;
        let d = tokio::task::spawn_blocking(move || direct(bytes, false));
        directs.push(d.await.expect("the direct run"));
        let r = tokio::task::spawn_blocking(move || direct(bytes, true));
        relays.push(r.await.expect("the relayed run"));
        throughs.push(through(&f, o.bytes).await);
    }
    let (d, r, t) = (summary(&directs), summary(&relays), summary(&throughs));
    let mb = o.bytes / 1_000_000;
    let slower = (t.best.as_secs_f64() / d.best.as_secs_f64() - 1.0) * 100.0;
    println!(
        "direct: {mb} MB in {:.2?} ({:.0} MB/s; median {:.2?}); CPU: reader {:.2?}, producer {:.2?}",
        d.best,
        mb_per_s(o.bytes, d.best),
        d.median,
        d.master_cpu,
        d.producer_cpu,
    );
    println!(
        "floor: the same output relayed through loopback TCP, nothing else: {:.2?} (median \
         {:.2?}), {:+.0}% vs direct (what any networked worker pays on this machine)",
        r.best,
        r.median,
        (r.best.as_secs_f64() / d.best.as_secs_f64() - 1.0) * 100.0,
    );
    println!(
        "{peer:?} worker: {mb} MB in {:.2?} ({:.0} MB/s; median {:.2?}), {slower:+.0}% vs direct; \
         CPU: master {:.2?} (with the consumer), worker {:.2?} (its own process), producer {:.2?}; \
         peak RSS growth: master {:.1} MiB, worker {:.1} MiB",
        t.best,
        mb_per_s(o.bytes, t.best),
        t.median,
        t.master_cpu,
        t.worker_cpu,
        t.producer_cpu,
        mib(t.master_growth),
        mib(t.worker_growth),
    );

    // Round trip of a trivial command.
    let work = f.wpath("build");
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let o = Arc::new(o);
    for peer in o.peers.clone() {
        let task = runtime.spawn(bench_peer(peer, Arc::clone(&o)));
        runtime.block_on(task).expect("the benchmark");
    }
}
