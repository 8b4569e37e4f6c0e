//! Changes, pollers' last seen revisions, and scheduler timers. A poll's new changes and its
//! new revision are stored in one transaction, as are a timer's firing and the requests it
//! submits: a restart in between can neither lose nor repeat them.

use crate::db::{Row, Tx};
use crate::error::{Error, Result};
use crate::requests::insert_request;
use crate::types::{ChangeId, RequestId, Timestamp};
use crate::{NewRequest, Store};
use serde::Serialize;
use std::collections::BTreeMap;

/// A change to store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewChange {
    /// The repository URL (after rewriting, as the planner's pollers have it).
    pub repository: String,
    /// The branch (empty where the VCS has none).
    pub branch: String,
    /// The revision id.
    pub revision: String,
    /// Who committed it.
    pub author: String,
    /// When it was committed, if the VCS says.
    pub committed_at: Option<Timestamp>,
    /// The commit message.
    pub comments: String,
    /// Files touched, in the VCS's order.
    pub files: Vec<String>,
    /// Project (Buildbot's change attribute; may be empty).
    pub project: String,
    /// Category (may be empty).
    pub category: String,
    /// The poller (its work directory) or webhook that saw it.
    pub source: String,
    /// When abo saw it.
    pub received_at: Timestamp,
}

impl NewChange {
    /// The change as stored under `id`.
    pub fn stored(self, id: ChangeId) -> Change {
        Change {
            id,
            repository: self.repository,
            branch: self.branch,
            revision: self.revision,
            author: self.author,
            committed_at: self.committed_at,
            comments: self.comments,
            files: self.files,
            project: self.project,
            category: self.category,
            source: self.source,
            received_at: self.received_at,
        }
    }
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its id.
    pub id: ChangeId,
    /// The repository.
    pub repository: String,
    /// The branch.
    pub branch: String,
    /// The revision.
    pub revision: String,
    /// Who committed it.
    pub author: String,
    /// When it was committed.
    pub committed_at: Option<Timestamp>,
    /// The commit message.
    pub comments: String,
    /// Files touched.
    pub files: Vec<String>,
    /// Project.
    pub project: String,
    /// Category.
    pub category: String,
    /// Who saw it.
    pub source: String,
    /// When abo saw it.
    pub received_at: Timestamp,
}

/// A scheduler's pending timer: when it fires and the changes it has gathered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchedulerTimer {
    /// The scheduler's name.
    pub scheduler: String,
    /// When it fires.
    pub fires_at: Timestamp,
    /// The changes waiting for it, by id.
    pub changes: Vec<ChangeId>,
}

/// The poller that also watches a pushed branch, and the branch head after the push: a
/// push recorded with it moves the poller's last seen revision, so that the poller does not
/// report the same commits again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerMark {
    /// The poller's name (its work directory, `gitpoller/<sha1>`).
    pub poller: String,
    /// Its state key for the branch (the branch name; empty for bzr).
    pub branch: String,
    /// The branch head after the push.
    pub revision: String,
}

/// What [`Store::record_push`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRecord {
    /// The changes stored, in the order given (those already known are left out).
    pub stored: Vec<(ChangeId, NewChange)>,
    /// Changes left out because one with the same repository, branch and revision exists
    /// (a redelivered webhook, or commits the poller already reported).
    pub known: usize,
    /// The poller had already seen the pushed head: nothing was stored.
    pub already_polled: bool,
}

pub(crate) const CHANGE_COLS: &str =
    "id, repository, branch, revision, author, committed_at, comments, \
                           project, category, source, received_at";

pub(crate) fn change_from_row(r: &Row<'_>) -> Result<Change> {
    Ok(Change {
        id: r.get(0)?,
        repository: r.get(1)?,
        branch: r.get(2)?,
        revision: r.get(3)?,
        author: r.get(4)?,
        committed_at: r.get(5)?,
        comments: r.get(6)?,
        files: Vec::new(),
        project: r.get(7)?,
        category: r.get(8)?,
        source: r.get(9)?,
        received_at: r.get(10)?,
    })
}

fn insert_change(tx: &Tx<'_>, c: &NewChange) -> Result<ChangeId> {
    if c.repository.is_empty() || c.revision.is_empty() {
        return Err(Error::Invalid(
            "a change needs a repository and a revision".into(),
        ));
    }
    let id: ChangeId = tx.query_one(
        "INSERT INTO changes (repository, branch, revision, author, committed_at, comments,
                              project, category, source, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        &[
            &c.repository,
            &c.branch,
            &c.revision,
            &c.author,
            &c.committed_at,
            &c.comments,
            &c.project,
            &c.category,
            &c.source,
            &c.received_at,
        ],
        |r| r.get(0),
    )?;
    for (i, path) in c.files.iter().enumerate() {
        tx.execute(
            "INSERT INTO change_files (change, position, path) VALUES (?1, ?2, ?3)",
            &[&id, &(i as u64), path],
        )?;
    }
    Ok(id)
}

/// Fills in the files of `changes`.
fn load_files(tx: &Tx<'_>, changes: &mut [Change]) -> Result<()> {
    for c in changes {
        c.files = tx.query_all(
            "SELECT path FROM change_files WHERE change = ?1 ORDER BY position",
            &[&c.id],
            |r| r.get(0),
        )?;
    }
    Ok(())
}

fn set_revision(
    tx: &Tx<'_>,
    poller: &str,
    branch: &str,
    revision: &str,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO poller_state (poller, branch, revision, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (poller, branch) DO UPDATE SET revision = excluded.revision,
                                                    updated_at = excluded.updated_at",
        &[&poller, &branch, &revision, &now],
    )?;
    Ok(())
}

/// The first stored change of that repository, branch and revision, if any.
fn known_change(tx: &Tx<'_>, c: &NewChange) -> Result<Option<ChangeId>> {
    tx.query_opt(
        "SELECT id FROM changes
         WHERE repository = ?1 AND branch = ?2 AND revision = ?3
         ORDER BY id LIMIT 1",
        &[&c.repository, &c.branch, &c.revision],
        |r| r.get(0),
    )
}

impl Store {
    /// Stores a change.
    pub async fn add_change(&self, change: NewChange) -> Result<ChangeId> {
        self.write(move |tx| insert_change(tx, &change)).await
    }

    /// Stores a change unless one of the same repository, branch and revision is stored
    /// already (a hook that ran twice, a commit a poller or webhook reported): the id, and
    /// whether it is new.
    pub async fn add_change_once(&self, change: NewChange) -> Result<(ChangeId, bool)> {
        self.write(move |tx| {
            let known = known_change(tx, &change)?;
            match known {
                Some(id) => Ok((id, false)),
                None => insert_change(tx, &change).map(|id| (id, true)),
            }
        })
        .await
    }

    /// Stores what one poll of `poller` found on `branch`: the new changes and the revision
    /// now last seen, in one transaction. A change already stored (same repository, branch
    /// and revision: a webhook reported it while this poll ran) is not stored again: its
    /// place in the answer is `None`.
    pub async fn record_poll(
        &self,
        poller: &str,
        branch: &str,
        revision: &str,
        changes: Vec<NewChange>,
        now: Timestamp,
    ) -> Result<Vec<Option<ChangeId>>> {
        let (poller, branch, revision) =
            (poller.to_owned(), branch.to_owned(), revision.to_owned());
        self.write(move |tx| {
            let ids = changes
                .iter()
                .map(|c| {
                    if known_change(tx, c)?.is_some() {
                        Ok(None)
                    } else {
                        insert_change(tx, c).map(Some)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            set_revision(tx, &poller, &branch, &revision, now)?;
            Ok(ids)
        })
        .await
    }

    /// Stores the changes of a push (a forge webhook), in one transaction: changes whose
    /// repository, branch and revision are already stored are left out, and with `mark` the
    /// poller watching the same branch has its last seen revision moved to the pushed head,
    /// unless it has never polled (its first poll reports nothing anyway) or has already seen
    /// that head (then nothing is stored: the poller reported these commits).
    pub async fn record_push(
        &self,
        changes: Vec<NewChange>,
        mark: Option<PollerMark>,
        now: Timestamp,
    ) -> Result<PushRecord> {
        self.write(move |tx| {
            let mut record = PushRecord::default();
            if let Some(m) = &mark {
                let seen: Option<String> = tx.query_opt(
                    "SELECT revision FROM poller_state WHERE poller = ?1 AND branch = ?2",
                    &[&m.poller, &m.branch],
                    |r| r.get(0),
                )?;
                if seen.as_deref() == Some(m.revision.as_str()) {
                    record.already_polled = true;
                    return Ok(record);
                }
                let polled: bool = tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM poller_state WHERE poller = ?1)",
                    &[&m.poller],
                    |r| r.get(0),
                )?;
                if polled {
                    set_revision(tx, &m.poller, &m.branch, &m.revision, now)?;
                }
            }
            for c in &changes {
                if known_change(tx, c)?.is_some() {
                    record.known += 1;
                    continue;
                }
                let id = insert_change(tx, c)?;
                record.stored.push((id, c.clone()));
            }
            Ok(record)
        })
        .await
    }

    /// The build requests each of `changes` is carried by, by change (changes no request
    /// carries are absent).
    pub async fn requests_of_changes(
        &self,
        changes: Vec<ChangeId>,
    ) -> Result<BTreeMap<ChangeId, Vec<RequestId>>> {
        self.read(move |tx| {
            let mut out = BTreeMap::new();
            for c in changes {
                let requests: Vec<RequestId> = tx.query_all(
                    "SELECT request FROM build_request_changes WHERE change = ?1 ORDER BY request",
                    &[&c],
                    |r| r.get(0),
                )?;
                if !requests.is_empty() {
                    out.insert(c, requests);
                }
            }
            Ok(out)
        })
        .await
    }

    /// One change, with its files.
    pub async fn get_change(&self, id: ChangeId) -> Result<Option<Change>> {
        self.read(move |tx| {
            let Some(c) = tx.query_opt(
                &format!("SELECT {CHANGE_COLS} FROM changes WHERE id = ?1"),
                &[&id],
                change_from_row,
            )?
            else {
                return Ok(None);
            };
            let mut one = [c];
            load_files(tx, &mut one)?;
            let [c] = one;
            Ok(Some(c))
        })
        .await
    }

    /// A page of changes, newest first, with ids below `before`, at most `limit` (capped
    /// like builds).
    pub async fn list_changes(&self, before: Option<ChangeId>, limit: u32) -> Result<Vec<Change>> {
        let limit = limit.min(crate::builds::MAX_PAGE);
        let before = before.map_or(i64::MAX, |b| i64::try_from(b.0).unwrap_or(i64::MAX));
        self.read(move |tx| {
            let mut changes: Vec<Change> = tx.query_all(
                &format!(
                    "SELECT {CHANGE_COLS} FROM changes WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
                ),
                &[&before, &limit],
                change_from_row,
            )?;
            load_files(tx, &mut changes)?;
            Ok(changes)
        })
        .await
    }

    /// The changes a build request carries, oldest first.
    pub async fn request_changes(&self, request: RequestId) -> Result<Vec<Change>> {
        self.read(move |tx| {
            let mut changes: Vec<Change> = tx.query_all(
                &format!(
                    "SELECT {} FROM changes c JOIN build_request_changes r ON r.change = c.id
                     WHERE r.request = ?1 ORDER BY c.id",
                    CHANGE_COLS
                        .split(", ")
                        .map(|c| format!("c.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&request],
                change_from_row,
            )?;
            load_files(tx, &mut changes)?;
            Ok(changes)
        })
        .await
    }

    /// Deletes a change no request or timer refers to (pruning old history); refused with
    /// a database error (a foreign key: [`Error::is_constraint_violation`]) otherwise.
    /// Returns whether it existed.
    pub async fn delete_change(&self, id: ChangeId) -> Result<bool> {
        self.write(move |tx| Ok(tx.execute("DELETE FROM changes WHERE id = ?1", &[&id])? == 1))
            .await
    }

    /// The revision `poller` last saw on `branch`.
    pub async fn poller_revision(&self, poller: &str, branch: &str) -> Result<Option<String>> {
        let (poller, branch) = (poller.to_owned(), branch.to_owned());
        self.read(move |tx| {
            tx.query_opt(
                "SELECT revision FROM poller_state WHERE poller = ?1 AND branch = ?2",
                &[&poller, &branch],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Every branch's last seen revision for `poller`, by branch.
    pub async fn poller_state(&self, poller: &str) -> Result<BTreeMap<String, String>> {
        let poller = poller.to_owned();
        self.read(move |tx| {
            let mut out = BTreeMap::new();
            tx.query_each(
                "SELECT branch, revision FROM poller_state WHERE poller = ?1",
                &[&poller],
                |r| {
                    out.insert(r.get(0)?, r.get(1)?);
                    Ok(true)
                },
            )?;
            Ok(out)
        })
        .await
    }

    /// Sets the revision `poller` last saw on `branch` (without changes: a first poll).
    pub async fn set_poller_revision(
        &self,
        poller: &str,
        branch: &str,
        revision: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (poller, branch, revision) =
            (poller.to_owned(), branch.to_owned(), revision.to_owned());
        self.write(move |tx| set_revision(tx, &poller, &branch, &revision, now))
            .await
    }

    /// Sets `scheduler`'s timer: when it fires and the changes gathered so far (replacing
    /// what was stored).
    pub async fn set_scheduler_timer(
        &self,
        scheduler: &str,
        fires_at: Timestamp,
        changes: Vec<ChangeId>,
    ) -> Result<()> {
        let scheduler = scheduler.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO scheduler_timers (scheduler, fires_at) VALUES (?1, ?2)
                 ON CONFLICT (scheduler) DO UPDATE SET fires_at = excluded.fires_at",
                &[&scheduler, &fires_at],
            )?;
            tx.execute(
                "DELETE FROM scheduler_timer_changes WHERE scheduler = ?1",
                &[&scheduler],
            )?;
            for c in &changes {
                tx.execute(
                    "INSERT INTO scheduler_timer_changes (scheduler, change) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                    &[&scheduler, c],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Every pending timer, by scheduler name.
    pub async fn scheduler_timers(&self) -> Result<Vec<SchedulerTimer>> {
        self.read(|tx| {
            let mut timers: BTreeMap<String, SchedulerTimer> = BTreeMap::new();
            let rows: Vec<(String, Timestamp)> = tx.query_all(
                "SELECT scheduler, fires_at FROM scheduler_timers",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (scheduler, fires_at) in rows {
                timers.insert(
                    scheduler.clone(),
                    SchedulerTimer {
                        scheduler,
                        fires_at,
                        changes: Vec::new(),
                    },
                );
            }
            let rows: Vec<(String, ChangeId)> = tx.query_all(
                "SELECT scheduler, change FROM scheduler_timer_changes ORDER BY scheduler, change",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (scheduler, change) in rows {
                if let Some(t) = timers.get_mut(&scheduler) {
                    t.changes.push(change);
                }
            }
            Ok(timers.into_values().collect())
        })
        .await
    }

    /// Removes `scheduler`'s timer without submitting anything; returns whether it existed.
    pub async fn delete_scheduler_timer(&self, scheduler: &str) -> Result<bool> {
        let scheduler = scheduler.to_owned();
        self.write(move |tx| {
            Ok(tx.execute(
                "DELETE FROM scheduler_timers WHERE scheduler = ?1",
                &[&scheduler],
            )? == 1)
        })
        .await
    }

    /// Fires `scheduler`'s timer: removes it and submits `requests`, in one transaction.
    pub async fn fire_scheduler_timer(
        &self,
        scheduler: &str,
        requests: Vec<NewRequest>,
    ) -> Result<Vec<RequestId>> {
        let scheduler = scheduler.to_owned();
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM scheduler_timers WHERE scheduler = ?1",
                &[&scheduler],
            )?;
            requests.iter().map(|r| insert_request(tx, r)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod push_tests {
    use super::*;

    fn change(rev: &str) -> NewChange {
        NewChange {
            repository: "https://forge.example/odoo.git".into(),
            branch: "16.0".into(),
            revision: rev.into(),
            source: "webhook:github".into(),
            received_at: Timestamp(1000),
            ..NewChange::default()
        }
    }

    fn mark(rev: &str) -> Option<PollerMark> {
        Some(PollerMark {
            poller: "gitpoller/abc".into(),
            branch: "16.0".into(),
            revision: rev.into(),
        })
    }

    #[tokio::test]
    async fn pushes_move_a_polled_poller_and_skip_what_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let now = Timestamp(2000);
        // A poller that never polled keeps no state: its first poll reports nothing.
        let r = s
            .record_push(vec![change("aa01"), change("aa02")], mark("aa02"), now)
            .await
            .unwrap();
        assert_eq!(r.stored.len(), 2);
        assert!(!r.already_polled);
        assert_eq!(
            s.poller_revision("gitpoller/abc", "16.0").await.unwrap(),
            None
        );
        // Redelivered: nothing new.
        let r = s
            .record_push(vec![change("aa01"), change("aa02")], None, now)
            .await
            .unwrap();
        assert_eq!((r.stored.len(), r.known), (0, 2));
        // A poller that has polled moves to the pushed head...
        s.set_poller_revision("gitpoller/abc", "16.0", "aa02", now)
            .await
            .unwrap();
        let r = s
            .record_push(vec![change("aa03")], mark("aa03"), now)
            .await
            .unwrap();
        assert_eq!(r.stored.len(), 1);
        assert_eq!(
            s.poller_revision("gitpoller/abc", "16.0").await.unwrap(),
            Some("aa03".into())
        );
        // ...and a push the poller has already seen stores nothing.
        let r = s
            .record_push(vec![change("aa04")], mark("aa03"), now)
            .await
            .unwrap();
        assert!(r.already_polled);
        assert!(r.stored.is_empty());
        let ids: Vec<ChangeId> = s
            .list_changes(None, 10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(s.requests_of_changes(ids).await.unwrap().is_empty());
    }
}
