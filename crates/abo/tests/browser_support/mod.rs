//! A small, blocking W3C WebDriver client for the browser tests (`tests/e2e_web.rs`):
//! Debian's `chromedriver` started on a free loopback port as a child process, one session
//! of headless Chromium with a fresh profile, and the few commands a test needs.
//!
//! ```ignore
//! let Some(b) = Browser::start("my_test") else { return }; // skipped: said why
//! b.goto(&format!("{url}/"));
//! let row = b.wait_for("table.matrix tr", Duration::from_secs(10));
//! assert_eq!(b.text(&row), "...");
//! b.screenshot("matrix");
//! assert!(b.script_errors().is_empty());
//! ```
//!
//! Found through `ABO_CHROMEDRIVER` (the driver) and `ABO_CHROMIUM` (the browser binary,
//! optional): `scripts/test` installs both and sets them. Without `ABO_CHROMEDRIVER`,
//! [`Browser::start`] prints why and returns `None`, so `cargo test` works on a machine
//! without Chromium. When it is set, any failure to start is a test failure.
//!
//! Screenshots go to `<target>/e2e-artifacts/screenshots/` (the target directory of the
//! test binary, or `ABO_E2E_ARTIFACTS`), where CI keeps them; a test that panics while a
//! browser is open leaves `<test>-failure.png` there.

#![allow(dead_code)] // each test uses a different part

use std::cell::RefCell;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's command line: no sandbox (tests run as root), nothing fetched from the
/// network on its own, a fresh profile.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A line on the test's real stderr (not captured by the harness).
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// An element found on the page (a W3C element reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

impl Element {
    /// The reference as a script argument.
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// A WebDriver error answer.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    /// The W3C error code (`no such element`, `javascript error`, ...), or `http` for a
    /// failed connection.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// One entry of the browser's console log (Chromium's `browser` log: console calls,
/// uncaught script errors, CSP violations, failed loads).
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    /// `javascript`, `console-api`, `security`, `network`, ...
    pub source: String,
    pub message: String,
}

/// Where screenshots go: `ABO_E2E_ARTIFACTS/screenshots`, or `e2e-artifacts/screenshots`
/// in the target directory of the running test binary (`target/debug/deps/x` → `target`).
pub fn screenshots_dir() -> PathBuf {
    let base = match std::env::var_os("ABO_E2E_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("e2e-artifacts"),
    };
    base.join("screenshots")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .proxy(None)
        .build()
        .into()
}

/// A chromedriver process and one browser session. Dropping it ends the session (the
/// driver closes Chromium), then kills the driver's process group.
pub struct Browser {
    name: String,
    driver: Child,
    driver_log: PathBuf,
    /// `http://127.0.0.1:PORT`
    driver_url: String,
    session: String,
    agent: ureq::Agent,
    console: RefCell<Vec<ConsoleEntry>>,
    shots: RefCell<u32>,
    // Last: removed after the browser is gone.
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session for the test `name` (used in
    /// screenshot file names), or prints why not and returns `None` when `ABO_CHROMEDRIVER`
    /// is not set. Panics if it is set and the browser does not start.
    pub fn start(name: &str) -> Option<Browser> {
        let Some(driver) = std::env::var_os("ABO_CHROMEDRIVER").filter(|v| !v.is_empty()) else {
            say(&format!(
                "{name}: SKIPPED: ABO_CHROMEDRIVER is not set (./scripts/test installs \
                 Chromium and chromedriver and sets it)"
            ));
            return None;
        };
        let driver = PathBuf::from(driver);
        assert!(
            driver.is_file(),
            "ABO_CHROMEDRIVER={} is not a file",
            driver.display()
        );
        let chromium = std::env::var_os("ABO_CHROMIUM")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let t = Instant::now();
        // A free port may be taken between the probe and the driver's bind: a few tries.
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let profile = tempfile::Builder::new()
                .prefix("abo-chromium.")
                .tempdir()
                .expect("a temporary profile directory");
            let port = free_port();
            let driver_log = profile.path().join("chromedriver.log");
            let log = std::fs::File::create(&driver_log).unwrap();
            let child = Command::new(&driver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
            let mut browser = Browser {
                name: sanitize(name),
                driver: child,
                driver_log,
                driver_url: format!("http://127.0.0.1:{port}"),
                session: String::new(),
                agent: agent(),
                console: RefCell::new(Vec::new()),
                shots: RefCell::new(0),
                profile,
            };
            match browser.wait_ready() {
                Ok(()) => {
                    browser.new_session(chromium.as_deref());
                    say(&format!(
                        "{name}: Chromium ready in {:.2}s",
                        t.elapsed().as_secs_f64()
                    ));
                    return Some(browser);
                }
                Err(e) => {
                    let failure = format!("try {attempt}: {e}\n{}", browser.driver_log_text());
                    say(&format!("{name}: chromedriver did not start: {failure}"));
                    failures.push(failure);
                    // Dropping it kills the driver and removes the profile.
                }
            }
        }
        panic!("chromedriver did not start:\n{}", failures.join("\n"));
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!("chromedriver exited ({status})"));
            }
            if let Ok(v) = self.raw("GET", "/status", None) {
                if v["ready"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err("chromedriver not ready after 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn new_session(&mut self, chromium: Option<&Path>) {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let mut options = json!({ "args": args });
        if let Some(bin) = chromium {
            options["binary"] = json!(bin.to_string_lossy());
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 30000, "script": 30000, "implicit": 0 },
                }
            }
        });
        let v = self
            .raw("POST", "/session", Some(&caps))
            .unwrap_or_else(|e| {
                panic!(
                    "creating a Chromium session failed: {e}\nchromedriver's log:\n{}",
                    self.driver_log_text()
                )
            });
        self.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_owned();
    }

    fn driver_log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_owned()
    }

    fn kill_driver(&mut self) {
        // SAFETY: kill(2) on the process group created for our own chromedriver child.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    /// One WebDriver command: the answer's `value`, or its error.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.driver_url);
        let http = |e: ureq::Error| WebDriverError {
            status: 0,
            error: "http".into(),
            message: format!("{method} {url}: {e}"),
        };
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json; charset=utf-8")
                .send(body.unwrap_or(&json!({})).to_string()),
        }
        .map_err(http)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(http)?;
        let v: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
            status,
            error: "bad answer".into(),
            message: format!("{method} {path}: {e}: {text:.500}"),
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            return Err(WebDriverError {
                status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or(&text).to_owned(),
            });
        }
        Ok(value)
    }

    /// A command of the session.
    pub fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    /// A command that must succeed.
    fn must(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.command(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(&json!({ "url": url })));
    }

    pub fn back(&self) {
        self.must("POST", "/back", None);
    }

    pub fn refresh(&self) {
        self.must("POST", "/refresh", None);
    }

    pub fn current_url(&self) -> String {
        string(self.must("GET", "/url", None))
    }

    pub fn title(&self) -> String {
        string(self.must("GET", "/title", None))
    }

    /// The page's DOM as HTML, now (not as it was served).
    pub fn page_source(&self) -> String {
        string(self.must("GET", "/source", None))
    }

    /// The first element matching the CSS selector, or `None`.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({ "using": "css selector", "value": css });
        match self.command("POST", "/element", Some(&body)) {
            Ok(v) => Some(element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("finding {css:?}: {e}"),
        }
    }

    /// The first element matching the CSS selector; panics (with a screenshot) if none.
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css).unwrap_or_else(|| {
            let shot = self.screenshot("no-such-element");
            panic!(
                "no element matches {css:?} on {} (screenshot {})",
                self.current_url(),
                shot.display()
            )
        })
    }

    /// Every element matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({ "using": "css selector", "value": css });
        match self.must("POST", "/elements", Some(&body)) {
            Value::Array(list) => list.iter().map(element).collect(),
            other => panic!("elements: unexpected answer {other}"),
        }
    }

    /// The element's rendered text (what a user sees, CSS applied).
    pub fn text(&self, el: &Element) -> String {
        string(self.must("GET", &format!("/element/{}/text", el.0), None))
    }

    /// An attribute (`None` when absent).
    pub fn attr(&self, el: &Element, name: &str) -> Option<String> {
        self.must("GET", &format!("/element/{}/attribute/{name}", el.0), None)
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property (`value`, `checked`, `href` resolved...).
    pub fn property(&self, el: &Element, name: &str) -> Value {
        self.must("GET", &format!("/element/{}/property/{name}", el.0), None)
    }

    pub fn click(&self, el: &Element) {
        self.must(
            "POST",
            &format!("/element/{}/click", el.0),
            Some(&json!({})),
        );
    }

    /// Types `text` into the element (an input or textarea), as key presses.
    pub fn type_into(&self, el: &Element, text: &str) {
        self.must(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(&json!({ "text": text })),
        );
    }

    pub fn clear(&self, el: &Element) {
        self.must(
            "POST",
            &format!("/element/{}/clear", el.0),
            Some(&json!({})),
        );
    }

    /// Submits the form `el` is (or is in), as a submit button would: validation and
    /// `submit` handlers run.
    pub fn submit(&self, el: &Element) {
        self.execute_with(
            "const f = arguments[0].form || arguments[0]; f.requestSubmit();",
            &[el.to_json()],
        );
    }

    /// Runs `script` as the body of a function in the page and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.execute_with(script, &[])
    }

    /// [`Browser::execute`] with arguments (`arguments[0]`...; elements as
    /// [`Element::to_json`]).
    pub fn execute_with(&self, script: &str, args: &[Value]) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// How many elements match the CSS selector now.
    pub fn count(&self, css: &str) -> usize {
        self.execute_with(
            "return document.querySelectorAll(arguments[0]).length;",
            &[json!(css)],
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Sets `window.__abo_marker` on the current document: [`Browser::has_marker`] tells
    /// later whether the page is still the same document (no navigation, no reload).
    pub fn set_marker(&self) {
        self.execute("window.__abo_marker = 1;");
    }

    /// Whether the marker of [`Browser::set_marker`] is still there.
    pub fn has_marker(&self) -> bool {
        self.execute("return window.__abo_marker === 1;") == json!(true)
    }

    /// Clicks `el` (a link or a form's button) and waits, up to `timeout`, until another
    /// document has replaced the current one and finished loading.
    pub fn click_and_wait_load(&self, el: &Element, timeout: Duration) {
        self.execute("window.__abo_leaving = 1;");
        self.click(el);
        self.wait_until("the next page to load", timeout, |b| {
            matches!(
                b.command(
                    "POST",
                    "/execute/sync",
                    Some(&json!({
                        "script": "return window.__abo_leaving === undefined \
                                   && document.readyState === 'complete';",
                        "args": []
                    })),
                ),
                Ok(Value::Bool(true))
            )
        });
    }

    /// Waits until an element matches the CSS selector; panics after `timeout` (with a
    /// screenshot and the page's source).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let mut found = None;
        self.wait_until(&format!("an element matching {css:?}"), timeout, |b| {
            found = b.try_find(css);
            found.is_some()
        });
        found.unwrap()
    }

    /// Polls `check` every 50 ms until it is true; panics after `timeout` with `what`, a
    /// screenshot and the page's source.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Browser) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout");
                let source = self.page_source();
                let cut = source
                    .char_indices()
                    .nth(3000)
                    .map_or(source.len(), |(i, _)| i);
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {} (screenshot {}); \
                     the page:\n{}",
                    self.current_url(),
                    shot.display(),
                    &source[..cut]
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the viewport as `<test>-<n>-<label>.png` in [`screenshots_dir`] and
    /// returns its path.
    pub fn screenshot(&self, label: &str) -> PathBuf {
        let data = string(self.must("GET", "/screenshot", None));
        let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data)
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let n = {
            let mut shots = self.shots.borrow_mut();
            *shots += 1;
            *shots
        };
        let path = dir.join(format!("{}-{n:02}-{}.png", self.name, sanitize(label)));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Every console entry since the session started (Chromium's `browser` log, drained
    /// from the driver and kept here).
    pub fn console_logs(&self) -> Vec<ConsoleEntry> {
        let v = self.must("POST", "/se/log", Some(&json!({ "type": "browser" })));
        let mut all = self.console.borrow_mut();
        for e in v.as_array().into_iter().flatten() {
            all.push(ConsoleEntry {
                level: e["level"].as_str().unwrap_or("").to_owned(),
                source: e["source"].as_str().unwrap_or("").to_owned(),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        all.clone()
    }

    /// Forgets the console entries so far (drained from the driver first): later calls see
    /// only what comes next, e.g. one page's entries.
    pub fn clear_console(&self) {
        self.console_logs();
        self.console.borrow_mut().clear();
    }

    /// The console's errors (`SEVERE`): uncaught exceptions, refused scripts (CSP), failed
    /// loads (a missing `/favicon.ico` too).
    pub fn console_errors(&self) -> Vec<ConsoleEntry> {
        self.console_logs()
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .collect()
    }

    /// The console's errors about scripts: uncaught exceptions, `console.error`, scripts or
    /// other content refused by the Content-Security-Policy; not failed loads.
    pub fn script_errors(&self) -> Vec<ConsoleEntry> {
        self.console_errors()
            .into_iter()
            .filter(|e| e.source != "network")
            .collect()
    }

    /// The cookies visible to the current page (W3C cookie objects).
    pub fn cookies(&self) -> Vec<Value> {
        match self.must("GET", "/cookie", None) {
            Value::Array(list) => list,
            other => panic!("cookies: unexpected answer {other}"),
        }
    }

    /// A cookie by name.
    pub fn cookie(&self, name: &str) -> Option<Value> {
        self.cookies().into_iter().find(|c| c["name"] == name)
    }

    /// Sets a cookie for the current page's domain.
    pub fn add_cookie(&self, name: &str, value: &str) {
        self.must(
            "POST",
            "/cookie",
            Some(&json!({ "cookie": { "name": name, "value": value } })),
        );
    }

    pub fn delete_cookies(&self) {
        self.must("DELETE", "/cookie", None);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            if std::thread::panicking() {
                if let Ok(v) = self.command("GET", "/screenshot", None) {
                    if let Some(png) = v.as_str().and_then(|d| {
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d).ok()
                    }) {
                        let dir = screenshots_dir();
                        let _ = std::fs::create_dir_all(&dir);
                        let path = dir.join(format!("{}-failure.png", self.name));
                        if std::fs::write(&path, png).is_ok() {
                            say(&format!(
                                "{}: screenshot at failure: {}",
                                self.name,
                                path.display()
                            ));
                        }
                    }
                }
            }
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        self.kill_driver();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn element(v: &Value) -> Element {
    Element(
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {v}"))
            .to_owned(),
    )
}

fn string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
