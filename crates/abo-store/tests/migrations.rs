//! Migrations: an empty database and a database at every older version (with data in it)
//! reach the latest schema, keep their data, and end with the same schema as a new one.

mod common;

use abo_store::migrations::{latest_version, migrate_file, schema_version, MIGRATIONS};
use abo_store::{BuildId, Error, LogId, Store};
use std::path::Path;

/// Rows written at each version with that version's schema, the way the abo of that time
/// would have (bors's habit: every migration is tested on data, not only on empty tables).
fn seed(version: u32) -> &'static str {
    match version {
        1 => {
            "INSERT INTO build_requests (id, builder, submitted_at, state, claimed_by, claimed_at)
                 VALUES (1, 'b', 1000, 'claimed', 5, 1001);
             INSERT INTO builders (name, next_number, last_build) VALUES ('b', 2, 1);
             INSERT INTO builds (id, request, builder, number, worker, lease, started_at)
                 VALUES (1, 1, 'b', 1, 'w1', 5, 1002);
             INSERT INTO steps (id, build, number, name, started_at) VALUES (1, 1, 0, 'checkout', 1003);"
        }
        2 => {
            "INSERT INTO logs (id, step, name, kind) VALUES (1, 1, 'stdio', 'stdio');"
        }
        3 => {
            "INSERT INTO changes (id, repository, revision, received_at) VALUES (1, 'r', 'abc', 5);
             INSERT INTO build_request_changes (request, change) VALUES (1, 1);
             INSERT INTO poller_state (poller, branch, revision, updated_at) VALUES ('p', 'main', 'abc', 5);"
        }
        4 => "INSERT INTO settings (key, value) VALUES ('k', 'v');",
        _ => "",
    }
}

fn seeded_at(path: &Path, version: u32) {
    for v in 1..=version {
        assert_eq!(migrate_file(path, Some(v)).unwrap(), v);
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(seed(v)).unwrap();
    }
}

fn schema(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name <> 'schema_migrations'
             ORDER BY type, name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

#[test]
fn migrations_are_numbered_from_one_without_gaps() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "{}", m.name);
    }
    assert_eq!(latest_version() as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn an_empty_database_reaches_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abo.sqlite");
    assert_eq!(schema_version(&path).unwrap(), 0);
    let s = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(schema_version(&path).unwrap(), latest_version());
    drop(s);
    // Opening again applies nothing and changes nothing.
    let before = schema(&path);
    Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(schema(&path), before);
}

#[tokio::test]
async fn a_database_at_every_older_version_is_migrated_with_its_data() {
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = fresh_dir.path().join("abo.sqlite");
    migrate_file(&fresh, None).unwrap();
    let expected = schema(&fresh);

    for from in 0..latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abo.sqlite");
        seeded_at(&path, from);
        assert_eq!(schema_version(&path).unwrap(), from);
        let s = Store::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(
            schema_version(&path).unwrap(),
            latest_version(),
            "from {from}"
        );
        assert_eq!(
            schema(&path),
            expected,
            "schema after migrating from {from}"
        );
        if from >= 1 {
            let b = s.get_build(BuildId(1)).await.unwrap().unwrap();
            assert_eq!(b.build.worker, "w1");
            assert_eq!(b.steps[0].step.name, "checkout");
            // Columns added with defaults read as such.
            assert_eq!(b.build.properties, serde_json::json!({}));
            assert!(b.steps[0].step.urls.is_empty());
        }
        if from >= 2 {
            let info = s.log_info(LogId(1)).await.unwrap();
            assert_eq!((info.byte_len, info.finished), (0, false));
        }
        if from >= 3 {
            let r = s
                .get_request(abo_store::RequestId(1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.changes.len(), 1);
            assert_eq!(
                s.poller_revision("p", "main").await.unwrap().as_deref(),
                Some("abc")
            );
        }
        // The migrated store works: restart recovery over the seeded running build.
        let report = s
            .mark_interrupted_builds(abo_store::BuildResult::Retry, common::t(9))
            .await
            .unwrap();
        assert_eq!(report.builds.len(), usize::from(from >= 1));
    }
}

#[tokio::test]
async fn a_newer_or_edited_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abo.sqlite");
    migrate_file(&path, None).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, 'future', 'x', 0)",
        [latest_version() + 1],
    )
    .unwrap();
    assert!(matches!(
        Store::open(path.to_str().unwrap()).await,
        Err(Error::SchemaTooNew { .. })
    ));
    conn.execute(
        "DELETE FROM schema_migrations WHERE version = ?1",
        [latest_version() + 1],
    )
    .unwrap();
    conn.execute(
        "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
        [],
    )
    .unwrap();
    assert!(matches!(
        Store::open(path.to_str().unwrap()).await,
        Err(Error::MigrationChanged { version: 1, .. })
    ));
}

#[tokio::test]
async fn the_store_runs_in_wal_mode_with_foreign_keys() {
    let (dir, _s) = common::store().await;
    let conn = rusqlite::Connection::open(dir.path().join("abo.sqlite")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Foreign keys are per connection: check the store's own enforcement instead.
    drop(conn);
    let s = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut req = abo_store::NewRequest::new("b", common::t(1));
    req.changes = vec![abo_store::ChangeId(77)];
    assert!(matches!(
        s.submit_request(req).await,
        Err(Error::Database(_))
    ));
}
