//! [`Message`]: one frame, in either direction, and its envelope (`op`, `seq_number`).
//!
//! Requests are split by sender: [`MasterRequest`] for the ops a master sends,
//! [`WorkerRequest`] for the ops a worker sends. Both directions answer with the same
//! [`Response`]. Decoding does not know which side it runs on; the sessions refuse a request
//! that came the wrong way.
//!
//! Unknown ops decode to [`Message::Unknown`] rather than an error, because the protocol has
//! an answer for them: the stock worker replies with an exception response
//! `"Command <op> does not exist."` ([`Outcome::unknown_op`]), and the connection stays up.

use bytes::Bytes;

use crate::codec::{Ctx, Fields, MapWriter};
use crate::command::{Command, Seconds};
use crate::error::DecodeError;
use crate::ids::{CommandId, SeqNumber};
use crate::info::WorkerSettings;
use crate::msgpack::{Node, Writer};
use crate::update::UpdateEntry;
use crate::value::Value;

pub(crate) const OP_RESPONSE: &str = "response";

/// One protocol message: a request from either side, a response, or an unknown op.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request sent by the master; `seq` is from the master's counter.
    FromMaster {
        /// The request's seq_number.
        seq: SeqNumber,
        /// The request.
        request: MasterRequest,
    },
    /// A request sent by the worker; `seq` is from the worker's counter.
    FromWorker {
        /// The request's seq_number.
        seq: SeqNumber,
        /// The request.
        request: WorkerRequest,
    },
    /// `op: "response"`, answering the peer's request `seq`.
    Response(Response),
    /// A request with an op this crate does not know. Answer it with
    /// [`Outcome::unknown_op`]; the seq_number belongs to the sender's counter.
    Unknown {
        /// The op.
        op: String,
        /// Its seq_number.
        seq: SeqNumber,
    },
}

/// Requests the master sends to the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum MasterRequest {
    /// `print`: the worker logs `message`.
    Print {
        /// The text to log.
        message: String,
    },
    /// `keepalive`: answered with nil; the only liveness check besides WebSocket pings.
    Keepalive,
    /// `get_worker_info`: answered with a map, see [`crate::WorkerInfo`].
    GetWorkerInfo,
    /// `set_worker_settings`: output buffering and line splitting for later commands.
    SetWorkerSettings(WorkerSettings),
    /// `start_command`: start a remote command. Its `update`s and `complete` may arrive
    /// *before* the response to this request.
    StartCommand {
        /// The id the command's updates will name; unique per connection.
        command_id: CommandId,
        /// `builder_name`: ignored by the worker, kept for logs.
        builder_name: Option<String>,
        /// `command_name` and `args`.
        command: Command,
    },
    /// `interrupt_command`: flush output, then kill (shell) or stop at the next block
    /// (transfers). Answered with nil, even for an unknown id.
    InterruptCommand {
        /// The command to interrupt.
        command_id: CommandId,
        /// `why`: logged by the worker.
        why: String,
        /// `builder_name`: ignored by the worker.
        builder_name: Option<String>,
    },
    /// `shutdown`: the worker answers, then exits for good (no reconnect, no close frame).
    Shutdown,
}

/// Requests the worker sends to the master, all about a running command.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerRequest {
    /// `update`: output and results, in production order.
    Update {
        /// The command.
        command_id: CommandId,
        /// The `[key, value]` entries of `args`.
        entries: Vec<UpdateEntry>,
    },
    /// `complete`: the command finished; nothing more comes for this id.
    Complete {
        /// The command.
        command_id: CommandId,
        /// `args`: `None` (nil) on success, else the worker's Python failure text.
        failure: Option<String>,
    },
    /// `update_upload_file_write`: the next chunk of an `upload_file`. The worker waits for
    /// the response before sending the next one; an exception response aborts the upload.
    UploadFileWrite {
        /// The upload_file command.
        command_id: CommandId,
        /// `args`: the chunk (bin; str from msgpack-python < 1.0 is taken as raw bytes).
        data: Vec<u8>,
    },
    /// `update_upload_file_close`: end of the file data.
    UploadFileClose {
        /// The upload_file command.
        command_id: CommandId,
    },
    /// `update_upload_file_utime`: after close, when `keepstamp` was set.
    UploadFileUtime {
        /// The upload_file command.
        command_id: CommandId,
        /// `access_time`, epoch seconds.
        access_time: f64,
        /// `modified_time`, epoch seconds.
        modified_time: f64,
    },
    /// `update_upload_directory_write`: the next chunk of the tar stream.
    UploadDirectoryWrite {
        /// The upload_directory command.
        command_id: CommandId,
        /// `args`: the chunk.
        data: Vec<u8>,
    },
    /// `update_upload_directory_unpack`: end of the tar stream; extract it now.
    UploadDirectoryUnpack {
        /// The upload_directory command.
        command_id: CommandId,
    },
    /// `update_read_file`: a `download_file` asks for up to `length` bytes; answer with
    /// [`Outcome::data`] (an empty chunk means end of file).
    ReadFile {
        /// The download_file command.
        command_id: CommandId,
        /// `length`: the most bytes to send.
        length: u64,
    },
    /// `update_read_file_close`: the download is finished.
    ReadFileClose {
        /// The download_file command.
        command_id: CommandId,
    },
}

/// `op: "response"`: the answer to the peer's request `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The seq_number of the request answered (the *peer's* counter).
    pub seq: SeqNumber,
    /// The result.
    pub outcome: Outcome,
}

/// A response's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `result` (nil for most requests; a map for `get_worker_info`; bin for
    /// `update_read_file`). A missing `result` key decodes as nil.
    Ok(Value),
    /// `is_exception` was present and `result` holds the error text. Only the *presence* of
    /// `is_exception` counts for the stock worker, so it decodes as an exception whatever its
    /// value, and encoding writes `true` (never `false`).
    Exception(String),
}

impl Outcome {
    /// `Ok(nil)`, the answer to most requests.
    pub fn nil() -> Outcome {
        Outcome::Ok(Value::Nil)
    }

    /// The answer to `update_read_file`: always bin, as the worker writes it to a binary file.
    pub fn data(bytes: Vec<u8>) -> Outcome {
        Outcome::Ok(Value::Bin(bytes))
    }

    /// The stock worker's answer to an unknown op: `"Command <op> does not exist."`.
    pub fn unknown_op(op: &str) -> Outcome {
        Outcome::Exception(format!("Command {op} does not exist."))
    }
}

impl MasterRequest {
    /// The op on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            MasterRequest::Print { .. } => "print",
            MasterRequest::Keepalive => "keepalive",
            MasterRequest::GetWorkerInfo => "get_worker_info",
            MasterRequest::SetWorkerSettings(_) => "set_worker_settings",
            MasterRequest::StartCommand { .. } => "start_command",
            MasterRequest::InterruptCommand { .. } => "interrupt_command",
            MasterRequest::Shutdown => "shutdown",
        }
    }
}

impl WorkerRequest {
    /// The op on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            WorkerRequest::Update { .. } => "update",
            WorkerRequest::Complete { .. } => "complete",
            WorkerRequest::UploadFileWrite { .. } => "update_upload_file_write",
            WorkerRequest::UploadFileClose { .. } => "update_upload_file_close",
            WorkerRequest::UploadFileUtime { .. } => "update_upload_file_utime",
            WorkerRequest::UploadDirectoryWrite { .. } => "update_upload_directory_write",
            WorkerRequest::UploadDirectoryUnpack { .. } => "update_upload_directory_unpack",
            WorkerRequest::ReadFile { .. } => "update_read_file",
            WorkerRequest::ReadFileClose { .. } => "update_read_file_close",
        }
    }

    /// The command the request is about.
    pub fn command_id(&self) -> &CommandId {
        match self {
            WorkerRequest::Update { command_id, .. }
            | WorkerRequest::Complete { command_id, .. }
            | WorkerRequest::UploadFileWrite { command_id, .. }
            | WorkerRequest::UploadFileClose { command_id }
            | WorkerRequest::UploadFileUtime { command_id, .. }
            | WorkerRequest::UploadDirectoryWrite { command_id, .. }
            | WorkerRequest::UploadDirectoryUnpack { command_id }
            | WorkerRequest::ReadFile { command_id, .. }
            | WorkerRequest::ReadFileClose { command_id } => command_id,
        }
    }
}

impl Message {
    /// The op on the wire.
    pub fn op(&self) -> &str {
        match self {
            Message::FromMaster { request, .. } => request.op(),
            Message::FromWorker { request, .. } => request.op(),
            Message::Response(_) => OP_RESPONSE,
            Message::Unknown { op, .. } => op,
        }
    }

    /// The seq_number: the sender's own for requests, the answered request's for responses.
    pub fn seq(&self) -> SeqNumber {
        match self {
            Message::FromMaster { seq, .. }
            | Message::FromWorker { seq, .. }
            | Message::Unknown { seq, .. } => *seq,
            Message::Response(r) => r.seq,
        }
    }

    /// Bytes the encoded message takes, at most (for output and file data) or about (for the
    /// rest, which is small): lets [`crate::encode`] allocate once.
    pub(crate) fn size_hint(&self) -> usize {
        // The envelope: op, seq_number, command_id and the keys, with room to spare.
        const ENVELOPE: usize = 96;
        let id = |id: &CommandId| id.as_str().len();
        match self {
            Message::FromWorker { request, .. } => {
                ENVELOPE
                    + id(request.command_id())
                    + match request {
                        WorkerRequest::Update { entries, .. } => {
                            entries.iter().map(UpdateEntry::size_hint).sum()
                        }
                        WorkerRequest::UploadFileWrite { data, .. }
                        | WorkerRequest::UploadDirectoryWrite { data, .. } => data.len() + 5,
                        WorkerRequest::Complete {
                            failure: Some(text),
                            ..
                        } => text.len() + 5,
                        _ => 0,
                    }
            }
            Message::Response(Response {
                outcome: Outcome::Ok(Value::Bin(data)),
                ..
            }) => ENVELOPE + data.len() + 5,
            _ => ENVELOPE,
        }
    }

    /// Writes the message, keys in the order the Python peers use (`op` first, `seq_number`
    /// last for requests), so that re-encoding a captured frame reproduces its bytes.
    pub(crate) fn write(&self, w: &mut Writer) {
        let mut m = MapWriter::new(w);
        m.key("op").str(self.op());
        match self {
            Message::FromMaster { seq, request } => {
                write_master(request, &mut m);
                m.key("seq_number").uint(seq.get());
            }
            Message::FromWorker { seq, request } => {
                write_worker(request, &mut m);
                m.key("seq_number").uint(seq.get());
            }
            Message::Response(r) => {
                m.key("seq_number").uint(r.seq.get());
                match &r.outcome {
                    Outcome::Ok(v) => m.key("result").value(v),
                    Outcome::Exception(text) => {
                        m.key("result").str(text);
                        m.key("is_exception").bool(true);
                    }
                }
            }
            Message::Unknown { seq, .. } => m.key("seq_number").uint(seq.get()),
        }
        m.finish();
    }
}

fn write_master(request: &MasterRequest, m: &mut MapWriter<'_>) {
    match request {
        MasterRequest::Print { message } => m.key("message").str(message),
        MasterRequest::Keepalive | MasterRequest::GetWorkerInfo | MasterRequest::Shutdown => {}
        MasterRequest::SetWorkerSettings(s) => {
            let mut a = MapWriter::new(m.key("args"));
            a.key("newline_re").str(&s.newline_re);
            a.key("max_line_length").uint(s.max_line_length);
            crate::codec::write_seconds(a.key("buffer_timeout"), s.buffer_timeout.0);
            a.key("buffer_size").uint(s.buffer_size);
            a.finish();
        }
        MasterRequest::StartCommand {
            command_id,
            builder_name,
            command,
        } => {
            if let Some(b) = builder_name {
                m.key("builder_name").str(b);
            }
            m.key("command_id").str(command_id.as_str());
            m.key("command_name").str(command.kind().name());
            command.encode_args(m.key("args"));
        }
        MasterRequest::InterruptCommand {
            command_id,
            why,
            builder_name,
        } => {
            if let Some(b) = builder_name {
                m.key("builder_name").str(b);
            }
            m.key("command_id").str(command_id.as_str());
            m.key("why").str(why);
        }
    }
}

fn write_worker(request: &WorkerRequest, m: &mut MapWriter<'_>) {
    match request {
        WorkerRequest::Update { entries, .. } => UpdateEntry::encode_all(entries, m.key("args")),
        WorkerRequest::Complete { failure, .. } => match failure {
            Some(text) => m.key("args").str(text),
            None => m.key("args").nil(),
        },
        WorkerRequest::UploadFileWrite { data, .. }
        | WorkerRequest::UploadDirectoryWrite { data, .. } => m.key("args").bin(data),
        WorkerRequest::UploadFileUtime {
            access_time,
            modified_time,
            ..
        } => {
            m.key("access_time").f64(*access_time);
            m.key("modified_time").f64(*modified_time);
        }
        WorkerRequest::ReadFile { length, .. } => m.key("length").uint(*length),
        WorkerRequest::UploadFileClose { .. }
        | WorkerRequest::UploadDirectoryUnpack { .. }
        | WorkerRequest::ReadFileClose { .. } => {}
    }
    m.key("command_id").str(request.command_id().as_str());
}

/// Reads a parsed frame into a message; `frame`, when given, is the buffer `node` was parsed
/// from, which output text then shares.
pub(crate) fn read(node: Node<'_>, frame: Option<&Bytes>) -> Result<Message, DecodeError> {
    let entries = match node {
        Node::Map(entries) => entries,
        other => {
            return Err(DecodeError::NotAMap {
                found: other.kind(),
            })
        }
    };
    let mut top: Vec<(String, Node<'_>)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let k = match k {
            Node::Str(b) => std::str::from_utf8(b).map(str::to_owned).map_err(|_| {
                DecodeError::InvalidValue {
                    op: "?".to_owned(),
                    seq: None,
                    key: "(a key)".to_owned(),
                    reason: "str is not UTF-8".to_owned(),
                }
            })?,
            other => {
                return Err(DecodeError::NonStringKey {
                    found: other.kind(),
                })
            }
        };
        if top.iter().any(|(seen, _)| *seen == k) {
            return Err(DecodeError::DuplicateKey { key: k });
        }
        top.push((k, v));
    }
    let mut f = Fields::new(top);

    let op = match f.take("op") {
        None => return Err(DecodeError::MissingOp),
        Some(node) => Ctx {
            op: "?",
            seq: None,
            frame,
        }
        .string("op", node)?,
    };
    let seq = {
        let ctx = Ctx {
            op: &op,
            seq: None,
            frame,
        };
        let node = f.need(&ctx, "seq_number", "seq_number")?;
        SeqNumber::new(ctx.u64("seq_number", node)?)
    };
    let ctx = Ctx {
        op: &op,
        seq: Some(seq),
        frame,
    };
    let c = &ctx;

    let command_id = |f: &mut Fields| -> Result<CommandId, DecodeError> {
        let node = f.need(c, "command_id", "command_id")?;
        Ok(CommandId::new(c.string("command_id", node)?))
    };
    let from_master = |request| Ok(Message::FromMaster { seq, request });
    let from_worker = |request| Ok(Message::FromWorker { seq, request });

    match op.as_str() {
        OP_RESPONSE => {
            let result = f.take("result").unwrap_or(Node::Nil);
            let outcome = if f.take("is_exception").is_some() {
                Outcome::Exception(c.string("result", result)?)
            } else {
                Outcome::Ok(c.value("result", result)?)
            };
            Ok(Message::Response(Response { seq, outcome }))
        }
        "print" => {
            let node = f.need(c, "message", "message")?;
            from_master(MasterRequest::Print {
                message: c.string("message", node)?,
            })
        }
        "keepalive" => from_master(MasterRequest::Keepalive),
        "get_worker_info" => from_master(MasterRequest::GetWorkerInfo),
        "shutdown" => from_master(MasterRequest::Shutdown),
        "set_worker_settings" => {
            let node = f.need(c, "args", "args")?;
            let mut a = c.fields("args", node)?;
            let mut need = |key: &str| {
                let path = format!("args.{key}");
                a.need(c, key, &path).map(|n| (n, path))
            };
            let (buffer_size, p1) = need("buffer_size")?;
            let (buffer_timeout, p2) = need("buffer_timeout")?;
            let (newline_re, p3) = need("newline_re")?;
            let (max_line_length, p4) = need("max_line_length")?;
            from_master(MasterRequest::SetWorkerSettings(WorkerSettings {
                buffer_size: c.u64(&p1, buffer_size)?,
                buffer_timeout: Seconds(c.f64(&p2, buffer_timeout)?),
                newline_re: c.string(&p3, newline_re)?,
                max_line_length: c.u64(&p4, max_line_length)?,
            }))
        }
        "start_command" => {
            let command_id = command_id(&mut f)?;
            let name = {
                let node = f.need(c, "command_name", "command_name")?;
                c.string("command_name", node)?
            };
            let args = f.need(c, "args", "args")?;
            let command = Command::decode(c, seq, &command_id, name, args)?;
            let builder_name = f
                .take_opt("builder_name")
                .map(|n| c.string("builder_name", n))
                .transpose()?;
            from_master(MasterRequest::StartCommand {
                command_id,
                builder_name,
                command,
            })
        }
        "interrupt_command" => {
            let command_id = command_id(&mut f)?;
            let why = {
                let node = f.need(c, "why", "why")?;
                c.string("why", node)?
            };
            let builder_name = f
                .take_opt("builder_name")
                .map(|n| c.string("builder_name", n))
                .transpose()?;
            from_master(MasterRequest::InterruptCommand {
                command_id,
                why,
                builder_name,
            })
        }
        "update" => {
            let command_id = command_id(&mut f)?;
            let args = f.need(c, "args", "args")?;
            from_worker(WorkerRequest::Update {
                command_id,
                entries: UpdateEntry::decode_all(c, args)?,
            })
        }
        "complete" => {
            let command_id = command_id(&mut f)?;
            let failure = f
                .take_opt("args")
                .map(|n| c.string("args", n))
                .transpose()?;
            from_worker(WorkerRequest::Complete {
                command_id,
                failure,
            })
        }
        "update_upload_file_write" | "update_upload_directory_write" => {
            let command_id = command_id(&mut f)?;
            let data = {
                let node = f.need(c, "args", "args")?;
                c.bytes("args", node)?
            };
            from_worker(if op == "update_upload_file_write" {
                WorkerRequest::UploadFileWrite { command_id, data }
            } else {
                WorkerRequest::UploadDirectoryWrite { command_id, data }
            })
        }
        "update_upload_file_close" => from_worker(WorkerRequest::UploadFileClose {
            command_id: command_id(&mut f)?,
        }),
        "update_upload_directory_unpack" => from_worker(WorkerRequest::UploadDirectoryUnpack {
            command_id: command_id(&mut f)?,
        }),
        "update_read_file_close" => from_worker(WorkerRequest::ReadFileClose {
            command_id: command_id(&mut f)?,
        }),
        "update_upload_file_utime" => {
            let command_id = command_id(&mut f)?;
            let a = f.need(c, "access_time", "access_time")?;
            let m = f.need(c, "modified_time", "modified_time")?;
            from_worker(WorkerRequest::UploadFileUtime {
                command_id,
                access_time: c.f64("access_time", a)?,
                modified_time: c.f64("modified_time", m)?,
            })
        }
        "update_read_file" => {
            let command_id = command_id(&mut f)?;
            let node = f.need(c, "length", "length")?;
            from_worker(WorkerRequest::ReadFile {
                command_id,
                length: c.u64("length", node)?,
            })
        }
        _ => Ok(Message::Unknown { op, seq }),
    }
}
