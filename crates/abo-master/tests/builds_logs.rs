//! Logs under stress: a step printing 200 MB and one printing a 50 MB line without a
//! newline. The master's memory stays flat, the log is readable through the API while the
//! step runs and after, and the per-log cap truncates with a visible marker without changing
//! the step's result.

mod builds_support;

use std::time::{Duration, Instant};

use builds_support::MasterDir;

const TOML: &str = r#"
log-cap-bytes = 60000000

[[step-sets.big]]
name = "flood"
command = ["sh", "-c", "yes 'abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghij' | head -c 200000000"]

[[step-sets.big]]
name = "endless-line"
command = ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\000' x"]
"#;

const MB: u64 = 1_000_000;

#[test]
fn a_200_mb_step_keeps_the_master_flat_and_its_log_readable() {
    let m = MasterDir::new(
        TOML,
        "[big]\nsteps = big\nbuild-for = postgresql not-used\n",
        "[w1]\npassword = pw-one\n",
    );
    let master = m.start();
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);
    let (rss_before, _) = master.rss();
    let started = Instant::now();
    let r = master.force("big", &[]);
    let build = loop {
        let req = master.get_json(&format!("/api/v1/requests/{r}"));
        if let Some(b) = req["builds"][0].as_u64() {
            break b;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // While it runs: the log grows and reads as incomplete.
    let mut seen_running = false;
    let mut peak = 0;
    loop {
        let page = master.get(&format!(
            "/api/v1/builds/{build}/steps/0/logs/stdio?offset=0&limit=1000"
        ));
        let (_, hwm) = master.rss();
        peak = peak.max(hwm);
        if page.status == 200 && page.header("x-abo-log-complete") == Some("false") {
            let size: u64 = page.header("x-abo-log-size").unwrap().parse().unwrap();
            if size > MB {
                assert!(page.text().contains("abcdefghijklmnopqrstuvwxyz"));
                seen_running = true;
            }
        }
        let b = master.get_json(&format!("/api/v1/builds/{build}"));
        if b["state"] == "finished" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the build did not finish: {b}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = started.elapsed();
    assert!(seen_running, "the log was never read while the step ran");
    let b = master.get_json(&format!("/api/v1/builds/{build}"));
    // The cap changes no result.
    assert_eq!(b["result"], "success", "{b}");
    let (_, hwm) = master.rss();
    peak = peak.max(hwm);
    eprintln!(
        "250 MB of output in {elapsed:?}; master RSS {} MB before, peak {} MB",
        rss_before / MB,
        peak / MB
    );
    assert!(
        peak < rss_before + 150 * MB,
        "the master's memory grew with the output: {} MB → peak {} MB",
        rss_before / MB,
        peak / MB
    );

    // Step 0 (200 MB) is capped at 60 MB with the marker; step 1 (one 50 MB line) is whole.
    for (step, capped) in [(0, true), (1, false)] {
        let url = format!("/api/v1/builds/{build}/steps/{step}/logs/stdio");
        let head = master.get(&format!("{url}?limit=100"));
        assert_eq!(head.header("x-abo-log-complete"), Some("true"));
        let size: u64 = head.header("x-abo-log-size").unwrap().parse().unwrap();
        assert!(size > 50 * MB && size < 61 * MB, "step {step}: {size}");
        let tail = master.get(&format!("{url}?offset={}", size - 300));
        let text = tail.text();
        assert_eq!(
            text.contains("[abo: log truncated after"),
            capped,
            "step {step}: {text:?}"
        );
        // A page in the middle reads like the output.
        let middle = master.get(&format!("{url}?offset={}&limit=4096", size / 2));
        assert_eq!(middle.body.len(), 4096);
        let expected: &[u8] = if step == 0 {
            b"abcdefghij"
        } else {
            b"xxxxxxxxxx"
        };
        assert!(middle.body.windows(10).any(|w| w == expected));
    }
    // A page is at most MAX_READ_BYTES, whatever the limit asked.
    let line = master.get(&format!(
        "/api/v1/builds/{build}/steps/1/logs/stdio?limit=10000000"
    ));
    assert_eq!(line.body.len(), abo_store::MAX_READ_BYTES);
}
