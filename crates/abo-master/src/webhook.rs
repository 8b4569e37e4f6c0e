//! Forge webhooks: `POST /hooks/github`, `POST /hooks/gitlab` and `POST /hooks/gitea` (also
//! Forgejo). Changes arrive by push instead of waiting for the next poll. The contract is
//! docs/api.md ("Webhooks"), the settings docs/master-toml.md.
//!
//! Every request goes through the same gate, in this order, before anything is stored:
//!
//! 1. the forge must be configured (its secret set in master.toml), else 404: unsigned
//!    payloads are never accepted;
//! 2. the body is at most [`MAX_BODY`] bytes (413 otherwise, refused from its length);
//! 3. the signature is checked on the raw body, in constant time: GitHub's
//!    `X-Hub-Signature-256` and Gitea's `X-Gitea-Signature` / Forgejo's
//!    `X-Forgejo-Signature` are HMAC-SHA256 of the body, GitLab's `X-Gitlab-Token` is the
//!    token itself. Missing: 401, wrong: 403, and a log line without the secret;
//! 4. only then is the body parsed. A push (`ping` answers 200) of a branch is mapped to one
//!    [`NewChange`] per commit; tags and deleted branches are ignored, other events answer
//!    202. The branch and every revision are checked ([`abo_vcs::validate`]): a hostile
//!    value is refused with 400 and nothing is stored;
//! 5. the payload's repository URLs, rewritten by master.toml's `url-rewrite`, are matched
//!    with the plan's watched repositories: only a watched branch of a watched repository is
//!    stored (as the plan spells its URL, so that change filters match) and published.
//!
//! A repository that is also polled: the changes are stored with the poller's new last
//! seen revision in one transaction ([`abo_store::Store::record_push`]), so the poller does
//! not report them again, and a push the poller already reported stores nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use abo_plan::watch::UrlRewriter;
use abo_plan::{Plan, Vcs};
use abo_store::{NewChange, PollerMark, Timestamp};

use crate::api::Api;
use crate::config::{BuildSetup, Webhooks};

/// Largest webhook body accepted (GitHub caps its payloads at 25 MB).
pub(crate) const MAX_BODY: usize = 25 * 1024 * 1024;

/// Most changes one push stores (the newest), as the pollers: a push of a thousand commits
/// is one batch of builds, not a thousand.
pub(crate) const MAX_CHANGES_PER_PUSH: usize = 100;

/// What pushed changes need from the configuration: the forges' secrets and the URL
/// rewriting rules.
#[derive(Clone, Default, Debug)]
pub(crate) struct PushSettings {
    pub webhooks: Webhooks,
    pub rewriter: UrlRewriter,
}

impl PushSettings {
    pub(crate) fn new(setup: &BuildSetup) -> PushSettings {
        PushSettings {
            webhooks: setup.webhooks.clone(),
            rewriter: UrlRewriter::new(setup.url_rewrite.clone()),
        }
    }
}

/// The forges abo understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forge {
    Github,
    Gitlab,
    Gitea,
}

impl Forge {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    /// The `source` of its changes.
    fn source(self) -> &'static str {
        match self {
            Forge::Github => "webhook:github",
            Forge::Gitlab => "webhook:gitlab",
            Forge::Gitea => "webhook:gitea",
        }
    }

    /// The master.toml key holding its secret.
    fn setting(self) -> &'static str {
        match self {
            Forge::Github => "[webhooks.github] secret",
            Forge::Gitlab => "[webhooks.gitlab] token",
            Forge::Gitea => "[webhooks.gitea] secret",
        }
    }

    fn secret(self, hooks: &Webhooks) -> Option<&str> {
        match self {
            Forge::Github => hooks.github_secret.as_deref(),
            Forge::Gitlab => hooks.gitlab_token.as_deref(),
            Forge::Gitea => hooks.gitea_secret.as_deref(),
        }
    }
}

/// A refusal: `{"error": reason}` with its status.
#[derive(Debug)]
pub(crate) struct HookError(pub StatusCode, pub String);

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The routes, to merge into the master's router. Their body limit is [`MAX_BODY`].
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .route("/hooks/gitea", post(gitea))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

async fn github(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(api, Forge::Github, headers, body).await
}

async fn gitlab(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(api, Forge::Gitlab, headers, body).await
}

async fn gitea(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(api, Forge::Gitea, headers, body).await
}

async fn receive(
    api: Api,
    forge: Forge,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&api, forge, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

async fn handle(
    api: &Api,
    forge: Forge,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookError> {
    let settings = api.shared.push();
    let Some(secret) = forge.secret(&settings.webhooks) else {
        return Err(HookError(
            StatusCode::NOT_FOUND,
            format!(
                "the {} webhook is not configured: set {} in master.toml",
                forge.name(),
                forge.setting()
            ),
        ));
    };
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!(forge = forge.name(), "webhook refused: body over 25 MB");
            HookError(status, format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            HookError(status, format!("cannot read the body: {e}"))
        }
    })?;
    if let Err((status, reason)) = verify(forge, secret, headers, &body) {
        // Neither the secret nor what was sent in its place is logged.
        tracing::warn!(forge = forge.name(), %reason, "webhook refused");
        return Err(HookError(status, reason.to_owned()));
    }
    let event = event(forge, headers);
    match (forge, event.as_deref()) {
        (Forge::Github | Forge::Gitea, Some("ping")) => {
            return Ok(Json(json!({ "pong": true })).into_response());
        }
        (Forge::Github | Forge::Gitea, Some("push")) | (Forge::Gitlab, Some("Push Hook")) => {}
        (_, other) => {
            let what = other.map_or_else(|| "no event header".to_owned(), |e| format!("{e:?}"));
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "changes": [],
                    "ignored": format!("{what}: only push events are handled"),
                })),
            )
                .into_response());
        }
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        HookError(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let push = parse_push(forge, &payload).map_err(|e| HookError(StatusCode::BAD_REQUEST, e))?;
    if let Err(reason) = check_push(&push) {
        tracing::warn!(forge = forge.name(), %reason, "webhook push refused");
        return Err(HookError(StatusCode::BAD_REQUEST, reason));
    }
    let now = Timestamp::now();
    let (record, dropped) =
        match plan_push(&api.shared.plan(), &settings.rewriter, forge, push, now) {
            Planned::Ignored(reason) => {
                tracing::info!(forge = forge.name(), %reason, "webhook push ignored");
                return Ok(Json(json!({ "changes": [], "ignored": reason })).into_response());
            }
            Planned::Store {
                changes,
                mark,
                dropped,
            } => {
                let record = api
                    .shared
                    .store
                    .record_push(changes, mark, now)
                    .await
                    .map_err(|e| {
                        tracing::error!(forge = forge.name(), "webhook: storing the changes: {e}");
                        HookError(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal error (see the master's log)".into(),
                        )
                    })?;
                (record, dropped)
            }
        };
    let mut ids = Vec::new();
    for (id, c) in record.stored {
        ids.push(id.0);
        api.changes.publish(c.stored(id));
    }
    let mut notes = Vec::new();
    if record.already_polled {
        notes.push("the poller had already reported this push".to_owned());
    }
    if record.known > 0 {
        notes.push(format!("{} change(s) already stored", record.known));
    }
    if dropped > 0 {
        notes.push(format!(
            "{dropped} older commit(s) left out (at most {MAX_CHANGES_PER_PUSH} per push)"
        ));
    }
    tracing::info!(
        forge = forge.name(),
        changes = ?ids,
        "webhook push received"
    );
    let ignored = if notes.is_empty() {
        Value::Null
    } else {
        Value::String(notes.join("; "))
    };
    Ok(Json(json!({ "changes": ids, "ignored": ignored })).into_response())
}

/// The event a request says it carries.
fn event(forge: Forge, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match forge {
        Forge::Github => &["x-github-event"],
        Forge::Gitlab => &["x-gitlab-event"],
        Forge::Gitea => &["x-gitea-event", "x-forgejo-event", "x-gogs-event"],
    };
    names
        .iter()
        .find_map(|n| header(headers, n))
        .map(str::to_owned)
}

/// HMAC-SHA256 of `body` with `secret`.
fn hmac_sha256(secret: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    mac
}

/// Checks a hex HMAC-SHA256 signature of `body`, in constant time.
fn signature_matches(secret: &str, body: &[u8], hex_signature: &str) -> bool {
    let Ok(given) = hex::decode(hex_signature.trim()) else {
        return false;
    };
    hmac_sha256(secret, body).verify_slice(&given).is_ok()
}

/// Checks a token in constant time (as SHA-256 digests, so that the length does not leak
/// either).
fn token_matches(secret: &str, given: &str) -> bool {
    let a = Sha256::digest(secret.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

/// The request's proof that it comes from the forge: `Err((401 or 403, reason))`.
pub(crate) fn verify(
    forge: Forge,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), (StatusCode, &'static str)> {
    let missing = |what| Err((StatusCode::UNAUTHORIZED, what));
    let wrong = |what| Err((StatusCode::FORBIDDEN, what));
    match forge {
        Forge::Github => {
            let Some(value) = header(headers, "x-hub-signature-256") else {
                return missing("missing X-Hub-Signature-256 (set the webhook's secret)");
            };
            let Some(hex) = value.strip_prefix("sha256=") else {
                return wrong("X-Hub-Signature-256 is not sha256=<hex>");
            };
            if signature_matches(secret, body, hex) {
                Ok(())
            } else {
                wrong("X-Hub-Signature-256 does not match the body and the secret")
            }
        }
        Forge::Gitea => {
            let Some(value) = header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-forgejo-signature"))
            else {
                return missing(
                    "missing X-Gitea-Signature or X-Forgejo-Signature (set the webhook's secret)",
                );
            };
            if signature_matches(secret, body, value) {
                Ok(())
            } else {
                wrong("the signature does not match the body and the secret")
            }
        }
        Forge::Gitlab => {
            let Some(value) = headers.get("x-gitlab-token") else {
                return missing("missing X-Gitlab-Token (set the webhook's secret token)");
            };
            let given = String::from_utf8_lossy(value.as_bytes());
            if token_matches(secret, &given) {
                Ok(())
            } else {
                wrong("X-Gitlab-Token does not match")
            }
        }
    }
}

/// One pushed commit, as the forges describe it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushedCommit {
    pub id: String,
    pub message: String,
    /// RFC 3339, with an offset.
    pub timestamp: Option<String>,
    pub author: String,
    pub files: Vec<String>,
}

/// A push event, forge-neutral.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Push {
    /// `refs/heads/main`, `refs/tags/v1`...
    pub reference: String,
    /// The ref's new head (all zeros for a deletion).
    pub after: String,
    pub deleted: bool,
    /// Every URL the forge gives for the repository.
    pub urls: Vec<String>,
    /// `owner/name`.
    pub project: String,
    /// In the forge's order.
    pub commits: Vec<PushedCommit>,
    /// The head commit, when the forge gives it apart (GitHub, Gitea).
    pub head: Option<PushedCommit>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn commit_of(v: &Value) -> Option<PushedCommit> {
    let id = text(v, "id");
    if id.is_empty() {
        return None;
    }
    let author = v.get("author").unwrap_or(&Value::Null);
    let (name, email) = (text(author, "name"), text(author, "email"));
    let author = match (name.is_empty(), email.is_empty()) {
        (false, false) => format!("{name} <{email}>"),
        (false, true) => name,
        (true, false) => format!("<{email}>"),
        (true, true) => text(author, "username"),
    };
    let mut files = strings(v, "added");
    files.extend(strings(v, "modified"));
    files.extend(strings(v, "removed"));
    Some(PushedCommit {
        id,
        message: text(v, "message"),
        timestamp: v
            .get("timestamp")
            .and_then(Value::as_str)
            .map(str::to_owned),
        author,
        files,
    })
}

/// Reads a push payload: its ref, head, repository URLs and commits. `Err` when it is not
/// shaped like a push of this forge.
pub(crate) fn parse_push(forge: Forge, payload: &Value) -> Result<Push, String> {
    if !payload.is_object() {
        return Err("the body is not a JSON object".into());
    }
    let reference = text(payload, "ref");
    if reference.is_empty() {
        return Err("the push has no \"ref\"".into());
    }
    let after = text(payload, "after");
    let (repo, url_keys, project_key): (&Value, &[&str], &str) = match forge {
        Forge::Github => (
            payload.get("repository").unwrap_or(&Value::Null),
            &["clone_url", "ssh_url", "git_url", "html_url", "url"],
            "full_name",
        ),
        Forge::Gitlab => (
            payload
                .get("project")
                .or_else(|| payload.get("repository"))
                .unwrap_or(&Value::Null),
            &[
                "git_http_url",
                "git_ssh_url",
                "web_url",
                "http_url",
                "ssh_url",
                "url",
            ],
            "path_with_namespace",
        ),
        Forge::Gitea => (
            payload.get("repository").unwrap_or(&Value::Null),
            &["clone_url", "ssh_url", "html_url"],
            "full_name",
        ),
    };
    let mut urls: Vec<String> = url_keys
        .iter()
        .map(|k| text(repo, k))
        .filter(|u| !u.is_empty())
        .collect();
    if forge == Forge::Gitlab {
        // The older `repository` object repeats the URLs (GitLab before 8.5 had only it).
        if let Some(r) = payload.get("repository") {
            urls.extend(
                ["git_http_url", "git_ssh_url", "homepage", "url"]
                    .iter()
                    .map(|k| text(r, k))
                    .filter(|u| !u.is_empty()),
            );
        }
    }
    urls.dedup();
    if urls.is_empty() {
        return Err("the push names no repository URL".into());
    }
    let commits = payload
        .get("commits")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(commit_of).collect())
        .unwrap_or_default();
    let zero = !after.is_empty() && after.bytes().all(|b| b == b'0');
    Ok(Push {
        reference,
        deleted: zero || payload.get("deleted").and_then(Value::as_bool) == Some(true),
        after,
        urls,
        project: text(repo, project_key),
        commits,
        head: payload.get("head_commit").and_then(commit_of),
    })
}

/// What to do with a push.
#[derive(Debug, PartialEq)]
pub(crate) enum Planned {
    /// Nothing to store, and why.
    Ignored(String),
    /// These changes (oldest first), with the poller to move, and how many older commits
    /// were left out.
    Store {
        changes: Vec<NewChange>,
        mark: Option<PollerMark>,
        dropped: usize,
    },
}

/// A URL as compared with the plan's: no trailing `/` or `.git`, host in lower case.
fn comparable(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase(),
                path
            )
        }
        None => url.to_owned(),
    }
}

/// The plan's spelling of a git repository one of `urls` names (after rewriting).
fn watched_url(plan: &Plan, rewriter: &UrlRewriter, urls: &[String]) -> Option<String> {
    let known = plan
        .schedulers
        .iter()
        .flat_map(|s| &s.watch)
        .filter(|w| w.vcs == Vcs::Git)
        .map(|w| &w.url)
        .chain(
            plan.pollers
                .iter()
                .filter(|p| p.vcs == Vcs::Git)
                .map(|p| &p.url),
        );
    let candidates: Vec<String> = urls.iter().map(|u| rewriter.rewrite(u)).collect();
    let mut fallback = None;
    for url in known {
        if candidates.iter().any(|c| c == url) {
            return Some(url.clone());
        }
        if fallback.is_none() {
            let wanted = comparable(url);
            if candidates.iter().any(|c| comparable(c) == wanted) {
                fallback = Some(url.clone());
            }
        }
    }
    fallback
}

/// Whether the plan watches `branch` of `url`.
fn branch_watched(plan: &Plan, url: &str, branch: &str) -> bool {
    plan.schedulers
        .iter()
        .flat_map(|s| &s.watch)
        .filter(|w| w.vcs == Vcs::Git && w.url == url)
        .any(|w| w.branch.as_deref().is_none_or(|b| b == branch))
        || plan
            .pollers
            .iter()
            .any(|p| p.vcs == Vcs::Git && p.url == url && p.branches.iter().any(|b| b == branch))
}

/// `2026-11-25T18:04:34+01:00` (or `Z`, with or without fractions) as a [`Timestamp`].
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.len() < 20 || !s.is_char_boundary(19) {
        return None;
    }
    let (main, rest) = s.split_at(19);
    let b = main.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Fractions of a second.
    let rest = match rest.strip_prefix('.') {
        Some(f) => {
            let digits = f.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            &f[digits..]
        }
        None => rest,
    };
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .map(Timestamp)
}

/// Decides what a push stores: checks the branch and revisions (`Err` → 400 happens in
/// [`check_push`]), matches the repository with the plan.
pub(crate) fn plan_push(
    plan: &Plan,
    rewriter: &UrlRewriter,
    forge: Forge,
    push: Push,
    now: Timestamp,
) -> Planned {
    let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
        return Planned::Ignored(format!("{:?} is not a branch", push.reference));
    };
    if push.deleted {
        return Planned::Ignored(format!("branch {branch:?} was deleted"));
    }
    let Some(url) = watched_url(plan, rewriter, &push.urls) else {
        return Planned::Ignored(format!(
            "no watched repository is {}",
            push.urls
                .iter()
                .map(|u| abo_vcs::validate::redact_url(u))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    };
    if !branch_watched(plan, &url, branch) {
        return Planned::Ignored(format!(
            "branch {branch:?} of {} is not watched",
            abo_vcs::validate::redact_url(&url)
        ));
    }
    let mut commits = push.commits;
    if commits.is_empty() {
        // A new branch pointing at known commits: its head alone.
        commits.extend(push.head.filter(|h| h.id == push.after));
    }
    // Oldest first, whatever the forge's order.
    if commits.len() > 1 && commits[0].id == push.after {
        commits.reverse();
    }
    let dropped = commits.len().saturating_sub(MAX_CHANGES_PER_PUSH);
    let changes: Vec<NewChange> = commits
        .into_iter()
        .skip(dropped)
        .map(|c| NewChange {
            repository: url.clone(),
            branch: branch.to_owned(),
            revision: c.id,
            author: c.author,
            committed_at: c.timestamp.as_deref().and_then(parse_rfc3339),
            comments: c.message,
            files: c.files,
            project: push.project.clone(),
            category: String::new(),
            source: forge.source().to_owned(),
            received_at: now,
        })
        .collect();
    if changes.is_empty() {
        return Planned::Ignored(format!("the push to {branch:?} carries no commit"));
    }
    let mark = plan
        .pollers
        .iter()
        .find(|p| p.vcs == Vcs::Git && p.url == url && p.branches.iter().any(|b| b == branch))
        .filter(|_| !push.after.is_empty())
        .map(|p| PollerMark {
            poller: p.workdir.clone(),
            branch: branch.to_owned(),
            revision: push.after.clone(),
        });
    Planned::Store {
        changes,
        mark,
        dropped,
    }
}

/// Characters refused in pushed branch names on top of git's rules: harmless to abo, which
/// passes branches as separate arguments, but no real branch needs them and a build
/// script that interpolates a branch into a shell line would run them.
const SHELL_CHARS: &[char] = &[
    '$', '`', ';', '|', '&', '<', '>', '(', ')', '\'', '"', '\\', '!', '*', '?', '{', '}',
];

/// A branch name of a pushed change: the rules of `vcs` (git: no blank either), and no
/// shell metacharacter.
pub(crate) fn check_pushed_branch(vcs: Vcs, branch: &str) -> Result<(), String> {
    abo_vcs::validate::validate_branch(vcs, branch).map_err(|e| e.to_string())?;
    if let Some(c) = branch
        .chars()
        .find(|c| (c.is_whitespace() && vcs == Vcs::Git) || SHELL_CHARS.contains(c))
    {
        return Err(format!(
            "branch {:?}: `{c}` is refused in pushed branch names",
            abo_vcs::validate::printable(branch)
        ));
    }
    Ok(())
}

/// Refuses hostile values before anything else looks at them: the branch of a
/// `refs/heads/` push, its head and every commit id.
pub(crate) fn check_push(push: &Push) -> Result<(), String> {
    use abo_vcs::validate::validate_revision;
    if let Some(branch) = push.reference.strip_prefix("refs/heads/") {
        check_pushed_branch(Vcs::Git, branch)?;
    } else if push.reference.chars().any(char::is_control) {
        return Err("the ref contains a control character".into());
    }
    if !push.after.is_empty() {
        validate_revision(Vcs::Git, &push.after).map_err(|e| e.to_string())?;
    }
    for c in push.commits.iter().chain(&push.head) {
        validate_revision(Vcs::Git, &c.id).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_plan::{Poller, Scheduler, WatchedBranch};
    use axum::http::HeaderValue;

    const SECRET: &str = "It's a Secret to Everybody";

    fn sample(name: &str) -> (Vec<u8>, Value) {
        let path = format!(
            "{}/../../testdata/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let v = serde_json::from_slice(&raw).unwrap();
        (raw, v)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_documented_signature() {
        // The example of GitHub's "Validating webhook deliveries".
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let got = hex::encode(
            hmac_sha256(SECRET, b"Hello, World!")
                .finalize()
                .into_bytes(),
        );
        assert_eq!(got, expected);
        let ok = headers(&[("x-hub-signature-256", &format!("sha256={expected}"))]);
        assert_eq!(verify(Forge::Github, SECRET, &ok, b"Hello, World!"), Ok(()));
        let status =
            |h: &HeaderMap, body: &[u8]| verify(Forge::Github, SECRET, h, body).err().map(|e| e.0);
        assert_eq!(status(&ok, b"Hello, World?"), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            status(&HeaderMap::new(), b"x"),
            Some(StatusCode::UNAUTHORIZED)
        );
        for bad in [expected, "sha256=", "sha256=zz", "sha1=757107ea"] {
            let h = headers(&[("x-hub-signature-256", bad)]);
            assert_eq!(
                status(&h, b"Hello, World!"),
                Some(StatusCode::FORBIDDEN),
                "{bad}"
            );
        }
        // The right signature under another secret.
        assert!(verify(Forge::Github, "another secret!!", &ok, b"Hello, World!").is_err());
    }

    #[test]
    fn gitea_and_forgejo_signatures() {
        let body = b"{\"ref\": \"refs/heads/main\"}";
        let sig = hex::encode(hmac_sha256(SECRET, body).finalize().into_bytes());
        for name in ["x-gitea-signature", "x-forgejo-signature"] {
            let h = headers(&[(name, &sig)]);
            assert_eq!(verify(Forge::Gitea, SECRET, &h, body), Ok(()));
            assert!(verify(Forge::Gitea, SECRET, &h, b"{}").is_err());
        }
        let e = verify(Forge::Gitea, SECRET, &HeaderMap::new(), body).unwrap_err();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
        // GitHub's header is not enough for Gitea.
        let h = headers(&[("x-hub-signature-256", &format!("sha256={sig}"))]);
        assert!(verify(Forge::Gitea, SECRET, &h, body).is_err());
    }

    #[test]
    fn gitlab_token() {
        let ok = headers(&[("x-gitlab-token", SECRET)]);
        assert_eq!(verify(Forge::Gitlab, SECRET, &ok, b""), Ok(()));
        for bad in [
            "",
            "It's a Secret to Everybod",
            "It's a Secret to Everybody!",
        ] {
            let h = headers(&[("x-gitlab-token", bad)]);
            let e = verify(Forge::Gitlab, SECRET, &h, b"").unwrap_err();
            assert_eq!(e.0, StatusCode::FORBIDDEN, "{bad:?}");
            assert!(!e.1.contains(SECRET));
        }
        let e = verify(Forge::Gitlab, SECRET, &HeaderMap::new(), b"").unwrap_err();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        assert_eq!(
            parse_rfc3339("2015-05-05T19:40:15-04:00"),
            Some(Timestamp(1_430_869_215_000))
        );
        assert_eq!(
            parse_rfc3339("2015-05-05T23:40:15.123Z"),
            Some(Timestamp(1_430_869_215_000))
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T19:04:34+01:00"),
            Some(Timestamp(1_795_629_874_000))
        );
        for bad in [
            "",
            "yesterday",
            "2015-13-05T19:40:15Z",
            "2015-05-05T19:40:15",
            "2015-05-05T19:40:15+0400",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn plan() -> Plan {
        let watch = |url: &str, branch: &str| WatchedBranch {
            vcs: Vcs::Git,
            url: url.into(),
            branch: Some(branch.into()),
        };
        Plan {
            workers: vec![],
            builders: vec![],
            schedulers: vec![Scheduler {
                name: "s".into(),
                builders: vec![],
                tree_stable_timer: 0,
                nightly: vec![],
                watch: vec![
                    watch("https://github.com/anybox/abo-demo.git", "main"),
                    watch("https://gitlab.example.com/anybox/abo-demo.git", "main"),
                    watch("https://gitea.example.com/anybox/abo-demo.git", "main"),
                ],
            }],
            pollers: vec![Poller {
                vcs: Vcs::Git,
                url: "https://github.com/anybox/abo-demo.git".into(),
                branches: vec!["main".into()],
                workdir: "gitpoller/0123".into(),
                interval: 600,
            }],
        }
    }

    fn stored(p: Planned) -> (Vec<NewChange>, Option<PollerMark>) {
        match p {
            Planned::Store { changes, mark, .. } => (changes, mark),
            Planned::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn github_push_maps_to_changes() {
        let (_, v) = sample("github-push.json");
        let push = parse_push(Forge::Github, &v).unwrap();
        check_push(&push).unwrap();
        let (changes, mark) = stored(plan_push(
            &plan(),
            &UrlRewriter::default(),
            Forge::Github,
            push.clone(),
            Timestamp(7),
        ));
        assert_eq!(changes.len(), push.commits.len());
        let last = changes.last().unwrap();
        assert_eq!(last.revision, push.after);
        assert_eq!(last.repository, "https://github.com/anybox/abo-demo.git");
        assert_eq!(last.branch, "main");
        assert_eq!(last.source, "webhook:github");
        assert_eq!(last.project, "anybox/abo-demo");
        assert!(
            last.author.contains('<') && last.author.ends_with('>'),
            "{}",
            last.author
        );
        assert!(last.committed_at.is_some());
        assert!(!last.files.is_empty());
        assert_eq!(last.received_at, Timestamp(7));
        assert_eq!(mark.unwrap().poller, "gitpoller/0123");
    }

    #[test]
    fn gitlab_and_gitea_pushes_map_to_changes() {
        for (forge, file, url) in [
            (
                Forge::Gitlab,
                "gitlab-push.json",
                "https://gitlab.example.com/anybox/abo-demo.git",
            ),
            (
                Forge::Gitea,
                "gitea-push.json",
                "https://gitea.example.com/anybox/abo-demo.git",
            ),
        ] {
            let (_, v) = sample(file);
            let push = parse_push(forge, &v).unwrap();
            check_push(&push).unwrap();
            let after = push.after.clone();
            let (changes, mark) = stored(plan_push(
                &plan(),
                &UrlRewriter::default(),
                forge,
                push,
                Timestamp(7),
            ));
            assert!(mark.is_none(), "{file}: not polled");
            assert_eq!(
                changes.last().unwrap().revision,
                after,
                "{file}: oldest first"
            );
            assert!(changes
                .iter()
                .all(|c| c.repository == url && c.branch == "main"));
            assert!(changes.iter().all(|c| c.committed_at.is_some()), "{file}");
            assert_eq!(changes[0].source, format!("webhook:{}", forge.name()));
        }
    }

    #[test]
    fn tags_deletions_and_strangers_are_ignored() {
        for (forge, file) in [
            (Forge::Github, "github-tag-push.json"),
            (Forge::Github, "github-branch-delete.json"),
            (Forge::Gitlab, "gitlab-tag-push.json"),
        ] {
            let (_, v) = sample(file);
            let push = parse_push(forge, &v).unwrap();
            check_push(&push).unwrap();
            let p = plan_push(&plan(), &UrlRewriter::default(), forge, push, Timestamp(7));
            assert!(matches!(p, Planned::Ignored(_)), "{file}: {p:?}");
        }
        let (_, mut v) = sample("github-push.json");
        for key in ["clone_url", "ssh_url", "git_url", "html_url", "url"] {
            v["repository"][key] = Value::from(format!("https://github.com/someone/else-{key}"));
        }
        let push = parse_push(Forge::Github, &v).unwrap();
        let p = plan_push(
            &plan(),
            &UrlRewriter::default(),
            Forge::Github,
            push,
            Timestamp(7),
        );
        assert!(
            matches!(&p, Planned::Ignored(why) if why.contains("no watched repository")),
            "{p:?}"
        );
        // An unwatched branch of a watched repository.
        let (_, mut v) = sample("github-push.json");
        v["ref"] = Value::from("refs/heads/feature");
        let push = parse_push(Forge::Github, &v).unwrap();
        let p = plan_push(
            &plan(),
            &UrlRewriter::default(),
            Forge::Github,
            push,
            Timestamp(7),
        );
        assert!(
            matches!(&p, Planned::Ignored(why) if why.contains("not watched")),
            "{p:?}"
        );
    }

    #[test]
    fn urls_are_rewritten_then_compared() {
        let (_, mut v) = sample("github-push.json");
        for key in ["clone_url", "ssh_url", "git_url", "html_url", "url"] {
            v["repository"][key] = Value::from("https://mirror.example/anybox/abo-demo");
        }
        let push = parse_push(Forge::Github, &v).unwrap();
        let p = plan_push(
            &plan(),
            &UrlRewriter::default(),
            Forge::Github,
            push.clone(),
            Timestamp(7),
        );
        assert!(matches!(p, Planned::Ignored(_)));
        let rw = UrlRewriter::new(vec![(
            "https://mirror.example/".into(),
            "https://GitHub.com/".into(),
        )]);
        let (changes, _) = stored(plan_push(&plan(), &rw, Forge::Github, push, Timestamp(7)));
        // Stored as the plan spells it.
        assert_eq!(
            changes[0].repository,
            "https://github.com/anybox/abo-demo.git"
        );
    }

    #[test]
    fn hostile_values_are_refused() {
        let (_, v) = sample("github-push.json");
        for branch in [
            "refs/heads/--upload-pack=x",
            "refs/heads/$(id)",
            "refs/heads/a\nb",
            "refs/heads/a..b",
            "refs/heads/",
        ] {
            let mut v = v.clone();
            v["ref"] = Value::from(branch);
            let push = parse_push(Forge::Github, &v).unwrap();
            assert!(check_push(&push).is_err(), "{branch:?}");
        }
        for rev in ["--upload-pack=x", "$(id)", "abc\n", "HEAD"] {
            let mut v = v.clone();
            v["commits"][0]["id"] = Value::from(rev);
            let push = parse_push(Forge::Github, &v).unwrap();
            assert!(check_push(&push).is_err(), "{rev:?}");
            let mut v2 = sample("github-push.json").1;
            v2["after"] = Value::from(rev);
            let push = parse_push(Forge::Github, &v2).unwrap();
            assert!(check_push(&push).is_err(), "{rev:?}");
        }
        assert!(parse_push(Forge::Github, &json!([1, 2])).is_err());
        assert!(parse_push(Forge::Github, &json!({"ref": "refs/heads/main"})).is_err());
    }
}
