//! `abo start [DIR]`: the master in the foreground. Reads the master directory like
//! `abo check` (every mistake printed, exit status 1), opens the store (`database`, by
//! default `DIR/abo.sqlite`), then serves the worker port and the JSON API and runs the
//! builds until SIGTERM or SIGINT, and shuts down cleanly (exit status 0). Builds still
//! running then are marked interrupted at the next start and run again.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` is respected, default `info`); the first
//! lines name the bound addresses (`listening for workers on HOST:PORT`), which is how
//! scripts and tests find a port chosen with `:0`.

use crate::load::{load, Loaded};
use crate::MasterDirArgs;
use abo_config::MasterSettings;
use abo_master::{BuildSetup, Capability, MasterConfig, Timing, WorkerAccount};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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
    let config = master_config(&args.master.dir, loaded);
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

/// Where the store is: master.toml's `database` (a relative path is relative to the master
/// directory), or `DIR/abo.sqlite`.
pub fn database_location(dir: &Path, settings: &MasterSettings) -> String {
    let Some(db) = settings.database.as_deref() else {
        return dir
            .join(abo_store::migrations::DEFAULT_FILE_NAME)
            .to_string_lossy()
            .into_owned();
    };
    let (scheme, path) = match db.strip_prefix("sqlite://") {
        Some(rest) => ("sqlite://", rest),
        None => match db.strip_prefix("sqlite:") {
            Some(rest) => ("sqlite:", rest),
            None => ("", db),
        },
    };
    if db.contains("://") && scheme.is_empty() || Path::new(path).is_absolute() {
        // Another kind of URL (refused by the store with its reason), or absolute.
        return db.to_owned();
    }
    format!("{scheme}{}", dir.join(path).to_string_lossy())
}

/// A master.toml directory setting: relative to the master directory.
fn in_dir(dir: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// What the master runtime needs from the master directory.
fn master_config(dir: &Path, loaded: Loaded) -> MasterConfig {
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
    config.builds = Some(BuildSetup {
        master_dir: dir.to_path_buf(),
        database: database_location(dir, s),
        artifacts_dir: in_dir(dir, s.artifacts_dir.as_deref().unwrap_or("artifacts")),
        allowed_upload_roots: s.allowed_upload_roots.iter().map(PathBuf::from).collect(),
        log_cap_bytes: s.log_cap_bytes,
        secrets: s.secrets.clone(),
        plan: Arc::new(loaded.plan),
    });
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
