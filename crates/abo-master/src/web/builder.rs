//! `/builders/{name}`: a builder's history, newest first, [`PAGE`] builds at a time (keyset
//! pagination: `?before=<build id>`, so page 1,000 costs what page 1 does), with results,
//! durations, revisions, the changes of each build and which build broke or fixed the
//! builder; an SVG chart of the page's durations and test counts; the force form.
//! `POST /builders/{name}/force` forces a build (the JSON API's code).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::{
    csrf_field, first_line, html_response, layout, now_ms, parse_id, result_class, result_word,
    revision_of, short_duration, short_rev, when, Nav, PageResult, Viewer, Web, WebError,
};
use abo_store::{Build, BuildId, BuildResult};

/// Builds per history page.
const PAGE: u32 = 50;

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    before: Option<String>,
}

/// Whether a result counts as good for broke/fixed.
fn good(r: Option<BuildResult>) -> Option<bool> {
    match r? {
        BuildResult::Success | BuildResult::Warnings => Some(true),
        BuildResult::Failure | BuildResult::Exception => Some(false),
        BuildResult::Skipped | BuildResult::Retry | BuildResult::Cancelled => None,
    }
}

/// `run` of a step description `N tests, F failed, E errors` (the log analysis's words).
pub(crate) fn tests_run(description: &str) -> Option<(u64, u64)> {
    let at = description.find(" tests, ")?;
    let head = &description[..at];
    let run: u64 = head
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let rest = &description[at + " tests, ".len()..];
    let failed: u64 = rest
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors: u64 = rest
        .split(", ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some((run, failed + errors))
}

/// Property names a builder's steps use (`%(name)s`, `%(name:-default)s`) that a forced
/// build may set, without those the builder or the runtime set.
pub(crate) fn used_properties(builder: &abo_plan::Builder) -> Vec<String> {
    let mut names = BTreeSet::new();
    for step in builder.steps.iter() {
        for t in step.templates() {
            let mut rest = t;
            while let Some(i) = rest.find('%') {
                rest = &rest[i + 1..];
                if let Some(r) = rest.strip_prefix('%') {
                    rest = r;
                    continue;
                }
                if let Some(r) = rest.strip_prefix('(') {
                    let end = r.find([')', ':']).unwrap_or(r.len());
                    let name = &r[..end];
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    {
                        names.insert(name.to_owned());
                    }
                    rest = &r[end..];
                }
            }
        }
    }
    const RUNTIME: &[&str] = &[
        "buildername",
        "buildnumber",
        "workername",
        "slavename",
        "builddir",
        "workdir",
        "got_revision",
    ];
    names
        .into_iter()
        .filter(|n| !builder.properties.contains_key(n))
        .filter(|n| !RUNTIME.contains(&n.as_str()) && !n.starts_with("cap_"))
        .collect()
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> PageResult {
    let plan_builder = web.api().shared.builder(&name);
    let before = match q.before.as_deref() {
        Some(s) => Some(BuildId(parse_id("before", s)?)),
        None => None,
    };
    let store = web.store();
    // One more than shown: the result before the page's last build tells if it broke.
    let mut builds = store
        .list_builds(Some(&name), before, PAGE + 1, abo_store::Properties::Read)
        .await?;
    if plan_builder.is_none() && builds.is_empty() {
        return Err(WebError::NotFound(format!("no builder {name:?}")));
    }
    let older = builds.len() > PAGE as usize;
    let extra = if older { builds.pop() } else { None };
    let ids: Vec<BuildId> = builds.iter().map(|b| b.id).collect();
    let changes = store.changes_of_builds(ids.clone()).await?;
    let tests = store.test_step_descriptions(ids).await?;
    let queued = store.queued_count(&name).await?;
    let now = now_ms();
    // Transition marks: compare each finished build with the next older finished one.
    let mut marks: BTreeMap<BuildId, &'static str> = BTreeMap::new();
    {
        let all: Vec<&Build> = builds.iter().chain(extra.iter()).collect();
        for (i, b) in all.iter().enumerate() {
            let Some(now_good) = good(b.result) else {
                continue;
            };
            let prev = all[i + 1..].iter().find_map(|p| good(p.result));
            match (prev, now_good) {
                (Some(true), false) => {
                    marks.insert(b.id, "broke");
                }
                (Some(false), true) => {
                    marks.insert(b.id, "fixed");
                }
                _ => {}
            }
        }
    }
    let test_counts: BTreeMap<BuildId, (u64, u64)> = tests
        .iter()
        .filter_map(|(id, ds)| {
            let sum = ds.iter().filter_map(|d| tests_run(d)).fold(
                None,
                |acc: Option<(u64, u64)>, (r, f)| {
                    let (ar, af) = acc.unwrap_or((0, 0));
                    Some((ar + r, af + f))
                },
            )?;
            Some((*id, sum))
        })
        .collect();
    let chart = chart(&builds, &test_counts);
    let body = html! {
        h1 { "Builder " (name) }
        @if let Some(b) = &plan_builder {
            p.facts {
                "buildout " strong { (b.buildout) }
                @for (k, v) in &b.properties { " · " (k) " " strong { (v) } }
                @if !b.category.is_empty() { " · category " (b.category) }
                " · " (b.workers.len()) " worker(s)"
                @if queued > 0 { " · " span.pending { (queued) " pending" } }
                " · "
                a href={ "/badges/builders/" (name) ".svg" } { "badge" }
            }
        } @else {
            p.warning { "This builder is no longer in the configuration." }
        }
        @if let Some(b) = &plan_builder { (force_form(&viewer, b)) }
        section.chart {
            h2 { "Durations and tests" }
            (chart)
        }
        section {
            h2 { "History" }
            @if builds.is_empty() { p.empty { "No build yet." } }
            @else {
                div.scroll {
                    table.history {
                        thead { tr {
                            th { "#" } th { "result" } th { "started" } th { "duration" }
                            th { "revision" } th { "tests" } th { "changes" } th { "worker" }
                        } }
                        tbody {
                            @for b in &builds {
                                @let running = b.finished_at.is_none();
                                tr class=(result_class(b.result, running)) {
                                    td { a href={ "/builds/" (b.id) } { "#" (b.number) } }
                                    td.result {
                                        (result_word(b.result, running))
                                        @if let Some(m) = marks.get(&b.id) {
                                            " " span class={ "mark " (m) } { (m) }
                                        }
                                    }
                                    td { (when(b.started_at.0, now)) }
                                    td { (short_duration(b.finished_at.map_or(now, |t| t.0).saturating_sub(b.started_at.0))) }
                                    td { @if let Some(rev) = revision_of(&b.properties) { code title=(rev) { (short_rev(&rev)) } } }
                                    td { @if let Some((run, failed)) = test_counts.get(&b.id) { (run) @if *failed > 0 { " (" (failed) " failed)" } } }
                                    td.changes {
                                        @if let Some(cs) = changes.get(&b.id) {
                                            @for c in cs.iter().take(3) {
                                                span.change title=(c.comments) {
                                                    code { (short_rev(&c.revision)) } " " (c.author) ": " (first_line(&c.comments))
                                                }
                                            }
                                            @if cs.len() > 3 { span.more { "+" (cs.len() - 3) " more" } }
                                        }
                                    }
                                    td { (b.worker) }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages {
                @if before.is_some() { a href={ "/builders/" (name) } { "« newest" } " " }
                @if older {
                    @if let Some(last) = builds.last() {
                        a rel="next" href={ "/builders/" (name) "?before=" (last.id) } { "older »" }
                    }
                }
            }
        }
    };
    let title = format!("Builder {name}");
    Ok(html_response(layout(&title, &viewer, Nav::Matrix, body)))
}

fn force_form(viewer: &Viewer, b: &abo_plan::Builder) -> Markup {
    let props = used_properties(b);
    html! {
        @if viewer.user.is_some() {
            details.force {
                summary { "Force a build" }
                form.force method="post" action={ "/builders/" (b.name) "/force" } {
                    (csrf_field(viewer))
                    label { "Reason " input type="text" name="reason" maxlength="500"; }
                    @for p in &props {
                        label { (p) " " input type="text" name={ "prop:" (p) } maxlength="1000"; }
                    }
                    label { "Other properties (name=value, one per line) "
                        textarea name="extra" rows="2" maxlength="10000" {} }
                    button type="submit" { "Force build" }
                }
            }
        } @else {
            p.hint { a href="/login" { "Log in" } " to force a build." }
        }
    }
}

/// The SVG chart of durations (bars) and test counts (line) over `builds`, oldest left.
/// Built from numbers only; the `<title>`s it embeds are escaped.
fn chart(builds: &[Build], tests: &BTreeMap<BuildId, (u64, u64)>) -> Markup {
    let finished: Vec<&Build> = builds
        .iter()
        .rev()
        .filter(|b| b.finished_at.is_some())
        .collect();
    if finished.is_empty() {
        return html! { p.empty { "No finished build yet." } };
    }
    let (w, h, pad) = (600.0_f64, 160.0_f64, 20.0_f64);
    let n = finished.len() as f64;
    let slot = (w - 2.0 * pad) / n;
    let dur = |b: &Build| {
        b.finished_at
            .map_or(0, |t| t.0.saturating_sub(b.started_at.0)) as f64
    };
    let max_d = finished.iter().map(|b| dur(b)).fold(1.0, f64::max);
    let max_t = finished
        .iter()
        .filter_map(|b| tests.get(&b.id).map(|t| t.0 as f64))
        .fold(0.0, f64::max);
    let mut svg = String::new();
    svg.push_str(&format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"build durations and test counts\" xmlns=\"http://www.w3.org/2000/svg\">"
    ));
    svg.push_str(&format!(
        "<line class=\"axis\" x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"currentColor\"/>",
        y = h - pad,
        x2 = w - pad
    ));
    let mut points = Vec::new();
    for (i, b) in finished.iter().enumerate() {
        let d = dur(b);
        let bh = (h - 2.0 * pad) * d / max_d;
        let x = pad + slot * i as f64;
        let class = result_class(b.result, false);
        let title = format!("#{} {}", b.number, short_duration(d as u64));
        svg.push_str(&format!(
            "<a href=\"/builds/{}\"><rect class=\"bar {class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect></a>",
            b.id,
            x + slot * 0.1,
            h - pad - bh,
            (slot * 0.8).max(1.0),
            bh.max(1.0),
            html! { (title) }.into_string(),
        ));
        if max_t > 0.0 {
            if let Some((run, _)) = tests.get(&b.id) {
                let y = h - pad - (h - 2.0 * pad) * (*run as f64) / max_t;
                points.push(format!("{:.1},{:.1}", x + slot / 2.0, y));
            }
        }
    }
    if points.len() > 1 {
        svg.push_str(&format!(
            "<polyline class=\"tests\" fill=\"none\" stroke=\"currentColor\" points=\"{}\"/>",
            points.join(" ")
        ));
    }
    for p in &points {
        if let Some((x, y)) = p.split_once(',') {
            svg.push_str(&format!(
                "<circle class=\"tests\" cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"currentColor\"/>"
            ));
        }
    }
    svg.push_str(&format!(
        "<text x=\"{pad}\" y=\"12\" class=\"legend\">max {} · tests max {}</text>",
        short_duration(max_d as u64),
        max_t as u64
    ));
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

#[derive(Deserialize)]
pub(crate) struct ForceForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    extra: String,
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

/// `POST /builders/{name}/force`.
pub(crate) async fn force(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Form(f): Form<ForceForm>,
) -> PageResult {
    let user = viewer
        .user
        .clone()
        .ok_or(WebError::Forbidden("log in first".into()))?;
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &f.fields {
        if let Some(p) = k.strip_prefix("prop:") {
            if !v.trim().is_empty() {
                props.insert(p.to_owned(), v.trim().to_owned());
            }
        }
    }
    for line in f.extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once('=') else {
            return Err(WebError::Bad(format!(
                "other properties are name=value lines, not {line:?}"
            )));
        };
        props.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    crate::api::submit_force(web.api(), &name, &user, &f.reason, props).await?;
    Ok(Redirect::to(&format!("/builders/{}", super::auth::url_encode(&name))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_force_form_offers_the_properties_the_steps_use() {
        let steps: std::sync::Arc<[abo_plan::Step]> = vec![
            abo_plan::Step::argv(
                "bootstrap",
                [
                    "bin/buildout",
                    "%(buildout-tag:-)s",
                    "%(pg_version)s",
                    "100%%",
                ],
            ),
            abo_plan::Step::argv("run", ["%(buildername)s", "%(cap_python_bin:-python)s"]),
        ]
        .into();
        let builder = abo_plan::Builder {
            name: "b".into(),
            buildout: "b".into(),
            workers: Default::default(),
            category: String::new(),
            properties: BTreeMap::from([("pg_version".to_string(), "16".to_string())]),
            steps,
        };
        assert_eq!(used_properties(&builder), ["buildout-tag"]);
    }

    #[test]
    fn test_counts_are_read_from_descriptions() {
        assert_eq!(tests_run("12 tests, 1 failed, 2 errors"), Some((12, 3)));
        assert_eq!(
            tests_run("3 failure line(s); 40 tests, 0 failed, 0 errors"),
            Some((40, 0))
        );
        assert_eq!(tests_run("ran fine"), None);
    }
}
