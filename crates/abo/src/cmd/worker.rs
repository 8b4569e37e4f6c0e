//! `abo worker create|start|detect` (being written).

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print this machine's capabilities as workers.cfg lines
    Detect,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Detect => anyhow::bail!("abo worker detect is not written yet"),
    }
}
