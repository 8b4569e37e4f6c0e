//! The web pages' benchmark: page times over a large history, and the master's memory while
//! a big log is streamed live.
//!
//!     cargo bench -p abo --bench web                     # 100,000 builds, a 100 MB log
//!     ABO_BENCH_QUICK=1 cargo bench -p abo --bench web   # 2,000 builds, 10 MB (also --quick)
//!
//! 1. Lays out a master directory: 40 buildouts × PostgreSQL 13, 15 and 17 (120 builders of
//!    four trivial steps) and one `biglog` builder, one `abo worker` account.
//! 2. Seeds its store with finished builds spread over the 120 builders, each step with a
//!    small `stdio` log (`abo_store::bench_seed`: one transaction per batch), and prints the
//!    time it took.
//! 3. Starts `abo start` and times [`REQUESTS`] sequential GETs (keep-alive, body read
//!    whole) of each of [`PAGES`] (the matrix, a builder's page, a build's page, and the
//!    JSON API's builds page as a baseline), printing p50 and p99. A page answering 404 (the
//!    web UI not there) is reported as missing.
//! 4. Starts an `abo worker` and forces `biglog`, whose one step prints the big log once
//!    [`SSE_CLIENTS`] clients follow it on `/builds/{id}/steps/0/logs/stdio/live`; samples
//!    the master's `VmRSS` every 100 ms and prints it at the start, its peak and at the end,
//!    with `VmHWM`, and what each client received.
//!
//! The figures the web status is held to: with 100,000 builds, the three pages each under
//! 50 ms at p99; the master's memory flat while a 100 MB log streams to three clients.
//! tests/e2e_web.rs runs the quick mode.

#[path = "../tests/e2e_support/mod.rs"]
pub mod e2e_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use e2e_support::percentile;
use e2e_support::{
    add_user, force, get, say, status_kib, wait_connected, wait_until, Account, Master, Peer,
    TempDir, WorkerProcess, API_PASSWORD, API_USER,
};

/// Pages timed; `{builder}` and `{build}` are filled from the seeded history.
pub const PAGES: &[&str] = &[
    "/",
    "/builders/{builder}",
    "/builds/{build}",
    "/api/v1/builds?limit=50",
];
/// Sequential GETs per page (full run; the quick run does fewer).
pub const REQUESTS: usize = 300;
/// Buildouts in the plan, each built against every PostgreSQL version below.
pub const BUILDOUTS: usize = 40;
pub const PG_VERSIONS: &[&str] = &["13", "15", "17"];
/// Steps of every seeded build.
pub const STEPS: &[&str] = &["bootstrap", "buildout", "install-modules", "run-tests"];
/// Clients following the big log.
pub const SSE_CLIENTS: usize = 3;
/// How often the master's memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Builds per seeding transaction.
const SEED_BATCH: u64 = 2000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub builds: u64,
    pub requests: usize,
    /// Bytes the big log's step prints.
    pub log_bytes: u64,
}

impl Options {
    pub fn full() -> Options {
        Options {
            builds: 100_000,
            requests: REQUESTS,
            log_bytes: log_bytes(100_000_000),
        }
    }

    pub fn quick() -> Options {
        Options {
            builds: 2_000,
            requests: 30,
            log_bytes: log_bytes(10_000_000),
        }
    }
}

/// The streamed log's size: `ABO_BENCH_LOG_MB` (to see whether memory stays flat as the
/// log grows), else `default`.
fn log_bytes(default: u64) -> u64 {
    std::env::var("ABO_BENCH_LOG_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(default, |mb| mb * 1_000_000)
}

/// One page's figures.
#[derive(Debug, Clone)]
pub struct PageFigures {
    pub path: String,
    /// The first answer's status (404: missing).
    pub status: u16,
    /// Seconds per GET, sorted.
    pub samples: Vec<f64>,
    pub body_bytes: usize,
}

/// The big log's figures.
#[derive(Debug, Clone, Default)]
pub struct LogFigures {
    /// The live route answered (not 404).
    pub sse_found: bool,
    /// The live route's status when not found.
    pub sse_status: u16,
    /// The log's size as text, from the API, once finished.
    pub log_bytes: u64,
    /// Bytes each client received (headers and event framing included).
    pub client_bytes: Vec<u64>,
    /// Seconds from the go signal to each client's last byte.
    pub client_seconds: Vec<f64>,
    /// Memory samples taken.
    pub samples: usize,
    /// From the go signal to the build's end.
    pub write_seconds: f64,
    pub start_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub end_rss_kib: u64,
    pub hwm_kib: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub builds_seeded: u64,
    pub seed_seconds: f64,
    pub pages: Vec<PageFigures>,
    pub log: LogFigures,
}

/// The master directory: the plan, one worker account offering the three PostgreSQL
/// versions, a log cap above the big log, the API user.
fn layout(dir: &Path, o: &Options, go_file: &Path) {
    std::fs::create_dir_all(dir.join("buildouts")).unwrap();
    let mut toml = format!(
        "manifests = [\"buildouts/MANIFEST.cfg\"]\nworkers = \"workers.cfg\"\n\
         worker-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\
         log-cap-bytes = {}\n\n",
        o.log_bytes * 2 + 10_000_000
    );
    for step in STEPS {
        toml.push_str(&format!(
            "[[step-sets.trivial]]\nname = \"{step}\"\ncommand = [\"true\"]\n\n"
        ));
    }
    // Waits (at most 5 minutes) until the clients follow the log, then prints it.
    let script = format!(
        "i=0; while [ ! -e {go} ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done; \
         yes 'abo web benchmark: one line of build output, about eighty bytes long ....' \
         | head -c {bytes}",
        go = go_file.display(),
        bytes = o.log_bytes
    );
    toml.push_str(&format!(
        "[[step-sets.biglog]]\nname = \"output\"\ncommand = {}\n",
        toml_string(&script)
    ));
    std::fs::write(dir.join("master.toml"), toml).unwrap();
    let mut manifest = String::new();
    for i in 0..BUILDOUTS {
        manifest.push_str(&format!(
            "[buildout{i:02}]\nsteps = trivial\nbuild-for = postgresql\n\n"
        ));
    }
    manifest.push_str("[biglog]\nsteps = biglog\nbuild-for = postgresql not-used\n");
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
    let caps: Vec<String> = PG_VERSIONS
        .iter()
        .enumerate()
        .map(|(i, v)| format!("postgresql {v} port={}", 5433 + i))
        .collect();
    std::fs::write(
        dir.join("workers.cfg"),
        format!(
            "[bench]\npassword = bench-secret\nmax_builds = 2\ncapability = {}\n",
            caps.join("\n             ")
        ),
    )
    .unwrap();
    add_user(dir, API_USER, API_PASSWORD);
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The plan's builder names, from `abo check --json`.
fn builder_names(dir: &Path) -> Vec<String> {
    let out = Command::new(e2e_support::abo_bin())
        .args(["check", "--json"])
        .arg(dir)
        .output()
        .expect("abo check");
    assert!(
        out.status.success(),
        "abo check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["builders"]
        .as_array()
        .expect("builders")
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Seeds `o.builds` finished builds over the builders (not `biglog`); returns the last
/// build's id and its builder.
fn seed(dir: &Path, o: &Options, builders: &[String]) -> (u64, String, f64) {
    let matrix: Vec<String> = builders
        .iter()
        .filter(|b| b.as_str() != "biglog")
        .cloned()
        .collect();
    assert_eq!(matrix.len(), BUILDOUTS * PG_VERSIONS.len(), "{builders:?}");
    let mut log = String::new();
    for i in 0..12 {
        log.push_str(&format!(
            "2026-11-25 12:00:{i:02},000 1234 INFO openerp: step output line {i} of a seeded build\n"
        ));
    }
    let now = abo_store::Timestamp::now().0;
    let spacing_ms = 30_000;
    let spec = abo_store::bench_seed::SeedSpec {
        builders: matrix.clone(),
        builds: o.builds,
        steps: STEPS.iter().map(|s| s.to_string()).collect(),
        worker: "bench".into(),
        log: log.into_bytes(),
        first_start: abo_store::Timestamp(now - o.builds * spacing_ms - 3_600_000),
        spacing_ms,
        duration_ms: 20_000,
        batch: SEED_BATCH,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let seeded = rt.block_on(async {
        let store = abo_store::Store::open(dir.to_str().unwrap())
            .await
            .expect("the master's store");
        abo_store::bench_seed::seed_finished_builds(&store, spec)
            .await
            .expect("seeding")
    });
    let seconds = t.elapsed().as_secs_f64();
    let last_builder = matrix[((o.builds - 1) % matrix.len() as u64) as usize].clone();
    assert_eq!(seeded.builds, o.builds);
    (seeded.last.0, last_builder, seconds)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .build()
        .into()
}

/// Times `n` GETs of `path` (after a few unmeasured ones).
fn time_page(http: SocketAddr, path: &str, n: usize) -> PageFigures {
    let agent = agent();
    let url = format!("http://{http}{path}");
    let fetch = || -> (u16, usize) {
        let mut r = agent
            .get(&url)
            .header("Accept", "text/html,application/json")
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (status, body.len())
    };
    let (status, body_bytes) = fetch();
    let mut samples = Vec::new();
    if status == 200 {
        for _ in 0..3 {
            fetch();
        }
        for _ in 0..n {
            let t = Instant::now();
            let (s, _) = fetch();
            samples.push(t.elapsed().as_secs_f64());
            assert_eq!(s, 200, "GET {url} answered {s} after 200");
        }
    }
    samples.sort_by(f64::total_cmp);
    PageFigures {
        path: path.to_owned(),
        status,
        samples,
        body_bytes,
    }
}

/// A client following a live log: reads whatever comes until the connection closes, or
/// until `done` is set and nothing came for a second. Returns the bytes received, or the
/// status when it is not 200.
fn follow(
    http: SocketAddr,
    path: &str,
    done: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    last_byte: Arc<Mutex<Instant>>,
) -> Result<(), u16> {
    let mut tcp = TcpStream::connect(http).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut status = None;
    let mut quiet_since = Instant::now();
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
                quiet_since = Instant::now();
                *last_byte.lock().unwrap() = quiet_since;
                if status.is_none() {
                    head.extend_from_slice(&buf[..n]);
                    if let Some(line) = head.split(|&b| b == b'\n').next() {
                        if head.contains(&b'\n') {
                            let code = String::from_utf8_lossy(line)
                                .split_whitespace()
                                .nth(1)
                                .and_then(|c| c.parse::<u16>().ok())
                                .unwrap_or(0);
                            status = Some(code);
                            if code != 200 {
                                return Err(code);
                            }
                        }
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if done.load(Ordering::Relaxed) && quiet_since.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Ok(())
}

/// The big log: a build printing `o.log_bytes`, followed live by [`SSE_CLIENTS`] clients,
/// with the master's memory sampled.
fn big_log(master: &Master, tmp: &Path, go_file: &Path) -> LogFigures {
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.join("worker"),
        master.workers,
        &Account {
            name: "bench".into(),
            password: "bench-secret".into(),
        },
        &[],
    );
    wait_connected(master, &worker);
    let request = force(master.http, "biglog");
    let build = wait_until(master, Duration::from_secs(60), "the biglog build", || {
        let r = get(master.http, &format!("requests/{request}")).ok()?;
        let id = r["builds"].as_array()?.first()?.as_u64()?;
        let b = get(master.http, &format!("builds/{id}")).ok()?;
        let has_log = b["steps"][0]["logs"]
            .as_array()
            .is_some_and(|l| !l.is_empty());
        has_log.then_some(id)
    });
    let live = format!("/builds/{build}/steps/0/logs/stdio/live");
    let pid = master.pid();
    let mut figures = LogFigures::default();

    // Is the live route there?
    let probe = status_of(master.http, &live);
    figures.sse_found = probe != 404;
    figures.sse_status = probe;
    let done = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..SSE_CLIENTS).map(|_| Arc::default()).collect();
    let last_bytes: Vec<Arc<Mutex<Instant>>> = (0..SSE_CLIENTS)
        .map(|_| Arc::new(Mutex::new(Instant::now())))
        .collect();
    let clients: Vec<_> = if figures.sse_found {
        counters
            .iter()
            .zip(&last_bytes)
            .map(|(c, l)| {
                let (done, c, l, live, http) = (
                    done.clone(),
                    c.clone(),
                    l.clone(),
                    live.clone(),
                    master.http,
                );
                std::thread::spawn(move || follow(http, &live, done, c, l))
            })
            .collect()
    } else {
        Vec::new()
    };
    // Let the clients connect and get their first answer.
    std::thread::sleep(Duration::from_millis(500));

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let (mut peak, mut samples) = (0, 0);
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS:"));
                samples += 1;
                std::thread::sleep(SAMPLE_EVERY);
            }
            (peak, samples)
        })
    };
    figures.start_rss_kib = status_kib(pid, "VmRSS:");
    let t = Instant::now();
    std::fs::write(go_file, b"go").unwrap();
    let finished = wait_until(
        master,
        Duration::from_secs(900),
        "the biglog build's end",
        || {
            let b = get(master.http, &format!("builds/{build}")).ok()?;
            (b["state"] == "finished").then_some(b)
        },
    );
    figures.write_seconds = t.elapsed().as_secs_f64();
    figures.log_bytes = finished["steps"][0]["logs"][0]["bytes"]
        .as_u64()
        .unwrap_or(0);
    done.store(true, Ordering::Relaxed);
    for (i, c) in clients.into_iter().enumerate() {
        if let Ok(Err(status)) = c.join() {
            say(&format!("web: SSE client {i} got status {status}"));
        }
    }
    sampling.store(false, Ordering::Relaxed);
    (figures.peak_rss_kib, figures.samples) = sampler.join().unwrap();
    figures.client_seconds = last_bytes
        .iter()
        .map(|l| l.lock().unwrap().saturating_duration_since(t).as_secs_f64())
        .collect();
    figures.end_rss_kib = status_kib(pid, "VmRSS:");
    figures.hwm_kib = status_kib(pid, "VmHWM:");
    figures.client_bytes = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(
        finished["result"],
        "success",
        "the biglog build: {finished:#}\n{}",
        worker.log_tail()
    );
    figures
}

/// The status of a GET, without reading an endless body.
fn status_of(http: SocketAddr, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(http).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

/// Runs the benchmark and prints the figures.
pub fn run(o: &Options) -> Report {
    let tmp = TempDir::new("abo-web-bench.");
    let dir = tmp.path().join("master");
    let go_file = tmp.path().join("go");
    layout(&dir, o, &go_file);
    let builders = builder_names(&dir);
    let (last_build, last_builder, seed_seconds) = seed(&dir, o, &builders);
    let db_bytes = std::fs::metadata(dir.join(abo_store::migrations::DEFAULT_FILE_NAME))
        .map_or(0, |m| m.len());
    say(&format!(
        "web: seeded {} finished builds ({} steps and logs each) over {} builders in {:.2} s \
         ({:.0} builds/s); database {:.0} MB",
        o.builds,
        STEPS.len(),
        builders.len() - 1,
        seed_seconds,
        o.builds as f64 / seed_seconds,
        db_bytes as f64 / 1e6
    ));

    let t = Instant::now();
    let master = Master::start(&dir);
    say(&format!(
        "web: master ready in {:.2} s, {} (VmRSS)",
        t.elapsed().as_secs_f64(),
        mb(status_kib(master.pid(), "VmRSS:"))
    ));
    let mut pages = Vec::new();
    for page in PAGES {
        let path = page
            .replace("{builder}", &last_builder)
            .replace("{build}", &last_build.to_string());
        let f = time_page(master.http, &path, o.requests);
        if f.status == 200 {
            say(&format!(
                "web: GET {path:<32} p50 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms  ({} GETs, {} bytes)",
                percentile(&f.samples, 0.5) * 1000.0,
                percentile(&f.samples, 0.99) * 1000.0,
                f.samples.last().copied().unwrap_or(f64::NAN) * 1000.0,
                f.samples.len(),
                f.body_bytes
            ));
        } else if f.status == 404 {
            say(&format!(
                "web: GET {path:<32} missing (404: not served yet)"
            ));
        } else {
            say(&format!("web: GET {path:<32} answered {}", f.status));
        }
        pages.push(f);
    }

    let log = big_log(&master, tmp.path(), &go_file);
    let clients = if log.sse_found {
        log.client_bytes
            .iter()
            .zip(&log.client_seconds)
            .map(|(b, s)| format!("{:.1} MB in {s:.2} s", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("missing ({} on the live route)", log.sse_status)
    };
    say(&format!(
        "web: a {:.0} MB log written in {:.2} s; {} SSE clients received: {clients}",
        log.log_bytes as f64 / 1e6,
        log.write_seconds,
        SSE_CLIENTS
    ));
    say(&format!(
        "web: master memory while it streamed (VmRSS, {} samples every {} ms): start {}, peak {}, end {}; VmHWM {}",
        log.samples,
        SAMPLE_EVERY.as_millis(),
        mb(log.start_rss_kib),
        mb(log.peak_rss_kib),
        mb(log.end_rss_kib),
        mb(log.hwm_kib)
    ));
    drop(master);
    Report {
        options: o.clone(),
        builds_seeded: o.builds,
        seed_seconds,
        pages,
        log,
    }
}

fn main() {
    let quick = std::env::var("ABO_BENCH_QUICK").is_ok_and(|v| v == "1")
        || std::env::args().any(|a| a == "--quick");
    let options = if quick {
        Options::quick()
    } else {
        Options::full()
    };
    say(&format!("web: {options:?}"));
    run(&options);
}
