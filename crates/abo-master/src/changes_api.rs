//! Changes in the JSON API: `POST /api/v1/changes` (HTTP Basic, like force: what `abo
//! sendchange` and scripts use), `GET /api/v1/changes?before=&limit=` and
//! `GET /api/v1/changes/{id}` (public). The contract is docs/api.md.
//!
//! A posted change is checked (repository URL, branch and revision, with the rules of the
//! pollers: [`abo_vcs::validate`]), its repository rewritten by master.toml's
//! `url-rewrite` (so that it is keyed like the pollers' changes), stored, then published for
//! the schedulers. Every string shown is masked.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use abo_plan::{Plan, Vcs};
use abo_store::{Change, ChangeId, NewChange, RequestId, Timestamp};
use abo_vcs::validate::{redact_url, validate_revision, validate_url};

use crate::api::{authenticate, Api, ApiError};
use crate::login_throttle::Peer;

/// Default and largest page of `GET changes`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Longest comment, author, project or category accepted (bytes).
const MAX_TEXT: usize = 64 * 1024;
/// Most files one change may list.
const MAX_FILES: usize = 10_000;

/// The routes, to merge into the master's router.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/api/v1/changes", get(list).post(create))
        .route("/api/v1/changes/{id}", get(one))
        .with_state(api)
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason.into())
}

fn time(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t.0)).to_string()
}

fn parse_id(what: &str, s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(|| bad(format!("{what} must be a non-negative integer, not {s:?}")))
}

/// A change as the API shows it: masked, the repository's password redacted, with the
/// build requests it is part of.
fn change_json(api: &Api, c: &Change, requests: &[RequestId]) -> Value {
    let mask = |s: &str| api.shared.mask(s);
    json!({
        "id": c.id.0,
        "repository": mask(&redact_url(&c.repository)),
        "branch": mask(&c.branch),
        "revision": c.revision,
        "author": mask(&c.author),
        "committed_at": c.committed_at.map(time),
        "comments": mask(&c.comments),
        "files": c.files.iter().map(|f| mask(f)).collect::<Vec<_>>(),
        "project": mask(&c.project),
        "category": mask(&c.category),
        "source": mask(&c.source),
        "received_at": time(c.received_at),
        "requests": requests.iter().map(|r| r.0).collect::<Vec<_>>(),
    })
}

async fn list(State(api): State<Api>, Query(query): Query<HashMap<String, String>>) -> Response {
    match list_changes(&api, &query).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn list_changes(api: &Api, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    for key in query.keys() {
        if !matches!(key.as_str(), "limit" | "before") {
            return Err(bad(format!(
                "unknown parameter {key:?} (limit and before are known)"
            )));
        }
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, not {s:?}"
                )))
            }
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(s) => Some(ChangeId(parse_id("before", s)?)),
    };
    let store = &api.shared.store;
    let changes = store.list_changes(before, limit).await?;
    let requests = store
        .requests_of_changes(changes.iter().map(|c| c.id).collect())
        .await?;
    let out: Vec<Value> = changes
        .iter()
        .map(|c| change_json(api, c, requests.get(&c.id).map_or(&[], Vec::as_slice)))
        .collect();
    Ok(Json(out).into_response())
}

async fn one(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let answer = async {
        let id = parse_id("the change id", &id)?;
        let store = &api.shared.store;
        let Some(c) = store.get_change(ChangeId(id)).await? else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no change {id}"),
            ));
        };
        let requests = store.requests_of_changes(vec![c.id]).await?;
        let requests = requests.get(&c.id).map_or(&[][..], Vec::as_slice);
        Ok(Json(change_json(&api, &c, requests)).into_response())
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// The body of `POST changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeBody {
    repository: String,
    #[serde(default)]
    branch: String,
    revision: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    comments: String,
    #[serde(default)]
    files: Vec<String>,
    /// When it was committed, in Unix seconds.
    #[serde(default)]
    when: Option<f64>,
    #[serde(default)]
    project: String,
    #[serde(default)]
    category: String,
}

/// The VCS the plan knows `url` with, if it watches or polls it.
fn vcs_of(plan: &Plan, url: &str) -> Option<Vcs> {
    plan.pollers
        .iter()
        .find(|p| p.url == url)
        .map(|p| p.vcs)
        .or_else(|| {
            plan.schedulers
                .iter()
                .flat_map(|s| &s.watch)
                .find(|w| w.url == url)
                .map(|w| w.vcs)
        })
}

/// Checks a posted change; the repository is rewritten. `Ok((change, watched))`.
pub(crate) fn check_body(
    plan: &Plan,
    rewriter: &abo_plan::watch::UrlRewriter,
    body: ChangeBody,
    source: String,
    now: Timestamp,
) -> Result<(NewChange, bool), String> {
    let repository = rewriter.rewrite(body.repository.trim());
    let vcs = vcs_of(plan, &repository);
    let url_ok = match vcs {
        Some(v) => validate_url(v, &repository).map_err(|e| e.to_string()),
        None => [Vcs::Git, Vcs::Hg, Vcs::Bzr]
            .iter()
            .map(|v| validate_url(*v, &repository).map_err(|e| e.to_string()))
            .find(Result::is_ok)
            .unwrap_or_else(|| validate_url(Vcs::Git, &repository).map_err(|e| e.to_string())),
    };
    url_ok?;
    // A branch is checked with its VCS's rules; for a repository the plan does not know,
    // with the rules every VCS shares (no control character, no leading `-`).
    if !body.branch.is_empty() || vcs.is_some_and(|v| v != Vcs::Bzr) {
        crate::webhook::check_pushed_branch(vcs.unwrap_or(Vcs::Hg), &body.branch)?;
    }
    // Without a VCS, the loosest check: bzr's (no blank, control character, `..` or `-`).
    validate_revision(vcs.unwrap_or(Vcs::Bzr), &body.revision).map_err(|e| e.to_string())?;
    for (what, value) in [
        ("author", &body.author),
        ("comments", &body.comments),
        ("project", &body.project),
        ("category", &body.category),
    ] {
        if value.len() > MAX_TEXT {
            return Err(format!("{what} is longer than {MAX_TEXT} bytes"));
        }
    }
    if body.files.len() > MAX_FILES {
        return Err(format!("more than {MAX_FILES} files"));
    }
    if let Some(f) = body
        .files
        .iter()
        .find(|f| f.is_empty() || f.len() > 4096 || f.chars().any(char::is_control))
    {
        return Err(format!(
            "file {:?} must be non-empty, without control characters",
            f.chars().take(100).collect::<String>()
        ));
    }
    if body.author.chars().any(char::is_control) {
        return Err("author contains a control character".into());
    }
    let committed_at = match body.when {
        None => None,
        Some(w) if w.is_finite() && (0.0..=1e11).contains(&w) => {
            Some(Timestamp((w * 1000.0).round() as u64))
        }
        Some(w) => return Err(format!("when must be Unix seconds, not {w}")),
    };
    let watched = vcs.is_some();
    Ok((
        NewChange {
            repository,
            branch: body.branch,
            revision: body.revision,
            author: body.author,
            committed_at,
            comments: body.comments,
            files: body.files,
            project: body.project,
            category: body.category,
            source,
            received_at: now,
        },
        watched,
    ))
}

async fn create(
    State(api): State<Api>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let user = authenticate(&api, peer, &headers).await?;
        let body: ChangeBody = serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "the body must be {{\"repository\": URL, \"branch\": string, \"revision\": \
                 string, \"author\"?, \"comments\"?, \"files\"?: [string], \"when\"?: unix \
                 seconds, \"project\"?, \"category\"?}}: {e}"
            ))
        })?;
        let now = Timestamp::now();
        let (new, watched) = check_body(
            &api.shared.plan(),
            &api.shared.push().rewriter,
            body,
            format!("api:{user}"),
            now,
        )
        .map_err(bad)?;
        let store = &api.shared.store;
        let (id, is_new) = store.add_change_once(new.clone()).await?;
        if !is_new {
            // Already stored (a hook that ran twice, a commit the poller or a webhook
            // reported): answered as it is, and built no second time.
            let Some(known) = store.get_change(id).await? else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "the change was deleted while it was being sent again",
                ));
            };
            let requests = store.requests_of_changes(vec![id]).await?;
            let mut out = change_json(&api, &known, requests.get(&id).map_or(&[], Vec::as_slice));
            out["watched"] = Value::Bool(watched);
            out["known"] = Value::Bool(true);
            return Ok((StatusCode::OK, Json(out)).into_response());
        }
        let change = new.stored(id);
        tracing::info!(
            change = id.0,
            user = %user,
            repository = %redact_url(&change.repository),
            "change received"
        );
        let mut out = change_json(&api, &change, &[]);
        out["watched"] = Value::Bool(watched);
        out["known"] = Value::Bool(false);
        api.changes.publish(change);
        Ok::<_, ApiError>((StatusCode::CREATED, Json(out)).into_response())
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_plan::watch::UrlRewriter;

    fn plan() -> Plan {
        Plan {
            workers: vec![],
            builders: vec![],
            schedulers: vec![],
            pollers: vec![abo_plan::Poller {
                vcs: Vcs::Hg,
                url: "https://hg.example.org/odoo".into(),
                branches: vec!["default".into()],
                workdir: "hgpoller/01".into(),
                interval: 60,
            }],
        }
    }

    fn body(v: Value) -> ChangeBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn posted_changes_are_checked_and_rewritten() {
        let rw = UrlRewriter::new(vec![(
            "http://old/".into(),
            "https://hg.example.org/".into(),
        )]);
        let (c, watched) = check_body(
            &plan(),
            &rw,
            body(json!({"repository": "http://old/odoo", "branch": "default",
                        "revision": "0123456789ab", "when": 1.5, "files": ["a.py"]})),
            "api:alice".into(),
            Timestamp(9),
        )
        .unwrap();
        assert!(watched);
        assert_eq!(c.repository, "https://hg.example.org/odoo");
        assert_eq!(c.committed_at, Some(Timestamp(1500)));
        assert_eq!(c.source, "api:alice");
        let (_, watched) = check_body(
            &plan(),
            &rw,
            body(json!({"repository": "https://git.example.org/x.git", "branch": "main", "revision": "abc123"})),
            "api:alice".into(),
            Timestamp(9),
        )
        .unwrap();
        assert!(!watched);
        for bad in [
            json!({"repository": "https://hg.example.org/odoo", "branch": "default", "revision": "not-hex"}),
            json!({"repository": "https://x/y", "branch": "--upload-pack=x", "revision": "abc"}),
            json!({"repository": "https://x/y", "branch": "a\nb", "revision": "abc"}),
            json!({"repository": "https://x/y", "branch": "$(id)", "revision": "abc"}),
            json!({"repository": "https://x/y", "branch": "main", "revision": "$(id) x"}),
            json!({"repository": "https://x/y", "branch": "main", "revision": "--output=x"}),
            json!({"repository": "ext::sh -c id", "branch": "main", "revision": "abc"}),
            json!({"repository": "relative/path", "branch": "main", "revision": "abc"}),
            json!({"repository": "https://x/y", "branch": "main", "revision": "abc", "when": -1}),
            json!({"repository": "https://x/y", "branch": "main", "revision": "abc", "files": ["a\nb"]}),
        ] {
            let r = check_body(&plan(), &rw, body(bad.clone()), "api".into(), Timestamp(9));
            assert!(r.is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<ChangeBody>(
            json!({"repository": "x", "revision": "a", "who": "me"})
        )
        .is_err());
    }
}
