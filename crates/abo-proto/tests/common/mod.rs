//! Loading the captured sessions in `testdata/captures/` for the integration tests.
//!
//! The captures are JSON lines written by the fake master (`kind: "M->W"`, `raw_hex`,
//! `payload_len`) and by the decoding proxy in front of the real master (`dir`, `raw`, `n`).
//! `raw` bytes are sometimes truncated or absent (scrubbed captures); the decoded `msg` is then
//! the only source, and bytes are rebuilt from it. JSON objects `{"__bytes__": hex, "len": n}`,
//! `{"hex": hex, "len": n}` and `{"b": text}` stand for msgpack bin values.

#![allow(dead_code)]

use std::fmt;

use abo_proto::{Int, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps object keys in document order (msgpack key order matters for
/// byte comparisons, and serde_json's map sorts them).
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            J::U(n) => Some(*n),
            J::I(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The msgpack value the JSON stands for.
    pub fn to_value(&self) -> Value {
        match self {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(*b),
            J::I(n) => Value::Int(Int::from(*n)),
            J::U(n) => Value::Int(Int::from(*n)),
            J::F(x) => Value::Float(*x),
            J::Str(s) => Value::Str(s.clone()),
            J::Arr(items) => Value::Array(items.iter().map(J::to_value).collect()),
            J::Obj(entries) => {
                let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                match (keys.as_slice(), self.get("__bytes__").or(self.get("hex"))) {
                    (["__bytes__", "len"] | ["hex", "len"], Some(J::Str(h))) => {
                        Value::Bin(hex::decode(h).expect("hex in capture"))
                    }
                    (["b"], _) => Value::Bin(
                        self.get("b")
                            .and_then(J::as_str)
                            .expect("text bytes")
                            .as_bytes()
                            .to_vec(),
                    ),
                    _ => Value::Map(
                        entries
                            .iter()
                            .map(|(k, v)| (Value::Str(k.clone()), v.to_value()))
                            .collect(),
                    ),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_none<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::I(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::U(n))
            }
            fn visit_f64<E>(self, x: f64) -> Result<J, E> {
                Ok(J::F(x))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(J::Arr(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, J>()? {
                    out.push((k, v));
                }
                Ok(J::Obj(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Master to worker.
    ToWorker,
    /// Worker to master.
    ToMaster,
}

/// One captured WebSocket message.
#[derive(Debug, Clone)]
pub struct Frame {
    pub file: &'static str,
    /// 1-based line in the capture file.
    pub line: usize,
    /// Which WebSocket connection of the capture (they restart after drops).
    pub conn: usize,
    pub dir: Dir,
    /// The payload, when the capture holds all of it.
    pub raw: Option<Vec<u8>>,
    /// The decoded message as the capturing tool printed it.
    pub msg: J,
}

impl Frame {
    /// The payload: the captured bytes, or bytes rebuilt from the decoded message.
    pub fn bytes(&self) -> Vec<u8> {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => abo_proto::encode_value(&self.msg.to_value()),
        }
    }
}

pub const FILES: [&str; 8] = [
    "capture_badauth.jsonl",
    "capture_drop.jsonl",
    "capture_edge.jsonl",
    "capture_fail.jsonl",
    "capture_full.jsonl",
    "capture_path.jsonl",
    "capture_stream.jsonl",
    "real_msgpack.jsonl",
];

pub fn load(file: &'static str) -> Vec<Frame> {
    let path = format!(
        "{}/../../testdata/captures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut conn = 0;
    for (i, line) in text.lines().enumerate() {
        let j: J = serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
        // A 101 answer opens a new WebSocket connection.
        let http = j.get("text").or(j.get("http")).and_then(J::as_str);
        if http.is_some_and(|t| t.starts_with("HTTP/1.1 101")) {
            conn += 1;
            continue;
        }
        let Some(msg) = j.get("msg") else { continue };
        let dir = match j.get("kind").or(j.get("dir")).and_then(J::as_str) {
            Some("M->W") => Dir::ToWorker,
            Some("W->M") => Dir::ToMaster,
            other => panic!("{file}:{}: direction {other:?}", i + 1),
        };
        let len = j
            .get("payload_len")
            .or(j.get("n"))
            .and_then(J::as_u64)
            .expect("payload length");
        let raw = j
            .get("raw_hex")
            .or(j.get("raw"))
            .and_then(J::as_str)
            .map(|h| hex::decode(h).expect("hex"))
            .filter(|b| b.len() as u64 == len);
        out.push(Frame {
            file,
            line: i + 1,
            conn,
            dir,
            raw,
            msg: msg.clone(),
        });
    }
    out
}

pub fn all_frames() -> Vec<Frame> {
    FILES.iter().flat_map(|f| load(f)).collect()
}
