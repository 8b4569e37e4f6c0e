//! The dispatch benchmark (`cargo bench -p abo --bench dispatch`, `-- --quick` for a smoke
//! run; tests/e2e_dispatch.rs runs the quick one): N trivial builds (one `true` step each,
//! one builder per build) over W local `abo worker` processes with `max_builds = 2`,
//! against `abo start` on loopback. Reports:
//!
//! - how long the master takes from its start to answering `GET builders` with every
//!   builder (Buildbot 4.3 here: 58 s with 2,000 builders);
//! - builds per second for the whole burst, from the first request to the last build's end
//!   (Buildbot 4.3 here: 4.4 trivial builds/s with 4 workers × 2 slots);
//! - request-to-start latency, p50 and p99: on an idle master (one request at a time), and
//!   in the burst (mostly time waiting for a free slot);
//! - the master's memory at ready and at its peak (`VmHWM`; Buildbot 4.3 here: 94–113 MB),
//!   each split into anonymous memory (heap, stacks: the master's data) and file-backed
//!   pages (the binary's code and read-only data, shared libraries: read from disk, shared
//!   with every process running the same binary, dropped by the kernel under pressure).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::*;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Trivial builds in the burst (one builder each).
    pub builds: usize,
    /// `abo worker` processes.
    pub workers: usize,
    /// Builds per worker at once.
    pub max_builds: usize,
    /// Requests made one at a time on an idle master, for the latency.
    pub idle_requests: usize,
    /// Client threads sending the burst's requests.
    pub clients: usize,
    /// How long after the burst the master's memory is read again, to see what it gives
    /// back once idle (`None`: not measured).
    pub settle: Option<Duration>,
}

impl Options {
    pub fn full() -> Options {
        Options {
            builds: 2000,
            workers: 8,
            max_builds: 2,
            idle_requests: 100,
            clients: 4,
            settle: Some(Duration::from_secs(6)),
        }
    }

    pub fn quick() -> Options {
        Options {
            builds: 100,
            workers: 8,
            max_builds: 2,
            idle_requests: 10,
            clients: 2,
            settle: None,
        }
    }
}

/// The figures.
#[derive(Debug, Clone)]
pub struct Report {
    pub builds: usize,
    pub ready: Duration,
    pub burst: Duration,
    pub per_second: f64,
    pub idle_p50: f64,
    pub idle_p99: f64,
    pub burst_p50: f64,
    pub burst_p99: f64,
    /// `VmHWM`: the highest resident size, as the kernel counted it.
    pub peak_rss_kib: u64,
    pub ready_rss_kib: u64,
    /// The split at ready.
    pub ready_memory: Memory,
    /// The split of the highest resident size sampled (every `SAMPLE_EVERY`), from the
    /// master's start to the burst's end: within a few hundred KiB of `VmHWM`.
    pub peak_memory: Memory,
    /// The same in the burst only.
    pub burst_peak_memory: Memory,
    /// The split `Options::settle` after the burst.
    pub settled_memory: Option<Memory>,
    /// Builds that did not end in success.
    pub not_success: usize,
}

/// The master's resident memory from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: the sum of the three below.
    pub rss: u64,
    /// `RssAnon`: heap, thread stacks, allocator arenas: what the master itself holds.
    pub anon: u64,
    /// `RssFile`: pages of mapped files: the binary's code and read-only data, shared
    /// libraries, SQLite's WAL index (the -shm file, 32 KiB).
    pub file: u64,
    /// `RssShmem`: shared anonymous memory and tmpfs files (none expected).
    pub shmem: u64,
}

impl Memory {
    pub fn of(pid: i32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss: kib("VmRSS:"),
            anon: kib("RssAnon:"),
            file: kib("RssFile:"),
            shmem: kib("RssShmem:"),
        }
    }

    fn describe(&self) -> String {
        let mb = |kib: u64| kib as f64 / 1024.0;
        format!(
            "{:.1} MB = {:.1} MB anonymous (heap, stacks) + {:.1} MB file-backed (code) + {:.1} MB shared",
            mb(self.rss),
            mb(self.anon),
            mb(self.file),
            mb(self.shmem)
        )
    }
}

/// How often the memory sampler reads /proc/PID/status: a few µs each time.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The parts of the run whose memory peaks are told apart: the first authenticated request
/// (in the idle phase) verifies the API user's password, whose argon2 hash takes 7 MiB
/// for a few tens of milliseconds; the burst is the dispatch itself.
const STARTING: usize = 0;
const IDLE: usize = 1;
const BURST: usize = 2;
const STOPPED: usize = 3;

/// Samples the master's memory while `phase` is below `STOPPED`; returns, for each phase,
/// the sample with the highest resident size (`VmHWM` gives the peak but not its split,
/// nor when it was).
fn sample_peaks(pid: i32, phase: Arc<AtomicUsize>) -> std::thread::JoinHandle<[Memory; 3]> {
    std::thread::spawn(move || {
        let mut peaks = [Memory::default(); 3];
        loop {
            let now = Memory::of(pid);
            let Some(peak) = peaks.get_mut(phase.load(Ordering::Relaxed)) else {
                return peaks;
            };
            if now.rss > peak.rss {
                *peak = now;
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    })
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes the benchmark's master directory.
fn layout(dir: &Path, o: &Options) {
    std::fs::create_dir_all(dir.join("buildouts")).unwrap();
    std::fs::write(
        dir.join("master.toml"),
        "manifests = [\"buildouts/MANIFEST.cfg\"]\nworkers = \"workers.cfg\"\n\
         worker-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\n\
         [[step-sets.trivial]]\nname = \"true\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let mut manifest = String::from("[DEFAULT]\nbuild-for = postgresql not-used\n\n");
    for i in 0..o.builds {
        manifest.push_str(&format!("[t{i:05}]\nsteps = trivial\n\n"));
    }
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
    let mut workers = String::new();
    for i in 0..o.workers {
        workers.push_str(&format!(
            "[bw{i}]\npassword = bw{i}-secret\nmax_builds = {}\n\n",
            o.max_builds
        ));
    }
    std::fs::write(dir.join("workers.cfg"), workers).unwrap();
    add_user(dir, API_USER, API_PASSWORD);
}

/// All builds, newest first, page by page.
fn all_builds(master: &Master) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("builds?limit=1000&before={b}"),
            None => "builds?limit=1000".to_owned(),
        };
        let page = match get(master.http, &path) {
            Ok(Value::Array(p)) => p,
            _ => return out,
        };
        let n = page.len();
        before = page.last().and_then(|b| b["id"].as_u64());
        out.extend(page);
        if n < 1000 {
            return out;
        }
    }
}

/// Runs the benchmark and prints the figures.
pub fn run(o: &Options) -> Report {
    let tmp = TempDir::new("abo-bench.");
    let dir = tmp.path().join("master");
    let t = Instant::now();
    layout(&dir, o);
    say(&format!(
        "dispatch: {} trivial builds ({} builders), {} abo workers × max_builds {}; layout {:.1}s",
        o.builds,
        o.builds,
        o.workers,
        o.max_builds,
        t.elapsed().as_secs_f64()
    ));

    // Ready: from the process start to GET builders listing every builder.
    let t = Instant::now();
    let master = Master::start(&dir);
    let phase = Arc::new(AtomicUsize::new(STARTING));
    let sampler = sample_peaks(master.pid(), phase.clone());
    wait_until(&master, Duration::from_secs(120), "the builders", || {
        let b = get(master.http, "builders").ok()?;
        (b.as_array()?.len() == o.builds).then_some(())
    });
    let ready = t.elapsed();
    let ready_memory = Memory::of(master.pid());
    let ready_rss_kib = ready_memory.rss;
    phase.store(IDLE, Ordering::Relaxed);

    let workers: Vec<WorkerProcess> = (0..o.workers)
        .map(|i| {
            let account = Account {
                name: format!("bw{i}"),
                password: format!("bw{i}-secret"),
            };
            WorkerProcess::start(
                Peer::Abo,
                &tmp.path().join(format!("bw{i}")),
                master.workers,
                &account,
                &[],
            )
        })
        .collect();
    for w in &workers {
        wait_connected(&master, w);
    }

    // Latency on an idle master: one request at a time, from sending it to seeing its
    // build started (polled without pause: a loopback round trip is well under 1 ms),
    // then waited for.
    let mut idle = Vec::new();
    for i in 0..o.idle_requests {
        let builder = format!("t{:05}", i % o.builds);
        let sent = Instant::now();
        let r = force(master.http, &builder);
        let deadline = Instant::now() + Duration::from_secs(60);
        let started = loop {
            let id = get(master.http, &format!("requests/{r}"))
                .ok()
                .and_then(|r| r["builds"].as_array()?.first()?.as_u64());
            if let Some(id) = id {
                let b = api(master.http, &format!("builds/{id}"));
                if !b["started_at"].is_null() {
                    break sent.elapsed().as_secs_f64();
                }
            }
            assert!(Instant::now() < deadline, "request {r} never started");
        };
        idle.push(started);
        wait_request(&master, r, Duration::from_secs(60));
    }
    idle.sort_by(f64::total_cmp);
    let before_burst: u64 = all_builds(&master)
        .iter()
        .filter_map(|b| b["id"].as_u64())
        .max()
        .unwrap_or(0);

    // The burst: every builder forced once, from a few client threads.
    phase.store(BURST, Ordering::Relaxed);
    let sent: Arc<std::sync::Mutex<HashMap<u64, f64>>> = Default::default();
    let burst_start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..o.clients {
            let sent = sent.clone();
            let http = master.http;
            s.spawn(move || {
                for i in (c..o.builds).step_by(o.clients) {
                    let at = epoch();
                    let r = force(http, &format!("t{i:05}"));
                    sent.lock().unwrap().insert(r, at);
                }
            });
        }
    });
    let submitted = burst_start.elapsed();
    let sent = sent.lock().unwrap().clone();
    // The end of the burst, seen from here: the newest builds (at most the running ones)
    // read every 20 ms until the last is created and every one of them is finished; then
    // every build is checked. Cheap for the master, and within a few ms of the truth
    // whatever the precision of the API's times.
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (burst, finished) = loop {
        let newest = get(master.http, "builds?limit=100").unwrap_or(Value::Null);
        let newest = newest.as_array().cloned().unwrap_or_default();
        let created = newest
            .first()
            .and_then(|b| b["id"].as_u64())
            .map_or(0, |id| id.saturating_sub(before_burst));
        let quiet = newest.iter().all(|b| b["state"] == "finished");
        if created as usize >= o.builds && quiet {
            let at = burst_start.elapsed();
            let builds: Vec<Value> = all_builds(&master)
                .into_iter()
                .filter(|b| b["id"].as_u64().is_some_and(|id| id > before_burst))
                .collect();
            let done = builds.iter().filter(|b| b["state"] == "finished").count();
            if done >= o.builds {
                break (at, builds);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the burst did not finish; the master's log:\n{}",
            master.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let whole_seconds = finished
        .iter()
        .all(|b| b["started_at"].as_str().is_some_and(|s| !s.contains('.')));
    // Whole-second times are read as the middle of their second.
    let half = if whole_seconds { 0.5 } else { 0.0 };
    let mut waits: Vec<f64> = finished
        .iter()
        .filter_map(|b| {
            let at = sent.get(&b["request"].as_u64()?)?;
            Some((time(&b["started_at"]) + half - at).max(0.0))
        })
        .collect();
    waits.sort_by(f64::total_cmp);
    let not_success = finished.iter().filter(|b| b["result"] != "success").count();
    let peak_rss_kib = status_kib(master.pid(), "VmHWM:");
    phase.store(STOPPED, Ordering::Relaxed);
    let peaks = sampler.join().unwrap();
    let peak_phase = (0..peaks.len())
        .max_by_key(|&p| peaks[p].rss)
        .unwrap_or(BURST);
    let peak_memory = peaks[peak_phase];
    let burst_peak_memory = peaks[BURST];
    let settled_memory = o.settle.map(|wait| {
        std::thread::sleep(wait);
        Memory::of(master.pid())
    });
    let report = Report {
        builds: o.builds,
        ready,
        burst,
        per_second: o.builds as f64 / burst.as_secs_f64(),
        idle_p50: percentile(&idle, 0.5),
        idle_p99: percentile(&idle, 0.99),
        burst_p50: percentile(&waits, 0.5),
        burst_p99: percentile(&waits, 0.99),
        peak_rss_kib,
        ready_rss_kib,
        ready_memory,
        peak_memory,
        burst_peak_memory,
        settled_memory,
        not_success,
    };
    let ms = |s: f64| format!("{:.1} ms", s * 1000.0);
    say(&format!(
        "dispatch: master ready with {} builders in {:.3} s (Buildbot 4.3: 58 s with 2,000)",
        o.builds,
        ready.as_secs_f64()
    ));
    say(&format!(
        "dispatch: {} builds in {:.2} s from the first request to the last build's end = {:.1} builds/s with {} × {} slots (Buildbot 4.3: 4.4/s with 4 × 2); the {} requests were accepted in {:.2} s ({:.0}/s)",
        o.builds,
        burst.as_secs_f64(),
        report.per_second,
        o.workers,
        o.max_builds,
        o.builds,
        submitted.as_secs_f64(),
        o.builds as f64 / submitted.as_secs_f64()
    ));
    say(&format!(
        "dispatch: request-to-start on an idle master ({} requests): p50 {}, p99 {}",
        idle.len(),
        ms(report.idle_p50),
        ms(report.idle_p99)
    ));
    say(&format!(
        "dispatch: request-to-start in the burst (mostly waiting for a slot): p50 {:.2} s, p99 {:.2} s{}",
        report.burst_p50,
        report.burst_p99,
        if whole_seconds {
            " (±0.5 s: the API gives whole seconds)"
        } else {
            ""
        }
    ));
    say(&format!(
        "dispatch: master memory: {:.1} MB at ready, peak {:.1} MB (VmHWM; Buildbot 4.3: 94–113 MB)",
        ready_rss_kib as f64 / 1024.0,
        peak_rss_kib as f64 / 1024.0
    ));
    say(&format!(
        "dispatch: master memory at ready: {}",
        ready_memory.describe()
    ));
    say(&format!(
        "dispatch: master memory at peak (highest of the samples every {} ms): {}, {}",
        SAMPLE_EVERY.as_millis(),
        peak_memory.describe(),
        match peak_phase {
            STARTING => "while starting",
            IDLE => "idle, while the first API request's password is verified (argon2id: 7 MiB)",
            _ => "in the burst",
        }
    ));
    say(&format!(
        "dispatch: master memory at peak in the burst: {}",
        burst_peak_memory.describe()
    ));
    if let (Some(wait), Some(settled)) = (o.settle, settled_memory) {
        say(&format!(
            "dispatch: master memory {} s after the burst: {}",
            wait.as_secs(),
            settled.describe()
        ));
    }
    if not_success > 0 {
        say(&format!("dispatch: {not_success} builds did not succeed"));
    }
    drop(workers);
    report
}
