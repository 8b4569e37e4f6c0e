//! The build log benchmark: one build step printing 200 MB, run by `abo start` and
//! `abo worker` processes, stored whole (the cap raised above it) and read back through the
//! API. Prints the step's duration against the same command run bare (output read from a
//! pipe and dropped), the master's peak resident memory, and the API's read throughput.
//!
//! ```text
//! cargo build --release -p abo && cargo bench -p abo-master --bench build_log
//! cargo bench -p abo-master --bench build_log -- --bytes 50000000
//! ```
//!
//! The `abo` binary is the one beside this benchmark (`target/release/abo`), or `$ABO_BIN`.

#[path = "../tests/builds_support/mod.rs"]
mod builds_support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use builds_support::MasterDir;

/// CPU seconds (user, system) of a process and of its waited-for children, from
/// `/proc/PID/stat` (fields 14–17, in clock ticks of 1/100 s).
fn cpu(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse::<f64>().unwrap_or(0.0) / 100.0)
        .collect();
    if f.len() < 4 {
        return (0.0, 0.0);
    }
    (f[0] + f[1], f[2] + f[3])
}

const LINE: &str =
    "abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghij";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes: u64 = args
        .iter()
        .position(|a| a == "--bytes")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--bytes N"))
        .unwrap_or(200_000_000);
    let script = format!("yes '{LINE}' | head -c {bytes}");

    // The command alone, its output read from a pipe.
    let start = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let r = out.read(&mut buf).unwrap();
        if r == 0 {
            break;
        }
        n += r as u64;
    }
    child.wait().unwrap();
    let bare = start.elapsed();
    // The bare command's CPU (this process's waited-for children: sh, yes and head).
    // SAFETY: getrusage(2) fills the struct it is given.
    let bare_cpu = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    assert_eq!(n, bytes);

    let toml = format!(
        "log-cap-bytes = {}\n[[step-sets.flood]]\nname = \"flood\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n",
        bytes * 2
    );
    let m = MasterDir::new(
        &toml,
        "[flood]\nsteps = flood\nbuild-for = postgresql not-used\n",
        "[w1]\npassword = pw-one\n",
    );
    let master = m.start();
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);
    let (rss_idle, _) = master.rss();
    let worker_pid = worker.child.id() as i32;
    let (master_cpu0, _) = cpu(master.pid());
    let (worker_cpu0, command_cpu0) = cpu(worker_pid);
    let start = Instant::now();
    let r = master.force("flood", &[]);
    let mut peak = 0;
    let req = loop {
        let req = master.get_json(&format!("/api/v1/requests/{r}"));
        peak = peak.max(master.rss().1);
        if req["state"] == "complete" {
            break req;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let through = start.elapsed();
    let (master_cpu1, _) = cpu(master.pid());
    let (worker_cpu1, command_cpu1) = cpu(worker_pid);
    assert_eq!(req["result"], "success", "{req}");
    let build = req["builds"][0].as_u64().unwrap();

    let start = Instant::now();
    let mut offset = 0u64;
    let mut lines = 0u64;
    loop {
        let page = master.get(&format!(
            "/api/v1/builds/{build}/steps/0/logs/stdio?offset={offset}"
        ));
        assert_eq!(page.status, 200);
        if page.body.is_empty() {
            break;
        }
        lines += page.body.iter().filter(|&&b| b == b'\n').count() as u64;
        offset += page.body.len() as u64;
    }
    let read = start.elapsed();
    peak = peak.max(master.rss().1);
    assert!(offset >= bytes, "read {offset} of {bytes} bytes");

    let mb = bytes as f64 / 1e6;
    println!("build log benchmark: one step printing {mb:.0} MB ({lines} lines stored)");
    println!(
        "  bare command, pipe read:      {:>8.2} s",
        bare.as_secs_f64()
    );
    println!(
        "  as a build step (force→done): {:>8.2} s  ({:.1}× bare, {:.0} MB/s)",
        through.as_secs_f64(),
        through.as_secs_f64() / bare.as_secs_f64().max(1e-9),
        mb / through.as_secs_f64()
    );
    println!(
        "  CPU during the step: command {:.2} s (bare: {:.2} s), worker {:.2} s, master {:.2} s \
         (2 cores: {:.2} s of CPU in {:.2} s)",
        command_cpu1 - command_cpu0,
        bare_cpu,
        worker_cpu1 - worker_cpu0,
        master_cpu1 - master_cpu0,
        (command_cpu1 - command_cpu0) + (worker_cpu1 - worker_cpu0) + (master_cpu1 - master_cpu0),
        through.as_secs_f64()
    );
    println!(
        "  read back through the API:    {:>8.2} s  ({:.0} MB/s, {offset} bytes)",
        read.as_secs_f64(),
        offset as f64 / 1e6 / read.as_secs_f64()
    );
    println!(
        "  master RSS: {} MB idle, peak {} MB",
        rss_idle / 1_000_000,
        peak / 1_000_000
    );
}
