//! [`Text`]: the text of an output entry, shared with the frame it was decoded from.
//!
//! Command output is nearly all of what crosses a worker connection, so the master does not
//! copy it out of the frame: [`crate::decode_bytes`] checks that the bytes are UTF-8 (the
//! protocol sends output as msgpack str) and keeps a reference-counted slice of the frame.
//! Everywhere else it reads like a `&str`.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Immutable UTF-8 text, cheap to clone: a reference-counted slice of a decoded frame, or of
/// a `String` it was made from. Derefs to `str`; compares, orders and hashes as a `str`.
///
/// A `Text` keeps the whole buffer it shares alive (for decoded output, the frame, about
/// `buffer_size`): copy out what is kept for long.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(
    /// Always valid UTF-8: every constructor takes a `str` or checks the bytes.
    Bytes,
);

impl Text {
    /// Empty text.
    pub const fn new() -> Text {
        Text(Bytes::new())
    }

    /// Shares `bytes` if they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Text(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the field is private and every constructor (`From<String>`, `From<&str>`,
        // `from_utf8`, `slice_of`) stores either the bytes of a `str` or bytes that
        // `std::str::from_utf8` accepted, and `Bytes` never changes its contents. Checking
        // again here would cost a pass over the text on every read, which is what sharing
        // the frame is meant to save.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes, e.g. to reuse the buffer once the text is no longer needed
    /// ([`Bytes::try_into_mut`]).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// `s`, which must lie inside `frame`, as a slice of `frame` (no copy).
    pub(crate) fn slice_of(frame: &Bytes, s: &str) -> Text {
        Text(frame.slice_ref(s.as_bytes()))
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` does, so that `Borrow<str>` lookups find it.
        self.as_str().hash(state);
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_str() {
        let t = Text::from("héllo\n");
        assert_eq!(t, "héllo\n");
        assert_eq!(t.len(), 7);
        assert!(t.ends_with('\n'));
        assert_eq!(&t[..1], "h");
        assert_eq!(format!("{t}|{t:?}"), "héllo\n|\"héllo\\n\"");
        assert_eq!(String::from(t.clone()), "héllo\n");
        assert_eq!(Text::from(String::from("x")), Text::from("x"));
        assert!(Text::new().is_empty());
    }

    #[test]
    fn only_utf8_is_accepted() {
        assert!(Text::from_utf8(Bytes::from_static(b"a\xffb")).is_err());
        assert_eq!(
            Text::from_utf8(Bytes::from_static("é".as_bytes())).unwrap(),
            "é"
        );
    }

    #[test]
    fn a_slice_shares_the_frame() {
        let frame = Bytes::from_static(b"xxhello");
        let s = std::str::from_utf8(&frame[2..]).unwrap();
        let t = Text::slice_of(&frame, s);
        assert_eq!(t, "hello");
        assert_eq!(t.as_ptr(), frame[2..].as_ptr());
    }

    #[test]
    fn hashes_as_a_str() {
        let map = std::collections::HashMap::from([(Text::from("key"), 1)]);
        assert_eq!(map.get("key"), Some(&1));
    }
}
