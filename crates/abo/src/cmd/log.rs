//! `abo log BUILD [STEP] [--log NAME] [--follow]`: a build's steps, or a step's logs.
//!
//! Without STEP it prints the build's steps (result, duration, logs) and the last lines of
//! the step that failed; with STEP (its name or its index) the text of that step's logs,
//! read page by page (a log is never held whole in memory), following a running step with
//! `--follow`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::client::{self, human_duration, short_time, BuildDetail, Client, ClientArgs, Step};

/// Bytes asked for per page.
const PAGE: u64 = 1024 * 1024;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo log 12                 # the steps of build 12, and the end of the failed step's log
  abo log 12 testing         # the logs of its step `testing` (or give the step's index)
  abo log 12 testing --log test -f   # one log, followed while the step runs")]
pub struct Args {
    /// The build's id (first column of `abo builds`)
    #[arg(value_name = "BUILD")]
    build: u64,
    /// A step's name or index; without it, the build's steps
    #[arg(value_name = "STEP")]
    step: Option<String>,
    /// Only this log of the step (default: all of them, each under a header)
    #[arg(long, short = 'l', value_name = "NAME", requires = "step")]
    log: Option<String>,
    /// Keep printing while the step runs, until its logs are complete
    #[arg(long, short = 'f', requires = "step")]
    follow: bool,
    /// Without STEP: how many last lines of a failed step's log to show
    #[arg(long, value_name = "N", default_value_t = 15)]
    tail: usize,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let detail = match client.build(args.build) {
        Ok(d) => d,
        Err(e) if e.status() == Some(404) => {
            anyhow::bail!("no build {} (see `abo builds`)", args.build)
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    match &args.step {
        None => overview(&client, &detail, args.tail, &mut out)?,
        Some(step) => {
            let step = find_step(&detail, step)?;
            let logs: Vec<&str> = match &args.log {
                Some(name) => {
                    if !step.logs.iter().any(|l| &l.name == name) && step.finished() {
                        anyhow::bail!(
                            "step {} of build {} has no log `{name}`; its logs: {}",
                            step.name,
                            detail.build.id,
                            log_names(step)
                        );
                    }
                    vec![name.as_str()]
                }
                None => step.logs.iter().map(|l| l.name.as_str()).collect(),
            };
            if logs.is_empty() {
                eprintln!(
                    "step {} of build {} has no log{}",
                    step.name,
                    detail.build.id,
                    if step.finished() { "" } else { " yet" }
                );
                return Ok(ExitCode::SUCCESS);
            }
            let headers = logs.len() > 1;
            for name in logs {
                if headers {
                    let _ = writeln!(out, "==> {} / {name} <==", step.name);
                }
                print_log(
                    &client,
                    detail.build.id,
                    step.index,
                    name,
                    0,
                    args.follow,
                    &mut out,
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn log_names(step: &Step) -> String {
    if step.logs.is_empty() {
        "none".to_owned()
    } else {
        step.logs
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A step by name, else by index.
fn find_step<'a>(detail: &'a BuildDetail, wanted: &str) -> anyhow::Result<&'a Step> {
    if let Some(s) = detail.steps.iter().find(|s| s.name == wanted) {
        return Ok(s);
    }
    if let Ok(n) = wanted.parse::<u64>() {
        if let Some(s) = detail.steps.iter().find(|s| s.index == n) {
            return Ok(s);
        }
    }
    let names: Vec<String> = detail
        .steps
        .iter()
        .map(|s| format!("{} {}", s.index, s.name))
        .collect();
    anyhow::bail!(
        "build {} has no step `{wanted}`; its steps: {}",
        detail.build.id,
        if names.is_empty() {
            "none yet".to_owned()
        } else {
            names.join(", ")
        }
    )
}

/// Copies a log to `out` from `offset`, page by page; with `follow`, until it is complete.
fn print_log(
    client: &Client,
    build: u64,
    step: u64,
    name: &str,
    mut offset: u64,
    follow: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    loop {
        let page = client.log_page(build, step, name, offset, PAGE)?;
        let got = page.bytes.len() as u64;
        if got > 0 {
            if out.write_all(&page.bytes).is_err() {
                return Ok(()); // the reader went away (`| head`)
            }
            offset += got;
        }
        let more_now = match page.size {
            Some(size) => offset < size,
            None => got >= PAGE,
        };
        if more_now && got > 0 {
            continue;
        }
        if page.complete || !follow {
            break;
        }
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = out.flush();
    Ok(())
}

fn human_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// The last `lines` lines of a log (reads only its end).
fn tail(
    client: &Client,
    build: u64,
    step: &Step,
    log: &str,
    lines: usize,
) -> anyhow::Result<String> {
    let size = step
        .logs
        .iter()
        .find(|l| l.name == log)
        .map_or(0, |l| l.bytes);
    let want = (lines as u64 * 300).clamp(4096, 256 * 1024);
    let offset = size.saturating_sub(want);
    let page = client.log_page(build, step.index, log, offset, want)?;
    let text = String::from_utf8_lossy(&page.bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if offset > 0 && !all.is_empty() {
        all.remove(0); // a partial first line
    }
    let start = all.len().saturating_sub(lines);
    Ok(all[start..].join("\n"))
}

fn overview(
    client: &Client,
    detail: &BuildDetail,
    tail_lines: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let b = &detail.build;
    let now = client::now();
    let state = if b.finished() {
        b.result.clone().unwrap_or_else(|| "?".into())
    } else {
        b.state.clone()
    };
    let took = client::duration(b.started_at.as_deref(), b.finished_at.as_deref(), now)
        .map(|s| format!(" in {}", human_duration(s)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "build {}: {} on {}: {state}{took}",
        b.id,
        b.label(),
        b.worker.as_deref().unwrap_or("?")
    );
    let mut when = Vec::new();
    if let Some(s) = &b.started_at {
        when.push(format!("started {}", short_time(s)));
    }
    if let Some(f) = &b.finished_at {
        when.push(format!("finished {}", short_time(f)));
    }
    if let Some(r) = b.request {
        when.push(format!("request {r}"));
    }
    if !when.is_empty() {
        let _ = writeln!(out, "{}", when.join(", "));
    }
    let rows: Vec<[String; 5]> = detail
        .steps
        .iter()
        .map(|s| {
            let result = if s.finished() {
                s.result.clone().unwrap_or_else(|| "?".into())
            } else {
                s.state.clone()
            };
            let name = if s.hidden {
                format!("{} (hidden)", s.name)
            } else {
                s.name.clone()
            };
            let logs = s
                .logs
                .iter()
                .map(|l| format!("{} {}", l.name, human_bytes(l.bytes)))
                .collect::<Vec<_>>()
                .join(", ");
            let text = s.description_text();
            let logs = if text.is_empty() || text == s.name {
                logs
            } else if logs.is_empty() {
                text
            } else {
                format!("{logs}  ({text})")
            };
            [
                s.index.to_string(),
                name,
                result,
                s.seconds(now).map(human_duration).unwrap_or_default(),
                logs,
            ]
        })
        .collect();
    let header = ["STEP", "NAME", "RESULT", "TIME", "LOGS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let _ = writeln!(out);
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut s = String::from(" ");
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            s.push(' ');
            if i + 1 == row.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}"));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    }
    // The end of the log of each visible failed step: what a person looks for first.
    for step in detail.steps.iter().filter(|s| {
        !s.hidden && s.finished() && matches!(s.result.as_deref(), Some("failure" | "exception"))
    }) {
        let Some(log) = step.logs.first() else {
            continue;
        };
        if tail_lines == 0 {
            break;
        }
        let text = tail(client, b.id, step, &log.name, tail_lines)?;
        let _ = writeln!(
            out,
            "\n--- {}: last lines of its log `{}` (all of it: abo log {} {}) ---",
            step.name,
            log.name,
            b.id,
            if step.name.contains(' ') {
                step.index.to_string()
            } else {
                step.name.clone()
            }
        );
        let _ = writeln!(out, "{text}");
    }
    if detail.steps.is_empty() {
        let _ = writeln!(out, "no step yet");
    }
    Ok(())
}
