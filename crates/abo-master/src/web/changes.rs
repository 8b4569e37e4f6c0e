//! `/changes`: recent changes, newest first, [`PAGE`] at a time (keyset: `?before=<id>`),
//! of every repository or of one (`?repository=`, the pollers' repositories listed as
//! filters), each with the builds it caused.

use axum::extract::{Query, State};
use axum::Extension;
use maud::html;
use serde::Deserialize;

use super::auth::url_encode;
use super::{
    first_line, html_response, layout, now_ms, parse_id, result_class, result_word, short_rev,
    when, Nav, PageResult, Viewer, Web,
};
use abo_store::ChangeId;

/// Changes per page.
const PAGE: u32 = 50;

#[derive(Deserialize)]
pub(crate) struct ChangesQuery {
    before: Option<String>,
    repository: Option<String>,
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<ChangesQuery>,
) -> PageResult {
    let before = match q.before.as_deref() {
        Some(s) => Some(ChangeId(parse_id("before", s)?)),
        None => None,
    };
    let repository = q.repository.filter(|r| !r.is_empty());
    let store = web.store();
    let mut changes = store
        .changes_page(repository.as_deref(), before, PAGE + 1)
        .await?;
    let more = changes.len() > PAGE as usize;
    changes.truncate(PAGE as usize);
    let builds = store
        .builds_of_changes(changes.iter().map(|c| c.id).collect())
        .await?;
    let plan = web.api().shared.plan();
    let mut repos: Vec<&str> = plan.pollers.iter().map(|p| p.url.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    let now = now_ms();
    let repo_q = repository
        .as_deref()
        .map(|r| format!("&repository={}", url_encode(r)))
        .unwrap_or_default();
    let body = html! {
        h1 { "Changes" }
        @if !repos.is_empty() {
            nav.filter aria-label="repositories" {
                "Repository: "
                @if repository.is_none() { strong { "all" } } @else { a href="/changes" { "all" } }
                @for r in &repos {
                    " "
                    @if repository.as_deref() == Some(*r) { strong { (r) } }
                    @else { a href={ "/changes?repository=" (url_encode(r)) } { (r) } }
                }
            }
        }
        @if changes.is_empty() { p.empty { "No change." } }
        @else {
            div.scroll { table.changes {
                thead { tr { th { "revision" } th { "repository" } th { "branch" } th { "author" } th { "message" } th { "seen" } th { "builds" } } }
                tbody {
                    @for c in &changes {
                        tr.change {
                            td { code title=(c.revision) { (short_rev(&c.revision)) } }
                            td.repo { (c.repository) }
                            td { (c.branch) }
                            td.author { (c.author) }
                            td.msg title=(c.comments) { (first_line(&c.comments)) }
                            td { (when(c.received_at.0, now)) }
                            td {
                                @for b in builds.get(&c.id).map(Vec::as_slice).unwrap_or_default() {
                                    @let running = b.finished_at.is_none();
                                    a class=(result_class(b.result, running)) href={ "/builds/" (b.id) } title=(result_word(b.result, running)) {
                                        (b.builder) " #" (b.number)
                                    }
                                    " "
                                }
                            }
                        }
                    }
                }
            } }
        }
        nav.pages {
            @if before.is_some() { a href={ "/changes" @if let Some(r) = &repository { "?repository=" (url_encode(r)) } } { "« newest" } " " }
            @if more {
                @if let Some(last) = changes.last() {
                    a rel="next" href={ "/changes?before=" (last.id) (repo_q) } { "older »" }
                }
            }
        }
    };
    Ok(html_response(layout(
        "Changes",
        &viewer,
        Nav::Changes,
        body,
    )))
}
