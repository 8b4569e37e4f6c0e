//! `abo start [DIR]`: the master in the foreground (being written).

use crate::MasterDirArgs;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    master: MasterDirArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args.master;
    anyhow::bail!("abo start is not written yet")
}
