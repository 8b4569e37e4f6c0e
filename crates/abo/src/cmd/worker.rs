//! `abo worker create|start|stop|detect`: the worker's command line. The worker itself is the
//! `abo-worker` library; this module parses arguments, sets up logging, signals and the
//! async runtime, and maps the outcome to an exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::pidfile::{self, Kind};

/// The worker's pid file in its directory, for `abo worker stop` (Buildbot's is
/// `twistd.pid`).
const WORKER_PID_FILE: &str = "worker.pid";

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a worker directory: DIR/worker.toml (mode 0600) with the master's address and
    /// the worker's credentials; never overwrites one
    Create(CreateArgs),
    /// Run the worker in the foreground until SIGTERM/SIGINT or the master's shutdown
    Start(StartArgs),
    /// Stop the worker started with `abo worker start` in a directory, and wait until it
    /// has exited
    Stop(StopArgs),
    /// Print this machine's capabilities as workers.cfg lines
    Detect(DetectArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The worker directory (created if missing)
    dir: PathBuf,
    /// Where the master listens for workers: HOST:PORT or ws://HOST:PORT/PATH
    #[arg(long, value_name = "HOST:PORT")]
    master: String,
    /// The worker's name, as in the master's workers.cfg
    #[arg(long)]
    name: String,
    /// The worker's password, as in the master's workers.cfg
    #[arg(long)]
    password: String,
    /// Where builds run (default: DIR); relative to DIR
    #[arg(long, value_name = "PATH")]
    basedir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// The worker directory (holding worker.toml)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Run even as root (not recommended: the master can run any command on the worker)
    #[arg(long)]
    allow_root: bool,
}

#[derive(clap::Args)]
#[command(after_help = "\
A command running when the worker stops is killed with its process group; the master marks
its build retry and dispatches the request again.")]
pub struct StopArgs {
    /// The worker directory (holding worker.toml and worker.pid)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// How long to wait for the worker to exit, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct DetectArgs {
    /// Print JSON instead of workers.cfg lines
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => create(args),
        Command::Start(args) => start(args),
        Command::Stop(args) => stop(args),
        Command::Detect(args) => detect(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let new = abo_worker::NewWorker {
        master: args.master,
        name: args.name,
        password: abo_worker::Password::new(args.password),
        basedir: args.basedir,
    };
    let path = abo_worker::settings::create(&args.dir, &new)?;
    println!("wrote {}", path.display());
    println!(
        "start the worker with: abo worker start {}",
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    if abo_worker::running_as_root() && !args.allow_root {
        return Err(abo_worker::Error::Root.into());
    }
    let settings = abo_worker::Settings::load(&args.dir)?;
    // Two workers in one directory would run builds over each other's files.
    let _claimed = pidfile::claim_for(Kind::Worker, args.dir.join(WORKER_PID_FILE), &args.dir)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // One thread: a worker's work is moving bytes between a few pipes and one socket, and
    // handing every batch between threads cost more CPU than it saved (benchmark in
    // tests/worker.rs). Blocking work (tar, glob, file reads) goes to tokio's blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(abo_worker::Error::Runtime)?;
    let exit = runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot handle SIGINT")?;
        let on_signal = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
            on_signal.cancel();
        });
        anyhow::Ok(abo_worker::run(settings, stop).await)
    })?;
    tracing::info!("worker stopped ({exit:?})");
    Ok(ExitCode::SUCCESS)
}

fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let path = args.dir.join(WORKER_PID_FILE);
    let pid = pidfile::running(&path, Kind::Worker, &args.dir)?;
    crate::cmd::stop::stop(pid, "worker", args.timeout)
}

fn detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let caps = abo_worker::detect::detect();
    if args.json {
        let mut value = serde_json::to_value(&caps)?;
        value["capability"] = serde_json::to_value(caps.lines())?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if caps.lines().is_empty() {
        eprintln!("no PostgreSQL, Python or VCS tool found");
    } else {
        print!("{}", caps.to_ini());
    }
    Ok(ExitCode::SUCCESS)
}
