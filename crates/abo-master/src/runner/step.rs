//! One step of a build, carried out: a [`Job`] turns a [`RenderedStep`] into commands on
//! the build's worker (shell, transfers, VCS checkouts) or work on the master (a command,
//! a log analysis), streams the output into the step's logs as it comes, and reports a
//! [`StepOutcome`]. It never decides the build's fate: the engine does, from the outcome.
//!
//! Output goes to the store through [`LogWriter`]s, which mask secrets, cap the log and
//! check the build's lease with every chunk: a step whose build was given up (its worker
//! lost) has its writes refused and stops writing. Memory stays bounded: a command's
//! updates come through a bounded queue, a writer holds about one chunk, and captured
//! output (`set-property-from-command`) is cut at [`CAPTURE_BYTES`].

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use abo_engine::{
    BuildResult, RenderedCommand, RenderedEnv, RenderedKind, RenderedStep, StepOutcome,
};
use abo_plan::Vcs;
use abo_proto::{
    Command, CommandLine, EnvValue, FailureReason, LogFile, Seconds, ShellArgs, UpdateEntry,
};
use abo_store::{LogKind, LogWriter, Stream};
use futures_util::FutureExt as _;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::paths::{download_src, upload_dest, worker_join};
use super::Shared;
use crate::error::Error;
use crate::handle::{
    CommandResult, DownloadFile, End, RunningCommand, UploadDirectory, UploadFile, WorkerConnection,
};

/// How often a running step's logs are stored even when no chunk is full, so that the API
/// shows live output.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The most standard output a `set-property-from-command` step keeps for its property.
pub(crate) const CAPTURE_BYTES: usize = 64 * 1024;

/// Most output text gathered from waiting updates into one log write (see `follow`).
const GATHER_BYTES: usize = 1024 * 1024;

/// The stdio stream of an output entry (stdout, stderr or header), `None` for others.
fn main_stream(entry: &UpdateEntry) -> Option<Stream> {
    match entry {
        UpdateEntry::Stdout(_) => Some(Stream::Stdout),
        UpdateEntry::Stderr(_) => Some(Stream::Stderr),
        UpdateEntry::Header(_) => Some(Stream::Header),
        _ => None,
    }
}

/// The text of an output entry (empty for other entries).
fn entry_text(entry: &UpdateEntry) -> &str {
    match entry {
        UpdateEntry::Stdout(l) | UpdateEntry::Stderr(l) | UpdateEntry::Header(l) => &l.text,
        _ => "",
    }
}

/// Bytes read at a time from a master-side command's pipes.
const PIPE_READ: usize = 64 * 1024;

/// Everything one step task needs.
pub(crate) struct Job {
    pub shared: Arc<Shared>,
    pub build: abo_store::BuildId,
    pub lease: abo_store::Lease,
    pub builder: String,
    /// Relative to the worker's base directory.
    pub builder_dir: String,
    pub step: RenderedStep,
    /// The build's worker; `None` only for master-side steps.
    pub conn: Option<WorkerConnection>,
    /// The plan's template of a `download` step's source (absolute sources are accepted
    /// only as the configuration wrote them).
    pub download_template: Option<String>,
    /// Cancelled when a stop is asked for (or the build is given up).
    pub interrupt: CancellationToken,
    pub shutdown: CancellationToken,
}

/// One log of the step; writes stop (quietly) once the store refuses them.
struct Log {
    writer: Option<LogWriter>,
}

impl Log {
    async fn write(&mut self, stream: Stream, data: &[u8]) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.write(stream, data).await {
                tracing::debug!("log writes stop: {e}");
                self.writer = None;
            }
        }
    }

    /// Writes `parts` with their last batch possibly still being stored when this returns
    /// (see [`LogWriter::write_parts_behind`]): the next output is gathered and encoded
    /// while it commits.
    async fn write_parts(&mut self, stream: Stream, parts: &[&[u8]]) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.write_parts_behind(stream, parts).await {
                tracing::debug!("log writes stop: {e}");
                self.writer = None;
            }
        }
    }

    /// A line abo writes about the step (a header line in a stdio log).
    async fn note(&mut self, text: &str) {
        let mut line = text.to_owned();
        if !line.ends_with('\n') {
            line.push('\n');
        }
        self.write(Stream::Header, line.as_bytes()).await;
    }

    async fn flush(&mut self) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.flush().await {
                tracing::debug!("log writes stop: {e}");
                self.writer = None;
            }
        }
    }

    async fn finish(self) {
        if let Some(w) = self.writer {
            if let Err(e) = w.finish().await {
                tracing::debug!("log not finished: {e}");
            }
        }
    }
}

fn outcome(result: BuildResult, summary: impl Into<String>) -> StepOutcome {
    let summary = summary.into();
    StepOutcome {
        result,
        properties: BTreeMap::new(),
        summary: (!summary.is_empty()).then_some(summary),
    }
}

/// How a failure to start a command counts: a lost worker is a `retry` (the engine
/// already retries the build), anything else an `exception`.
fn start_error(e: &Error) -> StepOutcome {
    match e {
        Error::Disconnected { .. } => outcome(BuildResult::Retry, e.to_string()),
        _ => outcome(BuildResult::Exception, e.to_string()),
    }
}

/// A worker command's end as a step result and one line for the UI.
fn command_outcome(r: &CommandResult, interrupted: bool) -> (BuildResult, String) {
    if interrupted {
        return (BuildResult::Cancelled, "stopped".into());
    }
    match &r.end {
        End::Complete { failure: None } => {
            if let Some(e) = r.transfer.as_ref().and_then(|t| t.error.as_ref()) {
                return (BuildResult::Failure, e.clone());
            }
            match r.rc {
                Some(0) => (BuildResult::Success, String::new()),
                Some(rc) => match &r.failure_reason {
                    Some(FailureReason::TimeoutWithoutOutput) => {
                        (BuildResult::Failure, "timed out: no output".into())
                    }
                    Some(FailureReason::Timeout) => (BuildResult::Failure, "timed out".into()),
                    Some(reason) => (BuildResult::Failure, format!("killed: {}", reason.as_str())),
                    None => (BuildResult::Failure, format!("exit code {rc}")),
                },
                None => (
                    BuildResult::Exception,
                    "the worker sent no exit code".into(),
                ),
            }
        }
        End::Complete { failure: Some(f) } => (BuildResult::Exception, f.clone()),
        End::Refused(m) => (
            BuildResult::Exception,
            format!("the worker refused the command: {m}"),
        ),
        End::Lost(reason) => (BuildResult::Retry, format!("worker lost: {reason}")),
        End::Unanswered => (
            BuildResult::Exception,
            "the worker did not answer the command".into(),
        ),
    }
}

/// An argument vector as one readable line (for the log's header, masked by the writer).
fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn env_value(v: &RenderedEnv) -> String {
    match v {
        RenderedEnv::One(s) => s.clone(),
        // The plan's lists are PATH-like: joined with `:` (empty elements already dropped).
        RenderedEnv::List(items) => items.join(":"),
    }
}

/// `${NAME}` references in a master-side environment value, from the master's environment
/// (the worker does the same for its commands).
fn expand_master_env(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&std::env::var(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Appends to captured output, at most [`CAPTURE_BYTES`] in all.
fn capture_into(buf: &mut String, text: &str) {
    let room = CAPTURE_BYTES.saturating_sub(buf.len());
    let mut take = room.min(text.len());
    while !text.is_char_boundary(take) {
        take -= 1;
    }
    buf.push_str(&text[..take]);
}

impl Job {
    /// Runs the step to its end; never panics, every failure is an outcome.
    pub(crate) async fn run(self) -> StepOutcome {
        let mut log = self.open_log("stdio", self.main_log_kind()).await;
        let outcome = match self.step.kind.clone() {
            RenderedKind::Shell => self.shell(&mut log, None).await,
            RenderedKind::SetPropertyFromCommand { property } => {
                self.shell(&mut log, Some(property)).await
            }
            RenderedKind::Download { src, dest } => self.download(&mut log, &src, &dest).await,
            RenderedKind::UploadFile { src, dest } => {
                self.upload(&mut log, &src, &dest, false).await
            }
            RenderedKind::UploadDirectory { src, dest } => {
                self.upload(&mut log, &src, &dest, true).await
            }
            RenderedKind::MasterShell => self.master_shell(&mut log).await,
            RenderedKind::Checkout {
                vcs,
                repo,
                branch,
                revision,
                dest,
                subdir,
            } => {
                let spec = Checkout {
                    vcs,
                    repo,
                    branch,
                    revision,
                    dest,
                    subdir,
                };
                self.checkout(&mut log, &spec).await
            }
            RenderedKind::AnalyzeLog {
                step,
                step_index,
                log: name,
            } => self.analyze(&mut log, &step, step_index, &name).await,
        };
        if let Some(summary) = &outcome.summary {
            if outcome.result != BuildResult::Success {
                log.note(&format!("result: {} ({summary})", outcome.result))
                    .await;
            }
        }
        log.finish().await;
        outcome
    }

    fn main_log_kind(&self) -> LogKind {
        match self.step.kind {
            // The report is plain text.
            RenderedKind::AnalyzeLog { .. } => LogKind::Text,
            _ => LogKind::Stdio,
        }
    }

    async fn open_log(&self, name: &str, kind: LogKind) -> Log {
        let index = u32::try_from(self.step.index).unwrap_or(u32::MAX);
        let writer = match self
            .shared
            .store
            .open_log(
                self.build,
                self.lease,
                index,
                name,
                kind,
                self.shared.log_options.clone(),
            )
            .await
        {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(
                    build = self.build.0,
                    step = index,
                    "log {name} not opened: {e}"
                );
                None
            }
        };
        Log { writer }
    }

    fn conn(&self) -> Result<&WorkerConnection, StepOutcome> {
        self.conn
            .as_ref()
            .ok_or_else(|| outcome(BuildResult::Retry, "the worker is not connected"))
    }

    /// The builder's directory on the worker.
    fn builder_path(&self, conn: &WorkerConnection) -> String {
        let basedir = conn.info().basedir.clone().unwrap_or_default();
        worker_join(&basedir, &self.builder_dir)
    }

    /// The step's working directory on the worker.
    fn workdir(&self, conn: &WorkerConnection) -> String {
        worker_join(&self.builder_path(conn), &self.step.workdir)
    }

    fn shell_args(&self, workdir: String, command: CommandLine) -> ShellArgs {
        let mut args = ShellArgs::new(workdir, command);
        // The worker's environment is never written to a log (it may hold secrets).
        args.log_environ = Some(false);
        args.env = self
            .step
            .env
            .iter()
            .map(|(k, v)| (k.clone(), EnvValue::Set(env_value(v))))
            .collect();
        args.timeout = self.step.timeout.map(|t| Seconds(t as f64));
        args.logfiles = self
            .step
            .logfiles
            .iter()
            .map(|(name, path)| (name.clone(), LogFile::Path(path.clone())))
            .collect();
        args
    }

    /// `shell` and `set-property-from-command`.
    async fn shell(&self, log: &mut Log, property: Option<String>) -> StepOutcome {
        let conn = match self.conn() {
            Ok(c) => c.clone(),
            Err(o) => return o,
        };
        // The worker's own header lines name the command and its directory.
        let command = match &self.step.command {
            Some(RenderedCommand::Argv(argv)) if !argv.is_empty() => {
                CommandLine::Argv(argv.clone())
            }
            Some(RenderedCommand::Shell(s)) => CommandLine::Shell(s.clone()),
            _ => return outcome(BuildResult::Exception, "the step has no command"),
        };
        let workdir = self.workdir(&conn);
        let mut files = BTreeMap::new();
        for name in self.step.logfiles.keys() {
            files.insert(name.clone(), self.open_log(name, LogKind::Text).await);
        }
        let args = self.shell_args(workdir, command);
        let cmd = match conn
            .run_for(Some(&self.builder), Command::Shell(Box::new(args)))
            .await
        {
            Ok(cmd) => cmd,
            Err(e) => return start_error(&e),
        };
        let mut captured = property.as_ref().map(|_| String::new());
        let followed = self.follow(cmd, log, &mut files, captured.as_mut()).await;
        for (_, f) in files {
            f.finish().await;
        }
        let Some((result, interrupted)) = followed else {
            return outcome(BuildResult::Retry, "the master is shutting down");
        };
        let (r, summary) = command_outcome(&result, interrupted);
        log.note(&match result.rc {
            Some(rc) => format!("program finished with exit code {rc}"),
            None => "program finished without an exit code".into(),
        })
        .await;
        let mut out = outcome(r, summary);
        if let (Some(property), Some(text), BuildResult::Success) = (property, captured, r) {
            let value = text.trim().to_owned();
            out.summary = Some(format!("property {property} set"));
            out.properties.insert(property, value);
        }
        out
    }

    /// Reads a worker command's updates to the end into the logs. `None` when the master
    /// shuts down first.
    async fn follow(
        &self,
        mut cmd: RunningCommand,
        log: &mut Log,
        files: &mut BTreeMap<String, Log>,
        mut capture: Option<&mut String>,
    ) -> Option<(CommandResult, bool)> {
        let interrupter = cmd.interrupter();
        let mut interrupted = false;
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // An entry read while gathering that belongs to the next round (`Some(None)`: the
        // end of the updates).
        let mut peeked: Option<Option<UpdateEntry>> = None;
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                _ = self.interrupt.cancelled(), if !interrupted => {
                    interrupted = true;
                    log.note("interrupted: a stop was asked for").await;
                    if let Err(e) = interrupter.interrupt("a stop was asked for").await {
                        tracing::debug!("interrupt not delivered: {e}");
                    }
                }
                entry = async {
                    match peeked.take() {
                        Some(e) => e,
                        None => cmd.next().await,
                    }
                } => match entry {
                    None => break,
                    Some(first) if main_stream(&first).is_some() => {
                        // The entries of the same stream already received are written
                        // together: their chunks are then stored in one transaction, which
                        // is most of the cost of a fast-printing command's log.
                        let stream = main_stream(&first);
                        let mut run = vec![first];
                        let mut size = entry_text(&run[0]).len();
                        while size < GATHER_BYTES {
                            match cmd.next().now_or_never() {
                                Some(Some(e)) if main_stream(&e) == stream => {
                                    size += entry_text(&e).len();
                                    run.push(e);
                                }
                                Some(other) => {
                                    peeked = Some(other);
                                    break;
                                }
                                None => break,
                            }
                        }
                        if let (Some(buf), Some(Stream::Stdout)) = (capture.as_deref_mut(), stream) {
                            for e in &run {
                                capture_into(buf, entry_text(e));
                            }
                        }
                        let parts: Vec<&[u8]> = run.iter().map(|e| entry_text(e).as_bytes()).collect();
                        log.write_parts(stream.unwrap_or(Stream::Header), &parts).await;
                    }
                    Some(UpdateEntry::Log { name, lines }) => {
                        // Only the logfiles the step declared; a worker cannot add logs.
                        if let Some(f) = files.get_mut(&name) {
                            f.write(Stream::Stdout, lines.text.as_bytes()).await;
                        }
                    }
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    log.flush().await;
                    for f in files.values_mut() {
                        f.flush().await;
                    }
                }
            }
        }
        Some((cmd.result().await, interrupted))
    }

    /// Runs a transfer or fs command started by `start`, logging its messages.
    async fn transfer(
        &self,
        log: &mut Log,
        started: Result<RunningCommand, Error>,
    ) -> Option<Result<(BuildResult, String, CommandResult), StepOutcome>> {
        let cmd = match started {
            Ok(c) => c,
            Err(e) => return Some(Err(start_error(&e))),
        };
        let (result, interrupted) = self.follow(cmd, log, &mut BTreeMap::new(), None).await?;
        let (r, summary) = command_outcome(&result, interrupted);
        Some(Ok((r, summary, result)))
    }

    async fn download(&self, log: &mut Log, src: &str, dest: &str) -> StepOutcome {
        let conn = match self.conn() {
            Ok(c) => c.clone(),
            Err(o) => return o,
        };
        let src = match download_src(&self.shared, self.download_template.as_deref(), src) {
            Ok(p) => p,
            Err(e) => return outcome(BuildResult::Exception, e),
        };
        let worker_path = worker_join(&self.workdir(&conn), dest);
        log.note(&format!("sending {} to {worker_path}", src.display()))
            .await;
        let started = conn
            .download_file(DownloadFile::new(src, worker_path))
            .await;
        match self.transfer(log, started).await {
            None => outcome(BuildResult::Retry, "the master is shutting down"),
            Some(Err(o)) => o,
            Some(Ok((r, summary, result))) => {
                if let Some(t) = &result.transfer {
                    log.note(&format!("{} bytes sent", t.bytes)).await;
                }
                outcome(r, summary)
            }
        }
    }

    async fn upload(&self, log: &mut Log, src: &str, dest: &str, directory: bool) -> StepOutcome {
        let conn = match self.conn() {
            Ok(c) => c.clone(),
            Err(o) => return o,
        };
        let target = match upload_dest(&self.shared, dest) {
            Ok(p) => p,
            Err(e) => return outcome(BuildResult::Exception, e),
        };
        let worker_path = worker_join(&self.workdir(&conn), src);
        log.note(&format!("fetching {worker_path} into {}", target.display()))
            .await;
        let started = if directory {
            conn.upload_directory(UploadDirectory::new(worker_path, target.clone()))
                .await
        } else {
            conn.upload_file(UploadFile::new(worker_path, target.clone()))
                .await
        };
        match self.transfer(log, started).await {
            None => outcome(BuildResult::Retry, "the master is shutting down"),
            Some(Err(o)) => o,
            Some(Ok((r, summary, result))) => {
                if let Some(t) = &result.transfer {
                    log.note(&format!("{} bytes received", t.bytes)).await;
                }
                if r == BuildResult::Success {
                    let shown = target
                        .strip_prefix(&self.shared.artifacts_dir)
                        .map(|rel| format!("/artifacts/{}", rel.display()))
                        .unwrap_or_else(|_| target.display().to_string());
                    return outcome(r, format!("uploaded to {shown}"));
                }
                outcome(r, summary)
            }
        }
    }

    /// A command on the master, in the artifacts directory: its own process group, killed
    /// whole on a stop or after `timeout` seconds without output.
    async fn master_shell(&self, log: &mut Log) -> StepOutcome {
        let argv = match &self.step.command {
            Some(RenderedCommand::Argv(argv)) if !argv.is_empty() => argv.clone(),
            _ => {
                return outcome(
                    BuildResult::Exception,
                    "a master-shell step needs an argument vector",
                )
            }
        };
        let dir = self.shared.artifacts_dir.clone();
        log.note(&show_argv(&argv)).await;
        log.note(&format!(" in dir {} (on the master)", dir.display()))
            .await;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for (k, v) in &self.step.env {
            command.env(k, expand_master_env(&env_value(v)));
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                return outcome(
                    BuildResult::Exception,
                    format!("cannot run {}: {e}", argv[0]),
                )
            }
        };
        let pid = child.id();
        let kill_group = || {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the process group this step created (setpgid at
                // spawn); no memory is involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
        };
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group();
            return outcome(BuildResult::Exception, "no pipes to the command");
        };
        let silence = self.step.timeout.map(Duration::from_secs);
        let mut deadline = silence.map(|d| tokio::time::Instant::now() + d);
        let (mut out_open, mut err_open) = (true, true);
        let (mut obuf, mut ebuf) = (vec![0u8; PIPE_READ], vec![0u8; PIPE_READ]);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut why_killed: Option<(BuildResult, &str)> = None;
        while out_open || err_open {
            let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    kill_group();
                    return outcome(BuildResult::Retry, "the master is shutting down");
                }
                _ = self.interrupt.cancelled(), if why_killed.is_none() => {
                    log.note("interrupted: a stop was asked for").await;
                    kill_group();
                    why_killed = Some((BuildResult::Cancelled, "stopped"));
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() && why_killed.is_none() => {
                    log.note("no output for too long: killed").await;
                    kill_group();
                    why_killed = Some((BuildResult::Failure, "timed out: no output"));
                }
                n = out.read(&mut obuf), if out_open => match n {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => {
                        deadline = silence.map(|d| tokio::time::Instant::now() + d);
                        log.write(Stream::Stdout, &obuf[..n]).await;
                    }
                },
                n = err.read(&mut ebuf), if err_open => match n {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => {
                        deadline = silence.map(|d| tokio::time::Instant::now() + d);
                        log.write(Stream::Stderr, &ebuf[..n]).await;
                    }
                },
                _ = tick.tick() => log.flush().await,
            }
        }
        let status = child.wait().await;
        if let Some((r, why)) = why_killed {
            return outcome(r, why);
        }
        match status {
            Ok(s) if s.success() => {
                log.note("program finished with exit code 0").await;
                outcome(BuildResult::Success, "")
            }
            Ok(s) => {
                let what = match s.code() {
                    Some(c) => format!("exit code {c}"),
                    None => "killed by a signal".to_owned(),
                };
                log.note(&format!("program finished with {what}")).await;
                outcome(BuildResult::Failure, what)
            }
            Err(e) => outcome(
                BuildResult::Exception,
                format!("cannot wait for the command: {e}"),
            ),
        }
    }

    /// Runs one argument vector on the worker into the step's log; its result.
    async fn worker_argv(
        &self,
        conn: &WorkerConnection,
        log: &mut Log,
        argv: Vec<String>,
        cwd: String,
    ) -> Result<(), StepOutcome> {
        log.note(&format!("{}  (in {cwd})", show_argv(&argv))).await;
        let mut args = ShellArgs::new(cwd, CommandLine::Argv(argv));
        args.log_environ = Some(false);
        args.timeout = self.step.timeout.map(|t| Seconds(t as f64));
        let started = conn
            .run_for(Some(&self.builder), Command::Shell(Box::new(args)))
            .await;
        match self.transfer(log, started).await {
            None => Err(outcome(BuildResult::Retry, "the master is shutting down")),
            Some(Err(o)) => Err(o),
            Some(Ok((BuildResult::Success, _, _))) => Ok(()),
            Some(Ok((r, summary, _))) => Err(outcome(r, summary)),
        }
    }

    /// Clones the repository, or updates the clone already there (found by its metadata
    /// directory), with plain VCS commands; every user value is a separate argument, after
    /// `--` where it is positional, and refs may not start with `-`.
    async fn checkout(&self, log: &mut Log, spec: &Checkout) -> StepOutcome {
        let conn = match self.conn() {
            Ok(c) => c.clone(),
            Err(o) => return o,
        };
        for value in [&spec.branch, &spec.revision].into_iter().flatten() {
            if value.starts_with('-') || value.is_empty() {
                return outcome(
                    BuildResult::Exception,
                    format!("refused branch or revision {value:?}: it would read as an option"),
                );
            }
        }
        let base = self.builder_path(&conn);
        // With bzr's `subdir`, the branch lives beside `dest`, which becomes a link to the
        // subdirectory (the seed's layout).
        let clone_dir = match &spec.subdir {
            Some(_) => format!("{}-branch", spec.dest.trim_end_matches('/')),
            None => spec.dest.clone(),
        };
        let repo_path = worker_join(&base, &clone_dir);
        let marker = match spec.vcs {
            Vcs::Git => ".git",
            Vcs::Hg => ".hg",
            Vcs::Bzr => ".bzr",
        };
        let exists = match conn.stat(worker_join(&repo_path, marker)).await {
            Ok(r) => r.rc == Some(0) && r.stat.is_some(),
            Err(e) => return start_error(&e),
        };
        let s = |v: &str| v.to_owned();
        let mut commands: Vec<(Vec<String>, String)> = Vec::new();
        match (spec.vcs, exists) {
            (Vcs::Git, false) => {
                let mut c = vec![s("git"), s("clone")];
                if let Some(b) = &spec.branch {
                    c.extend([s("--branch"), b.clone()]);
                }
                c.extend([s("--"), spec.repo.clone(), clone_dir.clone()]);
                commands.push((c, base.clone()));
                if let Some(rev) = &spec.revision {
                    commands.push((
                        vec![
                            s("git"),
                            s("checkout"),
                            s("--force"),
                            s("--detach"),
                            rev.clone(),
                            s("--"),
                        ],
                        repo_path.clone(),
                    ));
                }
            }
            (Vcs::Git, true) => {
                let mut fetch = vec![
                    s("git"),
                    s("fetch"),
                    s("--tags"),
                    s("--"),
                    spec.repo.clone(),
                ];
                fetch.extend(spec.branch.clone());
                commands.push((fetch, repo_path.clone()));
                let target = spec.revision.clone().unwrap_or_else(|| s("FETCH_HEAD"));
                commands.push((
                    vec![
                        s("git"),
                        s("checkout"),
                        s("--force"),
                        s("--detach"),
                        target,
                        s("--"),
                    ],
                    repo_path.clone(),
                ));
            }
            (Vcs::Hg, false) => {
                let mut c = vec![s("hg"), s("clone")];
                if let Some(b) = &spec.branch {
                    c.extend([s("--branch"), b.clone()]);
                }
                c.extend([s("--"), spec.repo.clone(), clone_dir.clone()]);
                commands.push((c, base.clone()));
                if let Some(rev) = &spec.revision {
                    commands.push((
                        vec![s("hg"), s("update"), s("--clean"), s("--rev"), rev.clone()],
                        repo_path.clone(),
                    ));
                }
            }
            (Vcs::Hg, true) => {
                let mut pull = vec![s("hg"), s("pull")];
                if let Some(b) = &spec.branch {
                    pull.extend([s("--branch"), b.clone()]);
                }
                pull.extend([s("--"), spec.repo.clone()]);
                commands.push((pull, repo_path.clone()));
                let target = spec
                    .revision
                    .clone()
                    .or_else(|| spec.branch.clone())
                    .unwrap_or_else(|| s("tip"));
                commands.push((
                    vec![s("hg"), s("update"), s("--clean"), s("--rev"), target],
                    repo_path.clone(),
                ));
            }
            (Vcs::Bzr, false) => {
                let mut c = vec![s("bzr"), s("branch")];
                if let Some(rev) = &spec.revision {
                    c.extend([s("-r"), rev.clone()]);
                }
                c.extend([s("--"), spec.repo.clone(), clone_dir.clone()]);
                commands.push((c, base.clone()));
            }
            (Vcs::Bzr, true) => {
                let mut c = vec![s("bzr"), s("pull"), s("--overwrite")];
                if let Some(rev) = &spec.revision {
                    c.extend([s("-r"), rev.clone()]);
                }
                c.extend([s("--"), spec.repo.clone()]);
                commands.push((c, repo_path.clone()));
            }
        }
        if let Some(sub) = &spec.subdir {
            commands.push((
                vec![
                    s("ln"),
                    s("-sfn"),
                    s("--"),
                    worker_join(&clone_dir, sub),
                    spec.dest.trim_end_matches('/').to_owned(),
                ],
                base.clone(),
            ));
        }
        if !exists {
            // The clone's parent must exist; the worker creates a shell's workdir.
            if let Err(e) = conn.mkdir(vec![base.clone()]).await {
                return start_error(&e);
            }
        }
        for (argv, cwd) in commands {
            if let Err(o) = self.worker_argv(&conn, log, argv, cwd).await {
                return o;
            }
        }
        outcome(
            BuildResult::Success,
            if exists { "updated" } else { "cloned" },
        )
    }

    /// Reads log `name` of step `index` of this build from the store, through the log
    /// analyser, and writes the report as this step's log.
    async fn analyze(&self, log: &mut Log, step: &str, index: usize, name: &str) -> StepOutcome {
        let store = &self.shared.store;
        let index32 = u32::try_from(index).unwrap_or(u32::MAX);
        let info = match store.find_log(self.build, index32, name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                let msg = format!("step {step} has no log {name}: nothing to analyse");
                log.write(Stream::Stdout, format!("{msg}\n").as_bytes())
                    .await;
                return outcome(BuildResult::Failure, msg);
            }
            Err(e) => return outcome(BuildResult::Exception, e.to_string()),
        };
        let reader = match store.log_reader(info.id).await {
            Ok(r) => r,
            Err(e) => return outcome(BuildResult::Exception, e.to_string()),
        };
        let mut analyzer = abo_logscan::Analyzer::new();
        let mut offset = 0u64;
        loop {
            if self.interrupt.is_cancelled() {
                return outcome(BuildResult::Cancelled, "stopped");
            }
            if self.shutdown.is_cancelled() {
                return outcome(BuildResult::Retry, "the master is shutting down");
            }
            let page = match reader.read_text(offset, 1024 * 1024).await {
                Ok(p) => p,
                Err(e) => return outcome(BuildResult::Exception, e.to_string()),
            };
            if page.data.is_empty() {
                break;
            }
            offset += page.data.len() as u64;
            analyzer.feed(&page.data);
        }
        let analysis = analyzer.finish();
        let report = abo_logscan::render_report(&analysis);
        log.write(Stream::Stdout, report.as_bytes()).await;
        let counts = analysis.counts;
        let tests = match (counts.run, counts.failed, counts.errors) {
            (Some(run), f, e) => format!(
                "{run} tests, {} failed, {} errors",
                f.unwrap_or(0),
                e.unwrap_or(0)
            ),
            _ => String::new(),
        };
        if analysis.failed {
            let mut s = format!("{} failure line(s)", analysis.total);
            if !tests.is_empty() {
                s = format!("{s}; {tests}");
            }
            outcome(BuildResult::Failure, s)
        } else {
            outcome(BuildResult::Success, tests)
        }
    }
}

/// A `checkout` step's fields.
struct Checkout {
    vcs: Vcs,
    repo: String,
    branch: Option<String>,
    revision: Option<String>,
    dest: String,
    subdir: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_shown_quoted() {
        let argv = vec![
            "echo".to_string(),
            "a b".into(),
            "it's".into(),
            "x=1".into(),
        ];
        assert_eq!(show_argv(&argv), "echo 'a b' 'it'\\''s' x=1");
    }

    #[test]
    fn master_env_expands_references() {
        std::env::set_var("ABO_STEP_TEST_VAR", "v");
        assert_eq!(expand_master_env("a:${ABO_STEP_TEST_VAR}:b"), "a:v:b");
        assert_eq!(expand_master_env("${NOPE_NOT_SET_X}"), "");
        assert_eq!(expand_master_env("x${open"), "x${open");
    }

    #[test]
    fn capture_is_bounded_on_a_char_boundary() {
        let mut buf = String::new();
        capture_into(&mut buf, &"é".repeat(CAPTURE_BYTES));
        assert!(buf.len() <= CAPTURE_BYTES && buf.len() >= CAPTURE_BYTES - 1);
    }
}
