//! Buildbot's `msgpack_experimental_v7` worker protocol, as buildbot-worker 4.3.0 speaks it:
//! typed messages, their msgpack encoding, and per-connection bookkeeping. Pure: no sockets,
//! no async runtime, no clock, no filesystem. This crate is the only place in abo that knows
//! the wire format; the shared spec `spec/worker-protocol.md` (buildbot-worker 4.3.0, checked
//! against captures) is the reference it follows, and `testdata/captures/` hold the frames
//! its tests replay.
//!
//! # Principal types
//!
//! - [`Message`]: one frame. [`Message::FromMaster`] carries a [`MasterRequest`] (`print`,
//!   `keepalive`, `get_worker_info`, `set_worker_settings`, `start_command` with a typed
//!   [`Command`], `interrupt_command`, `shutdown`); [`Message::FromWorker`] carries a
//!   [`WorkerRequest`] (`update` with its [`UpdateEntry`]s, `complete`, and the transfer ops
//!   `update_upload_file_*`, `update_upload_directory_*`, `update_read_file*`);
//!   [`Message::Response`] answers either side; [`Message::Unknown`] is an op this crate does
//!   not know, which the receiver answers with [`Outcome::unknown_op`] (as the stock worker
//!   does) instead of dropping the connection.
//! - [`encode`] and [`decode`] / [`decode_with`] with [`Limits`]: the frame size is checked
//!   before any decoding; every refusal is a [`DecodeError`] that names the op, the
//!   seq_number and the key path, and nothing panics on any input. For the output path:
//!   [`encode_into`] encodes into a buffer the caller reuses, and [`decode_bytes`] takes a
//!   frame in [`bytes::Bytes`] and shares its output text ([`Text`], in [`LineInfo`]) instead
//!   of copying it.
//! - [`MasterSession`] (for abo-master) and [`WorkerSession`] (for abo's own worker): the
//!   seq_number counters, the requests awaiting a response, the responses owed (through
//!   non-copyable [`ReplyToken`]s), and the command ids that belong to the connection. They
//!   enforce that a peer only addresses its own commands and transfers.
//! - Identifiers are newtypes: [`SeqNumber`], [`CommandId`].
//!
//! # How a connection uses it
//!
//! The WebSocket layer (not in this crate) does the handshake, then for each binary message:
//! `decode` → `session.receive` → act on the event → `encode` whatever the session returns.
//! On a `DecodeError`, `session.reject(&err)` gives the exception response owed, if any.
//!
//! ```
//! use abo_proto::*;
//!
//! let mut master = MasterSession::new();
//! let mut worker = WorkerSession::new();
//!
//! // The master starts a command; the session registers the id before the frame is sent.
//! let (id, start) = master.start_command(None, Command::Listdir { path: "/srv/w1".into() });
//! let start = decode(&encode(&start))?;
//! let WorkerEvent::Request { token, .. } = worker.receive(start)? else { unreachable!() };
//!
//! // A fast command reports before the worker answers start_command (as 4.3.0 does).
//! let update = worker
//!     .send(WorkerRequest::Update {
//!         command_id: id.clone(),
//!         entries: vec![UpdateEntry::Files(vec!["info".into()]), UpdateEntry::Rc(0)],
//!     })
//!     .expect("command is active");
//! let MasterEvent::Request { token: t2, request } = master.receive(decode(&encode(&update))?)? else {
//!     unreachable!()
//! };
//! assert_eq!(request.command_id(), &id);
//! let ack = master.respond(t2, Outcome::nil()).expect("owed");
//! worker.receive(decode(&encode(&ack))?)?;
//!
//! // The worker's response to start_command.
//! let reply = worker.respond(token, Outcome::nil()).expect("owed");
//! let event = master.receive(decode(&encode(&reply))?)?;
//! assert!(matches!(event, MasterEvent::Answered { reply: Reply::Ok(Value::Nil), .. }));
//!
//! // The worker cannot address a command that is not this connection's.
//! let foreign = Message::FromWorker {
//!     seq: SeqNumber::new(7),
//!     request: WorkerRequest::Complete { command_id: CommandId::new("99"), failure: None },
//! };
//! let err = master.receive(foreign).unwrap_err();
//! assert!(matches!(err, DecodeError::ForeignCommand { .. }));
//! assert!(master.reject(&err).is_some()); // the worker is owed an exception response
//! # Ok::<(), DecodeError>(())
//! ```
//!
//! # What the WebSocket layer must do (spec §3.1–3.3, §3.6, §3.12)
//!
//! - **Handshake.** The worker sends `GET <path> HTTP/1.1` (path `/` unless the tac sets
//!   `path=`) with `Upgrade: WebSocket` (mixed case: compare case-insensitively),
//!   `Sec-WebSocket-Version: 13` and **`Authorization: Basic base64(name:password)`**. No
//!   `Origin`, subprotocol or extension is offered, so answer none. Split the credentials on
//!   the *first* `:` (names cannot contain `:`, passwords can). Accept with a plain
//!   `101 Switching Protocols` within 5 s (autobahn's open-handshake timeout); reject with any
//!   other status, e.g. `401` (the worker then retries every ~2 s forever). Authentication
//!   happens only here: no message carries credentials.
//! - **Framing.** One msgpack map per *binary* message, never fragmented or compressed;
//!   worker frames are masked, the master's must not be. Allow large messages (upload chunks
//!   are up to `blocksize`, 256 KiB with the stock master's FileUpload): [`Limits`] defaults
//!   to 16 MiB. The worker ignores text frames and answers pings, but never pings.
//! - **Session.** After the 101 the worker sends nothing until the master asks: send
//!   `get_worker_info` first (it gives `basedir` and `system` for path building; the worker
//!   does no path joining in msgpack mode), optionally `set_worker_settings`, `mkdir` the
//!   builder directories, then run commands. Drive liveness yourself (`keepalive` or WS pings
//!   every 30–60 s).
//! - **Disconnect.** EOF without a close frame is normal (e.g. after `shutdown`). Commands
//!   keep running on the worker after a disconnect and a reconnect starts a new session
//!   with fresh seq counters and no command ids: treat every
//!   [`MasterSession::active_commands`] entry as lost.
//! - **Duplicate connections** for the same worker name need an abo policy (the stock master
//!   pings the old one and keeps it if it answers within 10 s).
//! - **Never send a stray response** (one whose seq_number the worker is not waiting on): the
//!   worker drops the connection. The sessions make that impossible by construction.

#![warn(missing_docs)]

mod codec;
mod command;
mod error;
mod ids;
mod info;
mod message;
mod msgpack;
mod session;
mod text;
mod update;
mod value;

pub use command::{
    Command, CommandKind, CommandLine, Compression, CpdirArgs, DownloadFileArgs, EnvValue, LogFile,
    RmdirArgs, Seconds, ShellArgs, UploadDirectoryArgs, UploadFileArgs,
};
pub use error::{DecodeError, Malformed};
pub use ids::{CommandId, SeqNumber};
pub use info::{WorkerInfo, WorkerSettings};
pub use message::{MasterRequest, Message, Outcome, Response, WorkerRequest};
pub use session::{
    MasterEvent, MasterSession, Reply, ReplyToken, Sent, WorkerEvent, WorkerReply, WorkerSent,
    WorkerSession,
};
pub use text::Text;
pub use update::{FailureReason, LineInfo, StatResult, UpdateEntry};
pub use value::{Int, Value, ValueKind};

/// Bounds applied by [`decode_with`] before and while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Frames longer than this are refused with [`DecodeError::TooLarge`] before any byte is
    /// parsed. Default 16 MiB: well above the 256 KiB upload chunks of the stock master.
    pub max_frame_bytes: usize,
    /// Arrays and maps nested deeper than this are refused ([`Malformed::TooDeep`]). The
    /// protocol nests at most 6 levels (an `update` log entry); capped at 128 whatever is set
    /// here.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 16 * 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// Encodes a message as the payload of one binary WebSocket message.
///
/// Keys come in the order the Python peers write them and ints, strings and floats take the
/// forms msgpack-python 1.x chooses, so a frame decoded from the stock worker re-encodes to
/// the same bytes (unless it carried keys this crate drops, or str where bin is due).
pub fn encode(msg: &Message) -> Vec<u8> {
    // Sized up front: an `update` is mostly output text, and growing the buffer by doubling
    // would copy it again at each step.
    let mut w = msgpack::Writer {
        buf: Vec::with_capacity(msg.size_hint()),
    };
    msg.write(&mut w);
    w.buf
}

/// [`encode`], appending to `buf` (which it grows once, to the size the message needs):
/// lets a sender reuse its buffers.
pub fn encode_into(msg: &Message, buf: &mut Vec<u8>) {
    buf.reserve(msg.size_hint());
    let mut w = msgpack::Writer {
        buf: std::mem::take(buf),
    };
    msg.write(&mut w);
    *buf = w.buf;
}

/// Decodes one frame with the default [`Limits`].
pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    decode_with(frame, &Limits::default())
}

/// Decodes a frame as an untyped [`Value`], with the same size and depth checks as
/// [`decode_with`]; for logging a frame that [`decode`] refused.
pub fn decode_value(frame: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: limits.max_frame_bytes,
        });
    }
    let node = msgpack::parse(frame, limits.max_depth)?;
    codec::Ctx {
        op: "?",
        seq: None,
        frame: None,
    }
    .value("(frame)", node)
}

/// Encodes an untyped [`Value`] with the same msgpack forms as [`encode`].
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut w = msgpack::Writer::default();
    w.value(value);
    w.buf
}

/// Decodes one frame: size check, msgpack, then the typed message. Output text
/// ([`LineInfo::text`]) is copied out of `frame`; [`decode_bytes`] shares it instead.
pub fn decode_with(frame: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    check_size(frame, limits)?;
    let node = msgpack::parse(frame, limits.max_depth)?;
    message::read(node, None)
}

/// [`decode_with`] for a frame held in [`bytes::Bytes`] (as WebSocket libraries hand them
/// out): output text is checked for UTF-8 and then shared with the frame, not copied, so
/// command output costs one validation pass and no allocation. Every other field is copied
/// as with [`decode_with`]; the result is the same message.
pub fn decode_bytes(frame: &bytes::Bytes, limits: &Limits) -> Result<Message, DecodeError> {
    check_size(frame, limits)?;
    let node = msgpack::parse(frame, limits.max_depth)?;
    message::read(node, Some(frame))
}

fn check_size(frame: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: limits.max_frame_bytes,
        });
    }
    Ok(())
}
