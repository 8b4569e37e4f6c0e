//! `abo sendchange`: tells the master about a change (`POST /api/v1/changes`), in the style
//! of `buildbot sendchange`: what a repository's `post-receive` hook runs, so that builds
//! start without waiting for a poll. docs/api.md has a hook script.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use crate::client::{Client, ClientArgs};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  ABO_PASSWORD=... abo sendchange --master http://ci:8010 --user hook \\
      --repository https://github.com/anybox/abo-demo.git --branch main \\
      --revision 6dcb09b5b57875f334f61aebed695e2e4193db5e --who 'Alice <a@example.org>' \\
      --comments 'Fix the tests' addons/x/models.py
  git log -1 --format=%B \"$rev\" | abo sendchange ... --logfile -

The repository is rewritten by the master's url-rewrite rules; a change to a repository no
scheduler watches is stored, but starts no build (a warning says so). The password comes
from --password-file, or ABO_PASSWORD (a command line is visible in `ps`). docs/api.md has
a git post-receive hook that runs it for every pushed commit.")]
pub struct Args {
    /// The repository URL, as the manifest's watch lines name it
    #[arg(long, short = 'R', value_name = "URL")]
    repository: String,
    /// The branch (empty for a Bazaar branch, whose URL is the branch)
    #[arg(long, short = 'b', value_name = "BRANCH", default_value = "")]
    branch: String,
    /// The revision (commit id)
    #[arg(long, short = 'r', value_name = "REV")]
    revision: String,
    /// Who made the change: `Name <email>`
    #[arg(long, short = 'W', value_name = "WHO")]
    who: Option<String>,
    /// The commit message
    #[arg(long, short = 'c', value_name = "TEXT", conflicts_with = "logfile")]
    comments: Option<String>,
    /// Read the commit message from a file (`-` for standard input)
    #[arg(long, short = 'F', value_name = "FILE")]
    logfile: Option<PathBuf>,
    /// When it was committed, in Unix seconds (default: not given)
    #[arg(long, short = 'w', value_name = "SECONDS")]
    when: Option<f64>,
    /// The project
    #[arg(long, short = 'P', value_name = "NAME")]
    project: Option<String>,
    /// The category
    #[arg(long, short = 'C', value_name = "NAME")]
    category: Option<String>,
    /// Read more files from this file: NUL-separated (`git diff-tree -z`) or one per line
    #[arg(long, value_name = "FILE")]
    files_from: Option<PathBuf>,
    /// Read the password from this file (its first line)
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    password_file: Option<PathBuf>,
    /// Print the stored change as JSON
    #[arg(long)]
    json: bool,
    /// Files the change touches
    #[arg(value_name = "FILE")]
    files: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Most bytes read from --logfile: a commit message, not a log.
const MAX_LOGFILE: u64 = 1024 * 1024;

fn read_limited(mut r: impl std::io::Read, what: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    r.by_ref()
        .take(MAX_LOGFILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > MAX_LOGFILE {
        anyhow::bail!("{what} is larger than {MAX_LOGFILE} bytes");
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// File names from `--files-from`: NUL-separated if there is a NUL, else one per line.
fn file_list(text: &str) -> Vec<String> {
    let parts: Vec<&str> = if text.contains('\0') {
        text.split('\0').collect()
    } else {
        text.lines().collect()
    };
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The request body.
fn body(args: &Args, comments: String, files: Vec<String>) -> Value {
    let mut m = Map::new();
    m.insert("repository".into(), json!(args.repository));
    m.insert("branch".into(), json!(args.branch));
    m.insert("revision".into(), json!(args.revision));
    if let Some(who) = &args.who {
        m.insert("author".into(), json!(who));
    }
    if !comments.is_empty() {
        m.insert("comments".into(), json!(comments));
    }
    if !files.is_empty() {
        m.insert("files".into(), json!(files));
    }
    if let Some(when) = args.when {
        m.insert("when".into(), json!(when));
    }
    if let Some(p) = &args.project {
        m.insert("project".into(), json!(p));
    }
    if let Some(c) = &args.category {
        m.insert("category".into(), json!(c));
    }
    Value::Object(m)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client_args = args.client.clone();
    if let Some(file) = &args.password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--password-file {}", file.display()))?;
        let password = text.lines().next().unwrap_or("").to_owned();
        if password.is_empty() {
            anyhow::bail!(
                "--password-file {}: the first line is empty",
                file.display()
            );
        }
        client_args.password = Some(password);
    }
    if client_args.user.is_none() {
        anyhow::bail!(
            "sending a change needs a user: give --user and --password-file (or ABO_USER and \
             ABO_PASSWORD) of a user added with `abo user add DIR NAME` on the master"
        );
    }
    let client = Client::new(&client_args)?;
    if let Some(w) = args.when {
        if !w.is_finite() || w < 0.0 {
            anyhow::bail!("--when {w}: expected Unix seconds");
        }
    }
    let comments = match (&args.comments, &args.logfile) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) if f.as_os_str() == "-" => read_limited(std::io::stdin(), "stdin")?,
        (None, Some(f)) => {
            let file =
                std::fs::File::open(f).with_context(|| format!("--logfile {}", f.display()))?;
            read_limited(file, &format!("--logfile {}", f.display()))?
        }
        (None, None) => String::new(),
    };
    // `git log --format=%B` ends with blank lines.
    let comments = comments.trim_end().to_owned();
    let mut files = args.files.clone();
    if let Some(f) = &args.files_from {
        let file =
            std::fs::File::open(f).with_context(|| format!("--files-from {}", f.display()))?;
        files.extend(file_list(&read_limited(
            file,
            &format!("--files-from {}", f.display()),
        )?));
    }
    let answer = client.post("changes", &body(&args, comments, files))?;
    let id = answer.get("id").and_then(Value::as_u64).ok_or_else(|| {
        anyhow::anyhow!("unexpected answer from the master: no change id in {answer}")
    })?;
    if answer.get("watched") == Some(&Value::Bool(false)) {
        eprintln!(
            "warning: the master watches no repository {}: change {id} is stored but starts \
             no build (check the manifest's watch lines and master.toml's url-rewrite)",
            answer
                .get("repository")
                .and_then(Value::as_str)
                .unwrap_or(&args.repository)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!(
            "change {id} stored: {} {} {}",
            answer
                .get("repository")
                .and_then(Value::as_str)
                .unwrap_or(""),
            answer.get("branch").and_then(Value::as_str).unwrap_or(""),
            answer.get("revision").and_then(Value::as_str).unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_body_has_what_was_given() {
        let cli = Cli::try_parse_from([
            "abo",
            "-R",
            "https://r.example/x.git",
            "-b",
            "main",
            "-r",
            "abc123",
            "-W",
            "Alice <a@x>",
            "-w",
            "12.5",
            "a.py",
            "b.py",
        ])
        .unwrap();
        let b = body(&cli.args, "msg".into(), cli.args.files.clone());
        assert_eq!(
            b,
            json!({"repository": "https://r.example/x.git", "branch": "main", "revision": "abc123",
                   "author": "Alice <a@x>", "comments": "msg", "files": ["a.py", "b.py"], "when": 12.5})
        );
        assert!(Cli::try_parse_from(["abo", "-R", "x", "-r", "a", "-c", "m", "-F", "f"]).is_err());
        assert!(Cli::try_parse_from(["abo", "-R", "x"]).is_err());
        assert_eq!(file_list("a b\0c\0"), ["a b", "c"]);
        assert_eq!(file_list("a b\nc\n"), ["a b", "c"]);
        assert!(file_list("").is_empty());
    }
}
