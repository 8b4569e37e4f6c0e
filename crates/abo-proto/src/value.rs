//! [`Value`]: an owned msgpack value, for the few places where the protocol itself is untyped.
//!
//! A response's `result` depends on which request it answers, and decoding one frame cannot
//! know that, so [`crate::Response`] carries a [`Value`]; the session ([`crate::MasterSession`],
//! [`crate::WorkerSession`]) or [`crate::WorkerInfo::from_value`] turns it into a typed reply.
//! Maps keep their wire order so that a decoded frame re-encodes to the same bytes.

use std::fmt;

/// A msgpack integer: anything in `i64::MIN..=u64::MAX`, the union of msgpack's signed and
/// unsigned families.
///
/// One type (rather than separate signed and unsigned variants) so that equal numbers compare
/// equal whichever family carried them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int(i128);

impl Int {
    /// The integer, if it is representable in msgpack.
    pub fn new(n: i128) -> Option<Int> {
        (i128::from(i64::MIN)..=i128::from(u64::MAX))
            .contains(&n)
            .then_some(Int(n))
    }

    /// The integer as an `i128` (always exact).
    pub fn get(self) -> i128 {
        self.0
    }

    /// The integer as an `i64`, if it fits.
    pub fn as_i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// The integer as a `u64`, if it fits.
    pub fn as_u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }
}

impl From<i64> for Int {
    fn from(n: i64) -> Int {
        Int(i128::from(n))
    }
}

impl From<u64> for Int {
    fn from(n: u64) -> Int {
        Int(i128::from(n))
    }
}

impl From<u32> for Int {
    fn from(n: u32) -> Int {
        Int(i128::from(n))
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An owned msgpack value.
///
/// `Str` holds valid UTF-8 only: a msgpack str that is not UTF-8 is accepted as raw bytes where
/// the protocol carries file data, and rejected with a precise error everywhere else (the
/// Python peer unpacks with `raw=False` and fails the same way). Float32 values decode to
/// `Float` and re-encode as float64, which is what Python would send.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// msgpack nil (Python `None`).
    Nil,
    /// msgpack bool.
    Bool(bool),
    /// Any msgpack integer.
    Int(Int),
    /// msgpack float32 or float64.
    Float(f64),
    /// msgpack str.
    Str(String),
    /// msgpack bin.
    Bin(Vec<u8>),
    /// msgpack array (a Python list or tuple).
    Array(Vec<Value>),
    /// msgpack map, in wire order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// Which msgpack family the value belongs to (used in error messages).
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Nil => ValueKind::Nil,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Str(_) => ValueKind::Str,
            Value::Bin(_) => ValueKind::Bin,
            Value::Array(_) => ValueKind::Array,
            Value::Map(_) => ValueKind::Map,
        }
    }

    /// The string, if the value is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value stored under the string key `key`, if the value is a map holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Shorthand for a `Str` value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
}

/// The msgpack family of a value, as named in [`crate::DecodeError`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// nil
    Nil,
    /// bool
    Bool,
    /// int (any width, signed or not)
    Int,
    /// float32 or float64
    Float,
    /// str
    Str,
    /// bin
    Bin,
    /// array
    Array,
    /// map
    Map,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Nil => "nil",
            ValueKind::Bool => "bool",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Str => "str",
            ValueKind::Bin => "bin",
            ValueKind::Array => "array",
            ValueKind::Map => "map",
        })
    }
}
