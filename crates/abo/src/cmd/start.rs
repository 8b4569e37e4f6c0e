//! `abo start [DIR]`: the master in the foreground. Reads the master directory like
//! `abo check` (every mistake printed, exit status 1), then serves the worker port and the
//! JSON API until SIGTERM or SIGINT, and shuts down cleanly (exit status 0).
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` is respected, default `info`); the first
//! lines name the bound addresses (`listening for workers on HOST:PORT`), which is how
//! scripts and tests find a port chosen with `:0`.

use crate::load::{load, Loaded};
use crate::MasterDirArgs;
use abo_master::{Capability, MasterConfig, Timing, WorkerAccount};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    master: MasterDirArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load(&args.master.sources()) {
        Ok(loaded) => loaded,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.len();
            eprintln!(
                "error: {n} mistake{} found; the master was not started",
                if n == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::from(1));
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    init_logging();
    let config = master_config(&loaded);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn seconds(s: f64) -> Duration {
    // The settings reader only accepts positive, finite values.
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

/// What the master runtime needs from the master directory.
fn master_config(loaded: &Loaded) -> MasterConfig {
    let s = &loaded.settings;
    let workers = loaded
        .workers
        .iter()
        .map(|w| WorkerAccount {
            name: w.name.clone(),
            password: w.password.clone(),
            capabilities: w
                .capabilities
                .iter()
                .map(|c| Capability {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    options: c.options.clone(),
                })
                .collect(),
        })
        .collect();
    let mut config = MasterConfig::new(s.worker_listen.clone(), workers);
    config.http_listen = Some(s.http_listen.clone());
    config.max_frame_bytes = s.max_frame_bytes;
    config.timing = Timing {
        ping_interval: seconds(s.worker_ping_interval),
        lost_after: seconds(s.worker_lost_after),
        ..Timing::default()
    };
    config
}

async fn serve(config: MasterConfig) -> anyhow::Result<ExitCode> {
    // Installed before anything listens, so a signal never finds the default action.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let master = abo_master::start(config).await?;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received, shutting down");
    master.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
