//! Helpers shared by the typed layer: reading [`Node`]s with error context, writing maps.
//!
//! Every typed reader goes through [`Ctx`], so every error names the op, the seq_number (when
//! it was read) and the path of the offending key, and no reader can forget one of them.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::ids::SeqNumber;
use crate::msgpack::{Node, Writer};
use crate::text::Text;
use crate::value::{Int, Value};

/// Where in which message a value is being read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) op: &'a str,
    pub(crate) seq: Option<SeqNumber>,
    /// The frame being decoded, when the caller shares it ([`crate::decode_bytes`]): output
    /// text is then a slice of it instead of a copy.
    pub(crate) frame: Option<&'a Bytes>,
}

impl Ctx<'_> {
    pub(crate) fn missing(&self, key: &str) -> DecodeError {
        DecodeError::MissingKey {
            op: self.op.to_owned(),
            seq: self.seq,
            key: key.to_owned(),
        }
    }

    pub(crate) fn wrong(&self, key: &str, expected: &'static str, node: &Node) -> DecodeError {
        DecodeError::WrongType {
            op: self.op.to_owned(),
            seq: self.seq,
            key: key.to_owned(),
            expected,
            found: node.kind(),
        }
    }

    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> DecodeError {
        DecodeError::InvalidValue {
            op: self.op.to_owned(),
            seq: self.seq,
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// Checks a str for UTF-8 (the Python peer unpacks with `raw=False`).
    pub(crate) fn str<'b>(&self, key: &str, bytes: &'b [u8]) -> Result<&'b str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|e| {
            self.invalid(
                key,
                format!("str is not UTF-8 (bad byte at {})", e.valid_up_to()),
            )
        })
    }

    pub(crate) fn utf8(&self, key: &str, bytes: &[u8]) -> Result<String, DecodeError> {
        self.str(key, bytes).map(str::to_owned)
    }

    pub(crate) fn string(&self, key: &str, node: Node<'_>) -> Result<String, DecodeError> {
        match node {
            Node::Str(b) => self.utf8(key, b),
            other => Err(self.wrong(key, "str", &other)),
        }
    }

    /// Output text: a str, shared with the frame when the caller gave it, else copied.
    pub(crate) fn text(&self, key: &str, node: Node<'_>) -> Result<Text, DecodeError> {
        match node {
            Node::Str(b) => {
                let s = self.str(key, b)?;
                Ok(match self.frame {
                    Some(frame) => Text::slice_of(frame, s),
                    None => Text::from(s),
                })
            }
            other => Err(self.wrong(key, "str", &other)),
        }
    }

    /// File data: bin, or str from a msgpack-python < 1.0 peer, taken as raw bytes without
    /// UTF-8 validation.
    pub(crate) fn bytes(&self, key: &str, node: Node<'_>) -> Result<Vec<u8>, DecodeError> {
        match node {
            Node::Bin(b) | Node::Str(b) => Ok(b.to_vec()),
            other => Err(self.wrong(key, "bin", &other)),
        }
    }

    pub(crate) fn int(&self, key: &str, node: Node<'_>) -> Result<Int, DecodeError> {
        match node {
            Node::Int(n) => Ok(n),
            other => Err(self.wrong(key, "int", &other)),
        }
    }

    pub(crate) fn u64(&self, key: &str, node: Node<'_>) -> Result<u64, DecodeError> {
        let n = self.int(key, node)?;
        n.as_u64()
            .ok_or_else(|| self.invalid(key, format!("{n} is negative")))
    }

    pub(crate) fn u32(&self, key: &str, node: Node<'_>) -> Result<u32, DecodeError> {
        let n = self.int(key, node)?;
        n.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.invalid(key, format!("{n} is out of range")))
    }

    pub(crate) fn i64(&self, key: &str, node: Node<'_>) -> Result<i64, DecodeError> {
        let n = self.int(key, node)?;
        n.as_i64()
            .ok_or_else(|| self.invalid(key, format!("{n} is out of range")))
    }

    /// A number where Python may send either an int or a float.
    pub(crate) fn f64(&self, key: &str, node: Node<'_>) -> Result<f64, DecodeError> {
        match node {
            Node::Float(x) => Ok(x),
            // Exact up to 2^53, which covers every timestamp and duration the protocol carries.
            Node::Int(n) => Ok(n.get() as f64),
            other => Err(self.wrong(key, "number", &other)),
        }
    }

    /// A boolean; ints are accepted as Python truth values because some tac files write
    /// `0`/`1` where a bool is meant (e.g. `delete_leftover_dirs`).
    pub(crate) fn bool(&self, key: &str, node: Node<'_>) -> Result<bool, DecodeError> {
        match node {
            Node::Bool(b) => Ok(b),
            Node::Int(n) => Ok(n.get() != 0),
            other => Err(self.wrong(key, "bool", &other)),
        }
    }

    pub(crate) fn array<'n>(
        &self,
        key: &str,
        node: Node<'n>,
    ) -> Result<Vec<Node<'n>>, DecodeError> {
        match node {
            Node::Array(items) => Ok(items),
            Node::UInts(v) => Ok(v.into_iter().map(|n| Node::Int(Int::from(n))).collect()),
            Node::Floats(v) => Ok(v.into_iter().map(Node::Float).collect()),
            other => Err(self.wrong(key, "array", &other)),
        }
    }

    pub(crate) fn strings(&self, key: &str, node: Node<'_>) -> Result<Vec<String>, DecodeError> {
        self.array(key, node)?
            .into_iter()
            .enumerate()
            .map(|(i, n)| self.string(&format!("{key}[{i}]"), n))
            .collect()
    }

    pub(crate) fn fields<'n>(&self, key: &str, node: Node<'n>) -> Result<Fields<'n>, DecodeError> {
        match node {
            Node::Map(entries) => {
                let mut out: Vec<(String, Node<'n>)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let k = match k {
                        Node::Str(b) => self.utf8(&format!("{key} (a key)"), b)?,
                        other => return Err(self.wrong(&format!("{key} (a key)"), "str", &other)),
                    };
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(self.invalid(&format!("{key}.{k}"), "duplicate key"));
                    }
                    out.push((k, v));
                }
                Ok(Fields { entries: out })
            }
            other => Err(self.wrong(key, "map", &other)),
        }
    }

    /// Any value, with every str checked for UTF-8.
    pub(crate) fn value(&self, key: &str, node: Node<'_>) -> Result<Value, DecodeError> {
        Ok(match node {
            Node::Nil => Value::Nil,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) => Value::Int(n),
            Node::Float(x) => Value::Float(x),
            Node::Str(b) => Value::Str(self.utf8(key, b)?),
            Node::Bin(b) => Value::Bin(b.to_vec()),
            Node::UInts(v) => {
                Value::Array(v.into_iter().map(|n| Value::Int(Int::from(n))).collect())
            }
            Node::Floats(v) => Value::Array(v.into_iter().map(Value::Float).collect()),
            Node::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| self.value(&format!("{key}[{i}]"), n))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let k = self.value(&format!("{key} (a key)"), k)?;
                        let path = match &k {
                            Value::Str(s) => format!("{key}.{s}"),
                            _ => format!("{key}.?"),
                        };
                        Ok((k, self.value(&path, v)?))
                    })
                    .collect::<Result<_, DecodeError>>()?,
            ),
        })
    }
}

/// The entries of a string-keyed map, taken out one by one by the typed readers.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    entries: Vec<(String, Node<'n>)>,
}

impl<'n> Fields<'n> {
    /// Wraps entries whose keys are already checked to be distinct strings.
    pub(crate) fn new(entries: Vec<(String, Node<'n>)>) -> Fields<'n> {
        Fields { entries }
    }

    /// Removes and returns the value under `key`.
    pub(crate) fn take(&mut self, key: &str) -> Option<Node<'n>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// Like [`Fields::take`], with nil read as absent: Python code reads these keys with
    /// `args.get(key)`, for which the two are the same.
    pub(crate) fn take_opt(&mut self, key: &str) -> Option<Node<'n>> {
        match self.take(key) {
            None | Some(Node::Nil) => None,
            Some(node) => Some(node),
        }
    }

    /// Removes the value under `key`, or fails with [`DecodeError::MissingKey`].
    pub(crate) fn need(
        &mut self,
        ctx: &Ctx<'_>,
        key: &str,
        path: &str,
    ) -> Result<Node<'n>, DecodeError> {
        self.take(key).ok_or_else(|| ctx.missing(path))
    }

    /// What is left, in wire order.
    pub(crate) fn into_rest(self) -> Vec<(String, Node<'n>)> {
        self.entries
    }
}

/// Writes a map whose length is only known once all optional keys have been written,
/// straight into the message's buffer: a one-byte fixmap header is reserved and patched at
/// [`MapWriter::finish`] (a map of more than 15 keys, rare, moves its body up by the two bytes
/// a map16 header needs). Building the body apart and copying it in would copy every
/// `update`'s output once more.
#[derive(Debug)]
pub(crate) struct MapWriter<'w> {
    w: &'w mut Writer,
    start: usize,
    n: usize,
}

impl<'w> MapWriter<'w> {
    /// Starts a map at the end of `w`.
    pub(crate) fn new(w: &'w mut Writer) -> MapWriter<'w> {
        let start = w.buf.len();
        w.buf.push(0x80);
        MapWriter { w, start, n: 0 }
    }

    /// Writes `key` and returns the writer for its value.
    pub(crate) fn key(&mut self, key: &str) -> &mut Writer {
        self.n += 1;
        self.w.str(key);
        self.w
    }

    /// Writes the map's real header.
    pub(crate) fn finish(self) {
        if self.n <= 15 {
            self.w.buf[self.start] = 0x80 | self.n as u8;
        } else {
            let mut header = Writer::default();
            header.map(self.n);
            self.w
                .buf
                .splice(self.start..self.start + 1, header.buf.iter().copied());
        }
    }
}

/// Writes a duration or limit in seconds the way a Python master would: an int when the value
/// is integral (`timeout: 1200`), a float64 otherwise.
pub(crate) fn write_seconds(w: &mut Writer, x: f64) {
    // 2^53: beyond it not every integer is a distinct f64, and i64 conversion stays exact below.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.is_finite() && x.fract() == 0.0 && x.abs() <= EXACT {
        w.sint(x as i64);
    } else {
        w.f64(x);
    }
}
