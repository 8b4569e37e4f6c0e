//! [`WorkerInfo`] (the result of `get_worker_info`) and [`WorkerSettings`] (the args of
//! `set_worker_settings`).

use std::collections::BTreeMap;
use std::fmt;

use crate::error::DecodeError;
use crate::ids::SeqNumber;
use crate::value::{Int, Value, ValueKind};

/// What a worker reports about itself in answer to `get_worker_info`.
///
/// Every key is optional on decode: the master decides what it cannot do without (abo needs
/// `basedir` and `system` to build absolute paths). `Debug` does not print `environ`'s values:
/// the worker sends its whole process environment, which may hold secrets.
#[derive(Clone, PartialEq, Default)]
pub struct WorkerInfo {
    /// Files of `<basedir>/info/` (`admin`, `host`, `access_uri`, ...): name → text.
    pub info: BTreeMap<String, String>,
    /// `/etc/os-release` entries, sent as `os_<key>`; stored without the `os_` prefix
    /// (`id` → `"debian"`, `version_id` → `"12"`).
    pub os: BTreeMap<String, String>,
    /// `environ`: the worker process's entire environment. Sensitive.
    pub environ: BTreeMap<String, String>,
    /// `system`: Python's `os.name`, `"posix"` or `"nt"`; decides path syntax.
    pub system: Option<String>,
    /// `basedir`: the worker's base directory.
    pub basedir: Option<String>,
    /// `numcpus`
    pub numcpus: Option<u64>,
    /// `version`: the buildbot-worker version, e.g. `"4.3.0"`.
    pub version: Option<String>,
    /// `worker_commands`: command name → command version.
    pub worker_commands: BTreeMap<String, String>,
    /// `delete_leftover_dirs` (int 0/1 or bool on the wire).
    pub delete_leftover_dirs: Option<bool>,
    /// Entries of any other type under keys this crate does not know, in wire order.
    pub other: Vec<(String, Value)>,
}

impl fmt::Debug for WorkerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerInfo")
            .field("info", &self.info)
            .field("os", &self.os)
            .field(
                "environ",
                &format_args!("<{} variables>", self.environ.len()),
            )
            .field("system", &self.system)
            .field("basedir", &self.basedir)
            .field("numcpus", &self.numcpus)
            .field("version", &self.version)
            .field("worker_commands", &self.worker_commands)
            .field("delete_leftover_dirs", &self.delete_leftover_dirs)
            .field("other", &self.other)
            .finish()
    }
}

struct VCtx {
    seq: Option<SeqNumber>,
}

impl VCtx {
    fn wrong(&self, key: &str, expected: &'static str, found: ValueKind) -> DecodeError {
        DecodeError::WrongType {
            op: crate::message::OP_RESPONSE.to_owned(),
            seq: self.seq,
            key: key.to_owned(),
            expected,
            found,
        }
    }

    fn string(&self, key: &str, v: Value) -> Result<String, DecodeError> {
        match v {
            Value::Str(s) => Ok(s),
            other => Err(self.wrong(key, "str", other.kind())),
        }
    }

    fn string_map(&self, key: &str, v: Value) -> Result<BTreeMap<String, String>, DecodeError> {
        let Value::Map(entries) = v else {
            return Err(self.wrong(key, "map", v.kind()));
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let k = self.string(&format!("{key} (a key)"), k)?;
            let v = self.string(&format!("{key}.{k}"), v)?;
            out.insert(k, v);
        }
        Ok(out)
    }
}

impl WorkerInfo {
    /// Reads the `result` of a `get_worker_info` response.
    pub fn from_value(result: Value) -> Result<WorkerInfo, DecodeError> {
        WorkerInfo::from_result(None, result)
    }

    pub(crate) fn from_result(
        seq: Option<SeqNumber>,
        result: Value,
    ) -> Result<WorkerInfo, DecodeError> {
        let c = VCtx { seq };
        let Value::Map(entries) = result else {
            return Err(c.wrong("result", "map", result.kind()));
        };
        let mut wi = WorkerInfo::default();
        for (k, v) in entries {
            let k = c.string("result (a key)", k)?;
            let path = format!("result.{k}");
            match k.as_str() {
                "environ" => wi.environ = c.string_map(&path, v)?,
                "worker_commands" => wi.worker_commands = c.string_map(&path, v)?,
                "system" => wi.system = Some(c.string(&path, v)?),
                "basedir" => wi.basedir = Some(c.string(&path, v)?),
                "version" => wi.version = Some(c.string(&path, v)?),
                "numcpus" => match v {
                    Value::Int(n) => {
                        wi.numcpus = Some(n.as_u64().ok_or_else(|| DecodeError::InvalidValue {
                            op: crate::message::OP_RESPONSE.to_owned(),
                            seq,
                            key: path.clone(),
                            reason: format!("{n} is negative"),
                        })?)
                    }
                    other => return Err(c.wrong(&path, "int", other.kind())),
                },
                "delete_leftover_dirs" => match v {
                    Value::Bool(b) => wi.delete_leftover_dirs = Some(b),
                    Value::Int(n) => wi.delete_leftover_dirs = Some(n.get() != 0),
                    Value::Nil => wi.delete_leftover_dirs = None,
                    other => return Err(c.wrong(&path, "bool", other.kind())),
                },
                _ => match (k.strip_prefix("os_"), v) {
                    (Some(key), Value::Str(s)) => {
                        wi.os.insert(key.to_owned(), s);
                    }
                    (None, Value::Str(s)) => {
                        wi.info.insert(k, s);
                    }
                    (_, v) => wi.other.push((k, v)),
                },
            }
        }
        Ok(wi)
    }

    /// The `result` value a worker sends for this info (abo's own worker uses it).
    pub fn to_value(&self) -> Value {
        fn str_map(m: &BTreeMap<String, String>) -> Value {
            Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::str(k.clone()), Value::str(v.clone())))
                    .collect(),
            )
        }
        let mut out: Vec<(Value, Value)> = Vec::new();
        for (k, v) in &self.info {
            out.push((Value::str(k.clone()), Value::str(v.clone())));
        }
        for (k, v) in &self.os {
            out.push((Value::str(format!("os_{k}")), Value::str(v.clone())));
        }
        out.push((Value::str("environ"), str_map(&self.environ)));
        if let Some(s) = &self.system {
            out.push((Value::str("system"), Value::str(s.clone())));
        }
        if let Some(s) = &self.basedir {
            out.push((Value::str("basedir"), Value::str(s.clone())));
        }
        if let Some(n) = self.numcpus {
            out.push((Value::str("numcpus"), Value::Int(Int::from(n))));
        }
        if let Some(s) = &self.version {
            out.push((Value::str("version"), Value::str(s.clone())));
        }
        out.push((
            Value::str("worker_commands"),
            str_map(&self.worker_commands),
        ));
        if let Some(b) = self.delete_leftover_dirs {
            out.push((Value::str("delete_leftover_dirs"), Value::Bool(b)));
        }
        for (k, v) in &self.other {
            out.push((Value::str(k.clone()), v.clone()));
        }
        Value::Map(out)
    }

    /// Whether the worker runs on Windows (`system == "nt"`), so paths use `\`.
    pub fn is_windows(&self) -> bool {
        self.system.as_deref() == Some("nt")
    }
}

/// The args of `set_worker_settings`. The worker requires all four keys.
///
/// Settings apply to commands started afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// `buffer_size`: bytes of buffered output that trigger an `update`.
    pub buffer_size: u64,
    /// `buffer_timeout`: seconds after the first buffered item that trigger an `update`.
    pub buffer_timeout: crate::command::Seconds,
    /// `newline_re`: a *Python* regex whose matches become newlines.
    pub newline_re: String,
    /// `max_line_length`: longer lines are split (and 4.3.0 loses characters doing so).
    pub max_line_length: u64,
}

impl WorkerSettings {
    /// The worker's own `newline_re` default, which the stock master also sends.
    pub const DEFAULT_NEWLINE_RE: &'static str =
        r"(\r\n|\r(?=.)|\033\[u|\033\[[0-9]+;[0-9]+[Hf]|\033\[2J|\x08+)";
}

impl Default for WorkerSettings {
    /// What the stock master sends, identical to the worker's defaults.
    fn default() -> WorkerSettings {
        WorkerSettings {
            buffer_size: 65536,
            buffer_timeout: crate::command::Seconds(5.0),
            newline_re: WorkerSettings::DEFAULT_NEWLINE_RE.to_owned(),
            max_line_length: 4096,
        }
    }
}
