//! `abo reconfig [DIR]`: puts a changed configuration in force in the running master of
//! DIR, without a restart. The files are checked here first (every mistake printed, exit
//! status 1, nothing sent); then the master (its pid from `DIR/abo.pid`) gets SIGHUP,
//! reads them again itself, and the command waits for its answer through
//! `GET /api/v1/master`: reloaded (exit 0), or refused with the master's diagnostics
//! (exit 1). `systemctl reload` can send the same SIGHUP (`ExecReload=kill -HUP $MAINPID`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;

use crate::client::{Client, ClientArgs};
use crate::cmd::start::pid_file;
use crate::load::load;
use crate::pidfile::{self, Kind};
use crate::MasterDirArgs;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo reconfig                 # the master started with `abo start` in this directory
  abo reconfig /srv/abo --json

Settings a running master cannot change (worker-listen, http-listen, database) take effect
at the next start; the master's log says so.")]
pub struct Args {
    #[command(flatten)]
    master: MasterDirArgs,
    /// How long to wait for the master's answer, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct MasterState {
    config: ConfigState,
}

#[derive(Deserialize, Clone)]
struct ConfigState {
    generation: u64,
    last_attempt: Option<u64>,
    #[serde(default)]
    last_error: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load(&args.master.sources()) {
        Ok(loaded) => loaded,
        Err(diags) => {
            crate::load::print_mistakes(&diags, "the running master keeps its configuration");
            return Ok(ExitCode::from(1));
        }
    };
    let pid = pidfile::running(&pid_file(&args.master.dir), Kind::Master, &args.master.dir)?;
    let client = Client::new(&ClientArgs {
        master: local_address(&loaded.settings.http_listen),
        user: None,
        password: None,
    })?;
    let before: MasterState = client
        .get("master")
        .context("asking the master for its configuration state")?;
    pidfile::signal(pid, libc::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let after = loop {
        let now: MasterState = client.get("master")?;
        if now.config.generation != before.config.generation
            || now.config.last_attempt != before.config.last_attempt
        {
            break now.config;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the master did not answer within {} s (see its log)",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let reloaded = after.generation != before.config.generation;
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "reloaded": reloaded,
            "generation": after.generation,
            "diagnostics": after.last_error,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else if reloaded {
        writeln!(
            out,
            "configuration reloaded (generation {}): {} builders",
            after.generation,
            loaded.plan.builders.len()
        )?;
    } else {
        for d in &after.last_error {
            eprintln!("{d}");
        }
        eprintln!("error: the master refused the new configuration and keeps the running one");
    }
    Ok(if reloaded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// master.toml's `http-listen` as an address to connect to (a wildcard address means this
/// machine).
fn local_address(listen: &str) -> String {
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8010"));
    let host = match host {
        "" | "0.0.0.0" | "[::]" | "::" => "127.0.0.1",
        h => h,
    };
    format!("http://{host}:{port}")
}
