//! `/queue`: the requests waiting for a worker, each with why it waits (no worker
//! configured, none connected, all busy), and the running builds with where they are (the
//! step they run, or the worker lock they wait for). The lists are the page's live
//! fragment.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;
use maud::html;

use super::{html_response, layout, now_ms, wants_fragment, when, Nav, PageResult, Viewer, Web};
use abo_engine::{RunState, WaitReason};

/// Why a request waits, in words.
pub(crate) fn wait_reason(r: &WaitReason) -> &'static str {
    match r {
        WaitReason::NoWorkerConfigured => "no worker is configured for its builder",
        WaitReason::NoWorkerConnected => "no capable worker is connected",
        WaitReason::AllWorkersBusy => "every capable worker is busy (max_builds reached)",
    }
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> PageResult {
    let snapshot = web.api().runner.snapshot().await;
    let now = now_ms();
    let lists = html! {
        div #live data-live="" {
            @match &snapshot {
                None => p.warning { "The build runner has stopped." },
                Some(s) => {
                    h2 { "Pending (" (s.pending.len()) ")" }
                    @if s.pending.is_empty() { p.empty { "Nothing waits." } }
                    @else {
                        div.scroll { table.pending {
                            thead { tr { th { "request" } th { "builder" } th { "submitted" } th { "waits because" } } }
                            tbody {
                                @for p in &s.pending {
                                    tr {
                                        td { (p.request.0) }
                                        td { a href={ "/builders/" (p.builder.as_str()) } { (p.builder.as_str()) } }
                                        td { (when(p.submitted_at.0, now)) }
                                        td.reason { (wait_reason(&p.reason)) }
                                    }
                                }
                            }
                        } }
                    }
                    h2 { "Running (" (s.running.len()) ")" }
                    @if s.running.is_empty() { p.empty { "Nothing runs." } }
                    @else {
                        div.scroll { table.running {
                            thead { tr { th { "build" } th { "builder" } th { "worker" } th { "started" } th { "where" } } }
                            tbody {
                                @for r in &s.running {
                                    tr {
                                        td { @if let Some(b) = r.build { a href={ "/builds/" (b.0) } { (b.0) } } @else { "starting" } }
                                        td { a href={ "/builders/" (r.builder.as_str()) } { (r.builder.as_str()) } }
                                        td { (r.worker.as_str()) }
                                        td { (when(r.started_at.0, now)) }
                                        td.state {
                                            @match &r.state {
                                                RunState::Starting => "starting",
                                                RunState::Running { step, name } => { "step " (step) " " (name) }
                                                RunState::WaitingForLock { step, name, lock } => {
                                                    "step " (step) " " (name) " waits for lock " strong { (lock) } " (held by another build)"
                                                }
                                            }
                                            @if r.stopping { " · stopping" }
                                        }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
        }
    };
    if wants_fragment(&headers) {
        return Ok(html_response(lists));
    }
    let body = html! { h1 { "Queue" } (lists) };
    Ok(html_response(layout("Queue", &viewer, Nav::Queue, body)))
}
