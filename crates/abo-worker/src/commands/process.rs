//! Running one process for a command (`shell`, and the `rm`/`cp` of `rmdir`/`cpdir`), as
//! buildbot-worker's `RunProcess` does: own process group, output line-split and batched,
//! `logfiles` followed, timeouts, interrupts, and kill notices in the header.
//!
//! Every signal goes to the whole process group (the process was started as its leader), so
//! a build's grandchildren (a `sleep`, a test server) die with it.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use abo_proto::{FailureReason, UpdateEntry};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{unix_now, Ctx, Lost};
use crate::env::EnvChanges;
use crate::lines::LineSplitter;
use crate::output::{OutputBuffer, Stream};

/// How often `logfiles` are polled (the stock worker polls every 2 s).
const LOGFILE_POLL: Duration = Duration::from_secs(1);
/// Most bytes read from one logfile per poll before output is flushed.
const LOGFILE_READ: usize = 256 * 1024;
/// Bytes read from a logfile at once.
const LOGFILE_CHUNK: usize = 64 * 1024;
/// After a kill signal, how long before KILL is sent again (the stock worker's backup
/// timeout).
const BACKUP_KILL: Duration = Duration::from_secs(5);
/// After the process exits, how long its pipes may stay open once it has been killed: a
/// member that escaped the group may hold them forever.
const EOF_AFTER_KILL: Duration = Duration::from_secs(2);
/// Largest pipe read: with a large `buffer_size`, fewer reads per update (a read never
/// takes more than the update has room for, so with the default 64 KiB it is 64 KiB).
const READ_SIZE: usize = 256 * 1024;
/// Requested capacity of the stdout pipe.
const PIPE_SIZE: i32 = 1 << 20;
/// Smallest pipe read, even when the output buffer is nearly full.
const MIN_READ: usize = 4 * 1024;

/// What to run and how.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) argv: Vec<String>,
    /// The command line as shown in the header (`sh -c '...'` or the argv joined).
    pub(crate) display: String,
    pub(crate) workdir: PathBuf,
    pub(crate) env: EnvChanges,
    pub(crate) log_environ: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_time: Option<Duration>,
    pub(crate) max_lines: Option<u64>,
    pub(crate) sigterm_time: Option<Duration>,
    pub(crate) interrupt_signal: Signal,
    pub(crate) want_stdout: bool,
    pub(crate) want_stderr: bool,
    pub(crate) logfiles: Vec<LogSpec>,
    pub(crate) stdin: Option<Vec<u8>>,
}

/// One entry of `logfiles`.
#[derive(Debug)]
pub(crate) struct LogSpec {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) follow: bool,
}

/// How the process ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Exit code, -1 when killed by a signal or not started.
    pub(crate) rc: i64,
    /// `interrupt_command` stopped it.
    pub(crate) interrupted: bool,
}

/// Python's `repr` of a string, for the `argv: [...]` header line.
fn py_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Quotes an argument for display as a shell word.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// Where a kill stands.
#[derive(Debug, Clone, Copy)]
struct Kill {
    /// When to send `next` (a later, harder signal).
    at: Instant,
    next: Signal,
}

fn killpg(pgid: Pid, sig: Signal) {
    // ESRCH (the group is gone already) is the expected race here.
    let _ = nix::sys::signal::killpg(pgid, sig);
}

/// A followed logfile.
struct Watch {
    spec: LogSpec,
    stream: Stream,
    /// (inode, size, mtime) when the command started: an unchanged old file is not sent.
    initial: Option<(u64, u64, i64)>,
    file: Option<std::fs::File>,
    splitter: LineSplitter,
}

impl Watch {
    fn stat(&self) -> Option<(u64, u64, i64)> {
        std::fs::metadata(&self.spec.path)
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime()))
    }

    /// Opens the file once it exists and differs from the one there at the start.
    fn open(&mut self) {
        if self.file.is_some() {
            return;
        }
        let Some(now) = self.stat() else { return };
        if Some(now) == self.initial {
            return;
        }
        let Ok(mut file) = std::fs::File::open(&self.spec.path) else {
            return;
        };
        // `follow`: skip what the same file held before the command started.
        if let Some((ino, size, _)) = self.initial {
            if self.spec.follow && ino == now.0 && size <= now.1 {
                use std::io::Seek;
                let _ = file.seek(std::io::SeekFrom::Start(size));
            }
        }
        self.file = Some(file);
    }

    /// Reads up to `limit` new bytes into `out`; returns how many were read.
    fn read(&mut self, out: &mut OutputBuffer, limit: usize) -> usize {
        self.open();
        let Some(file) = self.file.as_mut() else {
            return 0;
        };
        let mut buf = vec![0; limit.min(LOGFILE_CHUNK)];
        let mut total = 0;
        while total < limit {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = unix_now();
                    self.splitter
                        .feed(&buf[..n], now, &mut out.sink(&self.stream));
                    total += n;
                }
            }
        }
        total
    }
}

/// Reads from a pipe that is still open; pends forever once it is closed (`None`).
async fn read_opt<R: tokio::io::AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe.as_mut() {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes the header lines the stock worker writes before starting the process.
fn header(spec: &Spec, worker_env: &BTreeMap<String, String>, out: &mut OutputBuffer) {
    let now = unix_now();
    let mut h = format!("{}\n", spec.display);
    match spec.timeout {
        Some(t) => h.push_str(&format!(
            " in dir {} (timeout {} secs)\n",
            spec.workdir.display(),
            secs(t)
        )),
        None => h.push_str(&format!(" in dir {}\n", spec.workdir.display())),
    }
    if !spec.logfiles.is_empty() {
        let names: Vec<String> = spec
            .logfiles
            .iter()
            .map(|l| {
                format!(
                    "{}: {}",
                    py_repr(&l.name),
                    py_repr(&l.path.to_string_lossy())
                )
            })
            .collect();
        h.push_str(&format!(" watching logfiles {{{}}}\n", names.join(", ")));
    }
    let argv: Vec<String> = spec.argv.iter().map(|a| py_repr(a)).collect();
    h.push_str(&format!(" argv: [{}]\n", argv.join(", ")));
    if spec.log_environ {
        h.push_str(" environment:\n");
        let mut env = spec.env.apply(worker_env);
        env.insert("PWD".into(), spec.workdir.to_string_lossy().into_owned());
        for (k, v) in env {
            h.push_str(&format!("  {k}={v}\n"));
        }
    }
    if let Some(stdin) = &spec.stdin {
        h.push_str(&format!(" writing {} bytes to stdin\n", stdin.len()));
    }
    h.push_str(" using PTY: False\n");
    out.text(&Stream::Header, &h, now);
}

/// Runs `spec` to its end, writing header, output and kill notices into `out` (flushing as
/// needed). The caller adds `rc` and what follows it.
pub(crate) async fn run(spec: Spec, ctx: &mut Ctx, out: &mut OutputBuffer) -> Result<Ended, Lost> {
    header(&spec, &ctx.shared.worker_env, out);
    if let Err(e) = std::fs::create_dir_all(&spec.workdir) {
        out.text(
            &Stream::Stderr,
            &format!("cannot create workdir {}: {e}\n", spec.workdir.display()),
            unix_now(),
        );
        return Ok(Ended {
            rc: -1,
            interrupted: false,
        });
    }
    let Some((program, args)) = spec.argv.split_first() else {
        out.text(&Stream::Stderr, "empty command\n", unix_now());
        return Ok(Ended {
            rc: -1,
            interrupted: false,
        });
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&spec.workdir)
        // The process leads a new group: signals go to the group, grandchildren included.
        .process_group(0)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in &spec.env.remove {
        cmd.env_remove(name);
    }
    cmd.envs(&spec.env.set);
    cmd.env("PWD", &spec.workdir);
    // Stat the logfiles before the process starts: a fast command may have written one
    // already by the time the worker looks, which would then pass for an unchanged old file.
    let mut watches: Vec<Watch> = spec
        .logfiles
        .into_iter()
        .map(|l| {
            let initial = std::fs::metadata(&l.path)
                .ok()
                .map(|m| (m.ino(), m.size(), m.mtime()));
            Watch {
                stream: Stream::Log(l.name.clone()),
                spec: l,
                initial,
                file: None,
                splitter: LineSplitter::new(ctx.output.max_line),
            }
        })
        .collect();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.text(
                &Stream::Stderr,
                &format!("error in RunProcess._startCommand ({program}: {e})\n"),
                unix_now(),
            );
            return Ok(Ended {
                rc: -1,
                interrupted: false,
            });
        }
    };
    let Some(pid) = child.id() else {
        return Ok(Ended {
            rc: -1,
            interrupted: false,
        });
    };
    let pgid = Pid::from_raw(pid as i32);
    if let (Some(data), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        // A separate task, so a process that does not read its stdin cannot block output.
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
        });
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // A larger pipe lets a chatty process write on while the worker sends the last batch,
    // with fewer context switches; best effort (the default 64 KiB works too).
    if let Some(pipe) = &stdout {
        let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let mut out_split = LineSplitter::new(ctx.output.max_line);
    let mut err_split = LineSplitter::new(ctx.output.max_line);

    let start = Instant::now();
    let max_deadline = spec.max_time.map(|t| start + t);
    let mut last_output = start;
    let mut status: Option<std::process::ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut kill: Option<Kill> = None;
    let mut killed = false;
    let mut killed_at: Option<Instant> = None;
    let mut interrupted = false;
    let mut lines = 0u64;
    // Reads are at most what an update has room for: no larger buffers (zeroed per command).
    let read_size = ctx.output.buffer_size.clamp(MIN_READ, READ_SIZE);
    let mut buf_out = vec![0u8; read_size];
    let mut buf_err = vec![0u8; read_size];
    let mut poll = tokio::time::interval(LOGFILE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lost = ctx.lost.clone();
    let interrupt = ctx.interrupt.clone();

    // Starts killing the group: TERM then `signal` after `sigterm_time` when set, else
    // `signal` at once; KILL again later if the group is still there.
    let begin_kill = |sigterm: Option<Duration>, signal: Signal| -> Kill {
        match sigterm {
            Some(grace) => {
                killpg(pgid, Signal::SIGTERM);
                Kill {
                    at: Instant::now() + grace,
                    next: signal,
                }
            }
            None => {
                killpg(pgid, signal);
                Kill {
                    at: Instant::now() + BACKUP_KILL,
                    next: Signal::SIGKILL,
                }
            }
        }
    };

    loop {
        let done = status.is_some() && stdout.is_none() && stderr.is_none();
        if done {
            break;
        }
        if out.is_full() {
            ctx.flush(out).await?;
        }
        // Until the pipes close, not only until the process exits: a background process
        // holding them keeps the command alive, and the timeouts must still catch it.
        let timeout_at = match (spec.timeout, killed) {
            (Some(t), false) => Some(last_output + t),
            _ => None,
        };
        let max_at = if killed { None } else { max_deadline };
        // Once killed and exited, give stragglers holding the pipes a short while only.
        // Read no more than fits, so one update stays near buffer_size.
        let want = out.room().clamp(MIN_READ, read_size);
        let eof_at = match (killed_at, exited_at) {
            (Some(k), Some(e)) => Some(k.max(e) + EOF_AFTER_KILL),
            _ => None,
        };
        tokio::select! {
            biased;
            _ = lost.cancelled() => {
                if status.is_none() {
                    // Nobody will read the output: TERM, a grace period, then KILL.
                    killpg(pgid, Signal::SIGTERM);
                    let grace = ctx.shared.kill_grace;
                    if tokio::time::timeout(grace, child.wait()).await.is_err() {
                        killpg(pgid, Signal::SIGKILL);
                        let _ = tokio::time::timeout(BACKUP_KILL, child.wait()).await;
                    }
                }
                killpg(pgid, Signal::SIGKILL);
                tracing::info!(command = %ctx.id, "connection lost: killed the command's process group");
                return Err(Lost);
            }
            _ = interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                killed = true;
                killed_at = Some(Instant::now());
                ctx.flush(out).await?;
                out.text(&Stream::Header, "\ncommand interrupted, attempting to kill\n", unix_now());
                kill = Some(begin_kill(spec.sigterm_time, spec.interrupt_signal));
            }
            r = read_opt(&mut stdout, &mut buf_out[..want]) => {
                match r {
                    Ok(0) | Err(_) => {
                        stdout = None;
                        out_split.finish(unix_now(), &mut out.sink(&Stream::Stdout));
                    }
                    Ok(n) => {
                        last_output = Instant::now();
                        if spec.want_stdout {
                            let before = out.lines();
                            out_split.feed(&buf_out[..n], unix_now(), &mut out.sink(&Stream::Stdout));
                            lines += out.lines() - before;
                        }
                    }
                }
            }
            r = read_opt(&mut stderr, &mut buf_err[..want]) => {
                match r {
                    Ok(0) | Err(_) => {
                        stderr = None;
                        err_split.finish(unix_now(), &mut out.sink(&Stream::Stderr));
                    }
                    Ok(n) => {
                        last_output = Instant::now();
                        if spec.want_stderr {
                            let before = out.lines();
                            err_split.feed(&buf_err[..n], unix_now(), &mut out.sink(&Stream::Stderr));
                            lines += out.lines() - before;
                        }
                    }
                }
            }
            r = child.wait(), if status.is_none() => {
                let st = match r {
                    Ok(st) => st,
                    // wait() failing means the child cannot be waited for; report it killed.
                    Err(_) => std::process::ExitStatus::from_raw(9),
                };
                status = Some(st);
                exited_at = Some(Instant::now());
                if killed {
                    // The rest of the group goes with the process we killed.
                    killpg(pgid, Signal::SIGKILL);
                }
            }
            _ = sleep_until_opt(timeout_at) => {
                let t = spec.timeout.unwrap_or_default();
                out.entry(UpdateEntry::FailureReason(FailureReason::TimeoutWithoutOutput));
                out.text(&Stream::Header, &format!(
                    "command timed out: {} seconds without output running {}, attempting to kill\n",
                    secs(t), spec.display), unix_now());
                killed = true;
                killed_at = Some(Instant::now());
                kill = Some(begin_kill(spec.sigterm_time, spec.interrupt_signal));
            }
            _ = sleep_until_opt(max_at) => {
                let t = spec.max_time.unwrap_or_default();
                out.entry(UpdateEntry::FailureReason(FailureReason::Timeout));
                out.text(&Stream::Header, &format!(
                    "command timed out: {} seconds elapsed running {}, attempting to kill\n",
                    secs(t), spec.display), unix_now());
                killed = true;
                killed_at = Some(Instant::now());
                kill = Some(begin_kill(spec.sigterm_time, spec.interrupt_signal));
            }
            _ = sleep_until_opt(kill.filter(|_| status.is_none()).map(|k| k.at)) => {
                if let Some(k) = kill {
                    killpg(pgid, k.next);
                    kill = Some(Kill { at: Instant::now() + BACKUP_KILL, next: Signal::SIGKILL });
                }
            }
            _ = sleep_until_opt(eof_at) => {
                // Pipes held open by a process outside the group: stop reading them.
                for (split, stream) in [(&mut out_split, Stream::Stdout), (&mut err_split, Stream::Stderr)] {
                    split.finish(unix_now(), &mut out.sink(&stream));
                }
                stdout = None;
                stderr = None;
            }
            _ = sleep_until_opt(out.deadline().map(Instant::from_std)) => {
                ctx.flush(out).await?;
            }
            _ = poll.tick(), if !watches.is_empty() => {
                for w in &mut watches {
                    if w.read(out, LOGFILE_READ) > 0 {
                        last_output = Instant::now();
                    }
                    if out.is_full() {
                        ctx.flush(out).await?;
                    }
                }
            }
        }
        if let (Some(limit), false) = (spec.max_lines, killed) {
            if lines > limit {
                out.entry(UpdateEntry::FailureReason(FailureReason::MaxLinesFailure));
                out.text(
                    &Stream::Header,
                    &format!("command exceeded {limit} lines of output, attempting to kill\n"),
                    unix_now(),
                );
                killed = true;
                killed_at = Some(Instant::now());
                kill = Some(begin_kill(spec.sigterm_time, spec.interrupt_signal));
            }
        }
    }
    // What the logfiles got last.
    for w in &mut watches {
        while w.read(out, LOGFILE_READ) > 0 {
            if out.is_full() {
                ctx.flush(out).await?;
            }
        }
        w.splitter.finish(unix_now(), &mut out.sink(&w.stream));
    }
    let status = status.unwrap_or_else(|| std::process::ExitStatus::from_raw(9));
    let rc = match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(sig)) => {
            out.text(
                &Stream::Header,
                &format!("process killed by signal {sig}\n"),
                unix_now(),
            );
            -1
        }
        (None, None) => -1,
    };
    // A command stopped by a timeout or an interrupt never reports success, even when its
    // leader had already exited 0 (a background process held the pipes).
    let rc = if killed && rc == 0 { -1 } else { rc };
    Ok(Ended { rc, interrupted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quoting() {
        assert_eq!(shell_quote("echo"), "echo");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(py_repr("a'b\\\n"), "'a\\'b\\\\\\n'");
        assert_eq!(secs(Duration::from_secs(1200)), "1200");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5");
    }
}
