//! Running one VCS command: an argument vector (never a shell), no standard input, its own
//! process group, bounded output, a timeout. A command that times out, writes too much, or
//! whose poll is cancelled has its whole process group killed: git and hg leave ssh
//! children behind otherwise.

use crate::error::{Result, VcsError};
use crate::validate::printable;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Standard error kept for messages: its end is what explains a failure.
const STDERR_KEEP: usize = 16 * 1024;
/// Characters of standard error put in an error message.
const STDERR_SHOWN: usize = 600;

/// One command to run.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Variables set for the command.
    pub env: Vec<(String, OsString)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    /// What to call it in messages (`git fetch`): never its arguments, which hold URLs.
    pub label: String,
    /// Strings to mask in its standard error (a URL's password).
    pub secrets: Vec<String>,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>, label: impl Into<String>) -> Invocation {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            label: label.into(),
            secrets: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Invocation {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// Limits of one command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_stdout: usize,
}

/// What a finished command produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    label: String,
    secrets: Vec<String>,
}

impl Output {
    /// The output if the command succeeded, else [`VcsError::Command`] with the end of its
    /// standard error.
    pub fn ok(self) -> Result<Output> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(VcsError::Command {
                command: self.label.clone(),
                status: self.status.to_string(),
                stderr: tidy_stderr(&self.stderr, &self.secrets),
            })
        }
    }
}

/// The end of a command's standard error, as one masked line: what a status page and a log
/// can show.
pub(crate) fn tidy_stderr(stderr: &[u8], secrets: &[String]) -> String {
    let mut text = String::from_utf8_lossy(stderr).into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = printable(&lines.join(" | "));
    let count = joined.chars().count();
    if count > STDERR_SHOWN {
        let tail: String = joined.chars().skip(count - STDERR_SHOWN).collect();
        format!("...{tail}")
    } else if joined.is_empty() {
        "(nothing on standard error)".to_string()
    } else {
        joined
    }
}

/// Kills the process group of a command that did not finish normally, when dropped armed:
/// a timeout, too much output, a cancelled poll (the future is dropped).
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // The group may be gone already; nothing to do then.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Reads `reader` to its end; `None` past `max` bytes.
async fn read_capped<R: AsyncRead + Unpin>(
    mut reader: R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > max {
            return Ok(None);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads `reader` to its end, keeping the last `keep` bytes: a chatty command must neither
/// block on a full pipe nor fill memory.
async fn read_tail<R: AsyncRead + Unpin>(mut reader: R, keep: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > 2 * keep {
            out.drain(..out.len() - keep);
        }
    }
}

/// Runs `inv` to completion within `limits`. A non-zero exit is not an error here: callers
/// decide with [`Output::ok`].
pub(crate) async fn run(inv: &Invocation, limits: Limits) -> Result<Output> {
    tracing::debug!(command = %inv.label, program = %inv.program.display(), "running");
    let mut cmd = tokio::process::Command::new(&inv.program);
    cmd.args(&inv.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    for key in &inv.env_remove {
        cmd.env_remove(key);
    }
    for (key, value) in &inv.env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().map_err(|source| VcsError::Spawn {
        program: inv.program.display().to_string(),
        source,
    })?;
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(VcsError::Spawn {
            program: inv.program.display().to_string(),
            source: std::io::Error::other("no pipes to the child"),
        });
    };
    let io_error = |source| VcsError::Spawn {
        program: inv.program.display().to_string(),
        source,
    };
    let read_out = async {
        read_capped(stdout, limits.max_stdout)
            .await
            .map_err(io_error)?
            .ok_or_else(|| VcsError::OutputTooLarge {
                command: inv.label.clone(),
                limit: limits.max_stdout,
            })
    };
    // Standard error only explains failures: a read error loses the explanation, not the
    // result.
    let read_err = async { Ok(read_tail(stderr, STDERR_KEEP).await.unwrap_or_default()) };
    let work = async {
        // `try_join`: too much output stops the reading at once, without waiting for the
        // command to close its standard error.
        let (out, err) = tokio::try_join!(read_out, read_err)?;
        let status = child.wait().await.map_err(io_error)?;
        Ok::<_, VcsError>((status, out, err))
    };
    let (status, stdout, stderr) = match tokio::time::timeout(limits.timeout, work).await {
        Ok(done) => done?,
        Err(_) => {
            return Err(VcsError::Timeout {
                command: inv.label.clone(),
                seconds: limits.timeout.as_secs(),
            })
        }
    };
    // The child is reaped: its process group id may be reused, so it must not be signalled.
    guard.pgid = None;
    Ok(Output {
        status,
        stdout,
        stderr,
        label: inv.label.clone(),
        secrets: inv.secrets.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ms: u64, max: usize) -> Limits {
        Limits {
            timeout: Duration::from_millis(ms),
            max_stdout: max,
        }
    }

    #[tokio::test]
    async fn arguments_are_not_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let hostile = format!("$(touch {0}) `touch {0}`; touch {0}", marker.display());
        let out = run(
            &Invocation::new("echo", "echo").arg(&hostile),
            limits(5000, 1024),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
        assert_eq!(out.stdout, format!("{hostile}\n").into_bytes());
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn failures_timeouts_and_caps() {
        let inv = Invocation::new("sh", "sh")
            .args(["-c", "echo 'fatal: https://u:hunter2@h/ gone' >&2; exit 3"]);
        let mut inv = inv;
        inv.secrets.push("hunter2".into());
        let err = run(&inv, limits(5000, 1024))
            .await
            .unwrap()
            .ok()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.contains("u:***@h"), "{text}");
        assert!(!text.contains("hunter2"));

        let started = std::time::Instant::now();
        let slow = Invocation::new("sh", "sh").args(["-c", "sleep 30 & sleep 30"]);
        let err = run(&slow, limits(200, 1024)).await.unwrap_err();
        assert!(matches!(err, VcsError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let started = std::time::Instant::now();
        let chatty = Invocation::new("sh", "sh").args(["-c", "yes"]);
        let err = run(&chatty, limits(10_000, 1000)).await.unwrap_err();
        assert!(matches!(err, VcsError::OutputTooLarge { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));

        let err = run(
            &Invocation::new("/nonexistent/tool", "tool"),
            limits(1000, 10),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VcsError::Spawn { .. }), "{err}");
    }

    #[test]
    fn stderr_tidying() {
        assert_eq!(tidy_stderr(b"", &[]), "(nothing on standard error)");
        assert_eq!(tidy_stderr(b"a\n\nb\x1b[2J\n", &[]), "a | b\\u{1b}[2J");
        let long = "x".repeat(5000);
        let shown = tidy_stderr(long.as_bytes(), &[]);
        assert!(shown.starts_with("...") && shown.len() == STDERR_SHOWN + 3);
    }
}
