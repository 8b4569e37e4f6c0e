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
