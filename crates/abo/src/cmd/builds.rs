//! `abo builds [--builder NAME] [--limit N] [--json]`: the latest builds, newest first.

use std::io::Write;
use std::process::ExitCode;

use crate::client::{self, human_duration, short_time, Client, ClientArgs};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo builds                                   # the 20 latest builds of every builder
  abo builds --builder standin-pass-postgresql-13 --limit 5
  abo builds --json | jq '.[] | select(.result == \"failure\") | .id'

See one build's steps with `abo log BUILD`.")]
pub struct Args {
    /// Only this builder's builds
    #[arg(long, short = 'b', value_name = "NAME")]
    builder: Option<String>,
    /// How many builds (the master allows up to 1000)
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    limit: u64,
    /// Only builds older than this build id (to page back)
    #[arg(long, value_name = "BUILD")]
    before: Option<u64>,
    /// Print the master's JSON (an array, newest first)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    if args.limit == 0 {
        anyhow::bail!("--limit 0: give at least 1");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut query = vec![format!("limit={}", args.limit)];
        if let Some(b) = &args.builder {
            query.push(format!("builder={}", client::percent_encode(b)));
        }
        if let Some(b) = args.before {
            query.push(format!("before={b}"));
        }
        let value = client.get_value(&format!("builds?{}", query.join("&")))?;
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &args.builder {
        // An unknown builder is a mistake worth saying, not an empty list.
        let builders = client.builders()?;
        if !builders.iter().any(|b| &b.name == name) {
            let of_buildout: Vec<&str> = builders
                .iter()
                .filter(|b| b.buildout.as_deref() == Some(name.as_str()))
                .map(|b| b.name.as_str())
                .collect();
            if of_buildout.is_empty() {
                anyhow::bail!("no builder named `{name}`");
            }
            anyhow::bail!(
                "`{name}` is a buildout; its builders are: {}",
                of_buildout.join(", ")
            );
        }
    }
    let builds = client.builds(args.builder.as_deref(), Some(args.limit), args.before)?;
    if builds.is_empty() {
        let _ = writeln!(
            out,
            "no build yet{}; start one with `abo force BUILDER`",
            args.builder
                .as_deref()
                .map(|b| format!(" of {b}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = client::now();
    let rows: Vec<[String; 7]> = builds
        .iter()
        .map(|b| {
            let result = if b.finished() {
                b.result.clone().unwrap_or_else(|| "?".into())
            } else {
                b.state.clone()
            };
            [
                b.id.to_string(),
                b.builder.clone(),
                b.number.map(|n| n.to_string()).unwrap_or_default(),
                b.worker.clone().unwrap_or_default(),
                result,
                b.started_at.as_deref().map(short_time).unwrap_or_default(),
                client::duration(b.started_at.as_deref(), b.finished_at.as_deref(), now)
                    .map(human_duration)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "BUILD", "BUILDER", "#", "WORKER", "RESULT", "STARTED", "DURATION",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            s.push(' ');
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}"));
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    if builds.len() as u64 == args.limit {
        if let Some(last) = builds.last() {
            let builder = args
                .builder
                .as_deref()
                .map(|b| format!(" --builder {b}"))
                .unwrap_or_default();
            let _ = writeln!(out, "older: abo builds{builder} --before {}", last.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
