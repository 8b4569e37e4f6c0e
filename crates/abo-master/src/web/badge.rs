//! Badges: `/badges/builders/NAME.svg` (the builder's latest finished result) and
//! `/badges/buildouts/NAME.svg` (the worst latest result over the buildout's builders).
//! Plain SVG, text escaped, no script, no style attribute.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use maud::html;

use super::{PageResult, Web, WebError};
use abo_store::BuildResult;

fn colour(result: Option<BuildResult>) -> &'static str {
    match result {
        Some(BuildResult::Success) => "#2e7d32",
        Some(BuildResult::Warnings) => "#f9a825",
        Some(BuildResult::Failure) => "#c62828",
        Some(BuildResult::Exception) => "#6a1b9a",
        Some(BuildResult::Skipped | BuildResult::Retry | BuildResult::Cancelled) | None => {
            "#757575"
        }
    }
}

/// Worse results first (Buildbot's order for what a badge should shout).
fn severity(r: Option<BuildResult>) -> u8 {
    match r {
        Some(BuildResult::Exception) => 6,
        Some(BuildResult::Failure) => 5,
        Some(BuildResult::Warnings) => 4,
        Some(BuildResult::Cancelled) => 3,
        Some(BuildResult::Retry) => 2,
        Some(BuildResult::Success) => 1,
        Some(BuildResult::Skipped) | None => 0,
    }
}

fn svg(label: &str, result: Option<BuildResult>) -> Response {
    let value = result.map_or("no build", |r| r.as_str());
    let label: String = label.chars().take(60).collect();
    // About 7 px per character of Verdana 11.
    let lw = 10 + 7 * label.chars().count();
    let vw = 10 + 7 * value.len();
    let w = lw + vw;
    let body = html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height="20" role="img" aria-label={ (label) ": " (value) } {
            title { (label) ": " (value) }
            rect width=(lw) height="20" fill="#555" {}
            rect x=(lw) width=(vw) height="20" fill=(colour(result)) {}
            g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle" {
                text x=(lw / 2) y="14" { (label) }
                text x=(lw + vw / 2) y="14" { (value) }
            }
        }
    };
    let mut r = Response::new(axum::body::Body::from(body.into_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn strip(name: &str) -> &str {
    name.strip_suffix(".svg").unwrap_or(name)
}

pub(crate) async fn builder(State(web): State<Web>, Path(name): Path<String>) -> PageResult {
    let name = strip(&name).to_owned();
    if web.api().shared.builder(&name).is_none() {
        return Err(WebError::NotFound(format!("no builder {name:?}")));
    }
    let latest = web
        .store()
        .latest_finished_builds(vec![name.clone()])
        .await?;
    Ok(svg(&name, latest.get(&name).and_then(|b| b.result)))
}

pub(crate) async fn buildout(State(web): State<Web>, Path(name): Path<String>) -> PageResult {
    let name = strip(&name).to_owned();
    let builders: Vec<String> = web
        .api()
        .shared
        .plan()
        .builders
        .iter()
        .filter(|b| b.buildout == name)
        .map(|b| b.name.clone())
        .collect();
    if builders.is_empty() {
        return Err(WebError::NotFound(format!("no buildout {name:?}")));
    }
    let latest = web.store().latest_finished_builds(builders).await?;
    let worst = latest
        .values()
        .map(|b| b.result)
        .max_by_key(|r| severity(*r))
        .flatten();
    Ok(svg(&name, worst))
}
