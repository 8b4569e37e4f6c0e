//! 100,000 builds: builder history pages and the builders summary stay index lookups.
//! Timings are printed, not asserted (the machine varies); the query plans are asserted.

mod common;

use abo_store::{BuildId, Store};
use std::time::Instant;

const BUILDS: usize = 100_000;
const BUILDERS: usize = 50;

/// Inserts the history directly, in one transaction (through the API it would be 100,000
/// transactions, which measures nothing of interest here).
fn seed(path: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut req = tx
            .prepare(
                "INSERT INTO build_requests (id, builder, submitted_at, state, result, claimed_by)
                 VALUES (?1, ?2, ?3, 'complete', 'success', ?1)",
            )
            .unwrap();
        let mut build = tx
            .prepare(
                "INSERT INTO builds (id, request, builder, number, worker, lease, started_at,
                                     finished_at, result)
                 VALUES (?1, ?1, ?2, ?3, 'w1', ?1, ?4, ?4, 'success')",
            )
            .unwrap();
        for i in 1..=BUILDS as i64 {
            let builder = format!("odoo-{:02}-pg14", i % BUILDERS as i64);
            let number = (i - 1) / BUILDERS as i64 + 1;
            req.execute(rusqlite::params![i, builder, i * 1000])
                .unwrap();
            build
                .execute(rusqlite::params![i, builder, number, i * 1000])
                .unwrap();
        }
        tx.execute(
            "INSERT INTO builders (name, next_number, last_build)
             SELECT builder, MAX(number) + 1, MAX(id) FROM builds GROUP BY builder",
            [],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn plan(path: &std::path::Path, sql: &str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows.join("; ")
}

#[tokio::test]
async fn a_builder_history_pages_fast_among_100k_builds() {
    let (dir, s) = common::store().await;
    let path = dir.path().join("abo.sqlite");
    let started = Instant::now();
    seed(&path);
    println!("seeded {BUILDS} builds in {:?}", started.elapsed());

    // The page queries walk an index backwards; no scan, no sort.
    let by_builder = plan(
        &path,
        "SELECT id FROM builds WHERE builder = 'odoo-07-pg14' AND id < 50000 ORDER BY id DESC LIMIT 50",
    );
    assert!(by_builder.contains("builds_by_builder"), "{by_builder}");
    assert!(!by_builder.contains("TEMP B-TREE"), "{by_builder}");
    let queued = plan(
        &path,
        "SELECT builder, COUNT(*) FROM build_requests WHERE state = 'queued' GROUP BY builder",
    );
    assert!(
        queued.contains("build_requests_queued_by_builder"),
        "{queued}"
    );
    let all = plan(
        &path,
        "SELECT id FROM builds WHERE id < 50000 ORDER BY id DESC LIMIT 50",
    );
    assert!(
        !all.contains("TEMP B-TREE") && !all.contains("SCAN builds USING INDEX"),
        "{all}"
    );

    let time = |label: &str, started: Instant| {
        println!(
            "{label}: {:.2} ms",
            started.elapsed().as_secs_f64() * 1000.0
        )
    };
    let started = Instant::now();
    let page = s.list_builds(Some("odoo-07-pg14"), None, 50).await.unwrap();
    time("list_builds(one builder, first page of 50)", started);
    assert_eq!(page.len(), 50);
    assert_eq!(page[0].number, 2000);
    assert!(page.windows(2).all(|w| w[0].id > w[1].id));

    let started = Instant::now();
    let deep = s
        .list_builds(Some("odoo-07-pg14"), Some(BuildId(400)), 50)
        .await
        .unwrap();
    time("list_builds(one builder, last page)", started);
    assert_eq!(
        deep.iter().map(|b| b.number).collect::<Vec<_>>(),
        [8, 7, 6, 5, 4, 3, 2, 1]
    );

    let started = Instant::now();
    let page = s
        .list_builds(None, Some(BuildId(50_000)), 100)
        .await
        .unwrap();
    time(
        "list_builds(all builders, page of 100 in the middle)",
        started,
    );
    assert_eq!(page[0].id, BuildId(49_999));

    // Walking a whole history by keyset pages sees every build once.
    let started = Instant::now();
    let (mut before, mut seen) = (None, 0);
    loop {
        let page = s
            .list_builds(Some("odoo-13-pg14"), before, 200)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen += page.len();
    }
    time("all 10 pages of one builder's 2,000 builds", started);
    assert_eq!(seen, BUILDS / BUILDERS);

    let started = Instant::now();
    let summary = s.builders_summary().await.unwrap();
    time("builders_summary (50 builders)", started);
    assert_eq!(summary.len(), BUILDERS);
    assert!(summary.iter().all(|b| b.builds == 2000));
    let b7 = summary.iter().find(|b| b.name == "odoo-07-pg14").unwrap();
    assert_eq!(b7.last_build.as_ref().map(|b| b.number), Some(2000));
    assert_eq!(b7.last_finished.as_ref().map(|b| b.number), Some(2000));

    let started = Instant::now();
    let d = s.get_build(BuildId(77_777)).await.unwrap().unwrap();
    time("get_build", started);
    assert_eq!(d.build.id, BuildId(77_777));
    drop(Store::clone(&s));
}
