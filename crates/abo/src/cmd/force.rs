//! `abo force BUILDER|BUILDOUT [--prop k=v]... [--reason TEXT] [--wait]`: asks the master for
//! builds, and with `--wait` follows them step by step until they are over.
//!
//! A BUILDOUT name (a manifest section) forces every builder of that section: one per
//! PostgreSQL version it is built for. `--wait` exits 0 when every build ends in `success`
//! or `warnings`, 1 when the worst is `failure`, 2 otherwise (exception, cancelled, retry
//! without a later build, a timeout, an error). [`Watch`] is the progress display, shared
//! with `abo demo`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use crate::client::{self, human_duration, ApiError, BuildDetail, Client, ClientArgs};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo force standin-pass-postgresql-13 --wait
  abo force standin-pass --prop note=retest --reason 'after the fix'   # every builder of a buildout
  ABO_USER=ci ABO_PASSWORD=... abo force nightly --wait --json > result.json

With --wait the exit status is 0 when every build ends in success or warnings, 1 when one
fails, 2 otherwise. Interrupting --wait leaves the builds running on the master.")]
pub struct Args {
    /// A builder name, or a buildout (manifest section) to force each of its builders
    #[arg(value_name = "BUILDER|BUILDOUT")]
    target: String,
    /// A property for the build (repeatable): NAME=VALUE
    #[arg(long = "prop", short = 'p', value_name = "NAME=VALUE")]
    props: Vec<String>,
    /// Why, shown with the build
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Follow the builds until they are over; the exit status tells how they ended
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit status 2; the builds go on)
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    timeout: Option<f64>,
    /// Print JSON on stdout (the requests; with --wait, their results); progress goes to stderr
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// `NAME=VALUE` pairs into a JSON object; a duplicate name keeps the last value.
pub fn parse_props(props: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for p in props {
        let Some((name, value)) = p.split_once('=') else {
            anyhow::bail!("--prop {p}: expected NAME=VALUE");
        };
        let name = name.trim();
        if name.is_empty() {
            anyhow::bail!("--prop {p}: the property name is empty");
        }
        map.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

/// The builders a target names: the builder of that name, else every builder of the
/// buildout of that name. The error lists close names.
pub fn resolve(builders: &[client::Builder], target: &str) -> anyhow::Result<Vec<String>> {
    if let Some(b) = builders.iter().find(|b| b.name == target) {
        return Ok(vec![b.name.clone()]);
    }
    let of_buildout: Vec<String> = builders
        .iter()
        .filter(|b| b.buildout.as_deref() == Some(target))
        .map(|b| b.name.clone())
        .collect();
    if !of_buildout.is_empty() {
        return Ok(of_buildout);
    }
    let lower = target.to_lowercase();
    let mut close: Vec<&str> = builders
        .iter()
        .flat_map(|b| std::iter::once(b.name.as_str()).chain(b.buildout.as_deref()))
        .filter(|n| n.to_lowercase().contains(&lower) || lower.contains(&n.to_lowercase()))
        .collect();
    close.sort_unstable();
    close.dedup();
    let hint = if builders.is_empty() {
        " (the master has no builder: check its manifest with `abo check`)".to_owned()
    } else if close.is_empty() {
        let names: Vec<&str> = builders.iter().map(|b| b.name.as_str()).take(10).collect();
        let more = builders.len().saturating_sub(names.len());
        format!(
            "; builders: {}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .take(8)
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    anyhow::bail!("no builder or buildout named `{target}`{hint}")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let properties = parse_props(&args.props)?;
    let builders = client.builders()?;
    let targets = resolve(&builders, &args.target)?;
    if client.user().is_none() {
        anyhow::bail!(
            "forcing a build needs a user: give --user and --password (or ABO_USER and \
             ABO_PASSWORD) of a user added with `abo user add DIR NAME` on the master"
        );
    }
    let reason = args.reason.clone().unwrap_or_else(|| {
        format!(
            "forced by {} with abo force",
            client.user().unwrap_or("someone")
        )
    });
    let mut out: Box<dyn Write> = if args.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut forced = Vec::new();
    for builder in &targets {
        let request = client
            .force(builder, &properties, &reason)
            .with_context(|| format!("forcing {builder}"))?;
        let _ = writeln!(out, "forced {builder}: request {request}");
        forced.push((builder.clone(), request));
    }
    if !args.wait {
        if args.json {
            let list: Vec<Value> = forced
                .iter()
                .map(|(b, r)| json!({"builder": b, "request": r}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            let _ = writeln!(
                out,
                "follow with: abo builds{}   (or force again with --wait)",
                if targets.len() == 1 {
                    format!(" --builder {}", targets[0])
                } else {
                    String::new()
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut watch = Watch::new(&client, forced);
    let deadline = args
        .timeout
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(|d| Instant::now() + d);
    let timed_out = watch.run(&mut *out, deadline, &|| false)?;
    let status = if timed_out {
        let _ = writeln!(
            out,
            "gave up waiting after {}s; the builds go on (abo builds)",
            args.timeout.unwrap_or(0.0)
        );
        2
    } else {
        watch.exit_status()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&watch.summary_json())?);
    }
    Ok(ExitCode::from(status))
}

/// What the watcher knows of one build.
#[derive(Default)]
struct BuildSeen {
    label: String,
    started: bool,
    finished: bool,
    result: Option<String>,
    worker: Option<String>,
    /// Step indexes already reported finished.
    steps_done: HashSet<u64>,
    /// Step index → when it was first seen running, and when its "still running" line
    /// was last printed (local clock: the master's may differ).
    running_seen: HashMap<u64, (Instant, Option<Instant>)>,
}

/// One forced request, followed to its end.
pub struct Tracked {
    /// The builder it was forced on.
    pub builder: String,
    /// Its id.
    pub request: u64,
    /// Its builds, oldest first (a retried build is followed by its successor).
    pub builds: Vec<u64>,
    /// Its result, once complete.
    pub result: Option<String>,
    /// Whether the master says it is complete.
    pub complete: bool,
    queued_since: Instant,
    queued_noted: Option<Instant>,
}

/// Follows requests and their builds, printing a line per event: a build starts, a step
/// finishes (hidden steps are not shown), a step runs long, a build ends.
pub struct Watch<'a> {
    client: &'a Client,
    /// The requests, in the order they were forced.
    pub tracked: Vec<Tracked>,
    builds: BTreeMap<u64, BuildSeen>,
    width: usize,
    /// Seconds between two polls.
    pub interval: Duration,
    /// Details of the builds when they finished (`abo demo` prints a summary from them).
    pub details: HashMap<u64, BuildDetail>,
}

fn quote_step(name: &str) -> String {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

impl<'a> Watch<'a> {
    /// Watches `(builder, request)` pairs.
    pub fn new(client: &'a Client, requests: Vec<(String, u64)>) -> Watch<'a> {
        let width = requests.iter().map(|(b, _)| b.len()).max().unwrap_or(0) + 4;
        let now = Instant::now();
        Watch {
            client,
            tracked: requests
                .into_iter()
                .map(|(builder, request)| Tracked {
                    builder,
                    request,
                    builds: Vec::new(),
                    result: None,
                    complete: false,
                    queued_since: now,
                    queued_noted: None,
                })
                .collect(),
            builds: BTreeMap::new(),
            width,
            interval: Duration::from_millis(300),
            details: HashMap::new(),
        }
    }

    /// Polls until every request is complete, `deadline` passes (returns `true`) or `stop`
    /// says so (returns `true` too).
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<bool> {
        let mut failures = 0u32;
        loop {
            match self.poll(out) {
                Ok(true) => return Ok(false),
                Ok(false) => failures = 0,
                // The master may be restarting: keep trying for a while.
                Err(e) if matches!(e, ApiError::Transport { .. }) && failures < 100 => {
                    if failures == 0 {
                        let _ = writeln!(out, "lost the master ({e}); retrying");
                    }
                    failures += 1;
                }
                Err(e) => return Err(e.into()),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || stop() {
                return Ok(true);
            }
            std::thread::sleep(self.interval);
        }
    }

    fn prefix(&self, label: &str) -> String {
        format!("{label:<w$}", w = self.width)
    }

    /// One round: reads every open request and build, prints what changed. `Ok(true)` when
    /// every request is complete.
    pub fn poll(&mut self, out: &mut dyn Write) -> Result<bool, ApiError> {
        let now = client::now();
        let mut all_complete = true;
        for i in 0..self.tracked.len() {
            if self.tracked[i].complete {
                continue;
            }
            let request = self.client.request(self.tracked[i].request)?;
            for id in &request.builds {
                if !self.tracked[i].builds.contains(id) {
                    self.tracked[i].builds.push(*id);
                }
            }
            let builds = self.tracked[i].builds.clone();
            for id in builds {
                if self.builds.get(&id).is_some_and(|b| b.finished) {
                    continue;
                }
                let detail = self.client.build(id)?;
                self.report(out, &detail, now);
                if detail.build.finished() {
                    self.details.insert(id, detail);
                }
            }
            let t = &mut self.tracked[i];
            if request.state == "complete" {
                t.complete = true;
                t.result = request.result.clone().or_else(|| {
                    t.builds
                        .last()
                        .and_then(|id| self.builds.get(id))
                        .and_then(|b| b.result.clone())
                });
                if t.builds.is_empty() {
                    let _ = writeln!(
                        out,
                        "{}request {} ended without a build: {}",
                        format_args!("{:<w$}", t.builder, w = self.width),
                        t.request,
                        t.result.as_deref().unwrap_or("no result")
                    );
                }
            } else {
                all_complete = false;
                let running = t
                    .builds
                    .last()
                    .and_then(|id| self.builds.get(id))
                    .is_some_and(|b| !b.finished);
                if running {
                    t.queued_since = Instant::now();
                    t.queued_noted = None;
                } else if t.queued_since.elapsed() > Duration::from_secs(10)
                    && t.queued_noted
                        .is_none_or(|n| n.elapsed() > Duration::from_secs(60))
                {
                    t.queued_noted = Some(Instant::now());
                    let waited = t.queued_since.elapsed().as_secs_f64();
                    let builder = t.builder.clone();
                    let why = self.queue_reason(&builder);
                    let _ = writeln!(
                        out,
                        "{}waiting for a worker ({}){why}",
                        self.prefix(&builder),
                        human_duration(waited)
                    );
                }
            }
        }
        let _ = out.flush();
        Ok(all_complete)
    }

    /// Why a request may be waiting: none of its builder's workers is connected.
    fn queue_reason(&self, builder: &str) -> String {
        let Ok(builders) = self.client.builders() else {
            return String::new();
        };
        let Some(b) = builders.iter().find(|b| b.name == builder) else {
            return String::new();
        };
        let Ok(workers) = self.client.workers() else {
            return String::new();
        };
        let connected = workers
            .iter()
            .filter(|w| w.connected && b.workers.contains(&w.name))
            .count();
        if connected == 0 {
            format!(
                ": none of its workers is connected ({})",
                b.workers.join(", ")
            )
        } else {
            format!(": {connected} of its workers connected, all busy")
        }
    }

    fn report(&mut self, out: &mut dyn Write, detail: &BuildDetail, now: f64) {
        let b = &detail.build;
        let width = self.width;
        let seen = self.builds.entry(b.id).or_default();
        seen.label = b.label();
        let prefix = format!("{:<width$}", seen.label);
        if !seen.started {
            seen.started = true;
            let _ = writeln!(
                out,
                "{prefix}started on {} (build {})",
                b.worker.as_deref().unwrap_or("?"),
                b.id
            );
        }
        seen.worker = b.worker.clone();
        for step in &detail.steps {
            if step.finished() {
                if !seen.steps_done.insert(step.index) || step.hidden {
                    continue;
                }
                let result = step.result.as_deref().unwrap_or("done");
                let took = step.seconds(now).map(human_duration).unwrap_or_default();
                let text = step.description_text();
                let text = if text.is_empty() || text == step.name {
                    String::new()
                } else {
                    format!("  {text}")
                };
                let _ = writeln!(
                    out,
                    "{prefix}  {:<20} {:<9} {took:>6}{text}",
                    step.name, result
                );
            } else if step.state == "running" && !step.hidden {
                let (first, last) = seen
                    .running_seen
                    .entry(step.index)
                    .or_insert((Instant::now(), None));
                let secs = first.elapsed().as_secs_f64();
                let due = match last {
                    None => secs >= 10.0,
                    Some(at) => at.elapsed() >= Duration::from_secs(60),
                };
                if due {
                    *last = Some(Instant::now());
                    let _ = writeln!(
                        out,
                        "{prefix}  {:<20} running   {:>6}",
                        step.name,
                        human_duration(secs)
                    );
                }
            }
        }
        if b.finished() && !seen.finished {
            seen.finished = true;
            seen.result = b.result.clone();
            let result = b.result.as_deref().unwrap_or("unknown");
            let took = client::duration(b.started_at.as_deref(), b.finished_at.as_deref(), now)
                .map(|s| format!(" in {}", human_duration(s)))
                .unwrap_or_default();
            let failed: Vec<&client::Step> = detail
                .steps
                .iter()
                .filter(|s| {
                    !s.hidden && matches!(s.result.as_deref(), Some("failure" | "exception"))
                })
                .collect();
            let mut line = format!("{prefix}{result}{took}");
            match result {
                "success" | "warnings" => {}
                "retry" => line.push_str(" (the request goes back to the queue)"),
                _ => {
                    if let Some(step) = failed.last() {
                        line.push_str(&format!(
                            "; {} failed: abo log {} {}",
                            step.name,
                            b.id,
                            quote_step(&step.name)
                        ));
                    } else {
                        line.push_str(&format!(": abo log {}", b.id));
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }
    }

    /// `abo force --wait`'s exit status.
    pub fn exit_status(&self) -> u8 {
        client::exit_status(self.tracked.iter().map(|t| {
            if t.complete {
                t.result.as_deref()
            } else {
                None
            }
        }))
    }

    /// The requests and their builds, as `--json` prints them.
    pub fn summary_json(&self) -> Value {
        Value::Array(
            self.tracked
                .iter()
                .map(|t| {
                    let builds: Vec<Value> = t
                        .builds
                        .iter()
                        .map(|id| {
                            let seen = self.builds.get(id);
                            let detail = self.details.get(id);
                            json!({
                                "id": id,
                                "number": detail.and_then(|d| d.build.number),
                                "worker": seen.and_then(|s| s.worker.clone()),
                                "result": seen.and_then(|s| s.result.clone()),
                            })
                        })
                        .collect();
                    json!({
                        "builder": t.builder,
                        "request": t.request,
                        "complete": t.complete,
                        "result": t.result,
                        "builds": builds,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(name: &str, buildout: &str) -> client::Builder {
        serde_json::from_value(json!({"name": name, "buildout": buildout})).unwrap()
    }

    #[test]
    fn targets() {
        let all = vec![
            builder("standin-pass-postgresql-13", "standin-pass"),
            builder("standin-pass-postgresql-17", "standin-pass"),
            builder("standin-fail-postgresql-13", "standin-fail"),
            builder("tools", "tools"),
        ];
        assert_eq!(
            resolve(&all, "standin-pass").unwrap(),
            ["standin-pass-postgresql-13", "standin-pass-postgresql-17"]
        );
        assert_eq!(
            resolve(&all, "standin-fail-postgresql-13").unwrap(),
            ["standin-fail-postgresql-13"]
        );
        assert_eq!(resolve(&all, "tools").unwrap(), ["tools"]);
        let e = resolve(&all, "standin").unwrap_err().to_string();
        assert!(e.contains("did you mean"), "{e}");
        assert!(e.contains("`standin-pass`"), "{e}");
        let e = resolve(&[], "x").unwrap_err().to_string();
        assert!(e.contains("no builder"), "{e}");
    }

    #[test]
    fn props() {
        let p = parse_props(&["a=1".into(), "b=x=y".into(), "a=2".into(), "c=".into()]).unwrap();
        assert_eq!(Value::Object(p), json!({"a": "2", "b": "x=y", "c": ""}));
        assert!(parse_props(&["novalue".into()]).is_err());
        assert!(parse_props(&["=v".into()]).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_step("analyze"), "analyze");
        assert_eq!(quote_step("bzr repo"), "'bzr repo'");
    }
}
