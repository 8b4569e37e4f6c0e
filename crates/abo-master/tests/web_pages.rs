//! The web status pages, for real: `abo start` and `abo worker` processes, builds run, pages
//! fetched over HTTP and checked with CSS selectors; the anonymous-access rules generated
//! from the route table; login and CSRF; escaping of everything that comes from outside;
//! the CSP header and the absence of inline script and style; live logs over SSE.

mod builds_support;

#[allow(dead_code)]
#[path = "../src/web/routes.rs"]
mod routes;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use builds_support::{Master, MasterDir, Response, USER, USER_PASSWORD};
use routes::{Access, Page, Verb, ROUTES};
use scraper::{Html, Selector};

const WAIT: Duration = Duration::from_secs(90);
const EVIL: &str = "<script>alert('x')</script>";

/// One HTTP/1.1 request with extra headers (cookies); a POST body is a form.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut all = headers.to_vec();
    if method == "POST" {
        all.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    builds_support::send_raw(addr, method, path, &all, body)
}

/// Reads a server-sent event stream until `marker` appears (or the time is up); the text.
fn read_stream_until(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    marker: &str,
    limit: Duration,
) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&raw).contains(marker) {
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// An HTML page, checked for what every page must be: 200, CSP, no inline script or style.
fn page(master: &Master, path: &str, cookie: Option<&str>) -> Html {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let r = send(master.http, "GET", path, &headers, "");
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    assert_csp(&r, path);
    let html = Html::parse_document(&r.text());
    assert_no_inline_code(&html, path);
    html
}

fn assert_csp(r: &Response, path: &str) {
    let csp = r.header("content-security-policy").unwrap_or("");
    assert!(
        csp.starts_with("default-src 'self'"),
        "{path}: CSP header {csp:?}"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
}

fn assert_no_inline_code(html: &Html, path: &str) {
    for s in html.select(&sel("script")) {
        assert_eq!(
            s.value().attr("src"),
            Some("/static/abo.js"),
            "{path}: {}",
            s.html()
        );
        assert!(
            s.text().collect::<String>().trim().is_empty(),
            "{path}: inline script"
        );
    }
    assert_eq!(html.select(&sel("style")).count(), 0, "{path}: <style>");
    assert_eq!(
        html.select(&sel("[style]")).count(),
        0,
        "{path}: style attribute"
    );
    for el in html.select(&sel("*")) {
        for (name, _) in el.value().attrs() {
            assert!(
                !name.starts_with("on"),
                "{path}: event handler attribute {name}"
            );
        }
    }
}

fn texts(html: &Html, s: &str) -> Vec<String> {
    html.select(&sel(s))
        .map(|e| e.text().collect::<String>())
        .collect()
}

const TOML: &str = r#"
[[step-sets.web]]
name = "hello"
command = ["sh", "-c", "printf '\\033[31mred <script>alert(1)</script>\\033[0m plain\\n'; echo to-stderr >&2; echo \"note=$NOTE\""]
env = { NOTE = "%(note:-none)s" }

[[step-sets.web]]
name = "slow"
command = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo slow-line-$i; sleep 2; done"]

[[step-sets.web]]
name = "testing"
command = ["sh", "-c", "printf '2024-05-02 10:00:00,100 100 ERROR testdb odoo.addons.m.tests.t: FAIL: T.t\n' > test.log; echo ran"]
logfiles = { test = "test.log" }

[[step-sets.web]]
name = "analyze"
kind = "analyze-log"
step = "testing"
log = "test"
"#;

const MANIFEST: &str = "[web]\nsteps = web\nbuild-for = postgresql\nbuild-category = demo\n";
const WORKERS: &str = "[w1]\npassword = pw-one\ncapability = postgresql 9.6\n";

/// Stores a change (commit message and author from outside) and a request carrying it,
/// before the master starts: the master restores the request and runs it.
fn seed_change_and_request(dir: &std::path::Path, builder: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = abo_store::Store::open(dir.to_str().unwrap()).await.unwrap();
        let now = abo_store::Timestamp::now();
        let change = store
            .add_change(abo_store::NewChange {
                repository: "https://example.org/repo.git".into(),
                branch: format!("main{EVIL}"),
                revision: "0123456789abcdef".into(),
                author: format!("Mallory {EVIL}"),
                comments: format!("fix {EVIL}\n\nbody"),
                received_at: now,
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .submit_request(abo_store::NewRequest {
                builder: builder.into(),
                properties: serde_json::json!({ "note": EVIL }),
                reason: "scheduler".into(),
                submitted_at: now,
                changes: vec![change],
            })
            .await
            .unwrap();
    });
}

/// The builder the planner makes of MANIFEST × WORKERS.
const BUILDER: &str = "web-postgresql-9.6";

#[test]
fn pages_show_a_real_build_escaped_and_live() {
    let m = MasterDir::new(TOML, MANIFEST, WORKERS);
    let name = BUILDER.to_owned();
    seed_change_and_request(&m.dir, &name);
    let master = m.start();
    // The live state streams (three pages open, sharing one stamp) each say something
    // changed when the restored request runs.
    let http = master.http;
    let streams: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                read_stream_until(http, "/events", &[], "event: change", WAIT)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let worker = m.worker(&master, "w1", "pw-one");
    master.wait_connected("w1", &worker);
    for events in streams {
        let events = events.join().unwrap();
        assert!(events.contains("event: change"), "{events}");
    }

    let first = master.wait_request(1, WAIT);
    assert_eq!(first["result"], "failure", "the analysis fails: {first}");
    let first_build = first["builds"][0].as_u64().unwrap();

    // A second build, followed live while its slow step runs (12 s: workers send output
    // at least every 5 s, Buildbot's `buffer_timeout`).
    let req = master.force(&name, &[("note", "second")]);
    let build = loop {
        let r = master.get_json(&format!("/api/v1/requests/{req}"));
        if let Some(b) = r["builds"][0].as_u64() {
            break b;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    master.wait_build(build, WAIT, |b| {
        b["steps"][1]["logs"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    let live = read_stream_until(
        master.http,
        &format!("/builds/{build}/steps/1/logs/stdio/live?from=0"),
        &[],
        "event: end",
        WAIT,
    );
    assert!(live.contains("content-type: text/event-stream"), "{live}");
    for i in 1..=6 {
        assert!(live.contains(&format!("slow-line-{i}")), "line {i}: {live}");
    }
    assert!(live.contains("event: end"), "{live}");
    assert!(
        live.matches("event: lines").count() >= 2,
        "lines come while the step runs, not all at its end: {live}"
    );
    // Resuming from an event id (the next line, from 0) sends only the lines from it.
    let resumed = read_stream_until(
        master.http,
        &format!("/builds/{build}/steps/1/logs/stdio/live"),
        &[("Last-Event-ID", "8")],
        "event: end",
        WAIT,
    );
    assert!(
        !resumed.contains(">8</a>") && resumed.contains(">9</a>"),
        "{resumed}"
    );
    master.wait_request(req, WAIT);

    // The matrix: one row, one column, the latest result with its link.
    let home = page(&master, "/", None);
    assert_eq!(texts(&home, "table.matrix thead th")[1], "pg 9.6");
    let cell = home
        .select(&sel(&format!("td.cell[data-builder=\"{name}\"]")))
        .next()
        .expect("the builder's cell");
    assert!(
        cell.value().classes().any(|c| c == "r-failure"),
        "{}",
        cell.html()
    );
    assert_eq!(
        cell.select(&sel("span.meta a"))
            .next()
            .unwrap()
            .value()
            .attr("href"),
        Some(format!("/builds/{build}").as_str())
    );
    assert_eq!(home.select(&sel("[data-live]")).count(), 1);
    let filtered = page(&master, "/?category=other", None);
    assert_eq!(filtered.select(&sel("td.cell")).count(), 0);

    // The builder: two builds, newest first, test counts, the chart, no force form
    // for an anonymous reader.
    let b = page(&master, &format!("/builders/{name}"), None);
    let rows = texts(&b, "table.history tbody tr td:first-child");
    assert_eq!(rows, ["#2", "#1"]);
    assert_eq!(b.select(&sel("svg.chart rect.bar")).count(), 2);
    assert_eq!(b.select(&sel("form.force")).count(), 0);
    let changes = texts(&b, "table.history td.changes");
    assert!(
        changes[1].contains(EVIL),
        "the change's text, escaped: {changes:?}"
    );

    // The first build: its change, blame list and property, all escaped.
    let r = send(
        master.http,
        "GET",
        &format!("/builds/{first_build}"),
        &[],
        "",
    );
    let text = r.text();
    assert!(
        !text.contains(EVIL),
        "raw markup from outside reached the page"
    );
    assert!(text.contains("&lt;script&gt;"), "escaped text is there");
    let bp = page(&master, &format!("/builds/{first_build}"), None);
    assert_eq!(bp.select(&sel("table.steps tbody tr")).count(), 4);
    assert!(texts(&bp, "ul.changes li.change span.author")[0].contains(EVIL));
    assert!(texts(&bp, "table.props td").iter().any(|t| t == EVIL));
    let analysis_link = bp
        .select(&sel("a.analysis"))
        .next()
        .expect("the analysis step links its analysis");
    let href = analysis_link.value().attr("href").unwrap().to_owned();

    // The analysis: counts and the failure line linked to its place in the log.
    let a = page(&master, &href, None);
    let fail = a
        .select(&sel("ol.failures li a"))
        .next()
        .expect("a failure line");
    let target = fail.value().attr("href").unwrap();
    assert!(target.ends_with("?line=1#L1"), "{target}");
    let lp = page(&master, target, None);
    assert!(lp.select(&sel("pre.log span#L1")).next().is_some());

    // The log page: escaped, coloured, stderr marked, line anchors.
    let r = send(
        master.http,
        "GET",
        &format!("/builds/{first_build}/steps/0/logs/stdio"),
        &[],
        "",
    );
    assert!(!r.text().contains("<script>alert(1)"), "{}", r.text());
    let log = page(
        &master,
        &format!("/builds/{first_build}/steps/0/logs/stdio"),
        None,
    );
    let red = texts(&log, "pre.log span.ansi-fg1");
    assert_eq!(red, ["red <script>alert(1)</script>"], "{}", log.html());
    assert!(texts(&log, "pre.log span.line.err")
        .iter()
        .any(|t| t.ends_with("to-stderr")));
    assert!(!log.html().contains('\u{1b}'));

    // Workers, queue, changes.
    let w = page(&master, "/workers", None);
    let row = w.select(&sel("tr[data-worker=w1]")).next().unwrap();
    assert!(row.value().classes().any(|c| c == "connected"));
    assert!(row.text().collect::<String>().contains("postgresql 9.6"));
    page(&master, "/queue", None);
    let c = page(&master, "/changes", None);
    assert!(texts(&c, "table.changes td.msg")[0].contains(EVIL));
    let caused = c
        .select(&sel("table.changes tr.change td:last-child a"))
        .count();
    assert_eq!(caused, 1, "the change caused the first build");

    // Badges.
    for path in [
        format!("/badges/builders/{name}.svg"),
        "/badges/buildouts/web.svg".to_string(),
    ] {
        let r = send(master.http, "GET", &path, &[], "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        assert!(r.text().contains("failure"), "{}", r.text());
    }
    assert_eq!(
        send(master.http, "GET", "/badges/builders/nope.svg", &[], "").status,
        404
    );

    // Logged in: rebuild the first build (its request's properties), stop the rebuild.
    let cookie = login(&master);
    let bp = page(&master, &format!("/builds/{first_build}"), Some(&cookie));
    let rebuild = bp
        .select(&sel(&format!(
            "form[action=\"/builds/{first_build}/rebuild\"] input[name=csrf]"
        )))
        .next()
        .expect("the rebuild form");
    let csrf = rebuild.value().attr("value").unwrap().to_owned();
    let r = send(
        master.http,
        "POST",
        &format!("/builds/{first_build}/rebuild"),
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let again = loop {
        let r = master.get_json(&format!("/api/v1/requests/{}", req + 1));
        if let Some(b) = r["builds"][0].as_u64() {
            break b;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let running = master.wait_build(again, WAIT, |b| b["steps"][1]["state"] == "running");
    assert_eq!(
        running["properties"]["note"], EVIL,
        "the rebuild has the request's properties"
    );
    let running_page = page(&master, &format!("/builds/{again}"), Some(&cookie));
    assert!(running_page
        .select(&sel(&format!("form[action=\"/builds/{again}/stop\"]")))
        .next()
        .is_some());
    assert_eq!(
        running_page.select(&sel("pre.log[data-live-log]")).count(),
        1,
        "the running step's output is followed live"
    );
    let r = send(
        master.http,
        "POST",
        &format!("/builds/{again}/stop"),
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let done = master.wait_request(req + 1, WAIT);
    assert_eq!(done["result"], "cancelled", "{done}");
}

/// The `name=value` of the cookie an answer sets whose text starts with `prefix`.
fn set_cookie(r: &Response, prefix: &str) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.split(';').next().filter(|c| c.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix} cookie: {:?}", r.headers))
        .to_owned()
}

/// Logs in through the form; the session cookie (`abo_session=...`).
fn login(master: &Master) -> String {
    let r = send(master.http, "GET", "/login", &[], "");
    assert_eq!(r.status, 200);
    let login_cookie = set_cookie(&r, "abo_login=");
    let form = Html::parse_document(&r.text());
    let token = form
        .select(&sel("input[name=token]"))
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    // A wrong password is refused.
    let bad = send(
        master.http,
        "POST",
        "/login",
        &[("Cookie", &login_cookie)],
        &format!("user={USER}&password=wrong&token={token}&next=/queue"),
    );
    assert_eq!(bad.status, 401);
    // Without the double-submit cookie, even the right password is refused.
    let forged = send(
        master.http,
        "POST",
        "/login",
        &[],
        &format!("user={USER}&password={USER_PASSWORD}&token={token}&next=/queue"),
    );
    assert_eq!(forged.status, 403);
    let ok = send(
        master.http,
        "POST",
        "/login",
        &[("Cookie", &login_cookie)],
        &format!("user={USER}&password={USER_PASSWORD}&token={token}&next=/queue"),
    );
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), Some("/queue"));
    let set = ok
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .find(|v| v.starts_with("abo_session="))
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

#[test]
fn anonymous_access_follows_the_route_table_and_mutations_need_login_and_csrf() {
    let m = MasterDir::new(
        &format!("{TOML}\n[web]\npublic = false\nmissing-worker-after = 1\n"),
        MANIFEST,
        WORKERS,
    );
    let master = m.start();
    // Generated from the route table: every private read sends to the login form, every
    // mutation is refused, public routes answer.
    for r in ROUTES {
        let resp = match r.verb {
            Verb::Get => send(master.http, "GET", r.sample, &[], ""),
            Verb::Post => send(master.http, "POST", r.sample, &[], "csrf=x"),
        };
        assert_csp(&resp, r.sample);
        match r.access {
            Access::Private => {
                assert_eq!(resp.status, 303, "{} {}", r.sample, resp.text());
                assert!(
                    resp.header("location")
                        .unwrap_or("")
                        .starts_with("/login?next="),
                    "{}",
                    r.sample
                );
            }
            Access::Mutation => assert_eq!(resp.status, 403, "{}", r.sample),
            Access::Public => match (r.verb, r.page) {
                (Verb::Post, Page::Login) => assert_eq!(resp.status, 403, "no token"),
                _ => assert_eq!(resp.status, 200, "{}", r.sample),
            },
        }
    }
    // The JSON API and artifacts follow `public = false` too: reads need a user.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{USER_PASSWORD}"))
    );
    for path in [
        "/api/v1/builds",
        "/api/v1/builders",
        "/api/v1/workers",
        "/api/v1/changes",
    ] {
        assert_eq!(
            send(master.http, "GET", path, &[], "").status,
            401,
            "{path}"
        );
        let with_user = send(master.http, "GET", path, &[("Authorization", &basic)], "");
        assert_eq!(with_user.status, 200, "{path}: {}", with_user.text());
    }
    assert_eq!(
        send(master.http, "GET", "/api/v1/openapi.yaml", &[], "").status,
        200,
        "the API's description stays public"
    );
    let name = {
        let cookie = login(&master);
        let home = page(&master, "/", Some(&cookie));
        let cell = home.select(&sel("td.cell")).next().expect("a cell");
        let name = cell.value().attr("data-builder").unwrap().to_owned();
        assert_eq!(texts(&home, "header .who span.user"), [USER]);

        // The force form carries the session's CSRF token and the properties the steps use.
        let b = page(&master, &format!("/builders/{name}"), Some(&cookie));
        let form = b.select(&sel("form.force")).next().expect("the force form");
        let csrf = form
            .select(&sel("input[name=csrf]"))
            .next()
            .unwrap()
            .value()
            .attr("value")
            .unwrap()
            .to_owned();
        assert!(form
            .select(&sel("input[name=\"prop:note\"]"))
            .next()
            .is_some());
        let action = format!("/builders/{name}/force");
        let no_token = send(
            master.http,
            "POST",
            &action,
            &[("Cookie", &cookie)],
            "reason=x",
        );
        assert_eq!(no_token.status, 403);
        let wrong = send(
            master.http,
            "POST",
            &action,
            &[("Cookie", &cookie)],
            "reason=x&csrf=00",
        );
        assert_eq!(wrong.status, 403);
        let cross = send(
            master.http,
            "POST",
            &action,
            &[("Cookie", &cookie), ("Origin", "http://evil.example")],
            &format!("reason=x&csrf={csrf}"),
        );
        assert_eq!(cross.status, 403);
        assert!(
            master.get_json("/api/v1/builders")[0]["pending"] == 0,
            "nothing forced yet"
        );
        let ok = send(
            master.http,
            "POST",
            &action,
            &[("Cookie", &cookie)],
            &format!("reason=from+the+web&csrf={csrf}&prop%3Anote=hi&extra=a%3D1"),
        );
        assert_eq!(ok.status, 303, "{}", ok.text());

        // No worker is connected: the queue says why the request waits.
        let q = page(&master, "/queue", Some(&cookie));
        let reasons = texts(&q, "table.pending td.reason");
        assert_eq!(reasons, ["no capable worker is connected"]);
        // The worker never connected and the flag delay (1 s) has passed: missing.
        std::thread::sleep(Duration::from_millis(1200));
        let w = page(&master, "/workers", Some(&cookie));
        let row = w.select(&sel("tr[data-worker=w1]")).next().unwrap();
        assert!(
            row.value().classes().any(|c| c == "missing"),
            "{}",
            row.html()
        );

        // Logging out ends the session.
        let out = send(
            master.http,
            "POST",
            "/logout",
            &[("Cookie", &cookie)],
            &format!("csrf={csrf}"),
        );
        assert_eq!(out.status, 303);
        let after = send(master.http, "GET", "/", &[("Cookie", &cookie)], "");
        assert_eq!(after.status, 303, "the session is gone");
        name
    };
    let _ = name;
}

/// Password guessing is slowed, on the API and on the login form: a few mistakes are free,
/// then each attempt waits, refused with 429 (and `Retry-After`) before the password is
/// looked at — even the right one; another name is not slowed; after the wait the right
/// password works and clears the count. (Debug builds verify slowly, so each wait is
/// checked right after the failure that started it.)
#[test]
fn failed_logins_are_slowed_for_the_api_and_the_form() {
    let m = MasterDir::new(TOML, MANIFEST, WORKERS);
    let master = m.start();
    // A builder that does not exist: 404 once authenticated, 401/429 before.
    let force = |user: &str, password: &str| {
        builds_support::http(
            master.http,
            "POST",
            "/api/v1/builders/nope/force",
            Some((user, password)),
            Some("{}"),
        )
    };
    for attempt in 1..=6 {
        assert_eq!(force(USER, "wrong").status, 401, "attempt {attempt}");
    }
    let r = force(USER, USER_PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    assert!(r.text().contains("too many failed logins"), "{}", r.text());
    assert_eq!(force("someone-else", "wrong").status, 401);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(force(USER, USER_PASSWORD).status, 404);
    assert_eq!(force(USER, "wrong").status, 401, "the count started again");

    let r = send(master.http, "GET", "/login", &[], "");
    let login_cookie = set_cookie(&r, "abo_login=");
    let token = login_cookie.trim_start_matches("abo_login=").to_owned();
    let submit = |password: &str| {
        send(
            master.http,
            "POST",
            "/login",
            &[("Cookie", &login_cookie)],
            &format!("user={USER}&password={password}&token={token}"),
        )
    };
    for attempt in 2..=6 {
        assert_eq!(submit("wrong").status, 401, "form attempt {attempt}");
    }
    let r = submit(USER_PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("too many failed logins"), "{}", r.text());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(submit(USER_PASSWORD).status, 303);
}

#[test]
fn public_pages_are_readable_but_mutations_are_not() {
    let m = MasterDir::new(TOML, MANIFEST, WORKERS);
    let mut master = m.start();
    for r in ROUTES {
        if r.page == Page::Events || r.page == Page::LogLive {
            continue; // streams: checked in the build test
        }
        let resp = match r.verb {
            Verb::Get => send(master.http, "GET", r.sample, &[], ""),
            Verb::Post => send(master.http, "POST", r.sample, &[], "csrf=x"),
        };
        assert_csp(&resp, r.sample);
        match r.access {
            Access::Private => assert!(
                resp.status == 200 || resp.status == 404,
                "{}: {}",
                r.sample,
                resp.status
            ),
            Access::Mutation => assert_eq!(resp.status, 403, "{}", r.sample),
            Access::Public => {}
        }
        if resp
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
        {
            assert_no_inline_code(&Html::parse_document(&resp.text()), r.sample);
        }
    }
    // Open live streams do not hold the master up when it stops.
    let http = master.http;
    let stream = std::thread::spawn(move || {
        read_stream_until(http, "/events", &[], "never sent", Duration::from_secs(30))
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert!(master.stop().success());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        t.elapsed()
    );
    let text = stream.join().unwrap();
    assert!(text.contains("text/event-stream"), "{text}");
}

/// 100,000 builds over 50 builders: every page renders in a bounded time, whatever the
/// history's length (keyset pages and per-builder latest rows, no scan). The bound is the
/// issue's 50 ms p99 in release builds, looser in debug builds (unoptimized SQLite).
#[test]
fn pages_stay_fast_with_100k_builds() {
    const BUILDS: i64 = 100_000;
    let sections: String = (0..10)
        .map(|i| format!("[s{i}]\nsteps = web\nbuild-for = postgresql\n\n"))
        .collect();
    let versions = ["9.6", "10", "12", "14", "16"];
    let workers: String = versions
        .iter()
        .enumerate()
        .map(|(i, v)| format!("[w{i}]\npassword = pw\ncapability = postgresql {v}\n\n"))
        .collect();
    let m = MasterDir::new(TOML, &sections, &workers);
    let builders: Vec<String> = (0..10)
        .flat_map(|i| versions.iter().map(move |v| format!("s{i}-postgresql-{v}")))
        .collect();
    {
        let mut conn = rusqlite::Connection::open(m.dir.join("abo.sqlite")).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut req = tx
                .prepare(
                    "INSERT INTO build_requests (id, builder, submitted_at, state, result, claimed_by)
                     VALUES (?1, ?2, ?3, 'complete', ?4, ?1)",
                )
                .unwrap();
            let mut build = tx
                .prepare(
                    "INSERT INTO builds (id, request, builder, number, worker, lease, started_at,
                                         finished_at, result, properties)
                     VALUES (?1, ?1, ?2, ?3, 'w1', ?1, ?4, ?4 + 60000, ?5, ?6)",
                )
                .unwrap();
            let mut step = tx
                .prepare(
                    "INSERT INTO steps (build, number, name, started_at, finished_at, result, description)
                     VALUES (?1, 0, 'analyze', ?2, ?2, 'success', ?3)",
                )
                .unwrap();
            let mut change = tx
                .prepare(
                    "INSERT INTO changes (id, repository, branch, revision, author, comments, received_at)
                     VALUES (?1, 'https://example.org/r.git', 'main', ?2, 'dev', 'a change', ?3)",
                )
                .unwrap();
            let mut link = tx
                .prepare("INSERT INTO build_request_changes (request, change) VALUES (?1, ?1)")
                .unwrap();
            for i in 1..=BUILDS {
                let b = &builders[(i as usize) % builders.len()];
                let number = (i - 1) / builders.len() as i64 + 1;
                let result = if i % 7 == 0 { "failure" } else { "success" };
                let props = format!("{{\"got_revision\": \"rev{i}\"}}");
                req.execute(rusqlite::params![i, b, i * 1000, result])
                    .unwrap();
                build
                    .execute(rusqlite::params![i, b, number, i * 1000, result, props])
                    .unwrap();
                step.execute(rusqlite::params![
                    i,
                    i * 1000,
                    format!("{} tests, 0 failed, 0 errors", i % 90)
                ])
                .unwrap();
                change
                    .execute(rusqlite::params![i, format!("rev{i}"), i * 1000])
                    .unwrap();
                link.execute([i]).unwrap();
            }
            tx.execute(
                "INSERT INTO builders (name, next_number, last_build)
                 SELECT builder, MAX(number) + 1, MAX(id) FROM builds GROUP BY builder",
                [],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let master = m.start();
    let b = &builders[3];
    let deep = 1_000; // a page near the start of the history
    let pages = [
        "/".to_string(),
        format!("/builders/{b}"),
        format!("/builders/{b}?before={deep}"),
        format!("/builds/{}", BUILDS - 3),
        "/changes".to_string(),
        format!("/changes?before={deep}"),
        "/workers".to_string(),
        "/queue".to_string(),
        format!("/badges/builders/{b}.svg"),
        "/badges/buildouts/s3.svg".to_string(),
    ];
    let bound = if cfg!(debug_assertions) {
        Duration::from_millis(200)
    } else {
        Duration::from_millis(50)
    };
    for path in &pages {
        let _ = send(master.http, "GET", path, &[], "");
        let mut times: Vec<Duration> = (0..30)
            .map(|_| {
                let t = Instant::now();
                let r = send(master.http, "GET", path, &[], "");
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                t.elapsed()
            })
            .collect();
        times.sort();
        let p99 = times[times.len() - 1];
        eprintln!("{path}: median {:?}, max {:?}", times[times.len() / 2], p99);
        assert!(p99 < bound, "{path}: {p99:?} (bound {bound:?})");
    }
}
