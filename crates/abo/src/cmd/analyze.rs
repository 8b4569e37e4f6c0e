//! `abo analyze-log FILE`: the seed's report format and exit status, plus modern Odoo.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The log file (`-` for standard input)
    file: PathBuf,
    /// Print test counts and failures as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    // Line by line: a log of any size is analysed in constant memory.
    let mut reader = BufReader::new(reader);
    let mut analyzer = abo_logscan::Analyzer::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        if n == 0 {
            break;
        }
        analyzer.feed_line(&line);
    }
    let analysis = analyzer.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        print!("{}", abo_logscan::render_report(&analysis));
    }
    Ok(ExitCode::from(analysis.exit_code() as u8))
}
