//! The web status pages, served by the master beside the JSON API (same `http-listen`):
//! the matrix of buildouts × PostgreSQL versions, builders, builds with their logs (live
//! while written), workers, the queue, changes, badges, login, and the force, stop and
//! rebuild forms. docs/web.md describes them.
//!
//! # How it is built
//!
//! - **Routes are data** ([`routes::ROUTES`]): path, method, [`Access`] and [`Page`]. The
//!   router is built from the table (an exhaustive `match` maps each page to its handler)
//!   and every route goes through [`guard`], which enforces its access: private reads need
//!   a login when master.toml says `[web] public = false`; mutations always need a login,
//!   a same-origin request and the session's CSRF token in the form. The anonymous-access
//!   test is generated from the same table.
//! - **Templates are typed Rust** ([`maud`]): one module per page, holding its handler and
//!   the page's markup function, both checked by the compiler (a renamed field or a new enum
//!   variant breaks the build, not the page), and every interpolated value is HTML-escaped
//!   unless wrapped in `PreEscaped`, which only our own ANSI renderer ([`ansi`]) and SVG
//!   builder (which escape what they embed) use. maud rather than askama: partials are plain
//!   functions (a live fragment is the same function the page calls), and there is no
//!   second template language to learn for `match` on our enums.
//! - **No inline script or style**: every response carries
//!   `Content-Security-Policy: default-src 'self'`; the look is `/static/abo.css`, live
//!   updates are `/static/abo.js` (pages work without it, except live updates). SVG charts
//!   and badges use presentation attributes, which CSP does not restrict.
//! - **Live updates** are server-sent events: [`events`] sends a stamp when builds, steps,
//!   requests or workers change (the page script then reloads the page's live fragment),
//!   and [`log`] streams a running log's new lines in bounded chunks.
//! - **SQL** stays in abo-store (`views.rs` holds the queries only pages need); every page
//!   reads a bounded number of rows through an index (keyset pagination, per-builder latest
//!   builds).

mod ansi;
mod auth;
mod badge;
mod build;
mod builder;
mod changes;
mod events;
mod log;
mod matrix;
mod queue;
pub(crate) mod routes;
mod workers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{Api, ApiError};
use crate::config::BuildSetup;
use crate::registry::{RegistryEvent, WorkerRegistry};
use routes::{Access, Page, Verb, ROUTES};

/// The policy every web response carries: nothing but this origin's own files.
pub(crate) const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// Largest form body a mutation may send.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The web pages' settings, from master.toml `[web]`.
#[derive(Debug, Clone)]
pub(crate) struct WebOptions {
    /// Reads need no login.
    pub public: bool,
    /// A worker away longer than this is flagged missing.
    pub missing_worker_after: Duration,
    /// Live streams end when the master stops.
    pub shutdown: CancellationToken,
    /// The master's tasks: the web's one task (recording when workers leave) joins them.
    pub tracker: TaskTracker,
}

impl WebOptions {
    pub(crate) fn new(
        setup: &BuildSetup,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> WebOptions {
        WebOptions {
            public: setup.web_public,
            missing_worker_after: setup.missing_worker_after,
            shutdown,
            tracker,
        }
    }
}

/// The state every page handler gets.
#[derive(Clone)]
pub(crate) struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    registry: Arc<WorkerRegistry>,
    opts: WebOptions,
    sessions: auth::Sessions,
    /// The live pages' status stamp, shared by their event streams.
    stamps: events::StampWatch,
    /// When each worker was last seen connected (kept by [`follow_workers`] and page
    /// renders): the registry only knows connected workers.
    seen: Mutex<HashMap<String, SystemTime>>,
    /// When the web pages started: a worker never seen is missing since then.
    started: SystemTime,
}

impl Web {
    fn new(api: Api, registry: Arc<WorkerRegistry>, opts: WebOptions) -> Web {
        Web {
            inner: Arc::new(Inner {
                api,
                registry,
                opts,
                sessions: auth::Sessions::default(),
                stamps: events::StampWatch::default(),
                seen: Mutex::default(),
                started: SystemTime::now(),
            }),
        }
    }

    pub(crate) fn api(&self) -> &Api {
        &self.inner.api
    }

    pub(crate) fn store(&self) -> &abo_store::Store {
        &self.inner.api.shared.store
    }

    pub(crate) fn opts(&self) -> &WebOptions {
        &self.inner.opts
    }

    fn stamps(&self) -> &events::StampWatch {
        &self.inner.stamps
    }

    pub(crate) fn mask(&self, s: &str) -> String {
        self.inner.api.shared.mask(s)
    }

    /// The workers' status, recording who is connected now.
    pub(crate) fn worker_status(&self) -> Vec<(crate::registry::WorkerStatus, SystemTime)> {
        let status = self.inner.registry.status();
        let now = SystemTime::now();
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        status
            .into_iter()
            .map(|s| {
                if s.connection.is_some() {
                    seen.insert(s.name.clone(), now);
                }
                let last = seen.get(&s.name).copied().unwrap_or(self.inner.started);
                (s, last)
            })
            .collect()
    }
}

/// Who is looking at a page: the logged-in user and the session's CSRF token (empty for
/// anonymous readers, who get no forms).
#[derive(Debug, Clone, Default)]
pub(crate) struct Viewer {
    pub user: Option<String>,
    pub csrf: String,
}

/// Records when workers connect and leave, so the workers page can say since when one is
/// away even if no page was open when it left. Ends with the master.
async fn follow_workers(web: Web, mut events: tokio::sync::broadcast::Receiver<RegistryEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = tokio::select! {
            _ = web.inner.opts.shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let name = match event {
            Ok(RegistryEvent::Connected { name, .. }) | Ok(RegistryEvent::Lost { name, .. }) => {
                name
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        web.inner
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, SystemTime::now());
    }
}

/// The web routes, to merge into the master's router.
pub(crate) fn routes(api: Api, registry: Arc<WorkerRegistry>, opts: WebOptions) -> Router {
    let events = registry.subscribe();
    let web = Web::new(api, registry, opts);
    web.inner
        .opts
        .tracker
        .spawn(follow_workers(web.clone(), events));
    let mut router: Router<Web> = Router::new();
    for r in ROUTES {
        let filter = match r.verb {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        };
        let method = match r.page {
            Page::Matrix => on(filter, matrix::page),
            Page::Builder => on(filter, builder::page),
            Page::Force => on(filter, builder::force),
            Page::Build => on(filter, build::page),
            Page::Stop => on(filter, build::stop),
            Page::Rebuild => on(filter, build::rebuild),
            Page::Log => on(filter, log::page),
            Page::LogLive => on(filter, log::live),
            Page::Analysis => on(filter, log::analysis),
            Page::Workers => on(filter, workers::page),
            Page::Queue => on(filter, queue::page),
            Page::Changes => on(filter, changes::page),
            Page::Events => on(filter, events::stream),
            Page::BuilderBadge => on(filter, badge::builder),
            Page::BuildoutBadge => on(filter, badge::buildout),
            Page::LoginForm => on(filter, auth::form),
            Page::Login => on(filter, auth::login),
            Page::Logout => on(filter, auth::logout),
            Page::Css => on(filter, css),
            Page::Js => on(filter, js),
            Page::Icon => on(filter, icon),
        };
        let method = method.layer(from_fn_with_state((web.clone(), r.access), guard));
        router = router.route(r.path, method);
    }
    router.with_state(web)
}

/// Enforces a route's [`Access`], hands the handler its [`Viewer`], and adds the security
/// headers to every answer.
async fn guard(
    State((web, access)): State<(Web, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = web.inner.sessions.get(request.headers());
    let viewer = match &session {
        Some(s) => Viewer {
            user: Some(s.user.clone()),
            csrf: s.csrf.clone(),
        },
        None => Viewer::default(),
    };
    match access {
        Access::Public => {}
        Access::Private => {
            if !web.inner.opts.public && session.is_none() {
                let next = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let to = format!("/login?next={}", auth::url_encode(&next));
                return secure(Redirect::to(&to).into_response());
            }
        }
        Access::Mutation => {
            let Some(session) = session else {
                return secure(
                    WebError::Forbidden("log in first: changes need a logged-in user".into())
                        .into_response(),
                );
            };
            if auth::cross_origin(request.headers()) {
                return secure(
                    WebError::Forbidden("cross-origin requests may not change anything".into())
                        .into_response(),
                );
            }
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
                Ok(b) => b,
                Err(_) => {
                    return secure(WebError::Bad("the form is too large".into()).into_response())
                }
            };
            if !auth::csrf_ok(&bytes, &session.csrf) {
                return secure(
                    WebError::Forbidden("missing or wrong CSRF token: reload the page".into())
                        .into_response(),
                );
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
    }
    request.extensions_mut().insert(viewer);
    secure(next.run(request).await)
}

/// Adds the headers every web answer carries.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// What a page handler fails with: an HTML error page with its status.
#[derive(Debug)]
pub(crate) enum WebError {
    NotFound(String),
    Bad(String),
    Forbidden(String),
    Conflict(String),
    Unavailable(String),
    Internal,
}

impl From<abo_store::Error> for WebError {
    fn from(e: abo_store::Error) -> WebError {
        tracing::error!("web: {e}");
        WebError::Internal
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> WebError {
        match e.status {
            StatusCode::NOT_FOUND => WebError::NotFound(e.reason),
            StatusCode::BAD_REQUEST => WebError::Bad(e.reason),
            StatusCode::CONFLICT => WebError::Conflict(e.reason),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => WebError::Forbidden(e.reason),
            StatusCode::SERVICE_UNAVAILABLE => WebError::Unavailable(e.reason),
            _ => WebError::Internal,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            WebError::NotFound(t) => (StatusCode::NOT_FOUND, "Not found", t),
            WebError::Bad(t) => (StatusCode::BAD_REQUEST, "Bad request", t),
            WebError::Forbidden(t) => (StatusCode::FORBIDDEN, "Forbidden", t),
            WebError::Conflict(t) => (StatusCode::CONFLICT, "Conflict", t),
            WebError::Unavailable(t) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", t),
            WebError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "internal error (see the master's log)".to_owned(),
            ),
        };
        let body = layout(
            title,
            &Viewer::default(),
            Nav::None,
            html! {
                h1 { (title) }
                p.error { (text) }
                p { a href="/" { "Back to the matrix" } }
            },
        );
        (status, html_response(body)).into_response()
    }
}

pub(crate) type PageResult = Result<Response, WebError>;

/// An HTML answer.
pub(crate) fn html_response(markup: Markup) -> Response {
    let mut r = Response::new(Body::from(markup.into_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether the request asks only for the page's live fragment (sent by abo.js).
pub(crate) fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.get("x-abo-fragment").is_some()
}

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Matrix,
    Queue,
    Workers,
    Changes,
    None,
}

/// The page shell: header with navigation and login state, then `body`.
pub(crate) fn layout(title: &str, viewer: &Viewer, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, text: &str| {
        html! {
            @if n == nav { a.current href=(href) aria-current="page" { (text) } }
            @else { a href=(href) { (text) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — abo" }
                link rel="stylesheet" href="/static/abo.css";
                // Linked, so browsers do not ask for a `/favicon.ico` that does not exist.
                link rel="icon" type="image/svg+xml" href="/static/abo.svg";
                script src="/static/abo.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "abo" }
                    nav {
                        (item(Nav::Matrix, "/", "Matrix"))
                        (item(Nav::Queue, "/queue", "Queue"))
                        (item(Nav::Workers, "/workers", "Workers"))
                        (item(Nav::Changes, "/changes", "Changes"))
                    }
                    div.who {
                        @if let Some(user) = &viewer.user {
                            span.user { (user) }
                            form.inline method="post" action="/logout" {
                                (csrf_field(viewer))
                                button type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

async fn css() -> Response {
    static_file(
        include_str!("../../static/abo.css"),
        "text/css; charset=utf-8",
    )
}

async fn js() -> Response {
    static_file(
        include_str!("../../static/abo.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn icon() -> Response {
    static_file(include_str!("../../static/abo.svg"), "image/svg+xml")
}

fn static_file(text: &'static str, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> u64 {
    abo_store::Timestamp::now().0
}

/// RFC 3339, UTC, whole seconds.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A short duration: `45 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub(crate) fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `ms` was, shortly: `12 s ago`, `3 min ago`, `2 h ago`, `5 d ago`.
pub(crate) fn ago(ms: u64, now: u64) -> String {
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// A time shown as its age, with the exact time on hover.
pub(crate) fn when(ms: u64, now: u64) -> Markup {
    html! { time datetime=(rfc3339(ms)) title=(rfc3339(ms)) { (ago(ms, now)) } }
}

/// The CSS class of a result (`r-success`, ..., `r-running`, `r-none`).
pub(crate) fn result_class(result: Option<abo_store::BuildResult>, running: bool) -> String {
    match (result, running) {
        (_, true) => "r-running".into(),
        (Some(r), false) => format!("r-{}", r.as_str()),
        (None, false) => "r-none".into(),
    }
}

/// The word shown for a result.
pub(crate) fn result_word(result: Option<abo_store::BuildResult>, running: bool) -> &'static str {
    match (result, running) {
        (_, true) => "running",
        (Some(r), false) => r.as_str(),
        (None, false) => "no build",
    }
}

/// The revision a build ran, from its properties (`got_revision`, else `revision`).
pub(crate) fn revision_of(props: &serde_json::Value) -> Option<String> {
    ["got_revision", "revision"].iter().find_map(|k| {
        props
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

/// A revision shortened for tables.
pub(crate) fn short_rev(rev: &str) -> String {
    rev.chars().take(12).collect()
}

/// A path segment from the network, checked as a non-negative id.
pub(crate) fn parse_id(what: &str, s: &str) -> Result<u64, WebError> {
    s.parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| WebError::Bad(format!("{what} must be a non-negative integer")))
}

/// The first line of a commit message, bounded.
pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(120).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ages_read_well() {
        assert_eq!(short_duration(5_000), "5 s");
        assert_eq!(short_duration(185_000), "3 min 5 s");
        assert_eq!(short_duration(7_800_000), "2 h 10 min");
        assert_eq!(ago(0, 3_600_000), "1 h ago");
        assert_eq!(ago(10, 0), "0 s ago");
    }

    #[test]
    fn every_route_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.path, r.verb as u8)), "{} twice", r.path);
            // Every POST but the login form's changes something; no GET does.
            match r.verb {
                Verb::Post => assert!(
                    r.access == Access::Mutation || r.page == Page::Login,
                    "{}",
                    r.path
                ),
                Verb::Get => assert_ne!(r.access, Access::Mutation, "{}", r.path),
            }
        }
    }
}
