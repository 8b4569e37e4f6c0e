//! [`DecodeError`]: why a frame was not accepted, precisely enough to log it or answer it.
//!
//! One enum covers both levels of refusal: a frame that is not a protocol message at all
//! ([`decode`](crate::decode)), and a well-formed message that this connection must not accept
//! (the sessions: an unknown `seq_number`, a command id that belongs to no command of this
//! connection, a transfer op on the wrong kind of command). Variants that concern a request
//! whose `seq_number` was read carry it, so [`DecodeError::answerable_seq`] can tell the
//! connection whether it owes the peer an exception response.

use crate::command::CommandKind;
use crate::ids::{CommandId, SeqNumber};
use crate::value::ValueKind;

/// What is wrong with the msgpack bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// The input ends inside a value, or a length claims more than the input holds.
    Truncated,
    /// Byte `0xc1`, which msgpack reserves.
    ReservedByte,
    /// An ext type (`0xc7`–`0xc9`, `0xd4`–`0xd8`): the protocol never uses them.
    ExtType,
    /// Bytes left over after the message: one frame carries exactly one value.
    TrailingBytes,
    /// Arrays and maps nested deeper than [`crate::Limits::max_depth`].
    TooDeep,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "truncated input",
            Malformed::ReservedByte => "reserved byte 0xc1",
            Malformed::ExtType => "ext types are not part of the protocol",
            Malformed::TrailingBytes => "trailing bytes after the message",
            Malformed::TooDeep => "nesting too deep",
        })
    }
}

/// Why a frame could not be turned into a [`crate::Message`], or why a session refused one.
///
/// `key` fields are paths into the message such as `args.command[1]` or `args[2].rc`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`crate::Limits::max_frame_bytes`]; checked before any
    /// decoding.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The bytes are not one well-formed msgpack value.
    #[error("invalid msgpack at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset where reading stopped.
        offset: usize,
        /// What is wrong there.
        reason: Malformed,
    },
    /// The frame is valid msgpack but not a map.
    #[error("message is a msgpack {found}, not a map")]
    NotAMap {
        /// What was found instead.
        found: ValueKind,
    },
    /// The message map has a key that is not a string (nested maps report
    /// [`DecodeError::WrongType`] instead, with the op and path).
    #[error("message map has a {found} key")]
    NonStringKey {
        /// The key's family.
        found: ValueKind,
    },
    /// The message map has the same key twice (nested maps report
    /// [`DecodeError::InvalidValue`] instead).
    #[error("duplicate key {key:?} in message map")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The message has no `op` key (the stock worker ignores such messages).
    #[error("message has no \"op\" key")]
    MissingOp,
    /// A required key is absent.
    #[error("missing key {key} in op {op}")]
    MissingKey {
        /// The message's op.
        op: String,
        /// Its seq_number, if it was read.
        seq: Option<SeqNumber>,
        /// Path of the absent key.
        key: String,
    },
    /// A key holds a value of the wrong msgpack family.
    #[error("wrong type for key {key} in op {op}: expected {expected}, found {found}")]
    WrongType {
        /// The message's op (`"?"` when the op itself has the wrong type).
        op: String,
        /// Its seq_number, if it was read.
        seq: Option<SeqNumber>,
        /// Path of the key.
        key: String,
        /// What the protocol wants there.
        expected: &'static str,
        /// What was found.
        found: ValueKind,
    },
    /// A key has the right family but an unusable value (out of range, not UTF-8, not one of
    /// the allowed words).
    #[error("invalid value for key {key} in op {op}: {reason}")]
    InvalidValue {
        /// The message's op.
        op: String,
        /// Its seq_number, if it was read.
        seq: Option<SeqNumber>,
        /// Path of the key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `start_command` names a command that this crate does not model. The stock worker
    /// answers `"(command <id>): unrecognized WorkerCommand '<name>'"`; the camelCase aliases
    /// (`uploadFile`, ...) land here too, since in msgpack mode they need PB-only args.
    #[error("(command {command_id}): unrecognized WorkerCommand '{name}'")]
    UnknownCommand {
        /// The start_command's seq_number.
        seq: SeqNumber,
        /// The id the master gave the command.
        command_id: CommandId,
        /// The unknown command name.
        name: String,
    },
    /// A request op that the receiving side never handles (e.g. `start_command` sent to a
    /// master, or `update` sent to a worker).
    #[error("op {op} is not accepted in this direction")]
    WrongDirection {
        /// The op.
        op: String,
        /// Its seq_number.
        seq: SeqNumber,
    },
    /// A response whose seq_number matches no request this side is waiting on.
    #[error("response for seq_number {seq}, which no request is waiting on")]
    UnknownSeq {
        /// The response's seq_number.
        seq: SeqNumber,
    },
    /// A request reusing a seq_number whose earlier request is still unanswered.
    #[error("op {op} reuses seq_number {seq}, which is still unanswered")]
    DuplicateSeq {
        /// The op.
        op: String,
        /// The reused seq_number.
        seq: SeqNumber,
    },
    /// A worker request naming a command id that is not an active command of this
    /// connection (never started here, already complete, or refused at start).
    #[error(
        "op {op} names command {command_id}, which is not an active command of this connection"
    )]
    ForeignCommand {
        /// The op.
        op: String,
        /// Its seq_number.
        seq: SeqNumber,
        /// The id it named.
        command_id: CommandId,
    },
    /// A transfer op on a command of another kind (e.g. `update_read_file` for a `shell`).
    #[error("op {op} does not apply to command {command_id}, a {kind} command")]
    WrongTransfer {
        /// The op.
        op: String,
        /// Its seq_number.
        seq: SeqNumber,
        /// The command it named.
        command_id: CommandId,
        /// That command's kind.
        kind: CommandKind,
    },
    /// A transfer op out of order (a write after close, a second close, utime before close).
    #[error("op {op} for command {command_id} is out of order: {reason}")]
    TransferOutOfOrder {
        /// The op.
        op: String,
        /// Its seq_number.
        seq: SeqNumber,
        /// The command it named.
        command_id: CommandId,
        /// What came first.
        reason: &'static str,
    },
    /// `start_command` reusing the id of a command that is still running on this connection
    /// (the stock worker would silently overwrite the first one).
    #[error("command id {command_id} is already in use on this connection")]
    DuplicateCommand {
        /// The start_command's seq_number.
        seq: SeqNumber,
        /// The reused id.
        command_id: CommandId,
    },
}

impl DecodeError {
    /// The seq_number of the *request* this error is about, when the peer is owed an
    /// exception response for it.
    ///
    /// Every request needs a response, so a connection that refuses a request it could read
    /// the seq_number of should answer it with `Outcome::Exception(error.to_string())`
    /// (the sessions' `reject` does exactly that). Errors about responses (such as
    /// [`DecodeError::UnknownSeq`]) and about frames whose seq_number could not be read
    /// return `None`: answering those would be a stray response, which makes the stock worker
    /// drop the connection.
    pub fn answerable_seq(&self) -> Option<SeqNumber> {
        match self {
            DecodeError::MissingKey { op, seq, .. }
            | DecodeError::WrongType { op, seq, .. }
            | DecodeError::InvalidValue { op, seq, .. } => {
                if op == crate::message::OP_RESPONSE {
                    None
                } else {
                    *seq
                }
            }
            DecodeError::UnknownCommand { seq, .. }
            | DecodeError::WrongDirection { seq, .. }
            | DecodeError::ForeignCommand { seq, .. }
            | DecodeError::WrongTransfer { seq, .. }
            | DecodeError::TransferOutOfOrder { seq, .. }
            | DecodeError::DuplicateCommand { seq, .. } => Some(*seq),
            // A duplicate seq is already owed one response; a second would be stray.
            DecodeError::DuplicateSeq { .. }
            | DecodeError::TooLarge { .. }
            | DecodeError::Malformed { .. }
            | DecodeError::NotAMap { .. }
            | DecodeError::NonStringKey { .. }
            | DecodeError::DuplicateKey { .. }
            | DecodeError::MissingOp
            | DecodeError::UnknownSeq { .. } => None,
        }
    }
}
