//! The entries of an `update`: command output and results, as `[key, value]` pairs.
//!
//! The worker buffers output and sends one `update` with several entries, in the order they
//! were produced; entries for the same stream are merged. `rc` is not necessarily the last
//! entry (a trailing partial line is flushed after it) and may be missing altogether (a Python
//! exception inside the command), so a command ends only with `complete`.

use crate::codec::Ctx;
use crate::command::write_strings;
use crate::error::DecodeError;
use crate::msgpack::{Node, Writer};
use crate::text::Text;
use crate::value::Value;

/// Lines of output as the worker sends them: `[text, newline_idx, line_times]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LineInfo {
    /// One or more complete lines, each ending in `\n`. Decoded by the master as a slice of
    /// the frame (see [`crate::decode_bytes`]); reads like a `&str`.
    pub text: Text,
    /// Index in `text` of each line's `\n`. Python counts *characters*, so for non-ASCII text
    /// these are not byte offsets: split `text` on `\n` rather than trusting them (the stock
    /// master uses `text` only).
    pub newline_idx: Vec<u64>,
    /// Unix time at which each line started.
    pub line_times: Vec<f64>,
}

/// Why the worker killed a shell command, from `failure_reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// `"timeout_without_output"`: `timeout` seconds without output.
    TimeoutWithoutOutput,
    /// `"timeout"`: `maxTime` exceeded.
    Timeout,
    /// `"max_lines_failure"`: `max_lines` exceeded.
    MaxLinesFailure,
    /// Any other word, kept verbatim (a later worker may add reasons).
    Other(String),
}

impl FailureReason {
    fn from_word(s: String) -> FailureReason {
        match s.as_str() {
            "timeout_without_output" => FailureReason::TimeoutWithoutOutput,
            "timeout" => FailureReason::Timeout,
            "max_lines_failure" => FailureReason::MaxLinesFailure,
            _ => FailureReason::Other(s),
        }
    }

    /// The word on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            FailureReason::TimeoutWithoutOutput => "timeout_without_output",
            FailureReason::Timeout => "timeout",
            FailureReason::MaxLinesFailure => "max_lines_failure",
            FailureReason::Other(s) => s,
        }
    }
}

/// The result of the `stat` command: Python's `tuple(os.stat(path))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatResult {
    /// `st_mode`
    pub mode: u64,
    /// `st_ino`
    pub ino: u64,
    /// `st_dev`
    pub dev: u64,
    /// `st_nlink`
    pub nlink: u64,
    /// `st_uid`
    pub uid: u64,
    /// `st_gid`
    pub gid: u64,
    /// `st_size`
    pub size: u64,
    /// `st_atime` (whole seconds)
    pub atime: i64,
    /// `st_mtime` (whole seconds)
    pub mtime: i64,
    /// `st_ctime` (whole seconds)
    pub ctime: i64,
}

/// One `[key, value]` entry of an `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateEntry {
    /// `header`: framework messages (command line, dir, env, elapsedTime, kill notices).
    Header(LineInfo),
    /// `stdout`
    Stdout(LineInfo),
    /// `stderr` (transfer commands put their error messages here too).
    Stderr(LineInfo),
    /// `log`: `[logname, LineInfo]` for a shell command's `logfiles`.
    Log {
        /// The logfile's name.
        name: String,
        /// Its new lines.
        lines: LineInfo,
    },
    /// `rc`: the exit code; -1 when killed by a signal, errno for fs commands, 1 for failed
    /// transfers.
    Rc(i64),
    /// `elapsed`: seconds the command ran; absent when it was interrupted.
    Elapsed(f64),
    /// `failure_reason`
    FailureReason(FailureReason),
    /// `files`: entry names (`listdir`) or matching paths (`glob`).
    Files(Vec<String>),
    /// `stat`
    Stat(StatResult),
    /// A key this crate does not know, kept with its value so that the connection can log it
    /// instead of losing the rest of the update.
    Other {
        /// The key.
        key: String,
        /// Its value.
        value: Value,
    },
}

impl UpdateEntry {
    /// The entry's key on the wire.
    pub fn key(&self) -> &str {
        match self {
            UpdateEntry::Header(_) => "header",
            UpdateEntry::Stdout(_) => "stdout",
            UpdateEntry::Stderr(_) => "stderr",
            UpdateEntry::Log { .. } => "log",
            UpdateEntry::Rc(_) => "rc",
            UpdateEntry::Elapsed(_) => "elapsed",
            UpdateEntry::FailureReason(_) => "failure_reason",
            UpdateEntry::Files(_) => "files",
            UpdateEntry::Stat(_) => "stat",
            UpdateEntry::Other { key, .. } => key,
        }
    }

    /// Bytes the encoded entry takes: exact bounds for output (text, and 9 bytes at most per
    /// index and per time), a guess for the small entries.
    pub(crate) fn size_hint(&self) -> usize {
        // `[key, value]` with the longest key (`failure_reason`).
        const PAIR: usize = 24;
        let lines =
            |l: &LineInfo| 16 + l.text.len() + 9 * (l.newline_idx.len() + l.line_times.len());
        PAIR + match self {
            UpdateEntry::Header(l) | UpdateEntry::Stdout(l) | UpdateEntry::Stderr(l) => lines(l),
            UpdateEntry::Log { name, lines: l } => 8 + name.len() + lines(l),
            UpdateEntry::Files(files) => files.iter().map(|f| f.len() + 5).sum::<usize>() + 5,
            UpdateEntry::Stat(_) => 100,
            UpdateEntry::Other { key, .. } => key.len() + 64,
            UpdateEntry::Rc(_) | UpdateEntry::Elapsed(_) | UpdateEntry::FailureReason(_) => 32,
        }
    }

    /// Reads `args`: an array of `[key, value]` pairs.
    pub(crate) fn decode_all(
        ctx: &Ctx<'_>,
        args: Node<'_>,
    ) -> Result<Vec<UpdateEntry>, DecodeError> {
        ctx.array("args", args)?
            .into_iter()
            .enumerate()
            .map(|(i, pair)| decode_entry(ctx, &format!("args[{i}]"), pair))
            .collect()
    }

    pub(crate) fn encode_all(entries: &[UpdateEntry], w: &mut Writer) {
        w.array(entries.len());
        for e in entries {
            w.array(2);
            w.str(e.key());
            match e {
                UpdateEntry::Header(l) | UpdateEntry::Stdout(l) | UpdateEntry::Stderr(l) => {
                    encode_lines(l, w)
                }
                UpdateEntry::Log { name, lines } => {
                    w.array(2);
                    w.str(name);
                    encode_lines(lines, w);
                }
                UpdateEntry::Rc(rc) => w.sint(*rc),
                UpdateEntry::Elapsed(x) => w.f64(*x),
                UpdateEntry::FailureReason(r) => w.str(r.as_str()),
                UpdateEntry::Files(files) => write_strings(w, files),
                UpdateEntry::Stat(s) => {
                    w.array(10);
                    for n in [s.mode, s.ino, s.dev, s.nlink, s.uid, s.gid, s.size] {
                        w.uint(n);
                    }
                    for t in [s.atime, s.mtime, s.ctime] {
                        w.sint(t);
                    }
                }
                UpdateEntry::Other { value, .. } => w.value(value),
            }
        }
    }
}

fn decode_entry(ctx: &Ctx<'_>, path: &str, pair: Node<'_>) -> Result<UpdateEntry, DecodeError> {
    let items = ctx.array(path, pair)?;
    let [key, value]: [Node<'_>; 2] = items.try_into().map_err(|v: Vec<Node<'_>>| {
        ctx.invalid(
            path,
            format!("{} elements, not a [key, value] pair", v.len()),
        )
    })?;
    let key = ctx.string(&format!("{path}[0]"), key)?;
    let vpath = format!("{path}.{key}");
    Ok(match key.as_str() {
        "header" => UpdateEntry::Header(decode_lines(ctx, &vpath, value)?),
        "stdout" => UpdateEntry::Stdout(decode_lines(ctx, &vpath, value)?),
        "stderr" => UpdateEntry::Stderr(decode_lines(ctx, &vpath, value)?),
        "log" => {
            let items = ctx.array(&vpath, value)?;
            let [name, lines]: [Node<'_>; 2] = items.try_into().map_err(|v: Vec<Node<'_>>| {
                ctx.invalid(
                    &vpath,
                    format!("{} elements, not [logname, lines]", v.len()),
                )
            })?;
            UpdateEntry::Log {
                name: ctx.string(&format!("{vpath}[0]"), name)?,
                lines: decode_lines(ctx, &format!("{vpath}[1]"), lines)?,
            }
        }
        "rc" => UpdateEntry::Rc(ctx.i64(&vpath, value)?),
        "elapsed" => UpdateEntry::Elapsed(ctx.f64(&vpath, value)?),
        "failure_reason" => {
            UpdateEntry::FailureReason(FailureReason::from_word(ctx.string(&vpath, value)?))
        }
        "files" => UpdateEntry::Files(ctx.strings(&vpath, value)?),
        "stat" => {
            let items = ctx.array(&vpath, value)?;
            let n = items.len();
            let [mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime]: [Node<'_>; 10] =
                items
                    .try_into()
                    .map_err(|_| ctx.invalid(&vpath, format!("{n} elements, not 10")))?;
            let u = |i: usize, node: Node<'_>| ctx.u64(&format!("{vpath}[{i}]"), node);
            let t = |i: usize, node: Node<'_>| ctx.i64(&format!("{vpath}[{i}]"), node);
            UpdateEntry::Stat(StatResult {
                mode: u(0, mode)?,
                ino: u(1, ino)?,
                dev: u(2, dev)?,
                nlink: u(3, nlink)?,
                uid: u(4, uid)?,
                gid: u(5, gid)?,
                size: u(6, size)?,
                atime: t(7, atime)?,
                mtime: t(8, mtime)?,
                ctime: t(9, ctime)?,
            })
        }
        _ => {
            let value = ctx.value(&vpath, value)?;
            UpdateEntry::Other { key, value }
        }
    })
}

fn decode_lines(ctx: &Ctx<'_>, path: &str, node: Node<'_>) -> Result<LineInfo, DecodeError> {
    let items = ctx.array(path, node)?;
    let [text, idx, times]: [Node<'_>; 3] = items.try_into().map_err(|v: Vec<Node<'_>>| {
        ctx.invalid(
            path,
            format!("{} elements, not [text, newline_idx, line_times]", v.len()),
        )
    })?;
    let text = ctx.text(&format!("{path}[0]"), text)?;
    // One index and one time per line: the parser reads them as packed vectors, taken here
    // as they are. Other forms (a float64 index, a float32 time) go element by element; the
    // element's path is only built for an error, as formatting it for every line costs more
    // than the rest of the decoding.
    let idx_path = format!("{path}[1]");
    let newline_idx = match idx {
        Node::UInts(v) => v,
        idx => {
            let items = ctx.array(&idx_path, idx)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, n) in items.into_iter().enumerate() {
                out.push(match n {
                    Node::Int(v) if v.as_u64().is_some() => v.as_u64().unwrap_or_default(),
                    n => ctx.u64(&format!("{idx_path}[{i}]"), n)?,
                });
            }
            out
        }
    };
    let line_times = match times {
        Node::Floats(v) => v,
        times => {
            let times_path = format!("{path}[2]");
            let items = ctx.array(&times_path, times)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, n) in items.into_iter().enumerate() {
                out.push(match n {
                    Node::Float(x) => x,
                    n => ctx.f64(&format!("{times_path}[{i}]"), n)?,
                });
            }
            out
        }
    };
    Ok(LineInfo {
        text,
        newline_idx,
        line_times,
    })
}

fn encode_lines(l: &LineInfo, w: &mut Writer) {
    w.array(3);
    w.str(&l.text);
    w.array(l.newline_idx.len());
    for &i in &l.newline_idx {
        w.uint(i);
    }
    w.array(l.line_times.len());
    for &t in &l.line_times {
        w.f64(t);
    }
}
