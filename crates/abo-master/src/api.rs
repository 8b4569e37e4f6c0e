//! The builds part of the JSON API under `/api/v1` (builders, builds, steps, logs,
//! requests, force, stop) and the artifacts under `/artifacts/`. The contract is
//! docs/api.md.
//!
//! Reading is public. Every mutation needs HTTP Basic credentials of a user stored by
//! `abo user add` (argon2 hash, verified on the blocking pool; a success is remembered for
//! [`AUTH_CACHE_FOR`] so that a client polling with credentials does not pay argon2 each
//! time). A mutation sent by a browser from another origin (an `Origin` that is not this
//! host) is refused, so that a page cannot use a browser's remembered credentials.
//! Every property and description shown is masked.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::login_throttle::{LoginThrottle, Peer, Throttled};
use crate::runner::{json_properties, resolve_under, RunnerHandle, Shared};
use crate::scheduling::ChangeFeed;

/// How long a verified (user, password) pair is trusted without running argon2 again.
pub const AUTH_CACHE_FOR: Duration = Duration::from_secs(60);

/// Default and largest page of `GET builds`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Verified (user, SHA-256 of the password) pairs and when they were verified.
type AuthCache = Arc<Mutex<HashMap<(String, [u8; 32]), Instant>>>;

/// The state of the builds API.
#[derive(Clone)]
pub(crate) struct Api {
    pub shared: Arc<Shared>,
    pub runner: RunnerHandle,
    /// Stored changes go here, for the schedulers.
    pub changes: ChangeFeed,
    auth_cache: AuthCache,
    /// Failed logins (API and web), and the bound on verifications running at once.
    pub(crate) logins: Arc<LoginThrottle>,
}

impl Api {
    pub(crate) fn new(shared: Arc<Shared>, runner: RunnerHandle, changes: ChangeFeed) -> Api {
        Api {
            shared,
            runner,
            changes,
            auth_cache: Arc::default(),
            logins: Arc::default(),
        }
    }
}

/// An error answer: `{"error": reason}` with its status.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) reason: String,
    /// Seconds for `Retry-After` (a throttled login).
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn bad(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason.into())
    }
    fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason.into())
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("API: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the master's log)",
        )
    }
}

impl From<abo_store::Error> for ApiError {
    fn from(e: abo_store::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> ApiError {
        ApiError {
            retry_after: Some(t.seconds()),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins: retry in {} s", t.seconds()),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.reason }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"abo\""),
            );
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

/// The routes, to merge into the master's router.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/v1/builders", get(builders))
        .route("/api/v1/builders/{name}/force", post(force))
        .route("/api/v1/builds", get(builds))
        .route("/api/v1/builds/{id}", get(build))
        .route("/api/v1/builds/{id}/stop", post(stop))
        .route("/api/v1/builds/{id}/steps/{n}/logs/{name}", get(log))
        .route("/api/v1/requests/{id}", get(request))
        .route("/artifacts/{*path}", get(artifact))
        .with_state(api)
}

/// RFC 3339, UTC, with milliseconds (latencies between requests, changes and builds are
/// often below a second).
fn time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn parse_id(what: &str, s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| ApiError::bad(format!("{what} must be a non-negative integer, not {s:?}")))
}

/// A build as `GET builds` lists it and `GET builds/{id}` starts it. Written straight into
/// the answer: a `json!` tree per build took about 1 KB, a megabyte for a page of a
/// thousand. Fields in alphabetical order, as the tree wrote them.
#[derive(Serialize)]
struct BuildJson<'a> {
    builder: &'a str,
    description: &'a str,
    finished_at: Option<String>,
    id: u64,
    number: u32,
    request: u64,
    result: Option<&'static str>,
    started_at: String,
    state: &'static str,
    worker: &'a str,
}

impl<'a> BuildJson<'a> {
    fn of(b: &'a abo_store::Build) -> BuildJson<'a> {
        BuildJson {
            builder: &b.builder,
            description: &b.state_string,
            finished_at: b.finished_at.map(|t| time(t.0)),
            id: b.id.0,
            number: b.number,
            request: b.request.0,
            result: b.result.map(|r| r.as_str()),
            started_at: time(b.started_at.0),
            state: if b.finished_at.is_some() {
                "finished"
            } else {
                "running"
            },
            worker: &b.worker,
        }
    }
}

/// A JSON array of `items`, each written straight into the answer.
fn json_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> Answer {
    let mut body = vec![b'['];
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &item).map_err(ApiError::internal)?;
    }
    body.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One builder of `GET builders`. Each is written straight into the answer: a `json!` tree
/// of 2,000 builders took 2 MB for an answer of 300 KB. Fields in alphabetical order, as
/// the tree wrote them.
#[derive(Serialize)]
struct BuilderJson<'a> {
    buildout: &'a str,
    category: &'a str,
    last_build: Option<Value>,
    name: &'a str,
    pending: u64,
    properties: Value,
    workers: &'a [Arc<str>],
}

async fn builders(State(api): State<Api>) -> Answer {
    let summaries: HashMap<String, abo_store::BuilderSummary> = api
        .shared
        .store
        .builders_summary()
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let plan = api.shared.plan();
    json_array(plan.builders.iter().map(|b| {
        let summary = summaries.get(&b.name);
        let last_build = summary.and_then(|s| s.last_build.as_ref()).map(|l| {
            json!({
                "id": l.id.0,
                "number": l.number,
                "result": l.result.map(|r| r.as_str()),
                "finished_at": l.finished_at.map(|t| time(t.0)),
            })
        });
        BuilderJson {
            buildout: &b.buildout,
            category: &b.category,
            last_build,
            name: &b.name,
            pending: summary.map_or(0, |s| s.queued),
            properties: api.shared.masked_properties(&b.properties),
            workers: &b.workers,
        }
    }))
}

async fn builds(State(api): State<Api>, Query(query): Query<HashMap<String, String>>) -> Answer {
    for key in query.keys() {
        if !matches!(key.as_str(), "builder" | "limit" | "before") {
            return Err(ApiError::bad(format!(
                "unknown parameter {key:?} (builder, limit and before are known)"
            )));
        }
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, not {s:?}"
                )))
            }
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(s) => Some(abo_store::BuildId(parse_id("before", s)?)),
    };
    let rows = api
        .shared
        .store
        .list_builds(
            query.get("builder").map(String::as_str),
            before,
            limit,
            abo_store::Properties::Skipped,
        )
        .await?;
    json_array(rows.iter().map(BuildJson::of))
}

async fn build(State(api): State<Api>, Path(id): Path<String>) -> Answer {
    let id = parse_id("the build id", &id)?;
    let Some(details) = api.shared.store.get_build(abo_store::BuildId(id)).await? else {
        return Err(ApiError::not_found(format!("no build {id}")));
    };
    let b = &details.build;
    let mut out = serde_json::to_value(BuildJson::of(b)).map_err(ApiError::internal)?;
    out["properties"] = api
        .shared
        .masked_properties(&json_properties(&b.properties));
    let mut steps: Vec<Value> = details
        .steps
        .iter()
        .map(|s| {
            let step = &s.step;
            json!({
                "index": step.index,
                "name": step.name,
                "state": if step.finished_at.is_some() { "finished" } else { "running" },
                "result": step.result.map(|r| r.as_str()),
                "started_at": time(step.started_at.0),
                "finished_at": step.finished_at.map(|t| time(t.0)),
                "description": api.shared.mask(&step.description),
                "hidden": step.hidden,
                "logs": s.logs.iter().map(|l| json!({
                    "name": l.name,
                    "bytes": abo_store::text_len(l),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if b.finished_at.is_none() {
        // The steps not started yet, from the plan the build runs.
        if let Some(builder) = api.shared.builder(&b.builder) {
            let next = details
                .steps
                .iter()
                .map(|s| s.step.index as usize + 1)
                .max()
                .unwrap_or(0);
            for (index, step) in builder.steps.iter().enumerate().skip(next) {
                steps.push(json!({
                    "index": index,
                    "name": step.name,
                    "state": "pending",
                    "result": null,
                    "started_at": null,
                    "finished_at": null,
                    "description": "",
                    "hidden": step.hidden,
                    "logs": [],
                }));
            }
        }
    }
    out["steps"] = Value::Array(steps);
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct LogQuery {
    offset: Option<String>,
    limit: Option<String>,
}

async fn log(
    State(api): State<Api>,
    Path((id, n, name)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Answer {
    let id = parse_id("the build id", &id)?;
    let n = u32::try_from(parse_id("the step index", &n)?)
        .map_err(|_| ApiError::bad("the step index is too large"))?;
    let offset = match &q.offset {
        Some(s) => parse_id("offset", s)?,
        None => 0,
    };
    let max = abo_store::MAX_READ_BYTES as u64;
    let limit = match &q.limit {
        Some(s) => parse_id("limit", s)?.min(max),
        None => max,
    };
    let store = &api.shared.store;
    let Some(info) = store.find_log(abo_store::BuildId(id), n, &name).await? else {
        return Err(ApiError::not_found(format!(
            "build {id} has no log {name:?} in step {n}"
        )));
    };
    let page = store
        .log_reader(info.id)
        .await?
        .read_text(offset, limit as usize)
        .await?;
    let mut response = Response::new(Body::from(page.data));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-abo-log-complete",
        HeaderValue::from_static(if page.finished { "true" } else { "false" }),
    );
    h.insert("x-abo-log-size", HeaderValue::from(page.size));
    Ok(response)
}

async fn request(State(api): State<Api>, Path(id): Path<String>) -> Answer {
    let id = parse_id("the request id", &id)?;
    let store = &api.shared.store;
    let Some(req) = store.get_request(abo_store::RequestId(id)).await? else {
        return Err(ApiError::not_found(format!("no build request {id}")));
    };
    let builds = store
        .builds_of_request(req.merged_into.unwrap_or(req.id))
        .await?;
    Ok(Json(json!({
        "id": req.id.0,
        "builder": req.builder,
        "state": req.state.as_str(),
        "result": req.result.map(|r| r.as_str()),
        "reason": api.shared.mask(&req.reason),
        "submitted_at": time(req.submitted_at.0),
        "builds": builds.iter().map(|b| b.0).collect::<Vec<_>>(),
        "changes": req.changes.iter().map(|c| c.0).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `Authorization: Basic` credentials, split on the first `:`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (name, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))?;
    Some((name, password))
}

/// The argon2id cost of new password hashes: OWASP's m = 7 MiB, t = 5, p = 1, as strong as
/// argon2's default m = 19 MiB, t = 2 (same CPU time) for a third of the memory, which
/// every verification allocates on the master. Hashes keep their own parameters: older
/// ones still verify.
const ARGON2_MEMORY_KIB: u32 = 7 * 1024;
const ARGON2_PASSES: u32 = 5;

fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
        .expect("valid argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// An argon2id PHC hash of `password` with `salt` (16 random bytes), what `abo user add`
/// stores.
pub fn hash_password(password: &str, salt: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(salt).map_err(|e| format!("salt: {e}"))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// A hash verified when the user does not exist, so that the answer takes as long as for
/// a user who does (same parameters as new hashes).
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("abo-dummy-password", b"abo-dummy-salt!!").unwrap_or_default()
    })
}

/// The user a mutation is made by, or 401 (403 for another origin).
/// With `[web] public = false`: reads (GET, HEAD) need a user too; mutations check their
/// credentials themselves.
pub(crate) async fn require_reader(
    State(api): State<Api>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        let peer = Peer::of(request.extensions()).0;
        if let Err(refused) = authenticate(&api, peer, request.headers()).await {
            return refused.into_response();
        }
    }
    next.run(request).await
}

pub(crate) async fn authenticate(
    api: &Api,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin != "null" && origin_host != host.to_str().unwrap_or("") {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin requests may not change anything",
            ));
        }
    }
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: HTTP Basic credentials of a user added with `abo user add`",
        )
    };
    let Some((name, password)) = basic_credentials(headers) else {
        return Err(unauthorized());
    };
    let key = (name.clone(), Sha256::digest(password.as_bytes()).into());
    {
        let mut cache = api.auth_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, at| at.elapsed() < AUTH_CACHE_FOR);
        if cache.contains_key(&key) {
            return Ok(name);
        }
    }
    if !check_password(api, peer, &name, password).await? {
        tracing::warn!(user = %name.escape_debug(), %peer, "API authentication refused");
        return Err(unauthorized());
    }
    api.auth_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Instant::now());
    Ok(name)
}

/// Whether `password` is `name`'s, as `abo user add` stored it. An unknown name costs the
/// same as a wrong password. Slowed and bounded by the login throttle: after too many
/// failures from `peer`, refused (429) before the password is looked at.
pub(crate) async fn check_password(
    api: &Api,
    peer: IpAddr,
    name: &str,
    password: String,
) -> Result<bool, ApiError> {
    api.logins.check(peer, name, Instant::now())?;
    let stored = api.shared.store.password_hash(name).await?;
    let known = stored.is_some();
    let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
    let ok = api
        .logins
        .verify(move || verify_password(&password, &hash))
        .await
        && known;
    if ok {
        api.logins.succeeded(peer, name);
    } else {
        api.logins.failed(peer, name, Instant::now());
    }
    Ok(ok)
}

/// Checks a password against an argon2 PHC hash (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceBody {
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    reason: String,
}

async fn force(
    State(api): State<Api>,
    Peer(peer): Peer,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let user = authenticate(&api, peer, &headers).await?;
    let body: ForceBody = if body.iter().all(u8::is_ascii_whitespace) {
        ForceBody {
            properties: BTreeMap::new(),
            reason: String::new(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad(format!(
                "the body must be {{\"properties\": {{name: string}}, \"reason\": string}}: {e}"
            ))
        })?
    };
    let id = submit_force(&api, &name, &user, &body.reason, body.properties).await?;
    Ok((StatusCode::CREATED, Json(json!({ "request": id.0 }))).into_response())
}

/// Stores a forced request of builder `name` by `user` and hands it to the runner: what
/// `POST builders/{name}/force` and the web pages' force and rebuild buttons do. Refused
/// with 400 for a bad property name, 404 for an unknown builder.
pub(crate) async fn submit_force(
    api: &Api,
    name: &str,
    user: &str,
    reason: &str,
    properties: BTreeMap<String, String>,
) -> Result<abo_store::RequestId, ApiError> {
    if let Some(bad) = properties
        .keys()
        .find(|k| k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ApiError::bad(format!(
            "property name {bad:?} must be non-empty, without spaces"
        )));
    }
    if api.shared.builder(name).is_none() {
        return Err(ApiError::not_found(format!("no builder {name:?}")));
    }
    let reason = if reason.trim().is_empty() {
        format!("forced by {user}")
    } else {
        format!("forced by {user}: {}", reason.trim())
    };
    let submitted_at = abo_store::Timestamp::now();
    let json_props = Value::Object(
        properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    // Persisted before anything else happens with it.
    let id = api
        .shared
        .store
        .submit_request(abo_store::NewRequest {
            builder: name.to_owned(),
            properties: json_props,
            reason: reason.clone(),
            submitted_at,
            changes: Vec::new(),
        })
        .await?;
    tracing::info!(request = id.0, builder = %name, user = %user, "build forced");
    let handed = api.runner.submitted(abo_engine::NewRequest {
        id: abo_engine::RequestId(id.0),
        builder: name.into(),
        properties,
        reason,
        submitted_at: abo_engine::Timestamp(submitted_at.0),
        mergeable: false,
    });
    if !handed {
        // Stored: the next start dispatches it.
        tracing::warn!(
            request = id.0,
            "the build runner has stopped; the request waits for the next start"
        );
    }
    Ok(id)
}

async fn stop(
    State(api): State<Api>,
    Peer(peer): Peer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let user = authenticate(&api, peer, &headers).await?;
    let id = parse_id("the build id", &id)?;
    let Some(details) = api.shared.store.get_build(abo_store::BuildId(id)).await? else {
        return Err(ApiError::not_found(format!("no build {id}")));
    };
    if details.build.finished_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("build {id} is already finished"),
        ));
    }
    match api.runner.stop(id).await {
        Some(true) => {
            tracing::info!(build = id, user = %user, "stop asked for");
            Ok((StatusCode::ACCEPTED, Json(json!({ "build": id }))).into_response())
        }
        Some(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("build {id} is not running any more"),
        )),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the build runner has stopped",
        )),
    }
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("txt" | "log" | "cfg" | "rst" | "md") => "text/plain; charset=utf-8",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        Some("gz" | "tgz") => "application/gzip",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// A file under the artifacts directory, streamed. Paths with `..`, and symlinks leading
/// out of the directory, are not found.
async fn artifact(State(api): State<Api>, Path(path): Path<String>) -> Answer {
    let root = &api.shared.artifacts_dir;
    let missing = || ApiError::not_found(format!("no artifact {path:?}"));
    let Ok(candidate) = resolve_under(root, &path) else {
        return Err(missing());
    };
    let real = match tokio::fs::canonicalize(&candidate).await {
        Ok(real) if real.starts_with(root) => real,
        _ => return Err(missing()),
    };
    let meta = tokio::fs::metadata(&real).await.map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let file = tokio::fs::File::open(&real).await.map_err(|_| missing())?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&real)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    // Uploaded pages run in a sandbox: no script of theirs acts with the API's origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_parses() {
        assert!(argon2::password_hash::PasswordHash::new(dummy_hash()).is_ok());
        assert!(!verify_password("x", dummy_hash()));
        assert!(verify_password("abo-dummy-password", dummy_hash()));
        assert!(dummy_hash().contains("m=7168,t=5,p=1"), "{}", dummy_hash());
        assert!(!verify_password("x", "not a hash"));
    }
}
