//! The msgpack layer: a small reader into [`Node`] and a writer with Python's choices.
//!
//! Hand-written rather than taken from a crate because the protocol needs three things at
//! once that generic crates make awkward: (1) never allocate more than the input can back,
//! whatever length a header claims, so a 20-byte frame cannot ask for 4 GiB; (2) keep a msgpack
//! *str* as raw bytes until the typed layer knows whether the key holds text or file data
//! (msgpack-python < 1.0 packs `bytes` as str); (3) write exactly what msgpack-python 1.x writes
//! (smallest int form, str8 for 32..=255-byte strings, float64 always), so that re-encoding a
//! captured frame gives back its bytes.

use crate::error::{DecodeError, Malformed};
use crate::value::{Int, Value, ValueKind};

/// Nesting deeper than this is refused whatever [`crate::Limits::max_depth`] says. The reader
/// itself is iterative, but dropping, comparing and converting values recurse.
pub(crate) const HARD_MAX_DEPTH: usize = 128;

/// A parsed msgpack value whose strings are not yet checked for UTF-8. Strings and binaries
/// borrow from the frame: the typed layer copies what it keeps, or shares the frame (see
/// [`crate::Text`]), so parsing never copies a payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    Nil,
    Bool(bool),
    Int(Int),
    Float(f64),
    /// A msgpack str, raw: validated only when the key is known to hold text.
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(Vec<Node<'a>>),
    /// An array whose elements are all unsigned ints, read without a node per element: an
    /// update's `newline_idx` (one per line of output, the bulk of the master's decoding
    /// otherwise). [`crate::codec::Ctx::array`] gives it back as `Int` nodes where a
    /// reader wants nodes.
    UInts(Vec<u64>),
    /// An array whose elements are all float64: an update's `line_times`.
    Floats(Vec<f64>),
    Map(Vec<(Node<'a>, Node<'a>)>),
}

impl Node<'_> {
    pub(crate) fn kind(&self) -> ValueKind {
        match self {
            Node::Nil => ValueKind::Nil,
            Node::Bool(_) => ValueKind::Bool,
            Node::Int(_) => ValueKind::Int,
            Node::Float(_) => ValueKind::Float,
            Node::Str(_) => ValueKind::Str,
            Node::Bin(_) => ValueKind::Bin,
            Node::Array(_) | Node::UInts(_) | Node::Floats(_) => ValueKind::Array,
            Node::Map(_) => ValueKind::Map,
        }
    }
}

/// Parses exactly one msgpack value filling all of `buf`.
pub(crate) fn parse(buf: &[u8], max_depth: usize) -> Result<Node<'_>, DecodeError> {
    let mut p = Parser {
        buf,
        pos: 0,
        max_depth: max_depth.min(HARD_MAX_DEPTH),
    };
    let node = p.node()?;
    if p.pos != buf.len() {
        return Err(p.malformed(Malformed::TrailingBytes));
    }
    Ok(node)
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

/// What one header read: a complete scalar, or the start of a container.
enum Item<'a> {
    Done(Node<'a>),
    Array(usize),
    Map(usize),
}

/// A container being filled, on the reader's explicit stack (no recursion, so no stack
/// overflow whatever the nesting).
enum Open<'a> {
    Array {
        items: Vec<Node<'a>>,
        left: usize,
    },
    Map {
        entries: Vec<(Node<'a>, Node<'a>)>,
        key: Option<Node<'a>>,
        left: usize,
    },
}

impl<'a> Parser<'a> {
    fn malformed(&self, reason: Malformed) -> DecodeError {
        DecodeError::Malformed {
            offset: self.pos,
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.malformed(Malformed::Truncated));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn len32(&mut self) -> Result<usize, DecodeError> {
        // On 16-bit targets a length that does not fit cannot be backed by the input anyway.
        usize::try_from(u32::from_be_bytes(self.array()?))
            .map_err(|_| self.malformed(Malformed::Truncated))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        self.take(len)
    }

    /// Reads the whole value with an explicit stack of open containers.
    fn node(&mut self) -> Result<Node<'a>, DecodeError> {
        let mut stack: Vec<Open<'a>> = Vec::new();
        loop {
            let mut node = match self.item()? {
                Item::Done(node) => node,
                Item::Array(0) => Node::Array(Vec::new()),
                Item::Map(0) => Node::Map(Vec::new()),
                Item::Array(n) => {
                    self.enter(stack.len(), n)?;
                    if let Some(packed) = self.packed(n) {
                        packed
                    } else {
                        stack.push(Open::Array {
                            items: Vec::with_capacity(n),
                            left: n,
                        });
                        continue;
                    }
                }
                Item::Map(n) => {
                    self.enter(stack.len(), n.saturating_mul(2))?;
                    stack.push(Open::Map {
                        entries: Vec::with_capacity(n),
                        key: None,
                        left: n,
                    });
                    continue;
                }
            };
            // Attach the finished node to its container, closing every container it fills.
            // The open container is filled in place: moving it off the stack and back for
            // each element would cost more than the element (an update has two array
            // elements per line of output).
            loop {
                let full = match stack.last_mut() {
                    None => return Ok(node),
                    Some(Open::Array { items, left }) => {
                        items.push(node);
                        *left -= 1;
                        *left == 0
                    }
                    Some(Open::Map { entries, key, left }) => match key.take() {
                        None => {
                            *key = Some(node);
                            false
                        }
                        Some(k) => {
                            entries.push((k, node));
                            *left -= 1;
                            *left == 0
                        }
                    },
                };
                if !full {
                    break;
                }
                // The container is complete: it becomes the node to attach to its parent
                // (`last_mut` just found it, so the pop always succeeds).
                match stack.pop() {
                    Some(Open::Array { items, .. }) => node = Node::Array(items),
                    Some(Open::Map { entries, .. }) => node = Node::Map(entries),
                    None => break,
                }
            }
        }
    }

    /// The `n` elements of an array just opened, when they are all float64 or all unsigned
    /// ints: one vector instead of a node each (an update has two such elements per line of
    /// output). `None`, with nothing consumed, for any other array; `n` is already checked
    /// against the input left.
    fn packed(&mut self, n: usize) -> Option<Node<'a>> {
        let rest = &self.buf[self.pos..];
        match rest.first()? {
            0xcb => {
                // Every element is 9 bytes: `0xcb` and a big-endian f64.
                let bytes = rest.get(..n.checked_mul(9)?)?;
                let mut out = Vec::with_capacity(n);
                for item in bytes.chunks_exact(9) {
                    let (&tag, value) = item.split_first()?;
                    if tag != 0xcb {
                        return None;
                    }
                    out.push(f64::from_be_bytes(value.try_into().ok()?));
                }
                self.pos += bytes.len();
                Some(Node::Floats(out))
            }
            0x00..=0x7f | 0xcc..=0xcf => {
                let mut out = Vec::with_capacity(n);
                let mut at = 0;
                for _ in 0..n {
                    let tag = *rest.get(at)?;
                    let (value, len) = match tag {
                        0x00..=0x7f => (u64::from(tag), 1),
                        0xcc => (u64::from(*rest.get(at + 1)?), 2),
                        0xcd => (u64::from(u16::from_be_bytes(be(rest, at + 1)?)), 3),
                        0xce => (u64::from(u32::from_be_bytes(be(rest, at + 1)?)), 5),
                        0xcf => (u64::from_be_bytes(be(rest, at + 1)?), 9),
                        _ => return None,
                    };
                    out.push(value);
                    at += len;
                }
                self.pos += at;
                Some(Node::UInts(out))
            }
            _ => None,
        }
    }

    /// Checks a new container of `n` elements at nesting `depth`: within the depth limit, and
    /// no more elements than bytes left (each element takes at least one), so that a claimed
    /// count the input cannot back is refused before anything is reserved for it.
    fn enter(&self, depth: usize, n: usize) -> Result<(), DecodeError> {
        if depth >= self.max_depth {
            return Err(self.malformed(Malformed::TooDeep));
        }
        if n > self.remaining() {
            return Err(self.malformed(Malformed::Truncated));
        }
        Ok(())
    }

    fn item(&mut self) -> Result<Item<'a>, DecodeError> {
        let start = self.pos;
        let tag = self.u8()?;
        let node = match tag {
            0x00..=0x7f => Node::Int(Int::from(u64::from(tag))),
            0x80..=0x8f => return Ok(Item::Map(usize::from(tag & 0x0f))),
            0x90..=0x9f => return Ok(Item::Array(usize::from(tag & 0x0f))),
            0xa0..=0xbf => Node::Str(self.bytes(usize::from(tag & 0x1f))?),
            0xc0 => Node::Nil,
            0xc1 => {
                self.pos = start;
                return Err(self.malformed(Malformed::ReservedByte));
            }
            0xc2 => Node::Bool(false),
            0xc3 => Node::Bool(true),
            0xc4 => {
                let n = usize::from(self.u8()?);
                Node::Bin(self.bytes(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Node::Bin(self.bytes(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Node::Bin(self.bytes(n)?)
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                self.pos = start;
                return Err(self.malformed(Malformed::ExtType));
            }
            0xca => Node::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Node::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Node::Int(Int::from(u64::from(self.u8()?))),
            0xcd => Node::Int(Int::from(u64::from(u16::from_be_bytes(self.array()?)))),
            0xce => Node::Int(Int::from(u64::from(u32::from_be_bytes(self.array()?)))),
            0xcf => Node::Int(Int::from(u64::from_be_bytes(self.array()?))),
            0xd0 => Node::Int(Int::from(i64::from(i8::from_be_bytes(self.array()?)))),
            0xd1 => Node::Int(Int::from(i64::from(i16::from_be_bytes(self.array()?)))),
            0xd2 => Node::Int(Int::from(i64::from(i32::from_be_bytes(self.array()?)))),
            0xd3 => Node::Int(Int::from(i64::from_be_bytes(self.array()?))),
            0xd9 => {
                let n = usize::from(self.u8()?);
                Node::Str(self.bytes(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Node::Str(self.bytes(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Node::Str(self.bytes(n)?)
            }
            0xdc => return Ok(Item::Array(self.len16()?)),
            0xdd => return Ok(Item::Array(self.len32()?)),
            0xde => return Ok(Item::Map(self.len16()?)),
            0xdf => return Ok(Item::Map(self.len32()?)),
            0xe0..=0xff => Node::Int(Int::from(i64::from(tag as i8))),
        };
        Ok(Item::Done(node))
    }
}

/// The `N` bytes of `buf` at `at`, if there are that many.
fn be<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Appends msgpack to a buffer, choosing the forms msgpack-python 1.x chooses.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

/// Lengths above `u32::MAX` cannot be expressed in msgpack. Such a value cannot come near the
/// frame cap, so it is written with a saturated length (a frame the peer rejects) rather than
/// making `encode` fallible or panicking.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Writer {
    pub(crate) fn nil(&mut self) {
        self.buf.push(0xc0);
    }

    pub(crate) fn bool(&mut self, b: bool) {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
    }

    pub(crate) fn uint(&mut self, n: u64) {
        if n <= 0x7f {
            self.buf.push(n as u8);
        } else if let Ok(n) = u8::try_from(n) {
            self.buf.extend_from_slice(&[0xcc, n]);
        } else if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else if let Ok(n) = u32::try_from(n) {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    pub(crate) fn sint(&mut self, n: i64) {
        if let Ok(u) = u64::try_from(n) {
            // Python packs every non-negative int in the unsigned family.
            self.uint(u);
        } else if n >= -32 {
            self.buf.push(n as u8);
        } else if let Ok(n) = i8::try_from(n) {
            self.buf.push(0xd0);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else if let Ok(n) = i16::try_from(n) {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else if let Ok(n) = i32::try_from(n) {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    pub(crate) fn int(&mut self, n: Int) {
        match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => self.uint(u),
            (None, Some(i)) => self.sint(i),
            // `Int` is always within i64::MIN..=u64::MAX, so one of the two fits.
            (None, None) => self.nil(),
        }
    }

    pub(crate) fn f64(&mut self, x: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&x.to_be_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        let n = s.len();
        if n <= 31 {
            self.buf.push(0xa0 | n as u8);
        } else if let Ok(n) = u8::try_from(n) {
            self.buf.extend_from_slice(&[0xd9, n]);
        } else if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&len32(n).to_be_bytes());
        }
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn bin(&mut self, b: &[u8]) {
        let n = b.len();
        if let Ok(n) = u8::try_from(n) {
            self.buf.extend_from_slice(&[0xc4, n]);
        } else if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xc5);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xc6);
            self.buf.extend_from_slice(&len32(n).to_be_bytes());
        }
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn array(&mut self, n: usize) {
        if n <= 15 {
            self.buf.push(0x90 | n as u8);
        } else if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xdc);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xdd);
            self.buf.extend_from_slice(&len32(n).to_be_bytes());
        }
    }

    pub(crate) fn map(&mut self, n: usize) {
        if n <= 15 {
            self.buf.push(0x80 | n as u8);
        } else if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xde);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(0xdf);
            self.buf.extend_from_slice(&len32(n).to_be_bytes());
        }
    }

    pub(crate) fn value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(n) => self.int(*n),
            Value::Float(x) => self.f64(*x),
            Value::Str(s) => self.str(s),
            Value::Bin(b) => self.bin(b),
            Value::Array(items) => {
                self.array(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(entries) => {
                self.map(entries.len());
                for (k, v) in entries {
                    self.value(k);
                    self.value(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        f(&mut w);
        w.buf
    }

    #[test]
    fn ints_use_python_forms() {
        assert_eq!(enc(|w| w.sint(-1)), [0xff]);
        assert_eq!(enc(|w| w.sint(-33)), [0xd0, 0xdf]);
        assert_eq!(enc(|w| w.sint(127)), [0x7f]);
        assert_eq!(enc(|w| w.sint(128)), [0xcc, 0x80]);
        assert_eq!(enc(|w| w.uint(65536)), [0xce, 0, 1, 0, 0]);
        assert_eq!(enc(|w| w.uint(u64::MAX))[0], 0xcf);
        assert_eq!(enc(|w| w.sint(i64::MIN))[0], 0xd3);
    }

    #[test]
    fn strings_and_bins_use_python_forms() {
        assert_eq!(enc(|w| w.str(&"x".repeat(31)))[0], 0xbf);
        assert_eq!(enc(|w| w.str(&"x".repeat(32)))[..2], [0xd9, 32]);
        assert_eq!(enc(|w| w.str(&"x".repeat(256)))[..3], [0xda, 1, 0]);
        assert_eq!(enc(|w| w.bin(b"")), [0xc4, 0]);
        assert_eq!(enc(|w| w.bin(&[0; 300]))[..3], [0xc5, 1, 44]);
    }

    #[test]
    fn every_scalar_round_trips() {
        let cases = [
            Node::Nil,
            Node::Bool(true),
            Node::Int(Int::from(-129i64)),
            Node::Int(Int::from(u64::MAX)),
            Node::Float(1.5),
            Node::Str(b"h\xffi"),
            Node::Bin(&[1, 2, 3]),
        ];
        for node in cases {
            let bytes = enc(|w| match &node {
                Node::Nil => w.nil(),
                Node::Bool(b) => w.bool(*b),
                Node::Int(n) => w.int(*n),
                Node::Float(x) => w.f64(*x),
                Node::Str(s) => {
                    // Raw str bytes, as msgpack-python 0.6 would send them.
                    w.buf.push(0xa0 | s.len() as u8);
                    w.buf.extend_from_slice(s);
                }
                Node::Bin(b) => w.bin(b),
                Node::Array(_) | Node::UInts(_) | Node::Floats(_) | Node::Map(_) => {
                    unreachable!("scalars only")
                }
            });
            assert_eq!(parse(&bytes, 8).unwrap(), node);
        }
    }

    #[test]
    fn number_arrays_are_packed_and_mixed_ones_are_not() {
        // [1, 200, 256, 70000, 2^40]: every unsigned form.
        let mut uints = vec![
            0x95, 0x01, 0xcc, 200, 0xcd, 0x01, 0x00, 0xce, 0, 1, 0x11, 0x70,
        ];
        uints.push(0xcf);
        uints.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(
            parse(&uints, 8).unwrap(),
            Node::UInts(vec![1, 200, 256, 70000, 1 << 40])
        );
        let floats = [
            &[0x92, 0xcb][..],
            &1.5f64.to_be_bytes(),
            &[0xcb],
            &2.0f64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(parse(&floats, 8).unwrap(), Node::Floats(vec![1.5, 2.0]));
        // A negative int, a float32 or a str among them: element by element, as before.
        assert_eq!(
            parse(&[0x92, 0x01, 0xff], 8).unwrap(),
            Node::Array(vec![
                Node::Int(Int::from(1u64)),
                Node::Int(Int::from(-1i64))
            ])
        );
        let mixed = [
            &[0x92, 0xcb][..],
            &1.5f64.to_be_bytes(),
            &[0xca, 0x3f, 0xc0, 0, 0],
        ]
        .concat();
        assert_eq!(
            parse(&mixed, 8).unwrap(),
            Node::Array(vec![Node::Float(1.5), Node::Float(1.5)])
        );
        // Cut short inside a packed array: the ordinary reader reports where.
        assert!(matches!(
            parse(&[0x92, 0x01, 0xcd, 0x01], 8).unwrap_err(),
            DecodeError::Malformed {
                reason: Malformed::Truncated,
                ..
            }
        ));
        // Packing does not lift the depth limit.
        assert!(parse(&[0x91, 0x91, 0x01], 1).is_err());
    }

    #[test]
    fn float32_widens() {
        assert_eq!(
            parse(&[0xca, 0x3f, 0xc0, 0, 0], 1).unwrap(),
            Node::Float(1.5)
        );
    }

    #[test]
    fn claimed_lengths_must_be_backed_by_input() {
        // array32 claiming 4 billion elements in a 5-byte input.
        let err = parse(&[0xdd, 0xff, 0xff, 0xff, 0xff], 8).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Malformed {
                reason: Malformed::Truncated,
                ..
            }
        ));
        let err = parse(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0], 8).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Malformed {
                reason: Malformed::Truncated,
                ..
            }
        ));
    }

    #[test]
    fn the_deepest_allowed_value_is_read_and_dropped() {
        let mut deep = vec![0x91; HARD_MAX_DEPTH];
        deep.push(0xc0);
        let node = parse(&deep, usize::MAX).unwrap();
        let again = node.clone();
        assert_eq!(node, again);
        deep.insert(0, 0x91);
        assert!(parse(&deep, usize::MAX).is_err());
    }

    #[test]
    fn depth_is_capped() {
        let deep = vec![0x91; 1_000_000];
        let err = parse(&deep, usize::MAX).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Malformed {
                reason: Malformed::TooDeep,
                ..
            }
        ));
    }
}
