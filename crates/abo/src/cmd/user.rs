//! `abo user add DIR NAME`: adds a user of the JSON API (who may force and stop builds) to
//! the master's store, as an argon2id hash; the password is never stored nor printed.
//! Read with `--password-stdin` (one line), else asked on the terminal without echo.

use crate::cmd::start::database_location;
use abo_config::read_settings;
use anyhow::{bail, Context as _};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a user of the JSON API (HTTP Basic credentials for force and stop)
    Add(AddArgs),
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// The master directory
    dir: PathBuf,
    /// The user's name
    name: String,
    /// Read the password from standard input (one line) instead of asking on the terminal
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Add(args) => add(args),
    }
}

fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let settings_path = args.dir.join("master.toml");
    let settings = if settings_path.exists() {
        let text = std::fs::read_to_string(&settings_path)
            .with_context(|| format!("cannot read {}", settings_path.display()))?;
        read_settings(&settings_path.display().to_string(), &text)
            .map_err(|d| anyhow::anyhow!("{d}"))?
    } else if args.dir.is_dir() {
        abo_config::MasterSettings::default()
    } else {
        bail!("{} is not a master directory", args.dir.display());
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let again = prompt_hidden("Again: ")?;
        if first != again {
            bail!("the passwords differ; nothing was stored");
        }
        first
    } else {
        bail!("standard input is not a terminal: give the password with --password-stdin");
    };
    if password.is_empty() {
        bail!("the password is empty; nothing was stored");
    }
    let hash = hash_password(&password)?;
    let database = database_location(&args.dir, &settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = abo_store::Store::open(&database).await?;
        store
            .add_user(&args.name, &hash, abo_store::Timestamp::now())
            .await
    })?;
    println!("user {} added", args.name);
    Ok(ExitCode::SUCCESS)
}

/// An argon2id PHC hash of `password` with a random 16-byte salt, with the master's
/// parameters.
fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    abo_master::hash_password(password, &salt).map_err(|e| anyhow::anyhow!(e))
}

fn random_bytes(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read as _;
    std::fs::File::open(Path::new("/dev/urandom"))
        .and_then(|mut f| f.read_exact(buf))
        .context("reading /dev/urandom for a salt")
}

/// Reads a line from the terminal with echo off (restored afterwards, also on error).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for our own stdin.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer to a termios owned here.
    let have = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(abo_master::verify_password("pw", &a));
        assert!(!abo_master::verify_password("px", &a));
    }
}
