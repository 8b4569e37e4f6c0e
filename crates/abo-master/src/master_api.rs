//! The master's own state in the JSON API: `GET /api/v1/master` (the configuration in
//! force and the last reconfiguration's outcome, what `abo reconfig` waits for) and
//! `GET /api/v1/pollers` (every poller's status: last poll, failures, back-off).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use crate::scheduling::{poller_statuses, Pollers};

/// The configuration in force and how the last reconfiguration went.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ConfigStatus {
    /// 1 at start, one more for each configuration put in force since.
    pub generation: u64,
    /// When the configuration in force was loaded (ms since the epoch).
    pub loaded_at: Option<abo_store::Timestamp>,
    /// When a reconfiguration was last attempted.
    pub last_attempt: Option<abo_store::Timestamp>,
    /// The diagnostics of the last attempt when it was refused (empty once one succeeds).
    pub last_error: Vec<String>,
}

impl ConfigStatus {
    /// The configuration read at start.
    pub(crate) fn started() -> ConfigStatus {
        ConfigStatus {
            generation: 1,
            loaded_at: Some(abo_store::Timestamp::now()),
            ..ConfigStatus::default()
        }
    }
}

/// The state of these routes.
#[derive(Clone)]
pub(crate) struct MasterApi {
    pub pollers: Pollers,
    pub status: Arc<Mutex<ConfigStatus>>,
}

async fn master(State(api): State<MasterApi>) -> Json<Value> {
    let status = api.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": status,
    }))
}

async fn pollers(State(api): State<MasterApi>) -> Json<Value> {
    Json(json!({ "pollers": poller_statuses(&api.pollers).await }))
}

/// `GET /api/v1/master` and `GET /api/v1/pollers`.
pub(crate) fn routes(api: MasterApi) -> Router {
    Router::new()
        .route("/api/v1/master", get(master))
        .route("/api/v1/pollers", get(pollers))
        .with_state(api)
}
