//! Seeding a store with a large finished history, fast, for benchmarks (`crates/abo/benches/
//! web.rs`): what [`Store`]'s public methods would write for each build (a complete request,
//! a finished build, its finished steps, one finished `stdio` log per step in the store's
//! own chunk format), but a whole batch of builds per transaction. Not for production use:
//! no lease is checked and nothing is masked.
//!
//! The first build is written through the public methods (request, claim, build, steps, a
//! [`LogWriter`](crate::LogWriter) per step); the others copy its log chunks row for row.

use crate::db::json_out;
use crate::error::Result;
use crate::logs::LogOptions;
use crate::requests::NewRequest;
use crate::types::{BuildId, BuildResult, Lease, LogId, LogKind, Stream, Timestamp};
use crate::{StepOutcome, Store};
use std::collections::HashMap;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// The builders, in turn: build `i` goes to `builders[i % builders.len()]`.
    pub builders: Vec<String>,
    /// How many builds.
    pub builds: u64,
    /// The steps of every build, by name.
    pub steps: Vec<String>,
    /// The worker every build ran on.
    pub worker: String,
    /// Output of every step's `stdio` log (stdout), stored in chunks as a writer would.
    pub log: Vec<u8>,
    /// When the first build started; each next one starts `spacing_ms` later, and every
    /// build lasts `duration_ms`.
    pub first_start: Timestamp,
    /// Milliseconds between two builds' starts.
    pub spacing_ms: u64,
    /// Milliseconds a build lasts (split evenly over its steps).
    pub duration_ms: u64,
    /// Builds per transaction.
    pub batch: u64,
}

/// What was seeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The first and last build ids written.
    pub first: BuildId,
    /// The last build id written.
    pub last: BuildId,
    /// Builds written.
    pub builds: u64,
}

/// A deterministic result: mostly success, some warnings and failures, a few exceptions.
fn result_of(i: u64) -> BuildResult {
    match i % 20 {
        0..=14 => BuildResult::Success,
        15 | 16 => BuildResult::Warnings,
        17 | 18 => BuildResult::Failure,
        _ => BuildResult::Exception,
    }
}

fn step_outcome(result: BuildResult, k: usize, steps: usize) -> (BuildResult, &'static str) {
    // A build that did not succeed did so in its last step.
    match result {
        BuildResult::Failure | BuildResult::Exception if k + 1 == steps => (result, "exit code 1"),
        BuildResult::Warnings if k + 1 == steps => (result, "1 warning"),
        _ => (BuildResult::Success, ""),
    }
}

/// Build `i`'s builder, start and end.
fn placement(spec: &SeedSpec, i: u64) -> (&str, u64, u64) {
    let builder = &spec.builders[(i % spec.builders.len() as u64) as usize];
    let start = spec.first_start.0 + i * spec.spacing_ms;
    (builder, start, start + spec.duration_ms)
}

/// Writes build 0 through the public methods; returns its id and its first log.
async fn template(store: &Store, spec: &SeedSpec, lease: Lease) -> Result<(BuildId, LogId)> {
    let (builder, start, end) = placement(spec, 0);
    let result = result_of(0);
    let mut request = NewRequest::new(builder, Timestamp(start.saturating_sub(1000)));
    request.reason = "seeded".into();
    let req = store.submit_request(request).await?;
    store.claim_request(req, lease, Timestamp(start)).await?;
    let (build, _) = store
        .create_build(req, &spec.worker, lease, Timestamp(start))
        .await?;
    let per_step = spec.duration_ms / spec.steps.len() as u64;
    let mut first_log = None;
    for (k, name) in spec.steps.iter().enumerate() {
        let at = start + k as u64 * per_step;
        let index = k as u32;
        store
            .start_step(build, lease, index, name, Timestamp(at))
            .await?;
        let mut w = store
            .open_log(
                build,
                lease,
                index,
                "stdio",
                LogKind::Stdio,
                LogOptions::default(),
            )
            .await?;
        w.write(Stream::Stdout, &spec.log).await?;
        let info = w.finish().await?;
        first_log.get_or_insert(info.id);
        let (result, description) = step_outcome(result, k, spec.steps.len());
        let outcome = StepOutcome {
            result,
            description: Some(description.to_owned()),
            hidden: false,
        };
        store
            .finish_step(build, lease, index, outcome, Timestamp(at + per_step))
            .await?;
    }
    store
        .finish_build(build, lease, result, Timestamp(end))
        .await?;
    Ok((build, first_log.expect("at least one step")))
}

/// Writes `spec.builds` finished builds after whatever the store holds, in transactions
/// of `spec.batch` builds.
pub async fn seed_finished_builds(store: &Store, spec: SeedSpec) -> Result<Seeded> {
    assert!(!spec.builders.is_empty() && !spec.steps.is_empty());
    if spec.builds == 0 {
        return Ok(Seeded {
            first: BuildId(0),
            last: BuildId(0),
            builds: 0,
        });
    }
    // Leases above every lease a master gives (epoch << 32), never reused by it.
    let lease_base = 1u64 << 62;
    let (first, template_log) = template(store, &spec, Lease(lease_base)).await?;
    let mut last = first;
    let mut done = 1u64;
    while done < spec.builds {
        let n = spec.batch.max(1).min(spec.builds - done);
        let spec2 = spec.clone();
        let from = done;
        last = store
            .write(move |tx| {
                let spec = &spec2;
                let (byte_len, line_count, chunk_count): (i64, i64, i64) = tx.query_one(
                    "SELECT byte_len, line_count, chunk_count FROM logs WHERE id = ?1",
                    &[&template_log],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let mut numbers: HashMap<String, u32> = HashMap::new();
                let mut last_of: HashMap<String, BuildId> = HashMap::new();
                let mut last = BuildId(0);
                for i in from..from + n {
                    let (builder, start, end) = placement(spec, i);
                    let number = match numbers.get_mut(builder) {
                        Some(n) => n,
                        None => {
                            let next: u32 = tx
                                .query_opt(
                                    "SELECT next_number FROM builders WHERE name = ?1",
                                    &[&builder],
                                    |r| r.get(0),
                                )?
                                .unwrap_or(1);
                            numbers.entry(builder.to_owned()).or_insert(next)
                        }
                    };
                    let this_number = *number;
                    *number += 1;
                    let result = result_of(i);
                    let lease = Lease(lease_base + i);
                    let req: i64 = tx.query_one(
                        "INSERT INTO build_requests (builder, properties, reason, submitted_at, state,
                             claimed_by, claimed_at, completed_at, result)
                         VALUES (?1, '{}', 'seeded', ?2, 'complete', ?3, ?2, ?4, ?5) RETURNING id",
                        &[
                            &builder,
                            &Timestamp(start.saturating_sub(1000)),
                            &lease,
                            &Timestamp(end),
                            &result,
                        ],
                        |r| r.get(0),
                    )?;
                    let props = json_out(&serde_json::json!({
                        "buildername": builder,
                        "buildnumber": this_number.to_string(),
                        "workername": spec.worker,
                    }))?;
                    let id: BuildId = tx.query_one(
                        "INSERT INTO builds (request, builder, number, worker, lease, started_at,
                             finished_at, result, state_string, properties)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', ?9) RETURNING id",
                        &[
                            &req,
                            &builder,
                            &this_number,
                            &spec.worker,
                            &lease,
                            &Timestamp(start),
                            &Timestamp(end),
                            &result,
                            &props,
                        ],
                        |r| r.get(0),
                    )?;
                    last = id;
                    last_of.insert(builder.to_owned(), id);
                    let per_step = spec.duration_ms / spec.steps.len() as u64;
                    for (k, name) in spec.steps.iter().enumerate() {
                        let (step_result, description) = step_outcome(result, k, spec.steps.len());
                        let at = start + k as u64 * per_step;
                        let step_id: i64 = tx.query_one(
                            "INSERT INTO steps (build, number, name, started_at, finished_at, result,
                                 description)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                            &[
                                &id,
                                &(k as u32),
                                name,
                                &Timestamp(at),
                                &Timestamp(at + per_step),
                                &step_result,
                                &description,
                            ],
                            |r| r.get(0),
                        )?;
                        let log_id: i64 = tx.query_one(
                            "INSERT INTO logs (step, name, kind, byte_len, line_count, chunk_count,
                                 finished)
                             VALUES (?1, 'stdio', 'stdio', ?2, ?3, ?4, TRUE) RETURNING id",
                            &[&step_id, &byte_len, &line_count, &chunk_count],
                            |r| r.get(0),
                        )?;
                        // Dialect: PostgreSQL types a parameter in a SELECT list only
                        // with a CAST.
                        tx.execute(
                            "INSERT INTO log_chunks (log, seq, first_byte, first_line, cont, raw_len, data)
                             SELECT CAST(?1 AS BIGINT), seq, first_byte, first_line, cont, raw_len, data
                             FROM log_chunks WHERE log = ?2",
                            &[&log_id, &template_log],
                        )?;
                    }
                }
                for (name, next) in &numbers {
                    tx.execute(
                        "INSERT INTO builders (name, next_number, last_build) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET next_number = ?2, last_build = ?3",
                        &[name, next, &last_of[name]],
                    )?;
                }
                Ok(last)
            })
            .await?;
        done += n;
    }
    Ok(Seeded {
        first,
        last,
        builds: done,
    })
}
