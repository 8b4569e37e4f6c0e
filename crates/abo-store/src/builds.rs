//! Builds and steps: created for a claimed request, written only with the build's lease,
//! finished together with their requests; and the read side the API pages on.

use crate::db::{json_out, Row, Tx};
use crate::error::{Error, Result};
use crate::logs::{log_from_row, LogInfo, LOG_COLS};
use crate::requests::{
    claim_request_in, complete_with, merge_request_in, requeue_with, require_request, running_build,
};
use crate::types::{BuildId, BuildResult, Lease, RequestId, RequestState, StepId, Timestamp};
use crate::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Most builds one [`Store::list_builds`] call returns, whatever the caller asks: a page is
/// bounded, the history is not.
pub const MAX_PAGE: u32 = 1000;

/// A stored build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Build {
    /// Its id (unique across builders).
    pub id: BuildId,
    /// The request it runs.
    pub request: RequestId,
    /// Its builder.
    pub builder: String,
    /// Its number within the builder, from 1.
    pub number: u32,
    /// The worker running it.
    pub worker: String,
    /// The lease its writes must carry.
    pub lease: Lease,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished; `None` while running.
    pub finished_at: Option<Timestamp>,
    /// Its result, once finished.
    pub result: Option<BuildResult>,
    /// One line on what it is doing or did.
    pub state_string: String,
    /// Its properties (JSON); `null` in a list read with [`Properties::Skipped`].
    pub properties: serde_json::Value,
}

/// Whether [`Store::list_builds`] reads the builds' properties: a web page shows each
/// build's revision, the API's list shows none, and parsing a thousand builds' properties
/// took 0.6 MB for nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Properties {
    /// Read and parsed.
    Read,
    /// Not read: each build's `properties` is `null`.
    Skipped,
}

/// A link a step shows (a test report, an upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUrl {
    /// The link's text.
    pub name: String,
    /// Where it points.
    pub url: String,
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Its row id.
    pub id: StepId,
    /// Its build.
    pub build: BuildId,
    /// Its position in the build, from 0.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Its result, once finished.
    pub result: Option<BuildResult>,
    /// One line on what it does or did.
    pub description: String,
    /// Hidden from the default build view (Buildbot's `hideStepIf`).
    pub hidden: bool,
    /// Its links.
    pub urls: Vec<StepUrl>,
}

/// A step and its logs, for the build page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDetails {
    /// The step.
    #[serde(flatten)]
    pub step: Step,
    /// Its logs, in creation order.
    pub logs: Vec<LogInfo>,
}

/// A build with its steps, for `builds/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildDetails {
    /// The build.
    #[serde(flatten)]
    pub build: Build,
    /// Its steps, in order.
    pub steps: Vec<StepDetails>,
}

/// One line of the builders page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuilderSummary {
    /// The builder.
    pub name: String,
    /// How many builds it has had.
    pub builds: u64,
    /// Its latest build, maybe running.
    pub last_build: Option<Build>,
    /// Its latest finished build.
    pub last_finished: Option<Build>,
    /// How many of its requests wait in the queue.
    pub queued: u64,
}

/// What [`Store::mark_interrupted_builds`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    /// Builds that were running, now finished with the given result.
    pub builds: Vec<BuildId>,
    /// Requests put back in the queue.
    pub requeued: Vec<RequestId>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Its result.
    pub result: BuildResult,
    /// Its final description; `None` keeps the current one.
    pub description: Option<String>,
    /// Hide it from the default build view.
    pub hidden: bool,
}

/// A build's columns, in `build_from_row`'s order, with `$properties` as the last one.
macro_rules! build_cols {
    ($properties:literal) => {
        concat!(
            "id, request, builder, number, worker, lease, started_at, finished_at, \
             result, state_string, ",
            $properties
        )
    };
}

pub(crate) const BUILD_COLS: &str = build_cols!("properties");

/// [`BUILD_COLS`] with a JSON `null` in place of the properties.
const BUILD_COLS_WITHOUT_PROPERTIES: &str = build_cols!("'null'");

pub(crate) fn build_from_row(r: &Row<'_>) -> Result<Build> {
    Ok(Build {
        id: r.get(0)?,
        request: r.get(1)?,
        builder: r.get(2)?,
        number: r.get(3)?,
        worker: r.get(4)?,
        lease: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        result: r.get(8)?,
        state_string: r.get(9)?,
        properties: r.json(10)?,
    })
}

const STEP_COLS: &str =
    "id, build, number, name, started_at, finished_at, result, description, hidden, urls";

fn step_from_row(r: &Row<'_>) -> Result<Step> {
    Ok(Step {
        id: r.get(0)?,
        build: r.get(1)?,
        index: r.get(2)?,
        name: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        result: r.get(6)?,
        description: r.get(7)?,
        hidden: r.get(8)?,
        urls: r.json(9)?,
    })
}

/// Refuses a write about `build` unless `lease` is its lease and it is still running. Run
/// inside the write transaction, so the check and the write are one atomic step.
pub(crate) fn check_lease(tx: &Tx<'_>, build: BuildId, lease: Lease) -> Result<()> {
    let row: Option<(Lease, Option<Timestamp>)> = tx.query_opt(
        "SELECT lease, finished_at FROM builds WHERE id = ?1",
        &[&build],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match row {
        None => Err(Error::BuildNotFound(build)),
        Some((current, None)) if current == lease => Ok(()),
        Some(_) => Err(Error::StaleLease { build, lease }),
    }
}

/// The id of step `index` of `build`.
pub(crate) fn step_id(tx: &Tx<'_>, build: BuildId, index: u32) -> Result<StepId> {
    tx.query_opt(
        "SELECT id FROM steps WHERE build = ?1 AND number = ?2",
        &[&build, &index],
        |r| r.get(0),
    )?
    .ok_or(Error::StepNotFound { build, index })
}

fn get_build_row(tx: &Tx<'_>, id: BuildId) -> Result<Option<Build>> {
    tx.query_opt(
        &format!("SELECT {BUILD_COLS} FROM builds WHERE id = ?1"),
        &[&id],
        build_from_row,
    )
}

impl Store {
    /// Creates the build of a claimed request, numbered next in its builder, and returns
    /// its id and number. The request must be claimed with `lease` (the build then carries
    /// it), must not be merged into another, and must have no build running: a request
    /// never runs twice at once.
    pub async fn create_build(
        &self,
        request: RequestId,
        worker: &str,
        lease: Lease,
        now: Timestamp,
    ) -> Result<(BuildId, u32)> {
        let worker = worker.to_owned();
        self.write(move |tx| create_build_in(tx, request, &worker, lease, now))
            .await
    }

    /// One dispatch in one transaction: claims `requests[0]` with `lease`, merges the
    /// other requests into it, and creates its build ([`Store::claim_request`],
    /// [`Store::merge_request`], [`Store::create_build`]). If the claim or the build
    /// fails nothing is changed; a request that cannot be merged (taken meanwhile) is left
    /// as it is and returned with the reason, and the build runs without it.
    pub async fn start_build(
        &self,
        requests: Vec<RequestId>,
        worker: &str,
        lease: Lease,
        now: Timestamp,
    ) -> Result<StartedBuild> {
        let worker = worker.to_owned();
        self.write(move |tx| {
            let Some((&first, others)) = requests.split_first() else {
                return Err(Error::Invalid("a build without a request".into()));
            };
            claim_request_in(tx, first, lease, now)?;
            let not_merged = others
                .iter()
                .filter_map(|&other| {
                    merge_request_in(tx, other, first, now)
                        .err()
                        .map(|e| (other, e))
                })
                .collect();
            let (id, number) = create_build_in(tx, first, &worker, lease, now)?;
            Ok(StartedBuild {
                id,
                number,
                not_merged,
            })
        })
        .await
    }

    /// Replaces the build's properties.
    pub async fn set_build_properties(
        &self,
        build: BuildId,
        lease: Lease,
        properties: serde_json::Value,
    ) -> Result<()> {
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            tx.execute(
                "UPDATE builds SET properties = ?2 WHERE id = ?1",
                &[&build, &json_out(&properties)?],
            )?;
            Ok(())
        })
        .await
    }

    /// Sets the build's one-line state (`running pip install`).
    pub async fn set_build_state(&self, build: BuildId, lease: Lease, state: &str) -> Result<()> {
        let state = state.to_owned();
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            tx.execute(
                "UPDATE builds SET state_string = ?2 WHERE id = ?1",
                &[&build, &state],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that step `index` (from 0) of the build started.
    pub async fn start_step(
        &self,
        build: BuildId,
        lease: Lease,
        index: u32,
        name: &str,
        now: Timestamp,
    ) -> Result<StepId> {
        let name = name.to_owned();
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            let id: Option<StepId> = tx.query_opt(
                "INSERT INTO steps (build, number, name, started_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING RETURNING id",
                &[&build, &index, &name, &now],
                |r| r.get(0),
            )?;
            id.ok_or(Error::StepExists { build, index })
        })
        .await
    }

    /// Sets a running step's description.
    pub async fn set_step_description(
        &self,
        build: BuildId,
        lease: Lease,
        index: u32,
        description: &str,
    ) -> Result<()> {
        let description = description.to_owned();
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            let step = step_id(tx, build, index)?;
            tx.execute(
                "UPDATE steps SET description = ?2 WHERE id = ?1",
                &[&step, &description],
            )?;
            Ok(())
        })
        .await
    }

    /// Adds a link to a step.
    pub async fn add_step_url(
        &self,
        build: BuildId,
        lease: Lease,
        index: u32,
        url: StepUrl,
    ) -> Result<()> {
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            let step = step_id(tx, build, index)?;
            let mut urls: Vec<StepUrl> =
                tx.query_one("SELECT urls FROM steps WHERE id = ?1", &[&step], |r| {
                    r.json(0)
                })?;
            urls.push(url.clone());
            tx.execute(
                "UPDATE steps SET urls = ?2 WHERE id = ?1",
                &[&step, &json_out(&urls)?],
            )?;
            Ok(())
        })
        .await
    }

    /// Records how step `index` ended. Refused with [`Error::StaleLease`] when `lease` is
    /// not the build's current lease or the build is over: a worker that comes back after
    /// its build was interrupted cannot rewrite history.
    pub async fn finish_step(
        &self,
        build: BuildId,
        lease: Lease,
        index: u32,
        outcome: StepOutcome,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            let n = tx.execute(
                "UPDATE steps SET finished_at = ?3, result = ?4,
                     description = COALESCE(?5, description), hidden = ?6
                 WHERE build = ?1 AND number = ?2",
                &[
                    &build,
                    &index,
                    &now,
                    &outcome.result,
                    &outcome.description,
                    &outcome.hidden,
                ],
            )?;
            if n == 0 {
                return Err(Error::StepNotFound { build, index });
            }
            Ok(())
        })
        .await
    }

    /// Finishes the build and, in the same transaction, its request and those merged into
    /// it: completed with `result`, or back in the queue when `result` is
    /// [`BuildResult::Retry`]. Steps still open are closed with the same result; logs still
    /// open are marked finished (their writers' unflushed output is lost, so finish the
    /// writers first).
    pub async fn finish_build(
        &self,
        build: BuildId,
        lease: Lease,
        result: BuildResult,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| {
            check_lease(tx, build, lease)?;
            close_build(tx, build, result, None, now)?;
            let request: RequestId =
                tx.query_one("SELECT request FROM builds WHERE id = ?1", &[&build], |r| {
                    r.get(0)
                })?;
            match result {
                BuildResult::Retry => requeue_with(tx, request),
                _ => complete_with(tx, request, result, now),
            }
        })
        .await
    }

    /// At master start: finishes every build a previous run left unfinished with `result`
    /// ([`BuildResult::Retry`] or [`BuildResult::Exception`]), closes their steps and
    /// logs, and puts every claimed request back in the queue (a claim belongs to a
    /// dispatch of the previous run). Nothing is lost; the old leases are dead, so a worker
    /// of the previous run cannot write any more.
    ///
    /// Assumes one master per database (also on PostgreSQL: a second master starting
    /// would interrupt the first one's builds).
    pub async fn mark_interrupted_builds(
        &self,
        result: BuildResult,
        now: Timestamp,
    ) -> Result<Interrupted> {
        self.write(move |tx| {
            let builds: Vec<BuildId> = tx.query_all(
                "SELECT id FROM builds WHERE finished_at IS NULL ORDER BY id",
                &[],
                |r| r.get(0),
            )?;
            for &b in &builds {
                close_build(tx, b, result, Some("interrupted: the master stopped"), now)?;
            }
            let requeued: Vec<RequestId> = tx.query_all(
                "UPDATE build_requests
                 SET state = 'queued', claimed_by = NULL, claimed_at = NULL, merged_into = NULL
                 WHERE state = 'claimed' RETURNING id",
                &[],
                |r| r.get(0),
            )?;
            // Logs of builds finished normally but whose writer never finished.
            tx.execute(
                "UPDATE logs SET finished = TRUE WHERE finished = FALSE",
                &[],
            )?;
            let mut requeued = requeued;
            requeued.sort();
            Ok(Interrupted { builds, requeued })
        })
        .await
    }

    /// A build with its steps and their logs.
    pub async fn get_build(&self, id: BuildId) -> Result<Option<BuildDetails>> {
        self.read(move |tx| {
            let Some(build) = get_build_row(tx, id)? else {
                return Ok(None);
            };
            let steps: Vec<Step> = tx.query_all(
                &format!("SELECT {STEP_COLS} FROM steps WHERE build = ?1 ORDER BY number"),
                &[&id],
                step_from_row,
            )?;
            let mut logs: HashMap<StepId, Vec<LogInfo>> = HashMap::new();
            let cols = LOG_COLS
                .split(", ")
                .map(|c| format!("l.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            tx.query_each(
                &format!(
                    "SELECT {cols} FROM logs l JOIN steps s ON s.id = l.step
                     WHERE s.build = ?1 ORDER BY l.id"
                ),
                &[&id],
                |r| {
                    let log = log_from_row(r)?;
                    logs.entry(log.step).or_default().push(log);
                    Ok(true)
                },
            )?;
            let steps = steps
                .into_iter()
                .map(|step| StepDetails {
                    logs: logs.remove(&step.id).unwrap_or_default(),
                    step,
                })
                .collect();
            Ok(Some(BuildDetails { build, steps }))
        })
        .await
    }

    /// The build `number` of `builder`.
    pub async fn find_build(&self, builder: &str, number: u32) -> Result<Option<Build>> {
        let builder = builder.to_owned();
        self.read(move |tx| {
            tx.query_opt(
                &format!("SELECT {BUILD_COLS} FROM builds WHERE builder = ?1 AND number = ?2"),
                &[&builder, &number],
                build_from_row,
            )
        })
        .await
    }

    /// A page of builds, newest first: of one builder or of all, with ids below `before`
    /// (the last id of the previous page), at most `limit` (capped at [`MAX_PAGE`]). Keyset
    /// pagination on an index, so page 1,000 costs what page 1 does.
    pub async fn list_builds(
        &self,
        builder: Option<&str>,
        before: Option<BuildId>,
        limit: u32,
        properties: Properties,
    ) -> Result<Vec<Build>> {
        let cols = match properties {
            Properties::Read => BUILD_COLS,
            Properties::Skipped => BUILD_COLS_WITHOUT_PROPERTIES,
        };
        let builder = builder.map(str::to_owned);
        let limit = limit.min(MAX_PAGE);
        // u64::MAX does not fit a database integer; i64::MAX is above every id.
        let before = before.map_or(i64::MAX, |b| i64::try_from(b.0).unwrap_or(i64::MAX));
        self.read(move |tx| match builder {
            Some(builder) => tx.query_all(
                &format!(
                    "SELECT {cols} FROM builds WHERE builder = ?1 AND id < ?2
                         ORDER BY id DESC LIMIT ?3"
                ),
                &[&builder, &before, &limit],
                build_from_row,
            ),
            None => tx.query_all(
                &format!("SELECT {cols} FROM builds WHERE id < ?1 ORDER BY id DESC LIMIT ?2"),
                &[&before, &limit],
                build_from_row,
            ),
        })
        .await
    }

    /// The builds made for a request (also those of requests merged into it ride on the
    /// main request's builds), oldest first.
    pub async fn builds_of_request(&self, request: RequestId) -> Result<Vec<BuildId>> {
        self.read(move |tx| {
            tx.query_all(
                "SELECT id FROM builds WHERE request = ?1 ORDER BY id",
                &[&request],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Builds not finished yet, oldest first.
    pub async fn running_builds(&self) -> Result<Vec<Build>> {
        self.read(|tx| {
            tx.query_all(
                &format!("SELECT {BUILD_COLS} FROM builds WHERE finished_at IS NULL ORDER BY id"),
                &[],
                build_from_row,
            )
        })
        .await
    }

    /// Every builder that has had a build or has a queued request, by name, with its latest
    /// builds and queue length. Reads a few rows per builder, whatever the history's size.
    pub async fn builders_summary(&self) -> Result<Vec<BuilderSummary>> {
        self.read(|tx| {
            let mut out: BTreeMap<String, BuilderSummary> = BTreeMap::new();
            let known: Vec<(String, u32, Option<BuildId>)> = tx.query_all(
                "SELECT name, next_number, last_build FROM builders",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let last_finished_sql = format!(
                "SELECT {BUILD_COLS} FROM builds WHERE builder = ?1 AND finished_at IS NOT NULL
                 ORDER BY id DESC LIMIT 1"
            );
            for (name, next, last) in known {
                let last_build = match last {
                    Some(id) => get_build_row(tx, id)?,
                    None => None,
                };
                let last_finished = tx.query_opt(&last_finished_sql, &[&name], build_from_row)?;
                out.insert(
                    name.clone(),
                    BuilderSummary {
                        name,
                        builds: u64::from(next.saturating_sub(1)),
                        last_build,
                        last_finished,
                        queued: 0,
                    },
                );
            }
            let rows: Vec<(String, u64)> = tx.query_all(
                "SELECT builder, COUNT(*) FROM build_requests WHERE state = 'queued' GROUP BY builder",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (name, n) in rows {
                out.entry(name.clone())
                    .or_insert_with(|| BuilderSummary {
                        name,
                        builds: 0,
                        last_build: None,
                        last_finished: None,
                        queued: 0,
                    })
                    .queued = n;
            }
            Ok(out.into_values().collect())
        })
        .await
    }
}

/// Finishes a build row, its open steps and its open logs.
fn close_build(
    tx: &Tx<'_>,
    build: BuildId,
    result: BuildResult,
    state: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "UPDATE steps SET finished_at = ?2, result = ?3 WHERE build = ?1 AND finished_at IS NULL",
        &[&build, &now, &result],
    )?;
    tx.execute(
        "UPDATE logs SET finished = TRUE
         WHERE finished = FALSE AND step IN (SELECT id FROM steps WHERE build = ?1)",
        &[&build],
    )?;
    tx.execute(
        "UPDATE builds SET finished_at = ?2, result = ?3, state_string = COALESCE(?4, state_string)
         WHERE id = ?1",
        &[&build, &now, &result, &state],
    )?;
    Ok(())
}

/// A build created by [`Store::start_build`].
#[derive(Debug)]
pub struct StartedBuild {
    /// The build's id.
    pub id: BuildId,
    /// Its number in its builder.
    pub number: u32,
    /// The requests that could not ride along, with the reason.
    pub not_merged: Vec<(RequestId, Error)>,
}

/// [`Store::create_build`] inside a write transaction.
fn create_build_in(
    tx: &Tx<'_>,
    request: RequestId,
    worker: &str,
    lease: Lease,
    now: Timestamp,
) -> Result<(BuildId, u32)> {
    let req = require_request(tx, request)?;
    if req.state != RequestState::Claimed {
        return Err(Error::RequestState {
            id: request,
            state: req.state,
            expected: "claimed",
        });
    }
    if req.claimed_by != Some(lease) {
        return Err(Error::RequestLease {
            id: request,
            claimed: req.claimed_by,
            presented: lease,
        });
    }
    if let Some(main) = req.merged_into {
        return Err(Error::Invalid(format!(
            "build request {request} rides with request {main}: build that one"
        )));
    }
    if let Some(build) = running_build(tx, request)? {
        return Err(Error::BuildRunning { id: request, build });
    }
    tx.execute(
        "INSERT INTO builders (name) VALUES (?1) ON CONFLICT DO NOTHING",
        &[&req.builder],
    )?;
    let number: u32 = tx.query_one(
        "UPDATE builders SET next_number = next_number + 1 WHERE name = ?1
         RETURNING next_number - 1",
        &[&req.builder],
        |r| r.get(0),
    )?;
    let id: BuildId = tx.query_one(
        "INSERT INTO builds (request, builder, number, worker, lease, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        &[&request, &req.builder, &number, &worker, &lease, &now],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE builders SET last_build = ?2 WHERE name = ?1",
        &[&req.builder, &id],
    )?;
    Ok((id, number))
}
