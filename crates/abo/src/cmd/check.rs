//! `abo check [DIR]`: read everything, print the plan (a table, or `--json`), or every
//! mistake as `file:line: what is wrong, what would be right` with exit status 1.

use crate::load::{load, Loaded};
use crate::MasterDirArgs;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    master: MasterDirArgs,
    /// Print the plan as JSON (for scripts and diffs)
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match load(&args.master.sources()) {
        Err(diags) => {
            crate::load::print_mistakes(&diags, "nothing was planned");
            Ok(ExitCode::from(1))
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&loaded.plan)?);
            } else {
                print!("{}", render_table(&loaded));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Lays out rows as left-aligned columns.
fn columns(out: &mut String, rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::from("  ");
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

pub fn render_table(loaded: &Loaded) -> String {
    let plan = &loaded.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Read {} from {} manifest{}, {}; workers connect to {}, web status on {}\n",
        plural(loaded.sections.len(), "section"),
        loaded.settings.manifests.len(),
        if loaded.settings.manifests.len() == 1 {
            ""
        } else {
            "s"
        },
        plural(loaded.workers.len(), "worker"),
        loaded.settings.worker_listen,
        loaded.settings.http_listen,
    );

    // The matrix: buildouts × PostgreSQL versions, each cell the number of workers.
    let mut versions: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut buildouts: Vec<&str> = Vec::new();
    for b in &plan.builders {
        if !buildouts.contains(&b.buildout.as_str()) {
            buildouts.push(&b.buildout);
        }
        let version = b
            .properties
            .get("pg_version")
            .cloned()
            .unwrap_or_else(|| "-".to_string());
        if !versions.contains(&version) {
            versions.push(version.clone());
        }
        *cells.entry((&b.buildout, version)).or_default() += b.workers.len();
    }
    // Columns in version order: numbers first, a suffixed version (`9.2-devel`) before the
    // release it precedes; what does not parse goes last.
    versions.sort_by_key(|v| match abo_plan::version::Version::parse(v) {
        Ok(parsed) => (
            0,
            parsed.numbers().to_vec(),
            parsed.suffix().is_none(),
            v.clone(),
        ),
        Err(_) => (1, Vec::new(), false, v.clone()),
    });
    let _ = writeln!(
        out,
        "Matrix: {} × PostgreSQL version (workers per cell)",
        plural(buildouts.len(), "buildout")
    );
    if buildouts.is_empty() {
        out.push_str("  (no builder: no buildout has a worker able to build it)\n");
    } else {
        let mut rows = vec![std::iter::once("BUILDOUT".to_string())
            .chain(versions.iter().map(|v| format!("pg {v}")))
            .collect::<Vec<_>>()];
        for b in &buildouts {
            let mut row = vec![b.to_string()];
            for v in &versions {
                row.push(
                    cells
                        .get(&(*b, v.clone()))
                        .map_or("·".to_string(), |n| n.to_string()),
                );
            }
            rows.push(row);
        }
        columns(&mut out, &rows);
    }

    let _ = writeln!(out, "\nBuilders ({})", plan.builders.len());
    if !plan.builders.is_empty() {
        let mut rows = vec![vec![
            "BUILDER".into(),
            "CATEGORY".into(),
            "STEPS".into(),
            "WORKERS".into(),
        ]];
        for b in &plan.builders {
            rows.push(vec![
                b.name.clone(),
                b.category.clone(),
                b.steps.len().to_string(),
                b.workers.join(", "),
            ]);
        }
        columns(&mut out, &rows);
    }

    let _ = writeln!(out, "\nWorkers ({})", plan.workers.len());
    if !plan.workers.is_empty() {
        let mut rows = vec![vec![
            "WORKER".into(),
            "MAX BUILDS".into(),
            "CAPABILITIES".into(),
        ]];
        for w in &plan.workers {
            let caps: Vec<String> = w
                .capabilities
                .iter()
                .map(|c| {
                    let mut s = c.name.clone();
                    if let Some(v) = &c.version {
                        s.push(' ');
                        s.push_str(v);
                    }
                    s
                })
                .collect();
            rows.push(vec![
                w.name.clone(),
                w.max_builds.map_or("-".into(), |n| n.to_string()),
                caps.join(", "),
            ]);
        }
        columns(&mut out, &rows);
    }

    let _ = writeln!(out, "\nSchedulers ({})", plan.schedulers.len());
    if !plan.schedulers.is_empty() {
        // The NIGHTLY column only when some section builds on the clock.
        let nightly = plan.schedulers.iter().any(|s| !s.nightly.is_empty());
        let mut header = vec!["SCHEDULER".into(), "TREE-STABLE".into(), "BUILDERS".into()];
        if nightly {
            header.push("NIGHTLY".into());
        }
        header.push("WATCHES".into());
        let mut rows = vec![header];
        for s in &plan.schedulers {
            let watch: Vec<String> = s
                .watch
                .iter()
                .map(|w| match &w.branch {
                    Some(b) => format!("{} {} {b}", w.vcs.as_str(), w.url),
                    None => format!("{} {}", w.vcs.as_str(), w.url),
                })
                .collect();
            let dash = |v: String| if v.is_empty() { "-".to_string() } else { v };
            let mut row = vec![
                s.name.clone(),
                if s.watch.is_empty() {
                    "-".to_string()
                } else {
                    format!("{}s", s.tree_stable_timer)
                },
                s.builders.len().to_string(),
            ];
            if nightly {
                let times: Vec<String> = s.nightly.iter().map(ToString::to_string).collect();
                row.push(dash(times.join("; ")));
            }
            row.push(dash(watch.join("; ")));
            rows.push(row);
        }
        columns(&mut out, &rows);
        if nightly {
            let _ = match &loaded.settings.timezone {
                Some(tz) => writeln!(out, "  Nightly times are in {tz} (master.toml `timezone`)."),
                None => writeln!(
                    out,
                    "  Nightly times are in the master's local time zone{}; set `timezone` in master.toml to choose one.",
                    abo_plan::nightly::TimeZone::try_system()
                        .ok()
                        .and_then(|tz| tz.iana_name().map(|n| format!(" (on this machine: {n})")))
                        .unwrap_or_default()
                ),
            };
        }
    }

    let _ = writeln!(out, "\nPollers ({})", plan.pollers.len());
    if !plan.pollers.is_empty() {
        let mut rows = vec![vec![
            "VCS".into(),
            "EVERY".into(),
            "BRANCHES".into(),
            "URL".into(),
        ]];
        for p in &plan.pollers {
            let branches = if p.branches.is_empty() {
                "-".to_string()
            } else {
                p.branches.join(", ")
            };
            rows.push(vec![
                p.vcs.as_str().to_string(),
                format!("{}s", p.interval),
                branches,
                p.url.clone(),
            ]);
        }
        columns(&mut out, &rows);
    }
    out
}
