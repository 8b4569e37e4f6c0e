//! The web pages in a real browser: headless Chromium driven through chromedriver
//! (tests/browser_support/), against a real `abo start`.
//!
//! The browser tests skip (saying why) when `ABO_CHROMEDRIVER` is not set; `./scripts/test`
//! installs Chromium and sets it. Screenshots are kept under
//! `target/e2e-artifacts/screenshots/`.
//!
//! Also here: the quick run of the web benchmark (`benches/web.rs`), so that it keeps
//! compiling and working.
//!
//! The web UI against a real master and a real `abo worker` (no PostgreSQL: step sets of
//! master.toml; builds wait for "gate" files the test creates, so nothing depends on
//! timing):
//!
//! - `the_web_ui_scenario`: the matrix, logging in through the form, forcing from the
//!   builder page, a build page whose live output grows without a reload, its result, the
//!   analysis and log pages, the matrix cells turning success and (live) failure, stopping
//!   a build from its page (cancelled, in the page and the API), the workers, queue and
//!   changes pages. A screenshot of each page.
//! - `hostile_text_stays_text_in_the_browser`: script payloads in every outside value the
//!   pages show (a change's author, message and repository, a forced build's reason,
//!   property names and values, a property set from a command's output, log lines with
//!   HTML and terminal escapes, the analysis of that log, the worker's info files, URLs of
//!   error pages): no script runs (`document.title`, `window.__pwned`), nothing is
//!   injected into the DOM, the text shows as text.
//!
//! Every page visited is checked for console errors (CSP refusals show there).

mod browser_support;
#[path = "../benches/web.rs"]
#[allow(dead_code)] // its `main` is the benchmark's
mod web_bench;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use browser_support::Browser;
use serde_json::{json, Value};
use web_bench::e2e_support::changes::{basic_auth, post, Repo, Vcs};
use web_bench::e2e_support::{
    self, add_user, api, say, wait_connected, wait_until, Account, Master, Peer, TempDir,
    WorkerProcess, API_PASSWORD, API_USER,
};

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

// ---------------------------------------------------------------------------------------
// The web UI against a running master and worker.

/// Generous limit for anything to show in the browser: a page, a build of a few seconds, a
/// live update (the pages hear of changes every second).
const WAIT: Duration = Duration::from_secs(60);

/// The web user of the UI tests (`abo user add`).
const WEB_USER: &str = "alice";
const WEB_PASSWORD: &str = "alice-web-secret";

/// A TOML basic string (JSON's escapes are TOML's).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Shell text that waits (at most two minutes) until `gate` exists.
fn wait_for_gate(gate: &Path) -> String {
    format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done",
        gate.display()
    )
}

/// Lays out a master directory without PostgreSQL: `manifest`, master.toml with the
/// top-level keys `top` and the step sets `step_sets`, one worker account offering a
/// (never used) PostgreSQL 15, the API user and the web user.
fn layout_web_master(dir: &Path, worker: &Account, manifest: &str, top: &str, step_sets: &str) {
    std::fs::create_dir_all(dir.join("buildouts")).unwrap();
    std::fs::write(
        dir.join("master.toml"),
        format!(
            "manifests = [\"buildouts/MANIFEST.cfg\"]\nworkers = \"workers.cfg\"\n\
             worker-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\
             worker-ping-interval = 1\nworker-lost-after = 5\n{top}\n{step_sets}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("workers.cfg"),
        format!(
            "[{}]\npassword = {}\nmax_builds = 2\ncapability = postgresql 15 port=5433\n",
            worker.name, worker.password
        ),
    )
    .unwrap();
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), manifest).unwrap();
    let check = Command::new(e2e_support::abo_bin())
        .arg("check")
        .arg(dir)
        .output()
        .expect("abo check");
    assert!(
        check.status.success(),
        "abo check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    add_user(dir, API_USER, API_PASSWORD);
    add_user(dir, WEB_USER, WEB_PASSWORD);
}

/// Starts an `abo worker` in `root/worker` with the files `info` in its `info/` directory
/// (what it reports as admin and host), and waits until it is connected.
fn start_worker(
    master: &Master,
    root: &Path,
    account: &Account,
    info: &[(&str, &str)],
) -> WorkerProcess {
    let dir = root.join("worker");
    let out = Command::new(e2e_support::abo_bin())
        .args(["worker", "create"])
        .arg(&dir)
        .args(["--master", &master.workers.to_string()])
        .args(["--name", &account.name, "--password", &account.password])
        .output()
        .expect("abo worker create");
    assert!(
        out.status.success(),
        "abo worker create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !info.is_empty() {
        std::fs::create_dir_all(dir.join("info")).unwrap();
        for (name, text) in info {
            std::fs::write(dir.join("info").join(name), text).unwrap();
        }
    }
    let worker = WorkerProcess::start(Peer::Abo, &dir, master.workers, account, &[]);
    wait_connected(master, &worker);
    worker
}

/// What the page's DOM holds that no page of abo has: event-handler attributes,
/// `javascript:` (or `data:`) links, scripts other than `/static/abo.js`, images, frames,
/// objects, SVG other than the builder chart, `<base>`, `<meta http-equiv>`, other style
/// sheets; a title or `window.__pwned` set by a payload.
const INJECTIONS: &str = r#"
const found = [];
if (document.title.includes('pwned')) { found.push('title: ' + document.title); }
if (window.__pwned !== undefined) { found.push('window.__pwned = ' + window.__pwned); }
for (const el of document.querySelectorAll('*')) {
  for (const a of Array.from(el.attributes)) {
    const n = a.name.toLowerCase();
    if (n.startsWith('on')) { found.push(el.tagName + ' has ' + n + '=' + a.value); }
    if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data'].includes(n)
        && /^\s*(javascript|data|vbscript):/i.test(a.value)) {
      found.push(el.tagName + ' ' + n + '=' + a.value);
    }
  }
}
for (const s of document.querySelectorAll('script')) {
  if (s.getAttribute('src') !== '/static/abo.js') {
    found.push('script: ' + s.outerHTML.slice(0, 200));
  }
}
for (const sel of ['img', 'iframe', 'frame', 'object', 'embed', 'base', 'meta[http-equiv]',
                   'svg:not(.chart)', 'math', 'link:not([href="/static/abo.css"]):not([href="/static/abo.svg"])']) {
  for (const el of document.querySelectorAll(sel)) {
    found.push('element: ' + el.outerHTML.slice(0, 200));
  }
}
return found;
"#;

/// Checks the page now: nothing injected ([`INJECTIONS`]), abo's own title, no console
/// error (uncaught exceptions, CSP refusals, failed loads) since the last check (then
/// forgets them).
fn check_page(b: &Browser, page: &str) {
    check_page_status(b, page, false);
}

/// [`check_page`]; with `error_page`, the page's own error status (a 404 page) is not
/// counted as a failed load.
fn check_page_status(b: &Browser, page: &str, error_page: bool) {
    let found = b.execute(INJECTIONS);
    assert_eq!(
        found,
        json!([]),
        "{page} ({}): injected into the page",
        b.current_url()
    );
    let title = b.title();
    assert!(
        title.ends_with(" — abo") && !title.contains("pwned"),
        "{page}: the title is {title:?}"
    );
    let scripts = b.script_errors();
    assert!(scripts.is_empty(), "{page}: script errors: {scripts:?}");
    let own = format!("{} - ", b.current_url());
    // Pages link their icon, so no `/favicon.ico` is asked for; an error page's own status
    // is the one failed load allowed.
    let errors: Vec<_> = b
        .console_errors()
        .into_iter()
        .filter(|e| !(error_page && e.source == "network" && e.message.starts_with(&own)))
        .collect();
    assert!(errors.is_empty(), "{page}: console errors: {errors:?}");
    b.clear_console();
}

/// Opens `url`, waits for `ready` (a CSS selector), checks the page and takes its
/// screenshot as `shot`.
fn visit(b: &Browser, url: &str, ready: &str, shot: &str) {
    b.goto(url);
    b.wait_for(ready, WAIT);
    check_page(b, shot);
    b.screenshot(shot);
}

/// Logs in through the login form; lands on the matrix.
fn log_in(b: &Browser, base: &str) {
    visit(b, &format!("{base}/login"), "form.login", "login");
    b.type_into(&b.find("form.login input[name=user]"), WEB_USER);
    b.type_into(&b.find("form.login input[name=password]"), WEB_PASSWORD);
    let button = b.find("form.login button[type=submit]");
    b.click_and_wait_load(&button, WAIT);
    let user = b.wait_for("header.top span.user", WAIT);
    assert_eq!(b.text(&user), WEB_USER);
    assert_eq!(b.current_url(), format!("{base}/"));
    let session = b.cookie("abo_session").expect("the session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    check_page(b, "after login");
}

/// The builder page's address.
fn builder_url(base: &str, builder: &str) -> String {
    format!("{base}/builders/{builder}")
}

/// Forces `builder` through the form of its page: `reason`, the form's property fields
/// `props`, and `extra` (name=value lines). Lands on the builder page again.
fn force_in_browser(
    b: &Browser,
    base: &str,
    builder: &str,
    reason: &str,
    props: &[(&str, &str)],
    extra: &str,
) {
    let url = builder_url(base, builder);
    b.goto(&url);
    b.wait_for("form.force", WAIT);
    check_page(b, "builder page");
    b.click(&b.find("details.force summary"));
    b.type_into(&b.find("form.force input[name=reason]"), reason);
    for (name, value) in props {
        let input = b.find(&format!("form.force input[name=\"prop:{name}\"]"));
        b.type_into(&input, value);
    }
    if !extra.is_empty() {
        let area = b.find("form.force textarea[name=extra]");
        b.execute_with(
            "arguments[0].value = arguments[1];",
            &[area.to_json(), json!(extra)],
        );
    }
    let submit = b.find("form.force button[type=submit]");
    b.click_and_wait_load(&submit, WAIT);
    assert_eq!(b.current_url(), url, "the force form's answer");
    check_page(b, "builder page after forcing");
}

/// The builds linked from the builder page's history, newest first.
fn history_builds(b: &Browser) -> Vec<u64> {
    let hrefs = b.execute(
        "return Array.from(document.querySelectorAll('table.history a[href^=\"/builds/\"]'))\
         .map(a => a.getAttribute('href'));",
    );
    hrefs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str()?.strip_prefix("/builds/")?.parse().ok())
        .collect()
}

/// Reloads the builder page until its history shows a build not in `known`; opens it by
/// its link and returns its id.
fn open_new_build(b: &Browser, known: &[u64]) -> u64 {
    let mut found = None;
    b.wait_until("a new build in the builder's history", WAIT, |b| {
        found = history_builds(b).into_iter().find(|id| !known.contains(id));
        if found.is_none() {
            std::thread::sleep(Duration::from_millis(250));
            b.refresh();
        }
        found.is_some()
    });
    let id = found.unwrap();
    let link = b.find(&format!("table.history a[href=\"/builds/{id}\"]"));
    b.click_and_wait_load(&link, WAIT);
    assert!(b.current_url().ends_with(&format!("/builds/{id}")));
    id
}

/// Reloads the build page until it shows a running step's live output.
fn wait_live_output(b: &Browser) {
    b.wait_until("the running step's live output", WAIT, |b| {
        if b.try_find("section.live-logs pre.log").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
        b.refresh();
        false
    });
}

/// The text of the build page's first live output.
fn live_text(b: &Browser) -> String {
    b.execute("return document.querySelector('section.live-logs pre.log').textContent;")
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The lines of the log shown by the first element matching `pre` (without their numbers).
fn log_lines(b: &Browser, pre: &str) -> Vec<String> {
    let v = b.execute_with(
        "const pre = document.querySelector(arguments[0]);\
         return pre ? Array.from(pre.querySelectorAll('span.line')).map(l => {\
           const c = l.cloneNode(true); const n = c.querySelector('a.ln');\
           if (n) { n.remove(); } return c.textContent; }) : [];",
        &[json!(pre)],
    );
    serde_json::from_value(v).unwrap()
}

/// Asserts that the lines of the log `pre` are drawn one under the other, without a gap
/// (an empty line between them).
fn assert_lines_adjacent(b: &Browser, pre: &str) {
    let gaps = b.execute_with(
        "const lines = Array.from(document.querySelectorAll(arguments[0] + ' span.line'));\
         const gaps = [];\
         for (let i = 1; i < lines.length; i++) {\
           const gap = lines[i].getBoundingClientRect().top\
             - lines[i - 1].getBoundingClientRect().bottom;\
           if (Math.abs(gap) > 1) { gaps.push([i, gap]); }\
         }\
         return [lines.length, gaps];",
        &[json!(pre)],
    );
    assert!(gaps[0].as_u64().unwrap_or(0) > 1, "{pre}: no lines");
    assert_eq!(gaps[1], json!([]), "{pre}: gaps between lines (line, px)");
}

/// Lines in the build page's first live output.
fn live_lines(b: &Browser) -> usize {
    b.count("section.live-logs pre.log span.line")
}

/// A matrix cell's class and background colour.
fn cell(b: &Browser, builder: &str) -> (String, String) {
    let v = b.execute_with(
        "const td = document.querySelector('td.cell[data-builder=\"' + arguments[0] + '\"]');\
         return td ? [td.className, getComputedStyle(td).backgroundColor] : null;",
        &[json!(builder)],
    );
    (
        v[0].as_str()
            .unwrap_or_else(|| panic!("no cell for {builder}"))
            .to_owned(),
        v[1].as_str().unwrap_or("").to_owned(),
    )
}

/// Waits until the page's live status line has class `class` (`r-success`...).
fn wait_status(b: &Browser, class: &str) {
    b.wait_for(&format!("#live p.status.{class}"), WAIT);
}

/// The steps of the slow builder: 40 lines over 10 s once `go` exists, a step printing an
/// Odoo test summary, its analysis. The failing builder's step fails once `fail_go`
/// exists.
fn scenario_step_sets(go: &Path, fail_go: &Path) -> String {
    let count = format!(
        "echo waiting for the test; {}; for i in $(seq 1 40); do echo line $i; sleep 0.25; done",
        wait_for_gate(go)
    );
    let fail = format!(
        "{}; echo failing on purpose; exit 3",
        wait_for_gate(fail_go)
    );
    format!(
        "[[step-sets.slow]]\nname = \"count\"\ncommand = [\"sh\", \"-c\", {}]\n\n\
         [[step-sets.slow]]\nname = \"tests\"\ncommand = [\"echo\", {}]\n\n\
         [[step-sets.slow]]\nname = \"analysis\"\nkind = \"analyze-log\"\nstep = \"tests\"\n\
         log = \"stdio\"\n\n\
         [[step-sets.fail]]\nname = \"fail\"\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str(&count),
        toml_str(
            "2024-05-02 10:00:01,000 100 INFO testdb odoo.tests.result: 0 failed, \
             0 error(s) of 3 tests when loading database 'testdb'"
        ),
        toml_str(&fail),
    )
}

/// The web UI as a user meets it: the matrix, logging in, forcing from the builder page, a
/// build's live output growing in place, its result, analysis and log, the matrix cells
/// turning success and (live) failure, stopping a build from its page, the other pages.
#[test]
fn the_web_ui_scenario() {
    let Some(b) = Browser::start("the_web_ui_scenario") else {
        return;
    };
    let started = Instant::now();
    let tmp = TempDir::new("abo-web-ui.");
    let dir = tmp.path().join("master");
    let (go, fail_go) = (tmp.path().join("go-slow"), tmp.path().join("go-fail"));
    let account = Account {
        name: "w1".into(),
        password: "w1-secret".into(),
    };
    let manifest = "[slow]\nsteps = slow\nbuild-for = postgresql\n\n\
                    [quickfail]\nsteps = fail\nbuild-for = postgresql\n";
    layout_web_master(
        &dir,
        &account,
        manifest,
        "",
        &scenario_step_sets(&go, &fail_go),
    );
    let (slow, fail) = ("slow-postgresql-15", "quickfail-postgresql-15");
    let master = Master::start(&dir);
    let base = master.url();
    let _worker = start_worker(&master, tmp.path(), &account, &[]);

    // The matrix, anonymous: nothing built yet, no form.
    visit(&b, &format!("{base}/"), "table.matrix", "matrix");
    let (slow_before, slow_colour_before) = cell(&b, slow);
    assert!(slow_before.contains("r-none"), "{slow_before}");
    let (fail_before, _) = cell(&b, fail);
    assert!(fail_before.contains("r-none"), "{fail_before}");
    assert!(b.try_find("header.top span.user").is_none());

    log_in(&b, &base);

    // Force the slow builder from its page, open the build.
    force_in_browser(&b, &base, slow, "first run from the browser", &[], "");
    b.screenshot("builder");
    let first = open_new_build(&b, &[]);
    wait_live_output(&b);
    check_page(&b, "build page, waiting");
    b.screenshot("build-waiting");
    // The live output grows without a reload: lines counted at two moments.
    b.set_marker();
    let before = live_lines(&b);
    std::fs::write(&go, b"go").unwrap();
    let mut during = 0;
    b.wait_until("the live output to grow", WAIT, |b| {
        during = live_lines(b);
        during > before
    });
    assert!(
        b.try_find("section.live-logs pre.log.ended").is_none(),
        "the log ended with its first lines"
    );
    assert_eq!(
        api(master.http, &format!("builds/{first}"))["state"],
        "running",
        "the build should still run (40 lines over 10 s)"
    );
    assert!(b.has_marker(), "the build page was reloaded");
    b.screenshot("build-running");
    wait_status(&b, "r-success");
    b.wait_for("section.live-logs pre.log.ended", WAIT);
    assert!(b.has_marker(), "the build page was reloaded");
    let after = live_lines(&b);
    assert!(
        after > during && during > before,
        "live lines: {before}, then {during}, then {after}"
    );
    let lines = log_lines(&b, "section.live-logs pre.log");
    for i in [1, 20, 40] {
        let line = format!("line {i}");
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line} once in the live output: {lines:#?}"
        );
    }
    assert_lines_adjacent(&b, "section.live-logs pre.log");
    assert_eq!(b.count("table.steps tbody tr.r-success"), 3, "every step");
    check_page(&b, "build page, finished");
    b.screenshot("build-finished");
    assert_eq!(
        api(master.http, &format!("builds/{first}"))["result"],
        "success"
    );

    // The analysis of the test step.
    let analysis = b.find("table.steps a.analysis");
    b.click_and_wait_load(&analysis, WAIT);
    b.wait_for("table.counts", WAIT);
    let counts = b.text(&b.find("table.counts"));
    assert!(counts.contains("tests run 3"), "{counts}");
    assert!(b.try_find("p.status.r-success").is_some());
    check_page(&b, "analysis");
    b.screenshot("analysis");

    // The count step's log.
    b.goto(&format!("{base}/builds/{first}"));
    let log = b.find("table.steps tbody tr:first-child td.logs a");
    b.click_and_wait_load(&log, WAIT);
    b.wait_for("pre.log", WAIT);
    let facts = b.text(&b.find("p.facts"));
    assert!(facts.contains("complete"), "{facts}");
    let lines = log_lines(&b, "pre.log");
    for i in 1..=40 {
        let line = format!("line {i}");
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line} once in the log page: {lines:#?}"
        );
    }
    assert_lines_adjacent(&b, "pre.log");
    check_page(&b, "log");
    b.screenshot("log");

    // The matrix: the slow builder's cell is a success now.
    visit(&b, &format!("{base}/"), "table.matrix", "matrix-success");
    let (slow_after, slow_colour_after) = cell(&b, slow);
    assert!(slow_after.contains("r-success"), "{slow_after}");
    assert_ne!(slow_colour_after, slow_colour_before, "the cell's colour");

    // The failing builder: forced from its page; its cell turns failure on the open matrix.
    force_in_browser(&b, &base, fail, "", &[], "");
    visit(
        &b,
        &format!("{base}/"),
        "table.matrix",
        "matrix-fail-pending",
    );
    let (fail_pending, fail_colour_before) = cell(&b, fail);
    assert!(fail_pending.contains("r-none"), "{fail_pending}");
    b.set_marker();
    std::fs::write(&fail_go, b"go").unwrap();
    b.wait_until("the failing builder's cell to show a failure", WAIT, |b| {
        cell(b, fail).0.contains("r-failure")
    });
    assert!(b.has_marker(), "the matrix was reloaded");
    assert_ne!(cell(&b, fail).1, fail_colour_before, "the cell's colour");
    check_page(&b, "matrix, live failure");
    b.screenshot("matrix-failure");

    // Force the slow builder again and stop it from its page.
    force_in_browser(&b, &base, slow, "to be stopped", &[], "");
    let second = open_new_build(&b, &[first]);
    wait_live_output(&b);
    b.wait_until("the second build's first lines", WAIT, |b| {
        live_text(b).contains("line 1")
    });
    b.screenshot("build-before-stop");
    let stop = b.find("div.actions form[action$=\"/stop\"] button");
    b.click_and_wait_load(&stop, WAIT);
    assert_eq!(b.current_url(), format!("{base}/builds/{second}"));
    wait_status(&b, "r-cancelled");
    assert!(b.text(&b.find("#live p.status")).contains("cancelled"));
    b.refresh();
    wait_status(&b, "r-cancelled");
    assert!(
        b.try_find("div.actions form[action$=\"/stop\"]").is_none(),
        "a finished build offers to stop it"
    );
    check_page(&b, "build page, cancelled");
    b.screenshot("build-cancelled");
    let stopped = api(master.http, &format!("builds/{second}"));
    assert_eq!(stopped["result"], "cancelled", "{stopped:#}");
    assert_eq!(stopped["state"], "finished", "{stopped:#}");

    // The other pages.
    visit(
        &b,
        &format!("{base}/workers"),
        "tr.connected[data-worker=\"w1\"]",
        "workers",
    );
    visit(&b, &format!("{base}/queue"), "#live h2", "queue");
    b.wait_until("an empty queue", WAIT, |b| {
        let text = b.text(&b.find("#live"));
        text.contains("Pending (0)") && text.contains("Running (0)")
    });
    visit(&b, &format!("{base}/changes"), "p.empty", "changes");
    visit(
        &b,
        &builder_url(&base, slow),
        "table.history",
        "builder-history",
    );
    assert_eq!(history_builds(&b), vec![second, first]);
    check_page(&b, "the end");
    say(&format!(
        "the_web_ui_scenario: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

// The payloads: each would change the title or set `window.__pwned` if it ran.
const P_SCRIPT: &str = "<script>window.__pwned=1</script>";
const P_TITLE: &str = "<script>document.title='pwned'</script>";
const P_IMG: &str = "<img src=x onerror=\"document.title='pwned'\">";
const P_SVG: &str = "\"><svg onload=window.__pwned=1>";
const P_LINK: &str = "<a href=\"javascript:window.__pwned=1\">js-link-xss</a>";
/// A property name (no blank, no `=`: the form's `name=value` lines).
const P_NAME: &str = "<script>Object.assign(window,{__pwned:1})</script>";

/// The payload step: says it started, waits for its gate (`$1`; `none`: no wait), prints
/// the greeting property (`$2`), HTML payloads, ANSI colours, an OSC 8 hyperlink to
/// `javascript:`, a window-title escape, and Odoo log lines the analysis reports.
fn payload_script() -> String {
    format!(
        r#"#!/bin/sh
echo "payload step started"
if [ "$1" != none ]; then
  i=0; while [ ! -e "$1" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
fi
echo "greeting: $2"
cat <<'PAYLOADS'
{P_TITLE}
{P_IMG}
{P_SCRIPT}
{P_SVG}
{P_LINK}
PAYLOADS
printf '\033[31m<b>red-xss</b>\033[0m\n'
printf '\033]8;;javascript:window.__pwned=1\033\\osc8-link-xss\033]8;;\033\\\n'
printf '\033]0;pwned\007title-escape-xss\n'
cat <<'ODOO'
2024-05-02 10:00:00,100 100 ERROR testdb odoo.addons.m.tests.t: FAIL: {P_SCRIPT} {P_IMG}
2024-05-02 10:00:01,000 100 ERROR testdb odoo.tests.result: 1 failed, 0 error(s) of 3 tests when loading database 'testdb'
ODOO
"#
    )
}

/// Asserts that the elements matching `css` show, together, each of `texts` as text.
fn assert_shown(b: &Browser, css: &str, texts: &[&str], page: &str) {
    let shown = b.execute_with(
        "return Array.from(document.querySelectorAll(arguments[0]))\
         .map(e => e.textContent).join('\\n');",
        &[json!(css)],
    );
    let shown = shown.as_str().unwrap_or("");
    for t in texts {
        assert!(
            shown.contains(t),
            "{page}: {t:?} is not shown as text in {css:?}:\n{shown}"
        );
    }
}

/// The attribute `name` of the first element matching `css`.
fn attr_of(b: &Browser, css: &str, name: &str) -> String {
    b.attr(&b.find(css), name).unwrap_or_default()
}

/// Percent-encodes every byte but ASCII letters and digits.
fn url_encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Script payloads in every outside value the pages show; none runs, none is injected,
/// each shows as text.
#[test]
fn hostile_text_stays_text_in_the_browser() {
    let Some(b) = Browser::start("hostile_text_stays_text_in_the_browser") else {
        return;
    };
    let started = Instant::now();
    let tmp = TempDir::new("abo-web-xss.");
    let repo = Repo::create(Vcs::Git, &tmp.path().join("repo"), &["main"]);
    let url = repo.url("main");
    let script = tmp.path().join("payloads.sh");
    std::fs::write(&script, payload_script()).unwrap();
    let gate = tmp.path().join("go-xss");
    let dir = tmp.path().join("master");
    let account = Account {
        name: "wx".into(),
        password: "wx-secret".into(),
    };
    let step_sets = format!(
        "[[step-sets.xss]]\nname = \"payloads\"\n\
         command = [\"sh\", {}, \"%(gate:-none)s\", \"%(greeting:-none)s\"]\n\n\
         [[step-sets.xss]]\nname = \"from-command\"\nkind = \"set-property-from-command\"\n\
         property = \"xss_out\"\ncommand = [\"echo\", {}]\n\n\
         [[step-sets.xss]]\nname = \"analysis\"\nkind = \"analyze-log\"\n\
         step = \"payloads\"\nlog = \"stdio\"\n",
        toml_str(&script.display().to_string()),
        toml_str(&format!("{P_SCRIPT}{P_SVG}")),
    );
    layout_web_master(
        &dir,
        &account,
        &format!(
            "[xss]\nsteps = xss\nbuild-for = postgresql not-used\nwatch = {}\n",
            repo.watch_line("main")
        ),
        "poll-interval = 3600\ntree-stable-timer = 0\n",
        &step_sets,
    );
    let master = Master::start(&dir);
    let base = master.url();
    let admin = format!("{P_SCRIPT} Admin <admin@example.org>");
    let _worker = start_worker(
        &master,
        tmp.path(),
        &account,
        &[("admin", &admin), ("host", P_SVG)],
    );

    // Changes through the API: one of the watched branch (it is built), two of
    // repositories nobody watches, with payloads as their paths.
    let author = format!("{P_SVG} {P_SCRIPT} <b>Mallory</b> <m@example.org>");
    let first_line = format!("{P_IMG} {P_SCRIPT}");
    let comments = format!("{first_line}\n\nmore: {P_LINK} {P_TITLE}");
    let send = |repository: &str, branch: &str| {
        let body = json!({
            "repository": repository, "branch": branch,
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "author": author, "comments": comments, "files": [P_SCRIPT],
            "project": P_SVG, "category": P_TITLE,
        });
        post(
            master.http,
            "/api/v1/changes",
            &[("Authorization", &basic_auth())],
            &body.to_string(),
        )
    };
    let (status, text) = send(&url, "main");
    assert_eq!(status, 201, "{text}");
    let repo_script = format!("/xss/{P_SCRIPT}");
    let repo_svg = "/xss/\"><svg/onload=window.__pwned=1>".to_owned();
    // git's `host:path` form: a host named `javascript`.
    let repo_js = "javascript:window.__pwned=1".to_owned();
    for r in [&repo_script, &repo_svg, &repo_js] {
        let (status, text) = send(r, "main");
        assert_eq!(status, 201, "{r}: {text}");
        let change: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(change["watched"], false, "{text}");
    }
    // What cannot carry HTML: a branch (shell characters are refused).
    let (status, text) = send(&url, P_SCRIPT);
    assert_eq!(status, 400, "an HTML branch: {text}");
    let from_change = wait_until(&master, WAIT, "the change's build", || {
        let builds = api(master.http, "builds?builder=xss");
        let b = builds.as_array()?.first()?.clone();
        (b["state"] == "finished").then_some(b["id"].as_u64()?)
    });

    log_in(&b, &base);
    // A forced build: payloads in the reason, in property values (the form's fields and
    // its name=value lines) and in a property name.
    let greeting = format!("{P_SCRIPT}{P_SVG} javascript:window.__pwned=1");
    let reason = format!("{P_TITLE} {P_SVG}");
    force_in_browser(
        &b,
        &base,
        "xss",
        &reason,
        &[
            ("greeting", &greeting),
            ("gate", &gate.display().to_string()),
        ],
        &format!("revision={P_SCRIPT}\n{P_NAME}=name-payload\nlink=javascript:window.__pwned=1"),
    );
    let forced = open_new_build(&b, &[from_change]);
    // Its log, live: the payload lines come through the page's script.
    wait_live_output(&b);
    b.set_marker();
    std::fs::write(&gate, b"go").unwrap();
    b.wait_until("the payload lines in the live output", WAIT, |b| {
        live_text(b).contains("when loading database")
    });
    let printed = [
        P_TITLE,
        P_IMG,
        P_SCRIPT,
        P_SVG,
        P_LINK,
        "<b>red-xss</b>",
        "osc8-link-xss",
        "title-escape-xss",
        &greeting,
    ];
    assert_shown(&b, "section.live-logs pre.log", &printed, "live output");
    assert_eq!(
        b.count("section.live-logs pre.log a:not(.ln)"),
        0,
        "a link in the live output"
    );
    assert_eq!(
        b.count("section.live-logs pre.log span.ansi-fg1"),
        1,
        "the red text is coloured"
    );
    check_page(&b, "build page, live");
    b.screenshot("build-live");
    b.wait_until("the forced build's end", WAIT, |b| {
        b.try_find("#live p.status.r-running").is_none()
    });
    assert!(b.has_marker(), "the build page was reloaded");
    check_page(&b, "build page, ended live");

    // The forced build, rendered by the master.
    let build_url = format!("{base}/builds/{forced}");
    visit(&b, &build_url, "table.props", "build-forced");
    assert_shown(&b, "span.reason", &[&reason], "build page");
    assert_shown(
        &b,
        "table.props",
        &[
            &greeting,
            P_SCRIPT,
            P_NAME,
            "name-payload",
            "javascript:window.__pwned=1",
        ],
        "build page",
    );
    let props = api(master.http, &format!("builds/{forced}"))["properties"].clone();
    match props["xss_out"].as_str() {
        Some(out) => assert_shown(&b, "table.props", &[out], "build page"),
        None => say(&format!(
            "hostile_text: no xss_out among the build's properties: {props}"
        )),
    }

    // Its payload log, a page of it, and the analysis of it.
    visit(
        &b,
        &format!("{build_url}/steps/0/logs/stdio"),
        "pre.log",
        "log",
    );
    assert_shown(&b, "pre.log", &printed, "log page");
    assert_eq!(b.count("pre.log a:not(.ln)"), 0, "a link in the log");
    visit(
        &b,
        &format!("{build_url}/steps/2/analysis"),
        "ol.failures",
        "analysis",
    );
    assert_shown(&b, "ol.failures code", &[P_SCRIPT, P_IMG], "analysis page");

    // The build of the change: its blame list and message.
    visit(
        &b,
        &format!("{base}/builds/{from_change}"),
        "ul.changes",
        "build-change",
    );
    assert_shown(&b, "span.author", &[&author], "build page");
    assert_shown(&b, "ul.changes span.msg", &[&first_line], "build page");
    assert_eq!(attr_of(&b, "ul.changes span.msg", "title"), comments);

    // The builder's history: the change and the forced revision.
    visit(&b, &builder_url(&base, "xss"), "table.history", "builder");
    assert_shown(
        &b,
        "td.changes span.change",
        &[&author, &first_line],
        "builder page",
    );
    assert_eq!(attr_of(&b, "td.changes span.change", "title"), comments);
    assert_eq!(attr_of(&b, "table.history code", "title"), P_SCRIPT);

    // The matrix: the latest build's revision.
    visit(
        &b,
        &format!("{base}/"),
        "td.cell[data-builder=\"xss\"]",
        "matrix",
    );
    assert_eq!(
        attr_of(&b, "td.cell[data-builder=\"xss\"] code.rev", "title"),
        P_SCRIPT
    );
    assert_shown(
        &b,
        "td.cell[data-builder=\"xss\"] code.rev",
        &[&P_SCRIPT[..12]],
        "matrix",
    );

    // The changes, all and of one repository.
    visit(&b, &format!("{base}/changes"), "table.changes", "changes");
    assert_eq!(b.count("table.changes tr.change"), 4);
    assert_shown(
        &b,
        "td.repo",
        &[&url, &repo_script, &repo_svg, &repo_js],
        "changes page",
    );
    assert_shown(&b, "td.author", &[&author], "changes page");
    assert_shown(&b, "td.msg", &[&first_line], "changes page");
    assert_eq!(attr_of(&b, "td.msg", "title"), comments);
    let filtered = format!("{base}/changes?repository={}", url_encode_all(&repo_script));
    visit(&b, &filtered, "table.changes", "changes-filtered");
    assert_eq!(b.count("table.changes tr.change"), 1);
    assert_shown(&b, "td.repo", &[&repo_script], "filtered changes page");

    // The workers (the worker's admin and host files hold payloads) and the queue.
    visit(
        &b,
        &format!("{base}/workers"),
        "tr.connected[data-worker=\"wx\"]",
        "workers",
    );
    visit(&b, &format!("{base}/queue"), "#live h2", "queue");

    // Pages that repeat their address: an error page, the login form's `next`.
    b.goto(&format!("{base}/builders/{}", url_encode_all(P_SCRIPT)));
    b.wait_for("p.error", WAIT);
    check_page_status(&b, "error page", true);
    b.screenshot("error-page");
    assert_shown(&b, "p.error", &[P_SCRIPT], "error page");
    let next = format!("/{P_SVG}{P_SCRIPT}");
    visit(
        &b,
        &format!("{base}/login?next={}", url_encode_all(&next)),
        "form.login",
        "login-next",
    );
    assert_eq!(attr_of(&b, "form.login input[name=next]", "value"), next);
    say(&format!(
        "hostile_text_stays_text_in_the_browser: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}
