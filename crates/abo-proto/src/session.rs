//! Per-connection bookkeeping, pure: [`MasterSession`] for abo-master, [`WorkerSession`] for
//! abo's own worker.
//!
//! A session numbers outgoing requests, remembers which are still unanswered so it can type
//! their responses, remembers which of the peer's requests it still owes an answer, and knows
//! which command ids belong to this connection. It is the one place that enforces:
//! - a peer can only address commands started on *this* connection, and only while they run
//!   (until `complete`); transfer ops only apply to the matching transfer command and come in
//!   order (writes, then close; reads, then close);
//! - every request gets exactly one response: responses are only built from a [`ReplyToken`],
//!   which the session hands out once per received request and which cannot be copied, so no
//!   stray response (which makes the stock worker drop the connection) can be produced;
//! - a response must answer one of our outstanding requests.
//!
//! It does no I/O and keeps no clock: the connection layer reads frames, calls
//! [`crate::decode`] and `receive`, acts on the event, and sends what the session returns.
//! Timeouts (e.g. a `start_command` that is never answered) are the connection's business;
//! [`MasterSession::pending`] lists what is outstanding.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, CommandKind};
use crate::error::DecodeError;
use crate::ids::{CommandId, SeqNumber};
use crate::info::{WorkerInfo, WorkerSettings};
use crate::message::{MasterRequest, Message, Outcome, Response, WorkerRequest};
use crate::value::Value;

/// The right, and duty, to answer one request received on a session.
///
/// Handed out once per request by `receive`; consumed by `respond`. Not `Clone`, so a request
/// cannot be answered twice.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "every request needs a response: pass the token to respond()"]
pub struct ReplyToken {
    seq: SeqNumber,
    /// For a `start_command` received by a worker: the command, dropped again if the
    /// response is an exception (the command never started).
    started: Option<CommandId>,
}

impl ReplyToken {
    /// The seq_number of the request to answer.
    pub fn seq(&self) -> SeqNumber {
        self.seq
    }
}

/// Seq_number bookkeeping shared by both sides.
#[derive(Debug)]
struct SeqBook<K> {
    next: u64,
    /// Our requests, awaiting the peer's response.
    pending: BTreeMap<SeqNumber, K>,
    /// The peer's requests, awaiting our response.
    owed: BTreeSet<SeqNumber>,
}

impl<K> SeqBook<K> {
    fn new() -> SeqBook<K> {
        SeqBook {
            next: 0,
            pending: BTreeMap::new(),
            owed: BTreeSet::new(),
        }
    }

    fn send(&mut self, what: K) -> SeqNumber {
        let seq = SeqNumber::new(self.next);
        // u64 seq_numbers cannot run out on one connection; saturate rather than wrap.
        self.next = self.next.saturating_add(1);
        self.pending.insert(seq, what);
        seq
    }

    fn answered(&mut self, seq: SeqNumber) -> Result<K, DecodeError> {
        self.pending
            .remove(&seq)
            .ok_or(DecodeError::UnknownSeq { seq })
    }

    fn check_fresh(&self, op: &str, seq: SeqNumber) -> Result<(), DecodeError> {
        if self.owed.contains(&seq) {
            return Err(DecodeError::DuplicateSeq {
                op: op.to_owned(),
                seq,
            });
        }
        Ok(())
    }

    fn owe(&mut self, seq: SeqNumber, started: Option<CommandId>) -> ReplyToken {
        self.owed.insert(seq);
        ReplyToken { seq, started }
    }

    fn respond(&mut self, token: &ReplyToken, outcome: Outcome) -> Option<Message> {
        self.owed.remove(&token.seq).then(|| {
            Message::Response(Response {
                seq: token.seq,
                outcome,
            })
        })
    }

    fn reject(&mut self, err: &DecodeError) -> Option<Message> {
        let seq = err.answerable_seq()?;
        // If the seq is owed already, an answer to it is on its way; a second would be stray.
        if self.owed.contains(&seq) {
            return None;
        }
        Some(Message::Response(Response {
            seq,
            outcome: Outcome::Exception(err.to_string()),
        }))
    }
}

/// What a master request was, remembered until its response arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// `print`
    Print,
    /// `keepalive`
    Keepalive,
    /// `get_worker_info`
    GetWorkerInfo,
    /// `set_worker_settings`
    SetWorkerSettings,
    /// `start_command` for this command.
    StartCommand(CommandId),
    /// `interrupt_command` for this command.
    InterruptCommand(CommandId),
    /// `shutdown`
    Shutdown,
}

/// A typed answer to one of the master's requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The request succeeded; the result (nil from the stock worker for everything but
    /// `get_worker_info`).
    Ok(Value),
    /// The answer to `get_worker_info`.
    WorkerInfo(Box<WorkerInfo>),
    /// The worker answered with an exception. For `start_command` the command never
    /// started, and the session has forgotten it.
    Exception(String),
}

/// What a frame from the worker means for the master.
#[derive(Debug, PartialEq)]
pub enum MasterEvent {
    /// The worker answered the master's request `seq`.
    Answered {
        /// The request's seq_number.
        seq: SeqNumber,
        /// What the request was.
        request: Sent,
        /// The answer.
        reply: Reply,
    },
    /// A worker request about one of this connection's commands; answer it with
    /// [`MasterSession::respond`].
    Request {
        /// The token to answer with.
        token: ReplyToken,
        /// The request.
        request: WorkerRequest,
    },
    /// An op this crate does not know: answer with [`Outcome::unknown_op`].
    UnknownOp {
        /// The token to answer with.
        token: ReplyToken,
        /// The op.
        op: String,
    },
}

/// Where a transfer command is in its sequence of ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Writes (or reads) may come.
    Open,
    /// `close`/`unpack`/`read_file_close` came; only `utime` (upload_file), `update` and
    /// `complete` may follow.
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    kind: CommandKind,
    phase: Phase,
}

/// The master's side of one worker connection.
///
/// See the crate documentation for a whole exchange.
#[derive(Debug)]
pub struct MasterSession {
    seqs: SeqBook<Sent>,
    next_command: u64,
    commands: BTreeMap<CommandId, Active>,
}

impl Default for MasterSession {
    fn default() -> MasterSession {
        MasterSession::new()
    }
}

impl MasterSession {
    /// A fresh connection: both seq counters at 0, no commands, command ids from `"0"`.
    pub fn new() -> MasterSession {
        MasterSession::with_command_ids_from(0)
    }

    /// A fresh connection whose command ids count from `first`: a master that keeps one
    /// counter across connections (as the stock master does) gets ids that are unique in its
    /// logs, not only per connection.
    pub fn with_command_ids_from(first: u64) -> MasterSession {
        MasterSession {
            seqs: SeqBook::new(),
            next_command: first,
            commands: BTreeMap::new(),
        }
    }

    /// The number the next command id will carry.
    pub fn next_command_id(&self) -> u64 {
        self.next_command
    }

    fn request(&mut self, sent: Sent, request: MasterRequest) -> Message {
        let seq = self.seqs.send(sent);
        Message::FromMaster { seq, request }
    }

    /// A `print` request.
    pub fn print(&mut self, message: impl Into<String>) -> Message {
        self.request(
            Sent::Print,
            MasterRequest::Print {
                message: message.into(),
            },
        )
    }

    /// A `keepalive` request (send one every 30–60 s: the worker never sends anything on
    /// its own).
    pub fn keepalive(&mut self) -> Message {
        self.request(Sent::Keepalive, MasterRequest::Keepalive)
    }

    /// A `get_worker_info` request; its answer is [`Reply::WorkerInfo`].
    pub fn get_worker_info(&mut self) -> Message {
        self.request(Sent::GetWorkerInfo, MasterRequest::GetWorkerInfo)
    }

    /// A `set_worker_settings` request.
    pub fn set_worker_settings(&mut self, settings: WorkerSettings) -> Message {
        self.request(
            Sent::SetWorkerSettings,
            MasterRequest::SetWorkerSettings(settings),
        )
    }

    /// A `shutdown` request: the worker process exits for good.
    pub fn shutdown(&mut self) -> Message {
        self.request(Sent::Shutdown, MasterRequest::Shutdown)
    }

    /// A `start_command` request with a fresh command id (`"0"`, `"1"`, ...).
    ///
    /// The command is registered *before* the message is returned, because the worker's
    /// `update`s and `complete` for fast commands arrive before its response.
    pub fn start_command(
        &mut self,
        builder_name: Option<String>,
        command: Command,
    ) -> (CommandId, Message) {
        let command_id = CommandId::new(self.next_command.to_string());
        self.next_command = self.next_command.saturating_add(1);
        self.commands.insert(
            command_id.clone(),
            Active {
                kind: command.kind(),
                phase: Phase::Open,
            },
        );
        let msg = self.request(
            Sent::StartCommand(command_id.clone()),
            MasterRequest::StartCommand {
                command_id: command_id.clone(),
                builder_name,
                command,
            },
        );
        (command_id, msg)
    }

    /// An `interrupt_command` request, or `None` if `command_id` is not an active command of
    /// this connection (there is nothing to interrupt).
    pub fn interrupt_command(
        &mut self,
        command_id: &CommandId,
        why: impl Into<String>,
        builder_name: Option<String>,
    ) -> Option<Message> {
        if !self.commands.contains_key(command_id) {
            return None;
        }
        Some(self.request(
            Sent::InterruptCommand(command_id.clone()),
            MasterRequest::InterruptCommand {
                command_id: command_id.clone(),
                why: why.into(),
                builder_name,
            },
        ))
    }

    /// The response to a worker request. `None` only if the token belongs to another
    /// session (its request is not owed here).
    pub fn respond(&mut self, token: ReplyToken, outcome: Outcome) -> Option<Message> {
        self.seqs.respond(&token, outcome)
    }

    /// The exception response owed for a request that `decode` or `receive` refused, if the
    /// refused frame was a request whose seq_number could be read (see
    /// [`DecodeError::answerable_seq`]). Call it once per error.
    pub fn reject(&mut self, err: &DecodeError) -> Option<Message> {
        self.seqs.reject(err)
    }

    /// Takes in a decoded frame from the worker.
    ///
    /// On `Err`, nothing was recorded; answer with [`MasterSession::reject`] and decide
    /// whether to drop the connection.
    pub fn receive(&mut self, msg: Message) -> Result<MasterEvent, DecodeError> {
        match msg {
            Message::Response(Response { seq, outcome }) => {
                let request = self.seqs.answered(seq)?;
                let reply = match (outcome, &request) {
                    (Outcome::Exception(text), Sent::StartCommand(id)) => {
                        // The command never started; nothing more will come for it.
                        self.commands.remove(id);
                        Reply::Exception(text)
                    }
                    (Outcome::Exception(text), _) => Reply::Exception(text),
                    (Outcome::Ok(v), Sent::GetWorkerInfo) => {
                        Reply::WorkerInfo(Box::new(WorkerInfo::from_result(Some(seq), v)?))
                    }
                    (Outcome::Ok(v), _) => Reply::Ok(v),
                };
                Ok(MasterEvent::Answered {
                    seq,
                    request,
                    reply,
                })
            }
            Message::FromWorker { seq, request } => {
                self.seqs.check_fresh(request.op(), seq)?;
                self.check_worker_request(seq, &request)?;
                let token = self.seqs.owe(seq, None);
                Ok(MasterEvent::Request { token, request })
            }
            Message::FromMaster { seq, request } => Err(DecodeError::WrongDirection {
                op: request.op().to_owned(),
                seq,
            }),
            Message::Unknown { op, seq } => {
                self.seqs.check_fresh(&op, seq)?;
                let token = self.seqs.owe(seq, None);
                Ok(MasterEvent::UnknownOp { token, op })
            }
        }
    }

    fn check_worker_request(
        &mut self,
        seq: SeqNumber,
        request: &WorkerRequest,
    ) -> Result<(), DecodeError> {
        let op = request.op();
        let command_id = request.command_id();
        let Some(active) = self.commands.get_mut(command_id) else {
            return Err(DecodeError::ForeignCommand {
                op: op.to_owned(),
                seq,
                command_id: command_id.clone(),
            });
        };
        let wrong = |kind| DecodeError::WrongTransfer {
            op: op.to_owned(),
            seq,
            command_id: command_id.clone(),
            kind,
        };
        let out_of_order = |reason| DecodeError::TransferOutOfOrder {
            op: op.to_owned(),
            seq,
            command_id: command_id.clone(),
            reason,
        };
        // (the kind this op needs, the phase it needs, the phase it moves to)
        let step = match request {
            WorkerRequest::Update { .. } => None,
            WorkerRequest::Complete { .. } => {
                self.commands.remove(command_id);
                return Ok(());
            }
            WorkerRequest::UploadFileWrite { .. } => {
                Some((CommandKind::UploadFile, Phase::Open, Phase::Open))
            }
            WorkerRequest::UploadFileClose { .. } => {
                Some((CommandKind::UploadFile, Phase::Open, Phase::Closed))
            }
            WorkerRequest::UploadFileUtime { .. } => {
                Some((CommandKind::UploadFile, Phase::Closed, Phase::Closed))
            }
            WorkerRequest::UploadDirectoryWrite { .. } => {
                Some((CommandKind::UploadDirectory, Phase::Open, Phase::Open))
            }
            WorkerRequest::UploadDirectoryUnpack { .. } => {
                Some((CommandKind::UploadDirectory, Phase::Open, Phase::Closed))
            }
            WorkerRequest::ReadFile { .. } => {
                Some((CommandKind::DownloadFile, Phase::Open, Phase::Open))
            }
            WorkerRequest::ReadFileClose { .. } => {
                Some((CommandKind::DownloadFile, Phase::Open, Phase::Closed))
            }
        };
        if let Some((kind, needs, then)) = step {
            if active.kind != kind {
                return Err(wrong(active.kind));
            }
            if active.phase != needs {
                return Err(out_of_order(match needs {
                    Phase::Open => "the transfer was already closed",
                    Phase::Closed => "the file is not closed yet",
                }));
            }
            active.phase = then;
        }
        Ok(())
    }

    /// The kind of an active command of this connection.
    pub fn command_kind(&self, command_id: &CommandId) -> Option<CommandKind> {
        self.commands.get(command_id).map(|a| a.kind)
    }

    /// Commands started and not yet complete: on disconnect these are lost (the stock worker
    /// keeps running them, and forgets their ids).
    pub fn active_commands(&self) -> impl Iterator<Item = (&CommandId, CommandKind)> {
        self.commands.iter().map(|(id, a)| (id, a.kind))
    }

    /// The master's requests still awaiting a response, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = (SeqNumber, &Sent)> {
        self.seqs.pending.iter().map(|(s, k)| (*s, k))
    }

    /// The worker's requests the master has not answered yet.
    pub fn owed(&self) -> impl Iterator<Item = SeqNumber> + '_ {
        self.seqs.owed.iter().copied()
    }
}

/// What a worker request was, remembered until the master's response arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSent {
    /// The op (`"update"`, `"update_read_file"`, ...).
    pub op: &'static str,
    /// The command it was about.
    pub command_id: CommandId,
}

/// A typed answer to one of the worker's requests.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerReply {
    /// The request succeeded (the master answers nil).
    Ok(Value),
    /// The answer to `update_read_file`: up to `length` bytes; empty means end of file
    /// (nil is read as empty too, which is what the stock 4.3.0 master always sends).
    Data(Vec<u8>),
    /// The master answered with an exception (for a transfer chunk: abort the transfer).
    Exception(String),
}

/// What a frame from the master means for the worker.
#[derive(Debug, PartialEq)]
pub enum WorkerEvent {
    /// A master request; answer it with [`WorkerSession::respond`]. For `start_command` the
    /// command is now active; answering with an exception forgets it again.
    Request {
        /// The token to answer with.
        token: ReplyToken,
        /// The request.
        request: MasterRequest,
    },
    /// The master answered the worker's request `seq`.
    Answered {
        /// The request's seq_number.
        seq: SeqNumber,
        /// What the request was.
        request: WorkerSent,
        /// The answer.
        reply: WorkerReply,
    },
    /// An op this crate does not know: answer with [`Outcome::unknown_op`], as the stock
    /// worker does.
    UnknownOp {
        /// The token to answer with.
        token: ReplyToken,
        /// The op.
        op: String,
    },
}

/// The worker's side of one connection (for abo's own worker).
#[derive(Debug)]
pub struct WorkerSession {
    seqs: SeqBook<WorkerSent>,
    commands: BTreeMap<CommandId, CommandKind>,
}

impl Default for WorkerSession {
    fn default() -> WorkerSession {
        WorkerSession::new()
    }
}

impl WorkerSession {
    /// A fresh connection.
    pub fn new() -> WorkerSession {
        WorkerSession {
            seqs: SeqBook::new(),
            commands: BTreeMap::new(),
        }
    }

    /// Takes in a decoded frame from the master.
    pub fn receive(&mut self, msg: Message) -> Result<WorkerEvent, DecodeError> {
        match msg {
            Message::FromMaster { seq, request } => {
                self.seqs.check_fresh(request.op(), seq)?;
                let started = match &request {
                    MasterRequest::StartCommand {
                        command_id,
                        command,
                        ..
                    } => {
                        if self.commands.contains_key(command_id) {
                            return Err(DecodeError::DuplicateCommand {
                                seq,
                                command_id: command_id.clone(),
                            });
                        }
                        self.commands.insert(command_id.clone(), command.kind());
                        Some(command_id.clone())
                    }
                    _ => None,
                };
                let token = self.seqs.owe(seq, started);
                Ok(WorkerEvent::Request { token, request })
            }
            Message::Response(Response { seq, outcome }) => {
                let request = self.seqs.answered(seq)?;
                let reply = match outcome {
                    Outcome::Exception(text) => WorkerReply::Exception(text),
                    Outcome::Ok(v) if request.op == "update_read_file" => match v {
                        Value::Bin(b) => WorkerReply::Data(b),
                        Value::Str(s) => WorkerReply::Data(s.into_bytes()),
                        Value::Nil => WorkerReply::Data(Vec::new()),
                        other => {
                            return Err(DecodeError::WrongType {
                                op: crate::message::OP_RESPONSE.to_owned(),
                                seq: Some(seq),
                                key: "result".to_owned(),
                                expected: "bin",
                                found: other.kind(),
                            })
                        }
                    },
                    Outcome::Ok(v) => WorkerReply::Ok(v),
                };
                Ok(WorkerEvent::Answered {
                    seq,
                    request,
                    reply,
                })
            }
            Message::FromWorker { seq, request } => Err(DecodeError::WrongDirection {
                op: request.op().to_owned(),
                seq,
            }),
            Message::Unknown { op, seq } => {
                self.seqs.check_fresh(&op, seq)?;
                let token = self.seqs.owe(seq, None);
                Ok(WorkerEvent::UnknownOp { token, op })
            }
        }
    }

    /// A request about one of this connection's commands, or `None` if the command is not
    /// active here (never started, or already complete). `complete` ends the command.
    pub fn send(&mut self, request: WorkerRequest) -> Option<Message> {
        let command_id = request.command_id().clone();
        self.commands.get(&command_id)?;
        if matches!(request, WorkerRequest::Complete { .. }) {
            self.commands.remove(&command_id);
        }
        let seq = self.seqs.send(WorkerSent {
            op: request.op(),
            command_id,
        });
        Some(Message::FromWorker { seq, request })
    }

    /// The response to a master request. `None` only if the token belongs to another session.
    pub fn respond(&mut self, token: ReplyToken, outcome: Outcome) -> Option<Message> {
        let failed_start = match (&token.started, &outcome) {
            (Some(id), Outcome::Exception(_)) => Some(id.clone()),
            _ => None,
        };
        let msg = self.seqs.respond(&token, outcome)?;
        if let Some(id) = failed_start {
            self.commands.remove(&id);
        }
        Some(msg)
    }

    /// The exception response owed for a refused request; see [`MasterSession::reject`].
    pub fn reject(&mut self, err: &DecodeError) -> Option<Message> {
        self.seqs.reject(err)
    }

    /// Commands started by the master and not yet complete.
    pub fn active_commands(&self) -> impl Iterator<Item = (&CommandId, CommandKind)> {
        self.commands.iter().map(|(id, k)| (id, *k))
    }

    /// The worker's requests still awaiting the master's response.
    pub fn pending(&self) -> impl Iterator<Item = (SeqNumber, &WorkerSent)> {
        self.seqs.pending.iter().map(|(s, k)| (*s, k))
    }
}
