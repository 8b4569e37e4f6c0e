//! `abo init DIR`: a small, commented master directory that passes `abo check`.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to create (or fill, if it exists and has none of the files)
    dir: PathBuf,
}

/// The files written, relative to DIR.
const FILES: &[(&str, &str)] = &[
    (
        "master.toml",
        include_str!("../../templates/init/master.toml"),
    ),
    (
        "workers.cfg",
        include_str!("../../templates/init/workers.cfg"),
    ),
    (
        "buildouts/MANIFEST.cfg",
        include_str!("../../templates/init/buildouts/MANIFEST.cfg"),
    ),
    (
        "buildouts/odoo-16.cfg",
        include_str!("../../templates/init/buildouts/odoo-16.cfg"),
    ),
    (
        "buildouts/bootstrap.py",
        include_str!("../../templates/init/buildouts/bootstrap.py"),
    ),
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Never overwrite: a user's existing configuration is worth more than a sample.
    let existing: Vec<String> = FILES
        .iter()
        .filter(|(rel, _)| args.dir.join(rel).exists())
        .map(|(rel, _)| args.dir.join(rel).display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist{}; nothing was written",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" }
        );
    }
    for (rel, content) in FILES {
        let path = args.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The workers file holds passwords.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let workers = args.dir.join("workers.cfg");
        std::fs::set_permissions(&workers, std::fs::Permissions::from_mode(0o600))?;
    }
    println!("Created a master directory in {}", args.dir.display());
    println!("  master.toml             abo's settings (all optional)");
    println!("  workers.cfg             workers and their capabilities (change the password)");
    println!("  buildouts/MANIFEST.cfg  the buildouts to build");
    println!(
        "Next: `abo check {}` shows what abo would run.",
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
