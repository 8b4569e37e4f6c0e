//! The web pages in a real browser: headless Chromium driven through chromedriver
//! (tests/browser_support/), against a real `abo start`.
//!
//! The browser tests skip (saying why) when `ABO_CHROMEDRIVER` is not set; `./scripts/test`
//! installs Chromium and sets it. Screenshots are kept under
//! `target/e2e-artifacts/screenshots/`.
//!
//! Also here: the quick run of the web benchmark (`benches/web.rs`), so that it keeps
//! compiling and working.

mod browser_support;
#[path = "../benches/web.rs"]
#[allow(dead_code)] // its `main` is the benchmark's
mod web_bench;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use browser_support::Browser;
use web_bench::e2e_support::{self, Master};

/// `abo init DIR` with both ports chosen by the system (the master logs them).
fn init_master(dir: &Path) -> PathBuf {
    let out = Command::new(e2e_support::abo_bin())
        .arg("init")
        .arg(dir)
        .output()
        .expect("abo init");
    assert!(
        out.status.success(),
        "abo init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = dir.join("master.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("\"0.0.0.0:9989\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:8010\"", "\"127.0.0.1:0\"");
    std::fs::write(&toml, text).unwrap();
    dir.to_owned()
}

#[test]
fn the_workers_api_in_the_browser() {
    let Some(browser) = Browser::start("the_workers_api_in_the_browser") else {
        return;
    };
    let tmp = e2e_support::TempDir::new("abo-web.");
    let dir = init_master(&tmp.path().join("master"));
    let master = Master::start(&dir);

    let url = format!("{}/api/v1/workers", master.url());
    browser.goto(&url);
    assert_eq!(browser.current_url(), url);
    // Chromium shows a JSON answer as its text in a <pre>.
    let pre = browser.wait_for("pre", Duration::from_secs(10));
    let text = browser.text(&pre);
    let workers: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(workers[0]["name"], "local", "{text}");
    assert_eq!(workers[0]["connected"], false, "{text}");
    assert_eq!(workers[0]["capabilities"][0]["version"], "15", "{text}");
    assert!(
        !text.contains("change-me"),
        "a worker password is shown: {text}"
    );
    let shot = browser.screenshot("api-workers");
    assert!(std::fs::metadata(&shot).unwrap().len() > 100, "{shot:?}");
    assert!(
        browser.script_errors().is_empty(),
        "{:?}",
        browser.script_errors()
    );
}

/// A page served by a tiny HTTP server of the test: `GET /csp` with
/// `Content-Security-Policy: default-src 'self'`, `GET /plain` without; both carry an inline
/// script that changes the title.
const PAGE: &str = "<!doctype html><html><head><title>untouched</title></head><body>\
                    <p id=p>a page</p><script>document.title = 'script ran';</script>\
                    </body></html>";

fn serve_pages() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Serves until the test binary exits.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr
}

fn answer(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, csp, body) = match path {
        "/csp" => (
            "200 OK",
            "Content-Security-Policy: default-src 'self'\r\n",
            PAGE,
        ),
        "/plain" => ("200 OK", "", PAGE),
        _ => ("404 Not Found", "", "not found"),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{csp}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn an_inline_script_under_a_strict_csp_does_not_run() {
    let Some(browser) = Browser::start("an_inline_script_under_a_strict_csp_does_not_run") else {
        return;
    };
    let addr = serve_pages();

    // Without the policy the script runs: the harness sees a script's effect.
    browser.goto(&format!("http://{addr}/plain"));
    browser.wait_for("#p", Duration::from_secs(10));
    assert_eq!(browser.title(), "script ran");
    assert!(
        browser.script_errors().is_empty(),
        "{:?}",
        browser.script_errors()
    );

    // With `default-src 'self'` it does not, and the refusal is in the console.
    browser.goto(&format!("http://{addr}/csp"));
    let p = browser.wait_for("#p", Duration::from_secs(10));
    assert_eq!(browser.text(&p), "a page");
    assert_eq!(browser.title(), "untouched");
    assert_eq!(
        browser.execute("return document.title"),
        serde_json::json!("untouched")
    );
    let errors = browser.script_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("Content Security Policy")),
        "no CSP refusal in the console: {errors:?}"
    );
    browser.screenshot("csp-page");
}

#[test]
fn the_web_benchmark_quick_run() {
    let report = web_bench::run(&web_bench::Options::quick());
    assert_eq!(report.builds_seeded, report.options.builds, "{report:?}");
    // Every page answered (200) or is not there yet (404); none failed.
    for p in &report.pages {
        assert!(
            p.status == 200 || p.status == 404,
            "{} answered {}",
            p.path,
            p.status
        );
        if p.status == 200 {
            assert_eq!(p.samples.len(), report.options.requests, "{p:?}");
        }
    }
    let baseline = report
        .pages
        .iter()
        .find(|p| p.path.starts_with("/api/v1/builds"))
        .expect("the JSON baseline");
    assert_eq!(baseline.status, 200, "{baseline:?}");
    // The big log was written whole by the build and read back through the API.
    assert!(
        report.log.log_bytes >= report.options.log_bytes,
        "{:?}",
        report.log
    );
    if report.log.sse_found {
        for (i, n) in report.log.client_bytes.iter().enumerate() {
            assert!(*n > 0, "SSE client {i} received nothing: {:?}", report.log);
        }
    }
    assert!(report.log.peak_rss_kib > 0, "{:?}", report.log);
}
