//! Remote commands: the `command_name` and `args` of `start_command`, one typed struct each.
//!
//! Conventions, which follow what buildbot-worker 4.3.0 does with each key:
//! - A key the worker validates as required, or reads unconditionally, is a plain field.
//! - A key the worker reads with a default is an `Option` (or an empty collection): `None`
//!   is *not written*, so the worker's default applies. On decode, absent and nil are both
//!   `None`, as they are for the worker's `args.get(key)`.
//! - Keys that the worker reads unconditionally although they may be nil (`maxsize`, `mode`,
//!   `compress`) are `Option`s that are always written, nil for `None`: omitting them makes the
//!   stock worker fail with a `KeyError`.
//! - Paths are absolute on the worker: in msgpack mode it does no path joining.
//! - Keys the worker ignores (the stock master's `workdir`, `workersrc`, `workerdest` in
//!   transfer args) are dropped on decode.

use std::collections::BTreeMap;
use std::fmt;

use crate::codec::{write_seconds, Ctx, Fields, MapWriter};
use crate::error::DecodeError;
use crate::ids::{CommandId, SeqNumber};
use crate::msgpack::{Node, Writer};

/// A number of seconds (timeouts, intervals).
///
/// Written as an int when integral, as the stock master does (`timeout: 1200`), else as a
/// float; either is accepted on decode.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Seconds(pub f64);

/// The closed set of command names this crate models (snake_case names as used in msgpack
/// mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandKind {
    /// `shell`
    Shell,
    /// `upload_file`: a file from the worker to the master.
    UploadFile,
    /// `upload_directory`: a directory (tar stream) from the worker to the master.
    UploadDirectory,
    /// `download_file`: a file from the master to the worker.
    DownloadFile,
    /// `mkdir`
    Mkdir,
    /// `rmdir`
    Rmdir,
    /// `cpdir`
    Cpdir,
    /// `stat`
    Stat,
    /// `glob`
    Glob,
    /// `listdir`
    Listdir,
    /// `rmfile`
    Rmfile,
}

impl CommandKind {
    /// Every kind, in a fixed order.
    pub const ALL: [CommandKind; 11] = [
        CommandKind::Shell,
        CommandKind::UploadFile,
        CommandKind::UploadDirectory,
        CommandKind::DownloadFile,
        CommandKind::Mkdir,
        CommandKind::Rmdir,
        CommandKind::Cpdir,
        CommandKind::Stat,
        CommandKind::Glob,
        CommandKind::Listdir,
        CommandKind::Rmfile,
    ];

    /// The `command_name` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Shell => "shell",
            CommandKind::UploadFile => "upload_file",
            CommandKind::UploadDirectory => "upload_directory",
            CommandKind::DownloadFile => "download_file",
            CommandKind::Mkdir => "mkdir",
            CommandKind::Rmdir => "rmdir",
            CommandKind::Cpdir => "cpdir",
            CommandKind::Stat => "stat",
            CommandKind::Glob => "glob",
            CommandKind::Listdir => "listdir",
            CommandKind::Rmfile => "rmfile",
        }
    }

    /// The kind named `name`, if it is one of the snake_case names.
    pub fn from_name(name: &str) -> Option<CommandKind> {
        CommandKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A remote command with its arguments: what `start_command` asks the worker to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run a process (boxed: the shell args are by far the largest).
    Shell(Box<ShellArgs>),
    /// Send a worker file to the master (`update_upload_file_*` ops follow).
    UploadFile(UploadFileArgs),
    /// Send a worker directory to the master as a tar stream (`update_upload_directory_*`).
    UploadDirectory(UploadDirectoryArgs),
    /// Write a master file on the worker (`update_read_file*` ops follow).
    DownloadFile(DownloadFileArgs),
    /// `makedirs` each path; an existing directory is fine.
    Mkdir {
        /// Absolute paths on the worker.
        paths: Vec<String>,
    },
    /// Remove directory trees.
    Rmdir(RmdirArgs),
    /// Copy a directory tree.
    Cpdir(CpdirArgs),
    /// `os.stat` a path; the result comes as a `stat` update.
    Stat {
        /// Absolute path on the worker.
        path: String,
    },
    /// Expand a glob pattern (`**` recursive); the result comes as a `files` update.
    Glob {
        /// Absolute pattern on the worker.
        path: String,
    },
    /// List a directory; the entry names come as a `files` update.
    Listdir {
        /// Absolute path on the worker.
        path: String,
    },
    /// Remove one file.
    Rmfile {
        /// Absolute path on the worker.
        path: String,
    },
}

/// The `command` of a shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// A string, run with `/bin/sh -c` (`%COMSPEC% /c` on Windows).
    Shell(String),
    /// An argv, executed directly with a PATH lookup. Every element must be a string: the
    /// PB-style `["obfuscated", real, fake]` triples are not understood in msgpack mode, so
    /// abo masks secrets on the master side instead.
    Argv(Vec<String>),
}

/// One value of a shell command's `env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Set the variable; `${VAR}` is substituted from the worker's own environment.
    Set(String),
    /// Set the variable to the elements joined with `os.pathsep`.
    PathList(Vec<String>),
    /// Remove the variable (nil on the wire).
    Unset,
}

/// One entry of a shell command's `logfiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    /// A path relative to workdir, polled every 2 s.
    Path(String),
    /// The map form.
    Watch {
        /// Path relative to workdir.
        filename: String,
        /// Start from the end of the existing file.
        follow: bool,
    },
}

/// Arguments of `shell`. Field docs give the wire key and the worker's default.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellArgs {
    /// `workdir`: absolute; created if missing.
    pub workdir: String,
    /// `command`.
    pub command: CommandLine,
    /// `env` (omitted when empty).
    pub env: BTreeMap<String, EnvValue>,
    /// `want_stdout` (default true).
    pub want_stdout: Option<bool>,
    /// `want_stderr` (default true).
    pub want_stderr: Option<bool>,
    /// `logEnviron` (default true: the header lists the whole environment).
    pub log_environ: Option<bool>,
    /// `timeout`: seconds without output before the process is killed.
    pub timeout: Option<Seconds>,
    /// `maxTime`: total seconds before the process is killed.
    pub max_time: Option<Seconds>,
    /// `max_lines`: output lines before the process is killed.
    pub max_lines: Option<u64>,
    /// `sigtermTime`: send TERM first and `interruptSignal` this many seconds later.
    pub sigterm_time: Option<Seconds>,
    /// `usePTY` (default false; forced false with stdin).
    pub use_pty: Option<bool>,
    /// `logfiles` (omitted when empty).
    pub logfiles: BTreeMap<String, LogFile>,
    /// `initial_stdin`: written to stdin, which is then closed.
    pub initial_stdin: Option<String>,
    /// `interruptSignal`: a signal name without `SIG` (default `"KILL"`).
    pub interrupt_signal: Option<String>,
}

impl ShellArgs {
    /// A shell command with every optional key left to the worker's default.
    pub fn new(workdir: impl Into<String>, command: CommandLine) -> ShellArgs {
        ShellArgs {
            workdir: workdir.into(),
            command,
            env: BTreeMap::new(),
            want_stdout: None,
            want_stderr: None,
            log_environ: None,
            timeout: None,
            max_time: None,
            max_lines: None,
            sigterm_time: None,
            use_pty: None,
            logfiles: BTreeMap::new(),
            initial_stdin: None,
            interrupt_signal: None,
        }
    }
}

/// Arguments of `upload_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFileArgs {
    /// `path`: the worker file to send.
    pub path: String,
    /// `blocksize`: the largest chunk per `update_upload_file_write`.
    pub blocksize: u64,
    /// `maxsize`: truncate (and fail) beyond this many bytes; always written.
    pub maxsize: Option<u64>,
    /// `keepstamp`: send `update_upload_file_utime` after close (default false).
    pub keepstamp: Option<bool>,
}

/// Compression of an `upload_directory` tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `"gz"`
    Gz,
    /// `"bz2"`
    Bz2,
}

impl Compression {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gz => "gz",
            Compression::Bz2 => "bz2",
        }
    }
}

/// Arguments of `upload_directory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadDirectoryArgs {
    /// `path`: the worker directory to send.
    pub path: String,
    /// `blocksize`: the largest chunk per `update_upload_directory_write`.
    pub blocksize: u64,
    /// `maxsize`; always written.
    pub maxsize: Option<u64>,
    /// `compress`: `None` for a plain tar; always written.
    pub compress: Option<Compression>,
}

/// Arguments of `download_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadFileArgs {
    /// `path`: the worker file to write (parents are created).
    pub path: String,
    /// `blocksize`: the largest `length` per `update_read_file`.
    pub blocksize: u64,
    /// `maxsize`: stop (and fail) after this many bytes; always written.
    pub maxsize: Option<u64>,
    /// `mode`: permission bits to chmod the file to; always written.
    pub mode: Option<u32>,
}

/// Arguments of `rmdir`.
#[derive(Debug, Clone, PartialEq)]
pub struct RmdirArgs {
    /// `paths`: absolute paths on the worker.
    pub paths: Vec<String>,
    /// `logEnviron` (default true).
    pub log_environ: Option<bool>,
    /// `timeout` (default 120 s).
    pub timeout: Option<Seconds>,
    /// `maxTime`.
    pub max_time: Option<Seconds>,
}

/// Arguments of `cpdir`.
#[derive(Debug, Clone, PartialEq)]
pub struct CpdirArgs {
    /// `from_path`: absolute source directory.
    pub from_path: String,
    /// `to_path`: absolute destination (its parent is created).
    pub to_path: String,
    /// `logEnviron` (default true).
    pub log_environ: Option<bool>,
    /// `timeout` (default 120 s).
    pub timeout: Option<Seconds>,
    /// `maxTime`.
    pub max_time: Option<Seconds>,
}

impl Command {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Shell(_) => CommandKind::Shell,
            Command::UploadFile(_) => CommandKind::UploadFile,
            Command::UploadDirectory(_) => CommandKind::UploadDirectory,
            Command::DownloadFile(_) => CommandKind::DownloadFile,
            Command::Mkdir { .. } => CommandKind::Mkdir,
            Command::Rmdir(_) => CommandKind::Rmdir,
            Command::Cpdir(_) => CommandKind::Cpdir,
            Command::Stat { .. } => CommandKind::Stat,
            Command::Glob { .. } => CommandKind::Glob,
            Command::Listdir { .. } => CommandKind::Listdir,
            Command::Rmfile { .. } => CommandKind::Rmfile,
        }
    }

    /// Reads `args` for the command `name`.
    pub(crate) fn decode(
        ctx: &Ctx<'_>,
        seq: SeqNumber,
        command_id: &CommandId,
        name: String,
        args: Node,
    ) -> Result<Command, DecodeError> {
        let Some(kind) = CommandKind::from_name(&name) else {
            return Err(DecodeError::UnknownCommand {
                seq,
                command_id: command_id.clone(),
                name,
            });
        };
        let mut f = ctx.fields("args", args)?;
        let path = |f: &mut Fields| -> Result<String, DecodeError> {
            let node = f.need(ctx, "path", "args.path")?;
            ctx.string("args.path", node)
        };
        let paths = |f: &mut Fields| -> Result<Vec<String>, DecodeError> {
            let node = f.need(ctx, "paths", "args.paths")?;
            ctx.strings("args.paths", node)
        };
        Ok(match kind {
            CommandKind::Shell => Command::Shell(Box::new(decode_shell(ctx, &mut f)?)),
            CommandKind::UploadFile => Command::UploadFile(UploadFileArgs {
                path: path(&mut f)?,
                blocksize: blocksize(ctx, &mut f)?,
                maxsize: opt_u64(ctx, &mut f, "maxsize")?,
                keepstamp: opt_bool(ctx, &mut f, "keepstamp")?,
            }),
            CommandKind::UploadDirectory => Command::UploadDirectory(UploadDirectoryArgs {
                path: path(&mut f)?,
                blocksize: blocksize(ctx, &mut f)?,
                maxsize: opt_u64(ctx, &mut f, "maxsize")?,
                compress: match f.take_opt("compress") {
                    None => None,
                    Some(node) => Some(match ctx.string("args.compress", node)?.as_str() {
                        "gz" => Compression::Gz,
                        "bz2" => Compression::Bz2,
                        other => {
                            return Err(ctx.invalid(
                                "args.compress",
                                format!("{other:?} is not nil, \"gz\" or \"bz2\""),
                            ))
                        }
                    }),
                },
            }),
            CommandKind::DownloadFile => Command::DownloadFile(DownloadFileArgs {
                path: path(&mut f)?,
                blocksize: blocksize(ctx, &mut f)?,
                maxsize: opt_u64(ctx, &mut f, "maxsize")?,
                mode: f
                    .take_opt("mode")
                    .map(|n| ctx.u32("args.mode", n))
                    .transpose()?,
            }),
            CommandKind::Mkdir => Command::Mkdir {
                paths: paths(&mut f)?,
            },
            CommandKind::Rmdir => Command::Rmdir(RmdirArgs {
                paths: paths(&mut f)?,
                log_environ: opt_bool(ctx, &mut f, "logEnviron")?,
                timeout: opt_seconds(ctx, &mut f, "timeout")?,
                max_time: opt_seconds(ctx, &mut f, "maxTime")?,
            }),
            CommandKind::Cpdir => Command::Cpdir(CpdirArgs {
                from_path: {
                    let node = f.need(ctx, "from_path", "args.from_path")?;
                    ctx.string("args.from_path", node)?
                },
                to_path: {
                    let node = f.need(ctx, "to_path", "args.to_path")?;
                    ctx.string("args.to_path", node)?
                },
                log_environ: opt_bool(ctx, &mut f, "logEnviron")?,
                timeout: opt_seconds(ctx, &mut f, "timeout")?,
                max_time: opt_seconds(ctx, &mut f, "maxTime")?,
            }),
            CommandKind::Stat => Command::Stat {
                path: path(&mut f)?,
            },
            CommandKind::Glob => Command::Glob {
                path: path(&mut f)?,
            },
            CommandKind::Listdir => Command::Listdir {
                path: path(&mut f)?,
            },
            CommandKind::Rmfile => Command::Rmfile {
                path: path(&mut f)?,
            },
        })
    }

    /// Writes `args` (the map only; `command_name` comes from [`Command::kind`]).
    pub(crate) fn encode_args(&self, w: &mut Writer) {
        let mut m = MapWriter::new(w);
        match self {
            Command::Shell(a) => encode_shell(a, &mut m),
            Command::UploadFile(a) => {
                m.key("path").str(&a.path);
                opt_u64_always(&mut m, "maxsize", a.maxsize);
                m.key("blocksize").uint(a.blocksize);
                if let Some(b) = a.keepstamp {
                    m.key("keepstamp").bool(b);
                }
            }
            Command::UploadDirectory(a) => {
                m.key("path").str(&a.path);
                opt_u64_always(&mut m, "maxsize", a.maxsize);
                m.key("blocksize").uint(a.blocksize);
                match a.compress {
                    Some(c) => m.key("compress").str(c.as_str()),
                    None => m.key("compress").nil(),
                }
            }
            Command::DownloadFile(a) => {
                m.key("path").str(&a.path);
                opt_u64_always(&mut m, "maxsize", a.maxsize);
                m.key("blocksize").uint(a.blocksize);
                match a.mode {
                    Some(mode) => m.key("mode").uint(u64::from(mode)),
                    None => m.key("mode").nil(),
                }
            }
            Command::Mkdir { paths } => write_strings(m.key("paths"), paths),
            Command::Rmdir(a) => {
                write_strings(m.key("paths"), &a.paths);
                fs_options(&mut m, a.log_environ, a.timeout, a.max_time);
            }
            Command::Cpdir(a) => {
                m.key("from_path").str(&a.from_path);
                m.key("to_path").str(&a.to_path);
                fs_options(&mut m, a.log_environ, a.timeout, a.max_time);
            }
            Command::Stat { path }
            | Command::Glob { path }
            | Command::Listdir { path }
            | Command::Rmfile { path } => m.key("path").str(path),
        }
        m.finish();
    }
}

fn blocksize(ctx: &Ctx<'_>, f: &mut Fields) -> Result<u64, DecodeError> {
    let node = f.need(ctx, "blocksize", "args.blocksize")?;
    ctx.u64("args.blocksize", node)
}

fn opt_u64(ctx: &Ctx<'_>, f: &mut Fields, key: &str) -> Result<Option<u64>, DecodeError> {
    f.take_opt(key)
        .map(|n| ctx.u64(&format!("args.{key}"), n))
        .transpose()
}

fn opt_bool(ctx: &Ctx<'_>, f: &mut Fields, key: &str) -> Result<Option<bool>, DecodeError> {
    f.take_opt(key)
        .map(|n| ctx.bool(&format!("args.{key}"), n))
        .transpose()
}

fn opt_seconds(ctx: &Ctx<'_>, f: &mut Fields, key: &str) -> Result<Option<Seconds>, DecodeError> {
    f.take_opt(key)
        .map(|n| ctx.f64(&format!("args.{key}"), n).map(Seconds))
        .transpose()
}

fn opt_string(ctx: &Ctx<'_>, f: &mut Fields, key: &str) -> Result<Option<String>, DecodeError> {
    f.take_opt(key)
        .map(|n| ctx.string(&format!("args.{key}"), n))
        .transpose()
}

fn decode_shell(ctx: &Ctx<'_>, f: &mut Fields) -> Result<ShellArgs, DecodeError> {
    let workdir = {
        let node = f.need(ctx, "workdir", "args.workdir")?;
        ctx.string("args.workdir", node)?
    };
    let command = match f.need(ctx, "command", "args.command")? {
        Node::Str(b) => CommandLine::Shell(ctx.utf8("args.command", b)?),
        node @ (Node::Array(_) | Node::UInts(_) | Node::Floats(_)) => {
            CommandLine::Argv(ctx.strings("args.command", node)?)
        }
        other => return Err(ctx.wrong("args.command", "str or array of str", &other)),
    };
    let mut env = BTreeMap::new();
    if let Some(node) = f.take_opt("env") {
        for (name, v) in ctx.fields("args.env", node)?.into_rest() {
            let path = format!("args.env.{name}");
            let value = match v {
                Node::Nil => EnvValue::Unset,
                Node::Str(b) => EnvValue::Set(ctx.utf8(&path, b)?),
                node @ (Node::Array(_) | Node::UInts(_) | Node::Floats(_)) => {
                    EnvValue::PathList(ctx.strings(&path, node)?)
                }
                other => return Err(ctx.wrong(&path, "str, array of str or nil", &other)),
            };
            env.insert(name, value);
        }
    }
    let mut logfiles = BTreeMap::new();
    if let Some(node) = f.take_opt("logfiles") {
        for (name, v) in ctx.fields("args.logfiles", node)?.into_rest() {
            let path = format!("args.logfiles.{name}");
            let value = match v {
                Node::Str(b) => LogFile::Path(ctx.utf8(&path, b)?),
                node @ Node::Map(_) => {
                    let mut lf = ctx.fields(&path, node)?;
                    let filename_path = format!("{path}.filename");
                    let filename = lf.need(ctx, "filename", &filename_path)?;
                    LogFile::Watch {
                        filename: ctx.string(&filename_path, filename)?,
                        follow: lf
                            .take_opt("follow")
                            .map(|n| ctx.bool(&format!("{path}.follow"), n))
                            .transpose()?
                            .unwrap_or(false),
                    }
                }
                other => return Err(ctx.wrong(&path, "str or map", &other)),
            };
            logfiles.insert(name, value);
        }
    }
    Ok(ShellArgs {
        workdir,
        command,
        env,
        want_stdout: opt_bool(ctx, f, "want_stdout")?,
        want_stderr: opt_bool(ctx, f, "want_stderr")?,
        log_environ: opt_bool(ctx, f, "logEnviron")?,
        timeout: opt_seconds(ctx, f, "timeout")?,
        max_time: opt_seconds(ctx, f, "maxTime")?,
        max_lines: opt_u64(ctx, f, "max_lines")?,
        sigterm_time: opt_seconds(ctx, f, "sigtermTime")?,
        use_pty: opt_bool(ctx, f, "usePTY")?,
        logfiles,
        initial_stdin: opt_string(ctx, f, "initial_stdin")?,
        interrupt_signal: opt_string(ctx, f, "interruptSignal")?,
    })
}

fn encode_shell(a: &ShellArgs, m: &mut MapWriter<'_>) {
    m.key("workdir").str(&a.workdir);
    match &a.command {
        CommandLine::Shell(s) => m.key("command").str(s),
        CommandLine::Argv(argv) => write_strings(m.key("command"), argv),
    }
    if !a.env.is_empty() {
        let mut env = MapWriter::new(m.key("env"));
        for (name, value) in &a.env {
            let w = env.key(name);
            match value {
                EnvValue::Set(s) => w.str(s),
                EnvValue::PathList(items) => write_strings(w, items),
                EnvValue::Unset => w.nil(),
            }
        }
        env.finish();
    }
    if let Some(b) = a.want_stdout {
        m.key("want_stdout").bool(b);
    }
    if let Some(b) = a.want_stderr {
        m.key("want_stderr").bool(b);
    }
    if let Some(b) = a.log_environ {
        m.key("logEnviron").bool(b);
    }
    if let Some(Seconds(s)) = a.timeout {
        write_seconds(m.key("timeout"), s);
    }
    if let Some(Seconds(s)) = a.max_time {
        write_seconds(m.key("maxTime"), s);
    }
    if let Some(n) = a.max_lines {
        m.key("max_lines").uint(n);
    }
    if let Some(Seconds(s)) = a.sigterm_time {
        write_seconds(m.key("sigtermTime"), s);
    }
    if let Some(b) = a.use_pty {
        m.key("usePTY").bool(b);
    }
    if !a.logfiles.is_empty() {
        let mut lfs = MapWriter::new(m.key("logfiles"));
        for (name, lf) in &a.logfiles {
            let w = lfs.key(name);
            match lf {
                LogFile::Path(p) => w.str(p),
                LogFile::Watch { filename, follow } => {
                    let mut spec = MapWriter::new(w);
                    spec.key("filename").str(filename);
                    spec.key("follow").bool(*follow);
                    spec.finish();
                }
            }
        }
        lfs.finish();
    }
    if let Some(s) = &a.initial_stdin {
        m.key("initial_stdin").str(s);
    }
    if let Some(s) = &a.interrupt_signal {
        m.key("interruptSignal").str(s);
    }
}

fn fs_options(
    m: &mut MapWriter<'_>,
    log_environ: Option<bool>,
    timeout: Option<Seconds>,
    max_time: Option<Seconds>,
) {
    if let Some(b) = log_environ {
        m.key("logEnviron").bool(b);
    }
    if let Some(Seconds(s)) = timeout {
        write_seconds(m.key("timeout"), s);
    }
    if let Some(Seconds(s)) = max_time {
        write_seconds(m.key("maxTime"), s);
    }
}

fn opt_u64_always(m: &mut MapWriter<'_>, key: &str, v: Option<u64>) {
    match v {
        Some(n) => m.key(key).uint(n),
        None => m.key(key).nil(),
    }
}

pub(crate) fn write_strings(w: &mut Writer, items: &[String]) {
    w.array(items.len());
    for s in items {
        w.str(s);
    }
}
