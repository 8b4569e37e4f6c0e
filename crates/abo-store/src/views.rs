//! Read-only queries for the web status pages. Each reads a bounded number of rows through
//! an index (keyset pages, per-builder latest rows, per-id lookups), so a page costs the
//! same with 100 builds or 100,000 (migration 0005 adds the indexes they need).

use crate::builds::{build_from_row, Build, BUILD_COLS};
use crate::changes::{change_from_row, Change, CHANGE_COLS};
use crate::error::Result;
use crate::types::{BuildId, ChangeId};
use crate::Store;
use serde::Serialize;
use std::collections::BTreeMap;

/// Most ids one batched lookup accepts: the pages ask for one page's worth.
const MAX_IDS: usize = 1000;

/// A cheap fingerprint of what the status pages show: it changes when a build, step or
/// request is created or finishes. The live-update stream compares successive stamps
/// instead of re-rendering pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct StatusStamp {
    /// The newest build id.
    pub last_build: u64,
    /// Builds not finished.
    pub running_builds: u64,
    /// The newest step id.
    pub last_step: u64,
    /// Steps not finished.
    pub running_steps: u64,
    /// The newest request id.
    pub last_request: u64,
    /// Requests waiting in the queue.
    pub queued: u64,
    /// The newest change id.
    pub last_change: u64,
}

fn prefixed(cols: &str, table: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The [`StatusStamp`] now: seven index lookups (primary-key maxima and partial indexes
    /// as small as what runs and waits).
    pub async fn status_stamp(&self) -> Result<StatusStamp> {
        self.read(|tx| {
            tx.query_one(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM builds),
                        (SELECT COUNT(*) FROM builds WHERE finished_at IS NULL),
                        (SELECT COALESCE(MAX(id), 0) FROM steps),
                        (SELECT COUNT(*) FROM steps WHERE finished_at IS NULL),
                        (SELECT COALESCE(MAX(id), 0) FROM build_requests),
                        (SELECT COUNT(*) FROM build_requests WHERE state = 'queued'),
                        (SELECT COALESCE(MAX(id), 0) FROM changes)",
                &[],
                |r| {
                    Ok(StatusStamp {
                        last_build: r.get(0)?,
                        running_builds: r.get(1)?,
                        last_step: r.get(2)?,
                        running_steps: r.get(3)?,
                        last_request: r.get(4)?,
                        queued: r.get(5)?,
                        last_change: r.get(6)?,
                    })
                },
            )
        })
        .await
    }

    /// The changes each build ran for: those of its request and of the requests merged
    /// into it, oldest first (without their files). At most [`MAX_IDS`] builds are looked
    /// up; each costs two index lookups.
    pub async fn changes_of_builds(
        &self,
        builds: Vec<BuildId>,
    ) -> Result<BTreeMap<BuildId, Vec<Change>>> {
        self.read(move |tx| {
            let mut out = BTreeMap::new();
            let sql = format!(
                "SELECT {} FROM changes c WHERE c.id IN (
                     SELECT x.change FROM builds b
                     JOIN build_request_changes x ON x.request = b.request
                     WHERE b.id = ?1
                     UNION
                     SELECT x.change FROM builds b
                     JOIN build_requests r ON r.merged_into = b.request
                     JOIN build_request_changes x ON x.request = r.id
                     WHERE b.id = ?1)
                 ORDER BY c.id",
                prefixed(CHANGE_COLS, "c")
            );
            for id in builds.into_iter().take(MAX_IDS) {
                let changes: Vec<Change> = tx.query_all(&sql, &[&id], change_from_row)?;
                if !changes.is_empty() {
                    out.insert(id, changes);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The builds each change caused (through the requests that carry it, merged or not),
    /// oldest first. At most [`MAX_IDS`] changes are looked up.
    pub async fn builds_of_changes(
        &self,
        changes: Vec<ChangeId>,
    ) -> Result<BTreeMap<ChangeId, Vec<Build>>> {
        self.read(move |tx| {
            let mut out = BTreeMap::new();
            let sql = format!(
                "SELECT {} FROM build_request_changes x
                 JOIN build_requests r ON r.id = x.request
                 JOIN builds b ON b.request = COALESCE(r.merged_into, r.id)
                 WHERE x.change = ?1 ORDER BY b.id LIMIT 100",
                prefixed(BUILD_COLS, "b")
            );
            for id in changes.into_iter().take(MAX_IDS) {
                let builds: Vec<Build> = tx.query_all(&sql, &[&id], build_from_row)?;
                if !builds.is_empty() {
                    out.insert(id, builds);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The descriptions of the steps of each build that report test counts (`N tests, ...`,
    /// as the log analysis writes them), by build and step index.
    pub async fn test_step_descriptions(
        &self,
        builds: Vec<BuildId>,
    ) -> Result<BTreeMap<BuildId, Vec<String>>> {
        self.read(move |tx| {
            let mut out: BTreeMap<BuildId, Vec<String>> = BTreeMap::new();
            for id in builds.into_iter().take(MAX_IDS) {
                let found: Vec<String> = tx.query_all(
                    "SELECT description FROM steps WHERE build = ?1 AND description LIKE '%tests,%'
                     ORDER BY number",
                    &[&id],
                    |r| r.get(0),
                )?;
                if !found.is_empty() {
                    out.insert(id, found);
                }
            }
            Ok(out)
        })
        .await
    }

    /// A page of changes, newest first, with ids below `before`: of one repository or of
    /// all, at most `limit` (capped like builds). Without their files.
    pub async fn changes_page(
        &self,
        repository: Option<&str>,
        before: Option<ChangeId>,
        limit: u32,
    ) -> Result<Vec<Change>> {
        let repository = repository.map(str::to_owned);
        let limit = limit.min(crate::builds::MAX_PAGE);
        let before = before.map_or(i64::MAX, |b| i64::try_from(b.0).unwrap_or(i64::MAX));
        self.read(move |tx| match repository {
            Some(repo) => tx.query_all(
                &format!(
                    "SELECT {CHANGE_COLS} FROM changes WHERE repository = ?1 AND id < ?2
                         ORDER BY id DESC LIMIT ?3"
                ),
                &[&repo, &before, &limit],
                change_from_row,
            ),
            None => tx.query_all(
                &format!(
                    "SELECT {CHANGE_COLS} FROM changes WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
                ),
                &[&before, &limit],
                change_from_row,
            ),
        })
        .await
    }

    /// How many of `builder`'s requests wait in the queue (a partial index as small as the
    /// queue).
    pub async fn queued_count(&self, builder: &str) -> Result<u64> {
        let builder = builder.to_owned();
        self.read(move |tx| {
            tx.query_one(
                "SELECT COUNT(*) FROM build_requests WHERE state = 'queued' AND builder = ?1",
                &[&builder],
                |r| r.get(0),
            )
        })
        .await
    }

    /// The latest finished build of each builder named (through the partial index of
    /// finished builds: one row each, however many builds run).
    pub async fn latest_finished_builds(
        &self,
        builders: Vec<String>,
    ) -> Result<BTreeMap<String, Build>> {
        self.read(move |tx| {
            let mut out = BTreeMap::new();
            let sql = format!(
                "SELECT {BUILD_COLS} FROM builds WHERE builder = ?1 AND finished_at IS NOT NULL
                 ORDER BY id DESC LIMIT 1"
            );
            for name in builders {
                let found: Option<Build> = tx.query_opt(&sql, &[&name], build_from_row)?;
                if let Some(b) = found {
                    out.insert(name, b);
                }
            }
            Ok(out)
        })
        .await
    }
}
