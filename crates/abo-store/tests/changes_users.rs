//! Changes, poller state, scheduler timers, users and settings.

mod common;

use abo_store::{ChangeId, Error, NewChange, NewRequest, RequestState};
use common::{store_on, t, Backend, TestDb};

fn change(rev: &str, files: &[&str]) -> NewChange {
    NewChange {
        repository: "https://example.org/odoo.git".into(),
        branch: "16.0".into(),
        revision: rev.into(),
        author: "Alice <a@example.org>".into(),
        committed_at: Some(t(100)),
        comments: format!("commit {rev}\n\nbody"),
        files: files.iter().map(|f| f.to_string()).collect(),
        project: "odoo".into(),
        category: String::new(),
        source: "/srv/master/pollers/odoo".into(),
        received_at: t(200),
    }
}

async fn a_change_sent_twice_is_stored_once(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let (a, new) = s.add_change_once(change("a1", &["x.py"])).await.unwrap();
    assert!(new);
    let (again, new) = s.add_change_once(change("a1", &[])).await.unwrap();
    assert_eq!((again, new), (a, false));
    // Another branch, another revision: new changes.
    let mut other = change("a1", &[]);
    other.branch = "17.0".into();
    assert!(s.add_change_once(other).await.unwrap().1);
    assert!(s.add_change_once(change("b2", &[])).await.unwrap().1);
    assert_eq!(s.list_changes(None, 10).await.unwrap().len(), 3);
}

async fn changes_round_trip_with_their_files(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let a = s.add_change(change("a1", &["z.py", "a.py"])).await.unwrap();
    let b = s.add_change(change("b2", &[])).await.unwrap();
    let got = s.get_change(a).await.unwrap().unwrap();
    assert_eq!(got.revision, "a1");
    assert_eq!(got.files, ["z.py", "a.py"]);
    assert_eq!(got.author, "Alice <a@example.org>");
    assert_eq!(got.committed_at, Some(t(100)));
    assert_eq!(got.comments, "commit a1\n\nbody");
    assert_eq!(got.source, "/srv/master/pollers/odoo");
    assert_eq!(s.get_change(ChangeId(999)).await.unwrap(), None);
    let page = s.list_changes(None, 1).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [b]);
    let page = s.list_changes(Some(b), 10).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [a]);
    assert_eq!(page[0].files.len(), 2);
    assert!(matches!(
        s.add_change(NewChange::default()).await,
        Err(Error::Invalid(_))
    ));

    let mut req = NewRequest::new("b", t(1));
    req.changes = vec![b, a];
    let r = s.submit_request(req).await.unwrap();
    let carried = s.request_changes(r).await.unwrap();
    assert_eq!(carried.iter().map(|c| c.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(carried[0].files, ["z.py", "a.py"]);

    // A change a request carries cannot be pruned; a free one can.
    let refused = s.delete_change(a).await.unwrap_err();
    assert!(refused.is_constraint_violation(), "{refused:?}");
    let c = s.add_change(change("c3", &["x"])).await.unwrap();
    assert!(s.delete_change(c).await.unwrap());
    assert!(!s.delete_change(c).await.unwrap());
}

async fn a_poll_stores_its_changes_and_revision_together(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let p = "/srv/master/pollers/odoo";
    assert_eq!(s.poller_revision(p, "16.0").await.unwrap(), None);
    s.set_poller_revision(p, "16.0", "r0", t(1)).await.unwrap();
    let ids = s
        .record_poll(
            p,
            "16.0",
            "r2",
            vec![change("r1", &[]), change("r2", &[])],
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(Option::is_some));
    assert_eq!(
        s.poller_revision(p, "16.0").await.unwrap().as_deref(),
        Some("r2")
    );
    // A change already stored (a webhook reported it during the poll) is not stored again.
    let again = s
        .record_poll(p, "16.0", "r2", vec![change("r2", &[])], t(2))
        .await
        .unwrap();
    assert_eq!(again, vec![None]);
    s.record_poll(p, "17.0", "x9", vec![], t(3)).await.unwrap();
    let state = s.poller_state(p).await.unwrap();
    assert_eq!(state.get("16.0").map(String::as_str), Some("r2"));
    assert_eq!(state.get("17.0").map(String::as_str), Some("x9"));
    assert!(s.poller_state("other").await.unwrap().is_empty());

    // One bad change: nothing of the poll is stored, the revision does not move.
    let bad = NewChange::default();
    assert!(s
        .record_poll(p, "16.0", "r4", vec![change("r3", &[]), bad], t(4))
        .await
        .is_err());
    assert_eq!(
        s.poller_revision(p, "16.0").await.unwrap().as_deref(),
        Some("r2")
    );
    assert_eq!(s.list_changes(None, 100).await.unwrap().len(), 2);
}

async fn scheduler_timers_survive_and_fire_atomically(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (c1, c2);
    {
        let s = db.open().await;
        c1 = s.add_change(change("a", &[])).await.unwrap();
        c2 = s.add_change(change("b", &[])).await.unwrap();
        s.set_scheduler_timer("odoo-16", t(10), vec![c1])
            .await
            .unwrap();
        // Tree-stable: another change pushes the timer back and joins it.
        s.set_scheduler_timer("odoo-16", t(20), vec![c1, c2])
            .await
            .unwrap();
        s.set_scheduler_timer("odoo-17", t(15), vec![])
            .await
            .unwrap();
    }
    let s = db.open().await;
    let timers = s.scheduler_timers().await.unwrap();
    assert_eq!(timers.len(), 2);
    assert_eq!(timers[0].scheduler, "odoo-16");
    assert_eq!(timers[0].fires_at, t(20));
    assert_eq!(timers[0].changes, [c1, c2]);
    assert!(timers[1].changes.is_empty());

    let mut req = NewRequest::new("odoo-16-pg14", t(20));
    req.changes = vec![c1, c2];
    let ids = s.fire_scheduler_timer("odoo-16", vec![req]).await.unwrap();
    assert_eq!(ids.len(), 1);
    let queued = s.queued_requests().await.unwrap();
    assert_eq!(queued[0].changes, [c1, c2]);
    assert_eq!(queued[0].state, RequestState::Queued);
    let timers = s.scheduler_timers().await.unwrap();
    assert_eq!(timers.len(), 1);
    assert!(s.delete_scheduler_timer("odoo-17").await.unwrap());
    assert!(!s.delete_scheduler_timer("odoo-17").await.unwrap());
    assert!(s.scheduler_timers().await.unwrap().is_empty());
}

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$hdvKAtNhMzYuRG4W1ZJjCaJ5Mf4JvOXvQLxlGC0v8Ac";

async fn users_keep_argon2_hashes_only(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    s.add_user("alice", HASH, t(1)).await.unwrap();
    assert!(matches!(
        s.add_user("alice", HASH, t(2)).await,
        Err(Error::UserExists(_))
    ));
    for bad in [
        "hunter2",
        "$2b$12$abcdefghijklmnopqrstuv",
        "$argon2id$ spaces $x$y",
    ] {
        assert!(
            matches!(s.add_user("bob", bad, t(1)).await, Err(Error::Invalid(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        s.add_user("has space", HASH, t(1)).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        s.password_hash("alice").await.unwrap().as_deref(),
        Some(HASH)
    );
    assert_eq!(s.password_hash("nobody").await.unwrap(), None);
    let other = HASH.replace("c2FsdHNhbHQ", "b3RoZXJzYWx0");
    assert!(s.set_password_hash("alice", &other).await.unwrap());
    assert!(!s.set_password_hash("nobody", &other).await.unwrap());
    assert_eq!(
        s.password_hash("alice").await.unwrap().as_deref(),
        Some(other.as_str())
    );
    s.add_user("bob", HASH, t(3)).await.unwrap();
    let users = s.users().await.unwrap();
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(users[1].created_at, t(3));
    assert!(s.delete_user("bob").await.unwrap());
    assert!(!s.delete_user("bob").await.unwrap());
}

async fn settings_are_a_small_key_value_table(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    assert_eq!(s.setting("master-id").await.unwrap(), None);
    s.set_setting("master-id", "m1").await.unwrap();
    s.set_setting("master-id", "m2").await.unwrap();
    assert_eq!(s.setting("master-id").await.unwrap().as_deref(), Some("m2"));
}

/// The master empties the page caches when idle: the writer's and the pooled readers' pages
/// are read again, nothing else changes.
async fn emptied_page_caches_keep_what_is_stored(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    s.set_setting("master-id", "m1").await.unwrap();
    assert_eq!(s.setting("master-id").await.unwrap().as_deref(), Some("m1"));
    s.release_memory().await.unwrap();
    assert_eq!(s.setting("master-id").await.unwrap().as_deref(), Some("m1"));
    s.set_setting("master-id", "m2").await.unwrap();
    assert_eq!(s.setting("master-id").await.unwrap().as_deref(), Some("m2"));
}

on_both!(tokio::test => changes_round_trip_with_their_files, a_change_sent_twice_is_stored_once,
    scheduler_timers_survive_and_fire_atomically, a_poll_stores_its_changes_and_revision_together, users_keep_argon2_hashes_only, settings_are_a_small_key_value_table,
    emptied_page_caches_keep_what_is_stored);
