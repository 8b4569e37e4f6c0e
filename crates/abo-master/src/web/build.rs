//! `/builds/{id}`: one build. Its steps (result, duration, description, logs, the analysis
//! of test steps), the steps still to run, its properties (masked), the changes it ran for
//! and their authors (the blame list), the stop and rebuild buttons, and the output of its
//! running steps, streamed live. The facts, buttons and steps table are the page's live
//! fragment; it also lists the logs being written, so that the live output of a step that
//! starts later is added to the page.
//! `POST /builds/{id}/stop` and `POST /builds/{id}/rebuild` act on it.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use maud::{html, Markup};

use super::auth::button_form;
use super::{
    first_line, html_response, layout, now_ms, parse_id, result_class, result_word, short_duration,
    short_rev, wants_fragment, when, Nav, PageResult, Viewer, Web, WebError,
};
use crate::runner::json_properties;
use abo_plan::StepKind;
use abo_store::BuildId;

/// Lines of a running log shown before its live stream starts.
const LIVE_TAIL_LINES: u64 = 100;

/// A step's log, as its page's address.
pub(crate) fn log_href(build: u64, step: u32, name: &str) -> String {
    format!(
        "/builds/{build}/steps/{step}/logs/{}",
        super::auth::url_encode(name)
    )
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let id = parse_id("the build id", &id)?;
    let store = web.store();
    let Some(details) = store.get_build(BuildId(id)).await? else {
        return Err(WebError::NotFound(format!("no build {id}")));
    };
    let b = &details.build;
    let running = b.finished_at.is_none();
    let plan_builder = web.api().shared.builder(&b.builder);
    let now = now_ms();
    // Where the engine has it (a lock it waits for).
    let engine_state = if running {
        web.api().runner.snapshot().await.and_then(|s| {
            s.running
                .into_iter()
                .find(|r| r.build.map(|x| x.0) == Some(id))
        })
    } else {
        None
    };
    let request = store.get_request(b.request).await?;
    let live_logs: Vec<(u32, String, String)> = details
        .steps
        .iter()
        .filter(|s| s.step.finished_at.is_none())
        .flat_map(|s| {
            s.logs.iter().filter(|l| !l.finished).map(move |l| {
                let from = l.line_count.saturating_sub(LIVE_TAIL_LINES);
                (
                    s.step.index,
                    l.name.clone(),
                    format!("{}/live?from={from}", log_href(id, s.step.index, &l.name)),
                )
            })
        })
        .collect();
    let steps = html! {
        div #live data-live="" {
            p.facts {
                "worker " strong { (b.worker) }
                " · started " (when(b.started_at.0, now))
                @if let Some(f) = b.finished_at {
                    " · took " (short_duration(f.0.saturating_sub(b.started_at.0)))
                } @else {
                    " · running for " (short_duration(now.saturating_sub(b.started_at.0)))
                }
                @if let Some(r) = &request { " · " span.reason { (web.mask(&r.reason)) } }
            }
            div.actions {
                @if running { (button_form(&viewer, &format!("/builds/{id}/stop"), "Stop", "danger")) }
                (button_form(&viewer, &format!("/builds/{id}/rebuild"), "Rebuild", ""))
                @if viewer.user.is_none() { span.hint { a href="/login" { "Log in" } " to stop or rebuild." } }
            }
            p class={ "status " (result_class(b.result, running)) } {
                strong { (result_word(b.result, running)) }
                @if !b.state_string.is_empty() { " · " (web.mask(&b.state_string)) }
                @if let Some(r) = &engine_state {
                    @if let abo_engine::RunState::WaitingForLock { lock, name, .. } = &r.state {
                        " · step " (name) " waits for lock " strong { (lock) } " (held by another build)"
                    }
                    @if r.stopping { " · stopping" }
                }
            }
            div.scroll {
                table.steps {
                    thead { tr { th { "#" } th { "step" } th { "result" } th { "duration" } th { "description" } th { "logs" } } }
                    tbody {
                        @for s in &details.steps {
                            @let st = &s.step;
                            @let srun = st.finished_at.is_none();
                            tr class=(result_class(st.result, srun)) {
                                td { (st.index) }
                                td { (st.name) @if st.hidden { " " span.hint { "(hidden)" } } }
                                td.result { (result_word(st.result, srun)) }
                                td { (short_duration(st.finished_at.map_or(now, |t| t.0).saturating_sub(st.started_at.0))) }
                                td.desc { (web.mask(&st.description)) }
                                td.logs {
                                    @for l in &s.logs {
                                        a href=(log_href(id, st.index, &l.name)) { (l.name) }
                                        " "
                                    }
                                    @if is_analysis(plan_builder.as_ref(), st.index, &st.name) && !s.logs.is_empty() {
                                        a.analysis href={ "/builds/" (id) "/steps/" (st.index) "/analysis" } { "analysis" }
                                    }
                                    @for u in &st.urls {
                                        a.url href=(safe_url(&u.url)) rel="noopener" { (u.name) } " "
                                    }
                                }
                            }
                        }
                        @if running {
                            @if let Some(pb) = &plan_builder {
                                @let next = details.steps.iter().map(|s| s.step.index as usize + 1).max().unwrap_or(0);
                                @for (i, st) in pb.steps.iter().enumerate().skip(next) {
                                    tr.r-pending { td { (i) } td { (st.name) } td.result { "pending" } td {} td {} td {} }
                                }
                            }
                        }
                    }
                }
            }
            // The logs being written now, for abo.js: one that starts after the page was
            // rendered gets a live output block of its own.
            div.live-index hidden {
                @for (step, name, url) in &live_logs {
                    span data-log-key={ (step) "/" (name) } data-live-log=(url)
                        data-href=(log_href(id, *step, name)) { "step " (step) " · " (name) }
                }
            }
        }
    };
    if wants_fragment(&headers) {
        return Ok(html_response(steps));
    }
    let changes = store
        .changes_of_builds(vec![BuildId(id)])
        .await?
        .remove(&BuildId(id))
        .unwrap_or_default();
    let blame: BTreeSet<&str> = changes
        .iter()
        .map(|c| c.author.as_str())
        .filter(|a| !a.is_empty())
        .collect();
    let props: BTreeMap<String, String> = json_properties(&b.properties);
    let body = html! {
        h1 { a href={ "/builders/" (b.builder) } { (b.builder) } " #" (b.number) }
        section { h2 { "Steps" } (steps) }
        @if running || !live_logs.is_empty() {
            section.live-logs {
                h2 { "Live output" }
                @for (step, name, url) in &live_logs {
                    h3 { "step " (step) " · " a href=(log_href(id, *step, name)) { (name) } }
                    pre.log data-live-log=(url) data-log-key={ (step) "/" (name) } {}
                }
                noscript { p.hint { "Follow the log links: live output needs JavaScript." } }
            }
        }
        section {
            h2 { "Changes" }
            @if changes.is_empty() { p.empty { "No change: forced or rebuilt." } }
            @else {
                p { "Blame list: " @for (i, a) in blame.iter().enumerate() { @if i > 0 { ", " } span.author { (a) } } }
                (change_list(&changes))
            }
        }
        section {
            h2 { "Properties" }
            table.props {
                @for (k, v) in &props { tr { th { (k) } td { code { (web.mask(v)) } } } }
            }
        }
    };
    let title = format!("{} #{}", b.builder, b.number);
    Ok(html_response(layout(&title, &viewer, Nav::Matrix, body)))
}

/// A list of changes: revision, author, first line (full message on hover), branch.
pub(crate) fn change_list(changes: &[abo_store::Change]) -> Markup {
    html! {
        ul.changes {
            @for c in changes {
                li.change {
                    code title=(c.revision) { (short_rev(&c.revision)) }
                    " " span.author { (c.author) }
                    @if !c.branch.is_empty() { " on " span.branch { (c.branch) } }
                    ": " span.msg title=(c.comments) { (first_line(&c.comments)) }
                }
            }
        }
    }
}

/// Whether step `index` of the build is a log analysis (the plan's step at that index,
/// if it still has that name).
fn is_analysis(builder: Option<&abo_plan::Builder>, index: u32, name: &str) -> bool {
    builder
        .and_then(|b| b.steps.get(index as usize))
        .is_some_and(|s| s.name == name && matches!(s.kind, StepKind::AnalyzeLog { .. }))
}

/// A step link's target, if it is http(s) or a path on this site; `#` otherwise (no
/// `javascript:` links).
fn safe_url(url: &str) -> String {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://")
        || lower.starts_with("https://")
        || (url.starts_with('/') && !url.starts_with("//"))
    {
        url.to_owned()
    } else {
        "#".to_owned()
    }
}

/// `POST /builds/{id}/stop`.
pub(crate) async fn stop(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id("the build id", &id)?;
    let user = viewer.user.unwrap_or_default();
    match web.api().runner.stop(id).await {
        Some(true) => tracing::info!(build = id, user = %user, "stop asked for (web)"),
        Some(false) => {
            return Err(WebError::Conflict(format!("build {id} is not running")));
        }
        None => return Err(WebError::Unavailable("the build runner has stopped".into())),
    }
    Ok(Redirect::to(&format!("/builds/{id}")).into_response())
}

/// `POST /builds/{id}/rebuild`: a new request of the same builder with the build's request
/// properties.
pub(crate) async fn rebuild(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id("the build id", &id)?;
    let user = viewer.user.unwrap_or_default();
    let store = web.store();
    let Some(build) = store.get_build(BuildId(id)).await? else {
        return Err(WebError::NotFound(format!("no build {id}")));
    };
    let b = build.build;
    let props = match store.get_request(b.request).await? {
        Some(r) => json_properties(&r.properties),
        None => BTreeMap::new(),
    };
    let reason = format!("rebuild of {} #{}", b.builder, b.number);
    crate::api::submit_force(web.api(), &b.builder, &user, &reason, props).await?;
    Ok(Redirect::to(&format!(
        "/builders/{}",
        super::auth::url_encode(&b.builder)
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_links_are_kept() {
        assert_eq!(safe_url("https://x/y"), "https://x/y");
        assert_eq!(safe_url("/artifacts/a"), "/artifacts/a");
        assert_eq!(safe_url("javascript:alert(1)"), "#");
        assert_eq!(safe_url("//evil"), "#");
    }
}
