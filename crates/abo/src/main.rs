//! `abo`: the one command-line program — configuration checks, log analysis, and (as the
//! project grows) the master and the worker.

mod client;
mod cmd;
mod config_repo;
mod libm_shim;
mod load;
mod pidfile;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "abo",
    version,
    about = "Continuous integration for Odoo/OpenERP buildouts",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a small, commented master directory that passes `abo check`
    Init(cmd::init::Args),
    /// Read the configuration and print what abo would run
    Check(cmd::check::Args),
    /// Analyse an OpenERP/Odoo test log (the seed's analyze_oerp_tests, and modern Odoo)
    AnalyzeLog(cmd::analyze::Args),
    /// Run the master in the foreground: the worker port and the web/API port
    Start(cmd::start::Args),
    /// Stop the master started with `abo start` in a directory, and wait until it has exited
    Stop(cmd::stop::Args),
    /// Put a changed configuration in force in the running master (no restart)
    Reconfig(cmd::reconfig::Args),
    /// Create, run or inspect a worker
    #[command(subcommand)]
    Worker(cmd::worker::Command),
    /// Manage the users of the JSON API (who may force and stop builds)
    #[command(subcommand)]
    User(cmd::user::Command),
    /// Try abo on this machine: a demo master, a local worker, a PostgreSQL cluster, builds
    Demo(cmd::demo::Args),
    /// Ask the master for builds of a builder, or of every builder of a buildout
    Force(cmd::force::Args),
    /// List the latest builds, newest first
    Builds(cmd::builds::Args),
    /// Show a build's steps, or the logs of one of its steps
    Log(cmd::log::Args),
    /// Tell the master about a change (a repository hook's `buildbot sendchange`)
    Sendchange(cmd::sendchange::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::AnalyzeLog(args) => cmd::analyze::run(args),
        Command::Start(args) => cmd::start::run(args),
        Command::Stop(args) => cmd::stop::run(args),
        Command::Reconfig(args) => cmd::reconfig::run(args),
        Command::Worker(command) => cmd::worker::run(command),
        Command::User(command) => cmd::user::run(command),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Force(args) => cmd::force::run(args),
        Command::Builds(args) => cmd::builds::run(args),
        Command::Log(args) => cmd::log::run(args),
        Command::Sendchange(args) => cmd::sendchange::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Options shared by the commands that read a master directory.
#[derive(clap::Args, Debug, Clone)]
pub struct MasterDirArgs {
    /// The master directory
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Settings file instead of DIR/master.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Manifest file instead of those master.toml lists (repeatable)
    #[arg(long = "manifest", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// Workers file instead of DIR/workers.cfg (or DIR/slaves.cfg)
    #[arg(long, value_name = "PATH")]
    pub workers: Option<PathBuf>,
}

impl MasterDirArgs {
    pub fn sources(&self) -> load::Sources {
        load::Sources {
            dir: self.dir.clone(),
            config: self.config.clone(),
            manifests: self.manifests.clone(),
            workers: self.workers.clone(),
        }
    }
}
