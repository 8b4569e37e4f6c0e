//! `abo stop [DIR]`: stops the master started with `abo start DIR` (its pid from
//! `DIR/abo.pid`) with SIGTERM and waits until it has exited. The master's own shutdown is
//! what SIGTERM from systemd or Ctrl-C gives: it stops accepting work, closes its workers'
//! connections and its database; builds still running are marked interrupted and their
//! requests go back to the queue at the next start.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::start::pid_file;
use crate::pidfile::{self, Kind};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo stop                 # the master started with `abo start` in this directory
  abo stop /srv/abo --timeout 120

Builds running when the master stops are marked interrupted; their requests are dispatched
again when the master starts. Under systemd, `systemctl stop` does the same.")]
pub struct Args {
    /// The master directory
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// How long to wait for the master to exit, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pid = pidfile::running(&pid_file(&args.dir), Kind::Master, &args.dir)?;
    stop(pid, "master", args.timeout)
}

/// Stops `pid` and says so; shared with `abo worker stop`.
pub fn stop(pid: libc::pid_t, noun: &str, timeout: u64) -> anyhow::Result<ExitCode> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "stopping the {noun} (process {pid})");
    let _ = err.flush();
    let took = pidfile::terminate(pid, Duration::from_secs(timeout), &mut err)?;
    let _ = writeln!(err);
    println!("{noun} stopped ({:.1} s)", took.as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
