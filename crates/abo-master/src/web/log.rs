//! Logs. `/builds/{id}/steps/{n}/logs/{name}` shows [`LINES_PER_PAGE`] lines at a time
//! (`?from=<line>` from 0, or `?line=<n>` to land on line n, 1-based as the analysis
//! counts), numbered and anchored, stderr and header lines marked, ANSI colours as classes;
//! the last page of a running log continues live. `.../live` is that continuation: server-
//! sent events of at most [`LIVE_LINES`] complete lines each (polled from the store every
//! [`LIVE_POLL`], so memory stays flat whatever the log's size), resumable from the event id
//! (the next line), ending when the log does or the master stops.
//! `/builds/{id}/steps/{n}/analysis` runs the log analysis over the log a test step
//! analyses, streamed page by page, and links each failure line to its place in the log.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::ansi::{to_html, Style};
use super::build::log_href;
use super::{html_response, layout, parse_id, Nav, PageResult, Viewer, Web, WebError};
use abo_plan::StepKind;
use abo_store::{BuildId, LogLine, Stream};

/// Lines per log page.
pub(crate) const LINES_PER_PAGE: u64 = 1000;
/// Most lines per live event.
const LIVE_LINES: usize = 200;
/// How often a live stream looks for new lines.
const LIVE_POLL: Duration = Duration::from_millis(300);
/// Text read per step of the analysis.
const ANALYSIS_READ: usize = 1024 * 1024;
/// Failure lines listed by the analysis page.
const MAX_FAILURES_SHOWN: usize = 2000;

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    from: Option<String>,
    line: Option<String>,
}

type LogPath = Path<(String, String, String)>;

fn parse_path(id: &str, n: &str) -> Result<(u64, u32), WebError> {
    let id = parse_id("the build id", id)?;
    let n = u32::try_from(parse_id("the step index", n)?)
        .map_err(|_| WebError::Bad("the step index is too large".into()))?;
    Ok((id, n))
}

/// Lines as HTML: one `<span class="line">` each, with its number as an anchor.
fn lines_html(lines: &[LogLine], style: &mut Style) -> String {
    let mut out = String::new();
    for l in lines {
        let n = l.number + 1;
        let class = match l.stream {
            Some(Stream::Stderr) => "line err",
            Some(Stream::Header) => "line hdr",
            Some(Stream::Stdout) | None => "line",
        };
        let (text, next) = to_html(&l.text_lossy(), *style);
        *style = next;
        out.push_str(&format!(
            "<span class=\"{class}\" id=\"L{n}\"><a class=\"ln\" href=\"#L{n}\">{n}</a>{text}{}</span>\n",
            if l.cut { "<span class=\"cut\">…</span>" } else { "" }
        ));
    }
    out
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path((id, n, name)): LogPath,
    Query(q): Query<LogQuery>,
) -> PageResult {
    let (id, n) = parse_path(&id, &n)?;
    let store = web.store();
    let Some(info) = store.find_log(BuildId(id), n, &name).await? else {
        return Err(WebError::NotFound(format!(
            "build {id} has no log {name:?} in step {n}"
        )));
    };
    let from = match (&q.line, &q.from) {
        (Some(line), _) => {
            let line = parse_id("line", line)?.max(1);
            (line - 1) / LINES_PER_PAGE * LINES_PER_PAGE
        }
        (None, Some(from)) => parse_id("from", from)?,
        (None, None) => 0,
    };
    let reader = store.log_reader(info.id).await?;
    let page = reader.read_lines(from, LINES_PER_PAGE as usize).await?;
    let mut style = Style::default();
    let text = lines_html(&page.lines, &mut style);
    let total = info.line_count;
    let last_from = total.saturating_sub(1) / LINES_PER_PAGE * LINES_PER_PAGE;
    let at_end = page.next >= total || page.lines.len() < LINES_PER_PAGE as usize;
    let live = !info.finished && at_end;
    let base = log_href(id, n, &name);
    let body = html! {
        h1 { a href={ "/builds/" (id) } { "build " (id) } " · step " (n) " · " (name) }
        p.facts {
            (total) " lines"
            @if info.truncated { " · " span.warning { "truncated: " (info.dropped_bytes) " bytes not stored" } }
            @if info.finished { " · complete" } @else { " · " span.r-running { "still being written" } }
            " · "
            a href={ "/api/v1/builds/" (id) "/steps/" (n) "/logs/" (super::auth::url_encode(&name)) } { "raw text" }
        }
        (pager(&base, from, page.next, total, last_from))
        pre.log data-live-log=[live.then(|| format!("{base}/live?from={}", page.next))] {
            (PreEscaped(text))
        }
        @if live { noscript { p.hint { "Reload to see new lines: live output needs JavaScript." } } }
        (pager(&base, from, page.next, total, last_from))
    };
    let title = format!("{name} of build {id} step {n}");
    Ok(html_response(layout(&title, &viewer, Nav::None, body)))
}

fn pager(base: &str, from: u64, next: u64, total: u64, last_from: u64) -> Markup {
    html! {
        nav.pages {
            @if from > 0 {
                a href={ (base) "?from=0" } { "« first" } " "
                a href={ (base) "?from=" (from.saturating_sub(LINES_PER_PAGE)) } { "‹ previous" } " "
            }
            span { "lines " (from + 1) "–" (next) " of " (total) }
            @if next < total {
                " " a rel="next" href={ (base) "?from=" (next) } { "next ›" }
                " " a href={ (base) "?from=" (last_from) } { "last »" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LiveQuery {
    from: Option<String>,
}

struct Follow {
    reader: abo_store::LogReader,
    next: u64,
    style: Style,
    shutdown: tokio_util::sync::CancellationToken,
    done: bool,
}

/// `.../live`: the log's lines from `from` (or the `Last-Event-ID`), as `lines` events of
/// HTML, then an `end` event when the log is finished.
pub(crate) async fn live(
    State(web): State<Web>,
    Path((id, n, name)): LogPath,
    Query(q): Query<LiveQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (id, n) = parse_path(&id, &n)?;
    let store = web.store();
    let Some(info) = store.find_log(BuildId(id), n, &name).await? else {
        return Err(WebError::NotFound(format!(
            "build {id} has no log {name:?} in step {n}"
        )));
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from = match (resume, &q.from) {
        (Some(r), _) => r,
        (None, Some(f)) => parse_id("from", f)?,
        (None, None) => 0,
    };
    let state = Follow {
        reader: store.log_reader(info.id).await?,
        next: from,
        style: Style::default(),
        shutdown: web.opts().shutdown.clone(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if st.shutdown.is_cancelled() {
                return None;
            }
            let page = match st.reader.read_lines(st.next, LIVE_LINES).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("live log: {e}");
                    return None;
                }
            };
            let complete: Vec<LogLine> = page.lines.into_iter().filter(|l| !l.partial).collect();
            if !complete.is_empty() {
                let html = lines_html(&complete, &mut st.style);
                st.next = complete.last().map_or(page.next, |l| l.number + 1);
                let event = Event::default()
                    .event("lines")
                    .id(st.next.to_string())
                    .json_data(html)
                    .unwrap_or_else(|_| Event::default().comment("unencodable"));
                return Some((Ok::<Event, Infallible>(event), st));
            }
            if page.finished {
                st.done = true;
                return Some((Ok(Event::default().event("end").data("end")), st));
            }
            tokio::select! {
                _ = st.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(LIVE_POLL) => {}
            }
        }
    });
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(r)
}

/// `/builds/{id}/steps/{n}/analysis`.
pub(crate) async fn analysis(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path((id, n)): Path<(String, String)>,
) -> PageResult {
    let (id, n) = parse_path(&id, &n)?;
    let store = web.store();
    let Some(details) = store.get_build(BuildId(id)).await? else {
        return Err(WebError::NotFound(format!("no build {id}")));
    };
    let Some(step) = details.steps.iter().find(|s| s.step.index == n) else {
        return Err(WebError::NotFound(format!("build {id} has no step {n}")));
    };
    let target = web
        .api()
        .shared
        .builder(&details.build.builder)
        .and_then(|b| b.steps.get(n as usize).cloned())
        .filter(|s| s.name == step.step.name)
        .and_then(|s| match s.kind {
            StepKind::AnalyzeLog { step, log } => Some((step, log)),
            _ => None,
        });
    let Some((target_step, target_log)) = target else {
        return Err(WebError::NotFound(format!(
            "step {n} of build {id} is not a log analysis"
        )));
    };
    let Some(analysed) = details
        .steps
        .iter()
        .rfind(|s| s.step.index < n && s.step.name == target_step)
    else {
        return Err(WebError::NotFound(format!(
            "build {id} has no step {target_step:?} before step {n}"
        )));
    };
    let index = analysed.step.index;
    let Some(info) = store.find_log(BuildId(id), index, &target_log).await? else {
        return Err(WebError::NotFound(format!(
            "step {target_step} has no log {target_log:?}"
        )));
    };
    let reader = store.log_reader(info.id).await?;
    let mut analyzer = abo_logscan::Analyzer::new();
    let mut offset = 0u64;
    loop {
        let page = reader.read_text(offset, ANALYSIS_READ).await?;
        if page.data.is_empty() {
            break;
        }
        offset += page.data.len() as u64;
        analyzer.feed(&page.data);
    }
    let a = analyzer.finish();
    let href = log_href(id, index, &target_log);
    let body = html! {
        h1 { a href={ "/builds/" (id) } { "build " (id) } " · analysis of " (target_step) " · " (target_log) }
        p class={ "status " (if a.failed { "r-failure" } else { "r-success" }) } {
            strong { @if a.failed { "failed" } @else { "passed" } }
            " · " (a.total) " failure line(s)"
        }
        table.counts {
            tr { th { "tests run" } td { (a.counts.run.map_or("?".to_string(), |v| v.to_string())) } }
            tr { th { "failed" } td { (a.counts.failed.map_or("?".to_string(), |v| v.to_string())) } }
            tr { th { "errors" } td { (a.counts.errors.map_or("?".to_string(), |v| v.to_string())) } }
        }
        @if !a.failures.is_empty() {
            h2 { "Failure lines" }
            ol.failures {
                @for f in a.failures.iter().take(MAX_FAILURES_SHOWN) {
                    li {
                        a href={ (href) "?line=" (f.line) "#L" (f.line) } { "line " (f.line) }
                        " " span.label { (f.label.as_str()) } " "
                        code { (f.text) }
                    }
                }
            }
            @if a.failures.len() > MAX_FAILURES_SHOWN { p.hint { (a.failures.len() - MAX_FAILURES_SHOWN) " more not shown." } }
        }
    };
    let title = format!("analysis of build {id} step {n}");
    Ok(html_response(layout(&title, &viewer, Nav::None, body)))
}
