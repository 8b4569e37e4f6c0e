//! Login, logout and sessions.
//!
//! A login checks the name and password against the argon2 hashes `abo user add` stored
//! (on the blocking pool; an unknown user costs the same as a wrong password), slowed after
//! repeated failures like the API's ([`crate::login_throttle`]). A success
//! opens a session: a random 32-byte id in the `abo_session` cookie (HttpOnly,
//! SameSite=Strict, Path=/), kept in memory for [`SESSION_TTL`], with its own random CSRF
//! token that every form of the session carries and every mutation checks ([`csrf_ok`]).
//! The login form itself is protected by a double-submit token (a random value both in an
//! `abo_login` cookie and in the form).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::login_throttle::Peer;

use super::{csrf_field, html_response, layout, Nav, PageResult, Viewer, Web, WebError};

/// How long a session lasts after its login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once; past it the one closest to expiring is dropped.
const MAX_SESSIONS: usize = 10_000;

const SESSION_COOKIE: &str = "abo_session";
const LOGIN_COOKIE: &str = "abo_login";

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub user: String,
    pub csrf: String,
    expires: Instant,
}

/// The sessions, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// The live session the request's cookie names.
    pub(crate) fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get(&id)?;
        if s.expires <= Instant::now() {
            map.remove(&id);
            return None;
        }
        Some(s.clone())
    }

    fn open(&self, user: String) -> Option<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                user,
                csrf,
                expires: now + SESSION_TTL,
            },
        );
        Some(id)
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// 32 random bytes as hex; `None` if the system has no randomness to give.
fn random_hex() -> Option<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A cookie's value.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether the request comes from a page of another origin (its `Origin` is not this host).
pub(crate) fn cross_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin == "null" || origin_host != host.to_str().unwrap_or("")
}

/// Whether an urlencoded form carries `csrf=<expected>` (compared in constant time).
pub(crate) fn csrf_ok(form: &[u8], expected: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    form.split(|&b| b == b'&')
        .filter_map(|kv| {
            let mut it = kv.splitn(2, |&b| b == b'=');
            Some((it.next()?, it.next()?))
        })
        .any(|(k, v)| k == b"csrf" && bool::from(v.ct_eq(expected.as_bytes())))
}

/// Percent-encodes everything but unreserved characters (for `next=`).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `next` target that stays on this site: a path, not `//host` or `/\host`.
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(crate) async fn form(
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<NextQuery>,
) -> PageResult {
    login_page(&viewer, q.next.as_deref(), None, StatusCode::OK)
}

fn login_page(
    viewer: &Viewer,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let token = random_hex().ok_or(WebError::Internal)?;
    let next = local_target(next);
    let body = html! {
        h1 { "Log in" }
        @if let Some(user) = &viewer.user {
            p { "You are logged in as " strong { (user) } "." }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.login method="post" action="/login" {
            input type="hidden" name="token" value=(token);
            input type="hidden" name="next" value=(next);
            label { "User " input type="text" name="user" autocomplete="username" required; }
            label { "Password " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
        p.hint { "Users are added on the master with " code { "abo user add" } "." }
    };
    let mut r = html_response(layout("Log in", viewer, Nav::None, body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// `POST /login`.
pub(crate) async fn login(
    State(web): State<Web>,
    Peer(peer): Peer,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> PageResult {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if cross_origin(&headers)
        || expected.is_empty()
        || !bool::from(expected.as_bytes().ct_eq(f.token.as_bytes()))
    {
        return Err(WebError::Forbidden(
            "the login form expired or came from elsewhere: reload it".into(),
        ));
    }
    let api = &web.inner.api;
    let refusal = match crate::api::check_password(api, peer, &f.user, f.password).await {
        Ok(true) => None,
        Ok(false) => Some((
            "Wrong user name or password.".to_owned(),
            StatusCode::UNAUTHORIZED,
        )),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            Some((format!("{}.", e.reason), StatusCode::TOO_MANY_REQUESTS))
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((message, status)) = refusal {
        tracing::warn!(user = %f.user.escape_debug(), %peer, "web login refused");
        return login_page(&viewer, f.next.as_deref(), Some(&message), status);
    }
    let id = web
        .inner
        .sessions
        .open(f.user.clone())
        .ok_or(WebError::Internal)?;
    tracing::info!(user = %f.user, "web login");
    let mut r = Redirect::to(&local_target(f.next.as_deref())).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    )) {
        h.append(header::SET_COOKIE, v);
    }
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("abo_login=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0"),
    );
    Ok(r)
}

/// `POST /logout`.
pub(crate) async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    web.inner.sessions.close(&headers);
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("abo_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

/// A small form posting to `action` with the session's CSRF token; nothing for anonymous
/// readers.
pub(crate) fn button_form(viewer: &Viewer, action: &str, label: &str, class: &str) -> maud::Markup {
    html! {
        @if viewer.user.is_some() {
            form.inline method="post" action=(action) {
                (csrf_field(viewer))
                button type="submit" class=(class) { (label) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_found_in_a_form() {
        assert!(csrf_ok(b"a=1&csrf=abc&b=2", "abc"));
        assert!(!csrf_ok(b"a=1&csrf=abd", "abc"));
        assert!(!csrf_ok(b"a=1", "abc"));
        assert!(!csrf_ok(b"csrf=", ""));
    }

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(local_target(Some("/builds/1")), "/builds/1");
        assert_eq!(local_target(Some("//evil.example")), "/");
        assert_eq!(local_target(Some("/\\evil.example")), "/");
        assert_eq!(local_target(Some("https://evil.example")), "/");
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn cookies_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; abo_session=xyz"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
