//! The JSON API: `GET /api/v1/workers`. Unknown routes answer 404 with a JSON reason.
//!
//! The views are built here from [`WorkerStatus`]; nothing secret (password, environment) is
//! in them, because the registry's status never holds it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::config::Capability;
use crate::registry::{WorkerRegistry, WorkerStatus};

/// One worker in `GET /api/v1/workers`. Connection fields are `null` while disconnected.
#[derive(Debug, Serialize)]
struct WorkerView {
    name: String,
    connected: bool,
    /// RFC 3339, UTC, whole seconds.
    connected_since: Option<String>,
    address: Option<String>,
    version: Option<String>,
    os: Option<String>,
    system: Option<String>,
    basedir: Option<String>,
    numcpus: Option<u64>,
    admin: Option<String>,
    host: Option<String>,
    capabilities: Vec<Capability>,
}

impl WorkerView {
    fn new(status: WorkerStatus) -> WorkerView {
        let c = status.connection;
        let info = c.as_ref().map(|c| c.info.clone()).unwrap_or_default();
        WorkerView {
            name: status.name,
            connected: c.is_some(),
            connected_since: c
                .as_ref()
                .map(|c| humantime::format_rfc3339_seconds(c.since).to_string()),
            address: c.as_ref().map(|c| c.peer.to_string()),
            version: info.version,
            os: info.os,
            system: info.system,
            basedir: info.basedir,
            numcpus: info.numcpus,
            admin: info.admin,
            host: info.host,
            capabilities: status.capabilities,
        }
    }
}

#[derive(Debug, Serialize)]
struct ErrorView {
    error: &'static str,
    reason: String,
}

async fn workers(State(registry): State<Arc<WorkerRegistry>>) -> Json<Vec<WorkerView>> {
    Json(registry.status().into_iter().map(WorkerView::new).collect())
}

/// docs/openapi.yaml: the API's OpenAPI 3.1 description, served as
/// `GET /api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let body = ErrorView {
        error: "not found",
        reason: format!("no route for {method} {}", uri.path()),
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// The API's routes over this registry (the workers endpoint only).
pub fn router(registry: Arc<WorkerRegistry>) -> Router {
    full_router(registry, None, None)
}

/// The workers endpoint, and the builds API when the master runs builds, with the web
/// status pages (`web`) beside it.
pub(crate) fn full_router(
    registry: Arc<WorkerRegistry>,
    builds: Option<(crate::api::Api, crate::master_api::MasterApi)>,
    web: Option<crate::web::WebOptions>,
) -> Router {
    let mut app = Router::new()
        .route("/api/v1/openapi.yaml", get(openapi))
        .with_state(registry.clone());
    let mut reads = Router::new()
        .route("/api/v1/workers", get(workers))
        .with_state(registry.clone());
    if let Some((api, master)) = builds {
        let public = web.as_ref().is_none_or(|w| w.public);
        if let Some(web) = web {
            app = app.merge(crate::web::routes(api.clone(), registry, web));
        }
        // Forge webhooks (`/hooks/*`) authenticate with their own secrets.
        app = app.merge(crate::webhook::routes(api.clone()));
        reads = reads
            .merge(crate::master_api::routes(master))
            .merge(crate::changes_api::routes(api.clone()))
            .merge(crate::api::routes(api.clone()));
        if !public {
            // `[web] public = false` covers the JSON API and artifacts too: reading needs
            // the same credentials as changing.
            reads = reads.layer(axum::middleware::from_fn_with_state(
                api,
                crate::api::require_reader,
            ));
        }
    }
    app.merge(reads).fallback(not_found)
}
