//! Migrations, on both backends: an empty database and a database at every older version
//! (with data in it) reach the latest schema, keep their data, and end with the same schema
//! as a new one.

mod common;

use abo_store::migrations::{self, latest_version, MIGRATIONS, POSTGRES_MIGRATIONS};
use abo_store::{BuildId, Error, LogId, Store};
use common::{Backend, TestDb};

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

async fn seeded_at(db: &TestDb, version: u32) {
    for v in 1..=version {
        assert_eq!(migrations::migrate(&db.url, Some(v)).await.unwrap(), v);
        db.sql(seed(v)).await;
    }
}

/// Every table's, column's and index's definition (without the migrations table): two
/// databases with the same schema give the same list.
async fn schema(db: &TestDb) -> Vec<String> {
    match db.backend {
        Backend::Sqlite => {
            db.strings(
                "SELECT name || ': ' || sql FROM sqlite_master
                 WHERE sql IS NOT NULL AND name <> 'schema_migrations' ORDER BY type, name",
            )
            .await
        }
        Backend::Postgres => {
            let mut out = db
                .strings(
                    "SELECT table_name || '.' || column_name || ' ' || data_type || ' '
                            || is_nullable || ' ' || COALESCE(column_default, '')
                            || ' ' || is_identity || ' ' || COALESCE(collation_name, '')
                     FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
                     ORDER BY table_name, column_name",
                )
                .await;
            out.extend(
                db.strings(
                    "SELECT indexdef FROM pg_indexes
                     WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
                     ORDER BY indexname",
                )
                .await,
            );
            out.extend(
                db.strings(
                    "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
                     FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                     ORDER BY 1",
                )
                .await,
            );
            out
        }
    }
}

#[test]
fn migrations_are_numbered_from_one_without_gaps() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "{}", m.name);
    }
    assert_eq!(latest_version() as usize, MIGRATIONS.len());
    // The PostgreSQL list mirrors the SQLite one, version for version.
    let names = |l: &[abo_store::migrations::Migration]| {
        l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>()
    };
    assert_eq!(names(POSTGRES_MIGRATIONS), names(MIGRATIONS));
}

async fn an_empty_database_reaches_the_latest_version(backend: Backend) {
    let db = TestDb::new(backend).await;
    assert_eq!(migrations::version(&db.url).await.unwrap(), 0);
    let s = db.open().await;
    assert_eq!(
        migrations::version(&db.url).await.unwrap(),
        latest_version()
    );
    drop(s);
    // Opening again applies nothing and changes nothing.
    let before = schema(&db).await;
    assert!(before.len() > 20, "{before:?}");
    db.open().await;
    assert_eq!(schema(&db).await, before);
}

async fn a_database_at_every_older_version_is_migrated_with_its_data(backend: Backend) {
    let fresh = TestDb::new(backend).await;
    migrations::migrate(&fresh.url, None).await.unwrap();
    let expected = schema(&fresh).await;

    for from in 0..latest_version() {
        let db = TestDb::new(backend).await;
        seeded_at(&db, from).await;
        assert_eq!(migrations::version(&db.url).await.unwrap(), from);
        let s = db.open().await;
        assert_eq!(
            migrations::version(&db.url).await.unwrap(),
            latest_version(),
            "from {from}"
        );
        assert_eq!(
            schema(&db).await,
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

async fn a_newer_or_edited_schema_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    migrations::migrate(&db.url, None).await.unwrap();
    let future = latest_version() + 1;
    db.sql(&format!(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at)
         VALUES ({future}, 'future', 'x', 0)"
    ))
    .await;
    assert!(matches!(
        Store::open(&db.url).await,
        Err(Error::SchemaTooNew { .. })
    ));
    db.sql(&format!(
        "DELETE FROM schema_migrations WHERE version = {future};
         UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1;"
    ))
    .await;
    assert!(matches!(
        Store::open(&db.url).await,
        Err(Error::MigrationChanged { version: 1, .. })
    ));
}

async fn foreign_keys_are_enforced(backend: Backend) {
    let (_db, s) = common::store_on(backend).await;
    let mut req = abo_store::NewRequest::new("b", common::t(1));
    req.changes = vec![abo_store::ChangeId(77)];
    let err = s.submit_request(req).await.unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
}

#[tokio::test]
async fn the_store_runs_in_wal_mode() {
    let (dir, _s) = common::store().await;
    let conn = rusqlite::Connection::open(dir.path().join("abo.sqlite")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

on_both!(tokio::test =>
    an_empty_database_reaches_the_latest_version,
    a_database_at_every_older_version_is_migrated_with_its_data,
    a_newer_or_edited_schema_is_refused,
    foreign_keys_are_enforced,
);
