//! Identifier newtypes: [`SeqNumber`] and [`CommandId`].
//!
//! Kept distinct from plain integers and strings so that a worker's seq_number cannot be
//! mistaken for the master's, nor a command id for a path.

use std::fmt;

/// A message's `seq_number`.
///
/// Each side numbers its own requests from 0 on every new connection; a response carries the
/// seq_number of the request it answers. The two directions' counters are unrelated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNumber(u64);

impl SeqNumber {
    /// Wraps a raw seq_number.
    pub const fn new(n: u64) -> SeqNumber {
        SeqNumber(n)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A remote command's `command_id`: a string chosen by the master, unique per connection.
///
/// The stock master uses decimal counters (`"0"`, `"1"`, ...); [`crate::MasterSession`] does
/// the same. Every `update`, `complete` and transfer op names the command it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(String);

impl CommandId {
    /// Wraps a raw command id.
    pub fn new(id: impl Into<String>) -> CommandId {
        CommandId(id.into())
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
