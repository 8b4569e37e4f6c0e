//! `/workers`: every configured worker: connected or not and since when (a worker away
//! longer than master.toml `[web] missing-worker-after` is flagged missing), its version,
//! OS, capabilities, `max_builds`, the builds it runs now and how many builders it serves.
//! The table is the page's live fragment.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;
use maud::html;

use super::{html_response, layout, now_ms, wants_fragment, when, Nav, PageResult, Viewer, Web};

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> PageResult {
    let plan = web.api().shared.plan();
    let declared: HashMap<&str, &abo_plan::WorkerView> =
        plan.workers.iter().map(|w| (w.name.as_str(), w)).collect();
    let mut served: HashMap<&str, usize> = HashMap::new();
    for b in &plan.builders {
        for w in b.workers.iter() {
            *served.entry(w.as_ref()).or_default() += 1;
        }
    }
    let snapshot = web.api().runner.snapshot().await.unwrap_or_default();
    let mut running: HashMap<String, Vec<(Option<u64>, String)>> = HashMap::new();
    for r in &snapshot.running {
        running
            .entry(r.worker.as_str().to_owned())
            .or_default()
            .push((r.build.map(|b| b.0), r.builder.as_str().to_owned()));
    }
    let now = now_ms();
    let missing_after = web.opts().missing_worker_after;
    let status = web.worker_status();
    let table = html! {
        div #live data-live="" {
            div.scroll {
                table.workers {
                    thead { tr {
                        th { "worker" } th { "state" } th { "version" } th { "system" }
                        th { "capabilities" } th { "max builds" } th { "running" } th { "builders" }
                    } }
                    tbody {
                        @for (w, last_seen) in &status {
                            @let c = w.connection.as_ref();
                            @let away = now.saturating_sub(ms(*last_seen));
                            @let missing = c.is_none() && away > u64::try_from(missing_after.as_millis()).unwrap_or(u64::MAX);
                            tr class=(if c.is_some() { "connected" } else if missing { "missing" } else { "disconnected" }) data-worker=(w.name) {
                                th scope="row" { (w.name) }
                                td.state {
                                    @if let Some(c) = c {
                                        "connected " (when(ms(c.since), now))
                                    } @else if missing {
                                        strong.flag { "missing" } " — not seen since " (when(ms(*last_seen), now))
                                    } @else {
                                        "disconnected since " (when(ms(*last_seen), now))
                                    }
                                }
                                td { (c.and_then(|c| c.info.version.clone()).unwrap_or_default()) }
                                td { (c.and_then(|c| c.info.os.clone().or(c.info.system.clone())).unwrap_or_default()) }
                                td.caps {
                                    @for cap in &w.capabilities {
                                        span.cap { (cap.name) @if let Some(v) = &cap.version { " " (v) } }
                                        " "
                                    }
                                }
                                td { (declared.get(w.name.as_str()).and_then(|d| d.max_builds).map_or("—".to_string(), |m| m.to_string())) }
                                td {
                                    @for (build, builder) in running.get(&w.name).map(Vec::as_slice).unwrap_or_default() {
                                        @if let Some(b) = build { a href={ "/builds/" (b) } { (builder) } } @else { (builder) " (starting)" }
                                        " "
                                    }
                                }
                                td { (served.get(w.name.as_str()).copied().unwrap_or(0)) }
                            }
                        }
                    }
                }
            }
        }
    };
    if wants_fragment(&headers) {
        return Ok(html_response(table));
    }
    let body = html! {
        h1 { "Workers" }
        p.hint { "A worker away for more than " (super::short_duration(u64::try_from(missing_after.as_millis()).unwrap_or(u64::MAX))) " is flagged missing." }
        (table)
    };
    Ok(html_response(layout(
        "Workers",
        &viewer,
        Nav::Workers,
        body,
    )))
}
