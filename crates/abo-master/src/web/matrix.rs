//! `/`: the matrix. Rows are buildouts (manifest sections), columns the builders' build-for
//! versions (PostgreSQL and other dispatching capabilities); each cell is the builder's
//! latest finished result with its age, revision and link, plus its running build and
//! pending requests. `?category=` filters the rows. The table is the page's live fragment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    html_response, layout, now_ms, result_class, result_word, revision_of, short_rev,
    wants_fragment, when, Nav, PageResult, Viewer, Web,
};

#[derive(Deserialize)]
pub(crate) struct MatrixQuery {
    category: Option<String>,
}

/// A column's title from a builder's properties (`pg_version=9.6` → `pg 9.6`).
pub(crate) fn column_label(props: &BTreeMap<String, String>) -> String {
    if props.is_empty() {
        return "—".into();
    }
    props
        .iter()
        .map(|(k, v)| {
            let k = k.strip_suffix("_version").unwrap_or(k);
            format!("{k} {v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Orders version-like labels numerically where they are numbers (`pg 9.6` < `pg 10`).
fn version_key(label: &str) -> Vec<(u64, String)> {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|part| match part.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, part.to_owned()),
        })
        .collect()
}

struct Cell {
    builder: String,
    summary: Option<abo_store::BuilderSummary>,
}

pub(crate) async fn page(
    State(web): State<Web>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<MatrixQuery>,
    headers: HeaderMap,
) -> PageResult {
    let plan = web.api().shared.plan();
    let mut summaries: HashMap<String, abo_store::BuilderSummary> = web
        .store()
        .builders_summary()
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let categories: BTreeSet<&str> = plan
        .builders
        .iter()
        .map(|b| b.category.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    let category = q.category.filter(|c| !c.is_empty());
    let mut columns: Vec<String> = Vec::new();
    // buildout → column → cell; buildouts in manifest order.
    let mut rows: Vec<(String, HashMap<String, Cell>)> = Vec::new();
    for b in &plan.builders {
        if category.as_deref().is_some_and(|c| c != b.category) {
            continue;
        }
        let col = column_label(&b.properties);
        if !columns.contains(&col) {
            columns.push(col.clone());
        }
        let row = match rows.iter().position(|(name, _)| *name == b.buildout) {
            Some(i) => &mut rows[i].1,
            None => {
                rows.push((b.buildout.clone(), HashMap::new()));
                &mut rows.last_mut().expect("just pushed").1
            }
        };
        row.insert(
            col,
            Cell {
                builder: b.name.clone(),
                summary: summaries.remove(&b.name),
            },
        );
    }
    columns.sort_by_key(|c| version_key(c));
    let now = now_ms();
    let table = html! {
        div #live data-live="" {
            @if rows.is_empty() {
                p.empty { "No builder." }
            } @else {
                div.scroll {
                    table.matrix {
                        thead { tr {
                            th scope="col" { "buildout" }
                            @for c in &columns { th scope="col" { (c) } }
                        } }
                        tbody {
                            @for (buildout, cells) in &rows {
                                tr {
                                    th scope="row" {
                                        (buildout)
                                        " "
                                        a.badge-link href={ "/badges/buildouts/" (buildout) ".svg" } title="badge" { "◉" }
                                    }
                                    @for c in &columns {
                                        @match cells.get(c) {
                                            Some(cell) => (cell_markup(cell, now)),
                                            None => td.cell.r-absent {},
                                        }
                                    }
                                }
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
        h1 { "Matrix" }
        @if !categories.is_empty() {
            nav.filter aria-label="categories" {
                "Category: "
                @if category.is_none() { strong { "all" } } @else { a href="/" { "all" } }
                @for c in &categories {
                    " "
                    @if category.as_deref() == Some(*c) { strong { (c) } }
                    @else { a href={ "/?category=" (super::auth::url_encode(c)) } { (c) } }
                }
            }
        }
        (table)
    };
    Ok(html_response(layout("Matrix", &viewer, Nav::Matrix, body)))
}

fn cell_markup(cell: &Cell, now: u64) -> Markup {
    let s = cell.summary.as_ref();
    let finished = s.and_then(|s| s.last_finished.as_ref());
    let running = s
        .and_then(|s| s.last_build.as_ref())
        .filter(|b| b.finished_at.is_none());
    let queued = s.map_or(0, |s| s.queued);
    let class = result_class(finished.and_then(|b| b.result), false);
    html! {
        td class={ "cell " (class) } data-builder=(cell.builder) {
            a.builder href={ "/builders/" (cell.builder) } title=(cell.builder) {
                (result_word(finished.and_then(|b| b.result), false))
            }
            @if let Some(b) = finished {
                span.meta {
                    a href={ "/builds/" (b.id) } { "#" (b.number) }
                    " "
                    @if let Some(t) = b.finished_at { (when(t.0, now)) }
                    @if let Some(rev) = revision_of(&b.properties) {
                        " " code.rev title=(rev) { (short_rev(&rev)) }
                    }
                }
            }
            @if let Some(r) = running {
                span.running { a href={ "/builds/" (r.id) } { "running #" (r.number) } }
            }
            @if queued > 0 {
                span.pending { (queued) " pending" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_and_sort_as_versions() {
        let props = BTreeMap::from([("pg_version".to_string(), "9.6".to_string())]);
        assert_eq!(column_label(&props), "pg 9.6");
        let mut cols = vec!["pg 10".to_string(), "pg 9.6".into(), "pg 16".into()];
        cols.sort_by_key(|c| version_key(c));
        assert_eq!(cols, ["pg 9.6", "pg 10", "pg 16"]);
    }
}
