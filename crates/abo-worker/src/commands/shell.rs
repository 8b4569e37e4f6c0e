//! The `shell` command: one process, run as buildbot-worker's `WorkerShellCommand` runs it
//! (spec §3.10), then `rc`, an `elapsedTime=` header and `elapsed` (left out after an
//! interrupt, as the stock worker does).

use std::str::FromStr;
use std::time::Duration;

use abo_proto::{CommandLine, LogFile, ShellArgs, UpdateEntry};
use nix::sys::signal::Signal;

use super::process::{self, shell_quote, LogSpec, Spec};
use super::{unix_now, Ctx};
use crate::output::Stream;
use crate::paths;

/// Reads `interruptSignal` (a name without `SIG`, default `KILL`).
pub(crate) fn signal_named(name: Option<&str>) -> Option<Signal> {
    match name {
        None => Some(Signal::SIGKILL),
        Some(n) => Signal::from_str(&format!("SIG{}", n.to_ascii_uppercase())).ok(),
    }
}

fn duration(s: Option<abo_proto::Seconds>) -> Option<Duration> {
    s.and_then(|s| Duration::try_from_secs_f64(s.0).ok())
}

/// The argv to run and the command line for the header.
pub(crate) fn argv(command: &CommandLine) -> (Vec<String>, String) {
    match command {
        CommandLine::Shell(s) => (vec!["/bin/sh".into(), "-c".into(), s.clone()], s.clone()),
        CommandLine::Argv(v) => (
            v.clone(),
            v.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

pub(crate) async fn run(args: ShellArgs, mut ctx: Ctx) {
    let started = std::time::Instant::now();
    let mut out = ctx.output.buffer();
    let workdir = paths::resolve(&ctx.shared.basedir, &args.workdir);
    let (argv, display) = argv(&args.command);
    let interrupt_signal = match signal_named(args.interrupt_signal.as_deref()) {
        Some(s) => s,
        None => {
            out.text(
                &Stream::Header,
                &format!(
                    "unknown interruptSignal {:?}: using KILL\n",
                    args.interrupt_signal.unwrap_or_default()
                ),
                unix_now(),
            );
            Signal::SIGKILL
        }
    };
    let logfiles = args
        .logfiles
        .iter()
        .map(|(name, lf)| {
            let (file, follow) = match lf {
                LogFile::Path(p) => (p.as_str(), false),
                LogFile::Watch { filename, follow } => (filename.as_str(), *follow),
            };
            LogSpec {
                name: name.clone(),
                path: paths::resolve(&workdir, file),
                follow,
            }
        })
        .collect();
    let spec = Spec {
        argv,
        display,
        env: crate::env::changes(&ctx.shared.worker_env, &args.env),
        workdir,
        log_environ: args.log_environ.unwrap_or(true),
        timeout: duration(args.timeout),
        max_time: duration(args.max_time),
        max_lines: args.max_lines,
        sigterm_time: duration(args.sigterm_time),
        interrupt_signal,
        want_stdout: args.want_stdout.unwrap_or(true),
        want_stderr: args.want_stderr.unwrap_or(true),
        logfiles,
        stdin: args.initial_stdin.map(String::into_bytes),
    };
    let Ok(ended) = process::run(spec, &mut ctx, &mut out).await else {
        return;
    };
    let elapsed = started.elapsed().as_secs_f64();
    out.entry(UpdateEntry::Rc(ended.rc));
    out.text(
        &Stream::Header,
        &format!("elapsedTime={elapsed:.6}\n"),
        unix_now(),
    );
    if !ended.interrupted {
        out.entry(UpdateEntry::Elapsed(elapsed));
    }
    if ctx.flush(&mut out).await.is_ok() {
        ctx.complete(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name() {
        assert_eq!(signal_named(None), Some(Signal::SIGKILL));
        assert_eq!(signal_named(Some("TERM")), Some(Signal::SIGTERM));
        assert_eq!(signal_named(Some("int")), Some(Signal::SIGINT));
        assert_eq!(signal_named(Some("NOPE")), None);
    }

    #[test]
    fn argv_and_display() {
        let (a, d) = argv(&CommandLine::Shell("echo hi | cat".into()));
        assert_eq!(a, ["/bin/sh", "-c", "echo hi | cat"]);
        assert_eq!(d, "echo hi | cat");
        let (a, d) = argv(&CommandLine::Argv(vec![
            "sh".into(),
            "-c".into(),
            "echo hi".into(),
        ]));
        assert_eq!(a, ["sh", "-c", "echo hi"]);
        assert_eq!(d, "sh -c 'echo hi'");
    }
}
