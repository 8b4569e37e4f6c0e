//! Build requests: submitted (durable when [`Store::submit_request`] returns), claimed by one
//! dispatch with a lease, completed with a result, or put back in the queue.

use crate::db::{json_out, Row, Tx};
use crate::error::{Error, Result};
use crate::types::{BuildId, BuildResult, ChangeId, Lease, RequestId, RequestState, Timestamp};
use crate::Store;
use serde::Serialize;
use std::collections::HashMap;

/// A build request to persist.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// The builder that is to run it.
    pub builder: String,
    /// Build properties (a JSON object), secrets already masked or absent.
    pub properties: serde_json::Value,
    /// Why (`force by alice`, `3 changes on 16.0`), shown in the UI.
    pub reason: String,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// The changes it builds (empty for a forced build without changes).
    pub changes: Vec<ChangeId>,
}

impl NewRequest {
    /// A request for `builder` with no properties, reason or changes.
    pub fn new(builder: impl Into<String>, submitted_at: Timestamp) -> NewRequest {
        NewRequest {
            builder: builder.into(),
            properties: serde_json::Value::Object(Default::default()),
            reason: String::new(),
            submitted_at,
            changes: Vec::new(),
        }
    }
}

/// A stored build request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRequest {
    /// Its id.
    pub id: RequestId,
    /// The builder.
    pub builder: String,
    /// Its properties (JSON).
    pub properties: serde_json::Value,
    /// Why it was submitted.
    pub reason: String,
    /// When.
    pub submitted_at: Timestamp,
    /// Where it is.
    pub state: RequestState,
    /// The lease of the dispatch holding it (claimed or complete).
    pub claimed_by: Option<Lease>,
    /// When it was claimed.
    pub claimed_at: Option<Timestamp>,
    /// The request whose build it rides along with.
    pub merged_into: Option<RequestId>,
    /// When it completed.
    pub completed_at: Option<Timestamp>,
    /// Its result, once complete.
    pub result: Option<BuildResult>,
    /// The changes it carries, by id.
    pub changes: Vec<ChangeId>,
}

const REQUEST_COLS: &str = "id, builder, properties, reason, submitted_at, state, claimed_by, \
                            claimed_at, merged_into, completed_at, result";

fn request_from_row(r: &Row<'_>) -> Result<BuildRequest> {
    Ok(BuildRequest {
        id: r.get(0)?,
        builder: r.get(1)?,
        properties: r.json(2)?,
        reason: r.get(3)?,
        submitted_at: r.get(4)?,
        state: r.get(5)?,
        claimed_by: r.get(6)?,
        claimed_at: r.get(7)?,
        merged_into: r.get(8)?,
        completed_at: r.get(9)?,
        result: r.get(10)?,
        changes: Vec::new(),
    })
}

/// Inserts a request and its change links; shared by submitting and by firing a timer.
pub(crate) fn insert_request(tx: &Tx<'_>, req: &NewRequest) -> Result<RequestId> {
    if req.builder.is_empty() {
        return Err(Error::Invalid("a build request needs a builder".into()));
    }
    let id: RequestId = tx.query_one(
        "INSERT INTO build_requests (builder, properties, reason, submitted_at, state)
         VALUES (?1, ?2, ?3, ?4, 'queued') RETURNING id",
        &[
            &req.builder,
            &json_out(&req.properties)?,
            &req.reason,
            &req.submitted_at,
        ],
        |r| r.get(0),
    )?;
    for change in &req.changes {
        tx.execute(
            "INSERT INTO build_request_changes (request, change) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            &[&id, change],
        )?;
    }
    Ok(id)
}

fn get_request(tx: &Tx<'_>, id: RequestId) -> Result<Option<BuildRequest>> {
    let req = tx.query_opt(
        &format!("SELECT {REQUEST_COLS} FROM build_requests WHERE id = ?1"),
        &[&id],
        request_from_row,
    )?;
    let Some(mut req) = req else { return Ok(None) };
    req.changes = tx.query_all(
        "SELECT change FROM build_request_changes WHERE request = ?1 ORDER BY change",
        &[&id],
        |r| r.get(0),
    )?;
    Ok(Some(req))
}

/// The request, or [`Error::RequestNotFound`].
pub(crate) fn require_request(tx: &Tx<'_>, id: RequestId) -> Result<BuildRequest> {
    get_request(tx, id)?.ok_or(Error::RequestNotFound(id))
}

/// The unfinished build of a request, if any.
pub(crate) fn running_build(tx: &Tx<'_>, id: RequestId) -> Result<Option<BuildId>> {
    tx.query_opt(
        "SELECT id FROM builds WHERE request = ?1 AND finished_at IS NULL LIMIT 1",
        &[&id],
        |r| r.get(0),
    )
}

/// Completes a claimed request and those merged into it.
pub(crate) fn complete_with(
    tx: &Tx<'_>,
    id: RequestId,
    result: BuildResult,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "UPDATE build_requests SET state = 'complete', result = ?2, completed_at = ?3
         WHERE (id = ?1 OR merged_into = ?1) AND state <> 'complete'",
        &[&id, &result, &now],
    )?;
    Ok(())
}

/// Puts a claimed request, and those merged into it, back in the queue.
pub(crate) fn requeue_with(tx: &Tx<'_>, id: RequestId) -> Result<()> {
    tx.execute(
        "UPDATE build_requests
         SET state = 'queued', claimed_by = NULL, claimed_at = NULL, merged_into = NULL
         WHERE (id = ?1 OR merged_into = ?1) AND state = 'claimed'",
        &[&id],
    )?;
    Ok(())
}

fn state_error(req: &BuildRequest, expected: &'static str) -> Error {
    Error::RequestState {
        id: req.id,
        state: req.state,
        expected,
    }
}

/// [`Store::claim_request`] inside a write transaction.
pub(crate) fn claim_request_in(
    tx: &Tx<'_>,
    id: RequestId,
    lease: Lease,
    now: Timestamp,
) -> Result<()> {
    let changed = tx.execute(
        "UPDATE build_requests SET state = 'claimed', claimed_by = ?2, claimed_at = ?3
         WHERE id = ?1 AND state = 'queued'",
        &[&id, &lease, &now],
    )?;
    changed_while_queued(tx, id, changed)
}

/// [`Store::merge_request`] inside a write transaction. A refusal changes nothing.
pub(crate) fn merge_request_in(
    tx: &Tx<'_>,
    id: RequestId,
    into: RequestId,
    now: Timestamp,
) -> Result<()> {
    let target = require_request(tx, into)?;
    if target.state != RequestState::Claimed {
        return Err(state_error(&target, "claimed"));
    }
    if target.merged_into.is_some() || id == into {
        return Err(Error::Invalid(format!(
            "build request {into} is itself merged; merge into the request it rides with"
        )));
    }
    let changed = tx.execute(
        "UPDATE build_requests
         SET state = 'claimed', claimed_by = ?2, claimed_at = ?3, merged_into = ?4
         WHERE id = ?1 AND state = 'queued'",
        &[&id, &target.claimed_by, &now, &into],
    )?;
    changed_while_queued(tx, id, changed)
}

/// The end of an UPDATE guarded by `state = 'queued'`: `Ok` if it changed the request's
/// row, else the state the request is in (or that there is none).
fn changed_while_queued(tx: &Tx<'_>, id: RequestId, changed: u64) -> Result<()> {
    if changed == 1 {
        return Ok(());
    }
    Err(state_error(&require_request(tx, id)?, "queued"))
}

impl Store {
    /// Persists a build request (and its links to changes); it is on disk when this
    /// returns, before anything else happens with it.
    pub async fn submit_request(&self, req: NewRequest) -> Result<RequestId> {
        self.write(move |tx| insert_request(tx, &req)).await
    }

    /// Several requests, in one transaction (all or none).
    pub async fn submit_requests(&self, reqs: Vec<NewRequest>) -> Result<Vec<RequestId>> {
        self.write(move |tx| reqs.iter().map(|r| insert_request(tx, r)).collect())
            .await
    }

    /// One request, with its change ids.
    pub async fn get_request(&self, id: RequestId) -> Result<Option<BuildRequest>> {
        self.read(move |tx| get_request(tx, id)).await
    }

    /// Every queued request, oldest first, with its change ids.
    pub async fn queued_requests(&self) -> Result<Vec<BuildRequest>> {
        self.read(|tx| {
            let mut reqs: Vec<BuildRequest> = tx.query_all(
                &format!(
                    "SELECT {REQUEST_COLS} FROM build_requests WHERE state = 'queued' ORDER BY id"
                ),
                &[],
                request_from_row,
            )?;
            let mut changes: HashMap<RequestId, Vec<ChangeId>> = HashMap::new();
            tx.query_each(
                // Driven from the (small) queue, not from every link ever made.
                "SELECT request, change FROM build_request_changes
                 WHERE request IN (SELECT id FROM build_requests WHERE state = 'queued')
                 ORDER BY request, change",
                &[],
                |r| {
                    changes.entry(r.get(0)?).or_default().push(r.get(1)?);
                    Ok(true)
                },
            )?;
            for req in &mut reqs {
                req.changes = changes.remove(&req.id).unwrap_or_default();
            }
            Ok(reqs)
        })
        .await
    }

    /// Claims a queued request for one dispatch. Atomic: of two claimers, one gets `Ok` and
    /// the other [`Error::RequestState`] (also across processes sharing the file).
    pub async fn claim_request(&self, id: RequestId, lease: Lease, now: Timestamp) -> Result<()> {
        self.write(move |tx| claim_request_in(tx, id, lease, now))
            .await
    }

    /// Makes the queued request `id` ride along with the claimed request `into`: it takes
    /// the same lease, and completes (or is requeued) with it.
    pub async fn merge_request(
        &self,
        id: RequestId,
        into: RequestId,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| merge_request_in(tx, id, into, now))
            .await
    }

    /// Puts a claimed request (and those merged into it) back in the queue, for a dispatch
    /// that never started its build. Refused while the request has a build running:
    /// finish that build (with [`BuildResult::Retry`] to requeue) instead.
    pub async fn requeue_request(&self, id: RequestId) -> Result<()> {
        self.write(move |tx| {
            let req = require_request(tx, id)?;
            if req.state != RequestState::Claimed {
                return Err(state_error(&req, "claimed"));
            }
            let main = req.merged_into.unwrap_or(id);
            if let Some(build) = running_build(tx, main)? {
                return Err(Error::BuildRunning { id, build });
            }
            if req.merged_into.is_some() {
                // Only this one leaves the group; the others keep riding.
                tx.execute(
                    "UPDATE build_requests
                     SET state = 'queued', claimed_by = NULL, claimed_at = NULL, merged_into = NULL
                     WHERE id = ?1",
                    &[&id],
                )?;
                return Ok(());
            }
            requeue_with(tx, id)
        })
        .await
    }

    /// Completes a queued or claimed request (and those merged into it) without a build, or
    /// after one the caller finished itself: a cancelled queued request, a skipped one.
    pub async fn complete_request(
        &self,
        id: RequestId,
        result: BuildResult,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| {
            let req = require_request(tx, id)?;
            if req.state == RequestState::Complete {
                return Err(state_error(&req, "queued or claimed"));
            }
            if let Some(build) = running_build(tx, req.merged_into.unwrap_or(id))? {
                return Err(Error::BuildRunning { id, build });
            }
            complete_with(tx, id, result, now)
        })
        .await
    }
}
