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
        self.owed
            .remove(&token.seq)
            .then_some(Message::Response(Response {
                seq: token.seq,
                outcome,
            }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandLine;
    use crate::command::{DownloadFileArgs, ShellArgs, UploadFileArgs};

    fn seq(n: u64) -> SeqNumber {
        SeqNumber::new(n)
    }

    fn id(s: &str) -> CommandId {
        CommandId::new(s)
    }

    fn from_worker(n: u64, request: WorkerRequest) -> Message {
        Message::FromWorker {
            seq: seq(n),
            request,
        }
    }

    fn response(n: u64, outcome: Outcome) -> Message {
        Message::Response(Response {
            seq: seq(n),
            outcome,
        })
    }

    fn shell() -> Command {
        Command::Shell(Box::new(ShellArgs::new(
            "/w",
            CommandLine::Shell("true".into()),
        )))
    }

    fn upload() -> Command {
        Command::UploadFile(UploadFileArgs {
            path: "/w/f".into(),
            blocksize: 16,
            maxsize: None,
            keepstamp: Some(true),
        })
    }

    fn download() -> Command {
        Command::DownloadFile(DownloadFileArgs {
            path: "/w/f".into(),
            blocksize: 16,
            maxsize: None,
            mode: None,
        })
    }

    /// Feeds a worker request and answers it at once.
    fn accept(s: &mut MasterSession, msg: Message) -> Result<WorkerRequest, DecodeError> {
        match s.receive(msg)? {
            MasterEvent::Request { token, request } => {
                assert!(s.respond(token, Outcome::nil()).is_some());
                Ok(request)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seqs_count_from_zero_and_responses_are_typed() {
        let mut s = MasterSession::new();
        assert_eq!(s.print("attached").seq(), seq(0));
        assert_eq!(s.get_worker_info().seq(), seq(1));
        assert_eq!(s.keepalive().seq(), seq(2));
        assert_eq!(
            s.pending().map(|(n, _)| n.get()).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Out of order, as the worker handles requests concurrently.
        let ev = s.receive(response(2, Outcome::nil())).unwrap();
        assert_eq!(
            ev,
            MasterEvent::Answered {
                seq: seq(2),
                request: Sent::Keepalive,
                reply: Reply::Ok(Value::Nil)
            }
        );
        let info = WorkerInfo {
            basedir: Some("/srv/w".into()),
            ..WorkerInfo::default()
        };
        let ev = s
            .receive(response(1, Outcome::Ok(info.to_value())))
            .unwrap();
        assert!(
            matches!(ev, MasterEvent::Answered { reply: Reply::WorkerInfo(i), .. } if *i == info)
        );
        // A response for a request already answered is refused.
        assert_eq!(
            s.receive(response(1, Outcome::nil())),
            Err(DecodeError::UnknownSeq { seq: seq(1) })
        );
        assert_eq!(s.pending().count(), 1);
    }

    #[test]
    fn malformed_worker_info_is_an_error_with_the_seq() {
        let mut s = MasterSession::new();
        let _ = s.get_worker_info();
        let err = s
            .receive(response(0, Outcome::Ok(Value::Str("x".into()))))
            .unwrap_err();
        assert!(matches!(err, DecodeError::WrongType { seq: Some(n), .. } if n == seq(0)));
        assert_eq!(err.answerable_seq(), None);
    }

    #[test]
    fn worker_can_only_address_this_connections_commands() {
        let mut s = MasterSession::new();
        let (a, _) = s.start_command(None, shell());
        assert_eq!(a, id("0"));
        // Updates before the start_command response are fine.
        accept(
            &mut s,
            from_worker(
                0,
                WorkerRequest::Update {
                    command_id: a.clone(),
                    entries: vec![],
                },
            ),
        )
        .unwrap();
        let err = s
            .receive(from_worker(
                1,
                WorkerRequest::Update {
                    command_id: id("7"),
                    entries: vec![],
                },
            ))
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::ForeignCommand { ref command_id, .. } if *command_id == id("7"))
        );
        // The worker is owed an exception for it.
        let answer = s.reject(&err).unwrap();
        assert!(
            matches!(answer, Message::Response(Response { seq: n, outcome: Outcome::Exception(_) }) if n == seq(1))
        );
        // After complete, the id is no longer the worker's to use.
        accept(
            &mut s,
            from_worker(
                2,
                WorkerRequest::Complete {
                    command_id: a.clone(),
                    failure: None,
                },
            ),
        )
        .unwrap();
        assert!(matches!(
            s.receive(from_worker(
                3,
                WorkerRequest::Update {
                    command_id: a.clone(),
                    entries: vec![]
                }
            )),
            Err(DecodeError::ForeignCommand { .. })
        ));
        assert_eq!(s.active_commands().count(), 0);
        // Nothing to interrupt either.
        assert!(s.interrupt_command(&a, "stop", None).is_none());
    }

    #[test]
    fn transfer_ops_need_the_right_command_in_the_right_order() {
        let mut s = MasterSession::new();
        let (sh, _) = s.start_command(None, shell());
        let (up, _) = s.start_command(None, upload());
        let (down, _) = s.start_command(None, download());
        let write = |c: &CommandId| WorkerRequest::UploadFileWrite {
            command_id: c.clone(),
            data: b"xx".to_vec(),
        };
        assert!(matches!(
            s.receive(from_worker(0, write(&sh))),
            Err(DecodeError::WrongTransfer {
                kind: CommandKind::Shell,
                ..
            })
        ));
        assert!(matches!(
            s.receive(from_worker(
                0,
                WorkerRequest::ReadFile {
                    command_id: up.clone(),
                    length: 4
                }
            )),
            Err(DecodeError::WrongTransfer {
                kind: CommandKind::UploadFile,
                ..
            })
        ));
        // utime only after close.
        assert!(matches!(
            s.receive(from_worker(
                0,
                WorkerRequest::UploadFileUtime {
                    command_id: up.clone(),
                    access_time: 1.0,
                    modified_time: 2.0
                }
            )),
            Err(DecodeError::TransferOutOfOrder { .. })
        ));
        accept(&mut s, from_worker(0, write(&up))).unwrap();
        accept(&mut s, from_worker(1, write(&up))).unwrap();
        accept(
            &mut s,
            from_worker(
                2,
                WorkerRequest::UploadFileClose {
                    command_id: up.clone(),
                },
            ),
        )
        .unwrap();
        assert!(matches!(
            s.receive(from_worker(3, write(&up))),
            Err(DecodeError::TransferOutOfOrder { .. })
        ));
        assert!(matches!(
            s.receive(from_worker(
                3,
                WorkerRequest::UploadFileClose {
                    command_id: up.clone()
                }
            )),
            Err(DecodeError::TransferOutOfOrder { .. })
        ));
        accept(
            &mut s,
            from_worker(
                3,
                WorkerRequest::UploadFileUtime {
                    command_id: up.clone(),
                    access_time: 1.0,
                    modified_time: 2.0,
                },
            ),
        )
        .unwrap();
        // Downloads: reads, then close, then no more reads.
        accept(
            &mut s,
            from_worker(
                4,
                WorkerRequest::ReadFile {
                    command_id: down.clone(),
                    length: 16,
                },
            ),
        )
        .unwrap();
        accept(
            &mut s,
            from_worker(
                5,
                WorkerRequest::ReadFileClose {
                    command_id: down.clone(),
                },
            ),
        )
        .unwrap();
        assert!(matches!(
            s.receive(from_worker(
                6,
                WorkerRequest::ReadFile {
                    command_id: down.clone(),
                    length: 16
                }
            )),
            Err(DecodeError::TransferOutOfOrder { .. })
        ));
        assert_eq!(s.command_kind(&down), Some(CommandKind::DownloadFile));
    }

    #[test]
    fn a_refused_start_forgets_the_command() {
        let mut s = MasterSession::with_command_ids_from(114);
        let (c, start) = s.start_command(Some("b1".into()), shell());
        assert_eq!(c, id("114"));
        let ev = s
            .receive(response(start.seq().get(), Outcome::Exception("no".into())))
            .unwrap();
        assert_eq!(
            ev,
            MasterEvent::Answered {
                seq: seq(0),
                request: Sent::StartCommand(c.clone()),
                reply: Reply::Exception("no".into())
            }
        );
        assert_eq!(s.command_kind(&c), None);
        assert_eq!(s.next_command_id(), 115);
    }

    #[test]
    fn each_worker_request_is_answered_exactly_once() {
        let mut s = MasterSession::new();
        let (c, _) = s.start_command(None, shell());
        let update = || WorkerRequest::Update {
            command_id: c.clone(),
            entries: vec![],
        };
        let MasterEvent::Request { token, .. } = s.receive(from_worker(0, update())).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.owed().collect::<Vec<_>>(), [seq(0)]);
        // The same seq again while still owed.
        let dup = s.receive(from_worker(0, update())).unwrap_err();
        assert!(matches!(dup, DecodeError::DuplicateSeq { .. }));
        assert_eq!(s.reject(&dup), None);
        // A refused request whose seq is owed already gets no second answer.
        let foreign = s
            .receive(from_worker(
                0,
                WorkerRequest::Complete {
                    command_id: id("9"),
                    failure: None,
                },
            ))
            .unwrap_err();
        assert_eq!(s.reject(&foreign), None);
        // A token from another session answers nothing here.
        let mut other = MasterSession::new();
        let (c2, _) = other.start_command(None, shell());
        let MasterEvent::Request {
            token: foreign_token,
            ..
        } = other
            .receive(from_worker(
                5,
                WorkerRequest::Update {
                    command_id: c2,
                    entries: vec![],
                },
            ))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.respond(foreign_token, Outcome::nil()), None);
        assert_eq!(
            s.respond(token, Outcome::nil()),
            Some(response(0, Outcome::nil()))
        );
        assert_eq!(s.owed().count(), 0);
    }

    #[test]
    fn requests_in_the_wrong_direction_and_unknown_ops() {
        let mut s = MasterSession::new();
        let err = s
            .receive(Message::FromMaster {
                seq: seq(4),
                request: MasterRequest::Keepalive,
            })
            .unwrap_err();
        assert_eq!(err.answerable_seq(), Some(seq(4)));
        let MasterEvent::UnknownOp { token, op } = s
            .receive(Message::Unknown {
                op: "hello".into(),
                seq: seq(5),
            })
            .unwrap()
        else {
            panic!()
        };
        let answer = s.respond(token, Outcome::unknown_op(&op)).unwrap();
        assert_eq!(
            answer,
            response(
                5,
                Outcome::Exception("Command hello does not exist.".into())
            )
        );

        let mut w = WorkerSession::new();
        let err = w
            .receive(from_worker(
                0,
                WorkerRequest::ReadFileClose {
                    command_id: id("1"),
                },
            ))
            .unwrap_err();
        assert!(matches!(err, DecodeError::WrongDirection { .. }));
    }

    #[test]
    fn worker_session_tracks_the_masters_commands() {
        let mut w = WorkerSession::new();
        let start = |n: u64, c: &str| Message::FromMaster {
            seq: seq(n),
            request: MasterRequest::StartCommand {
                command_id: id(c),
                builder_name: None,
                command: shell(),
            },
        };
        let WorkerEvent::Request { token, .. } = w.receive(start(0, "a")).unwrap() else {
            panic!()
        };
        // Reusing a running command's id is refused (the stock worker would overwrite it).
        let dup = w.receive(start(1, "a")).unwrap_err();
        assert!(matches!(dup, DecodeError::DuplicateCommand { .. }));
        assert!(w.reject(&dup).is_some());
        // The worker can only report on active commands.
        assert!(w
            .send(WorkerRequest::Update {
                command_id: id("zz"),
                entries: vec![]
            })
            .is_none());
        let up = w
            .send(WorkerRequest::Update {
                command_id: id("a"),
                entries: vec![],
            })
            .unwrap();
        assert_eq!(up.seq(), seq(0));
        let _ = w.respond(token, Outcome::nil()).unwrap();
        let done = w
            .send(WorkerRequest::Complete {
                command_id: id("a"),
                failure: None,
            })
            .unwrap();
        assert_eq!(done.seq(), seq(1));
        assert_eq!(w.active_commands().count(), 0);
        assert_eq!(w.pending().count(), 2);
        let ev = w.receive(response(1, Outcome::nil())).unwrap();
        assert_eq!(
            ev,
            WorkerEvent::Answered {
                seq: seq(1),
                request: WorkerSent {
                    op: "complete",
                    command_id: id("a")
                },
                reply: WorkerReply::Ok(Value::Nil)
            }
        );
        // A start answered with an exception never ran.
        let WorkerEvent::Request { token, .. } = w.receive(start(2, "b")).unwrap() else {
            panic!()
        };
        let _ = w
            .respond(token, Outcome::Exception("bad args".into()))
            .unwrap();
        assert!(w
            .send(WorkerRequest::Update {
                command_id: id("b"),
                entries: vec![]
            })
            .is_none());
    }

    #[test]
    fn read_file_answers_must_be_bytes() {
        let mut w = WorkerSession::new();
        let WorkerEvent::Request { token, .. } = w
            .receive(Message::FromMaster {
                seq: seq(0),
                request: MasterRequest::StartCommand {
                    command_id: id("d"),
                    builder_name: None,
                    command: download(),
                },
            })
            .unwrap()
        else {
            panic!()
        };
        let _ = w.respond(token, Outcome::nil());
        let ask = w
            .send(WorkerRequest::ReadFile {
                command_id: id("d"),
                length: 4,
            })
            .unwrap();
        let err = w
            .receive(response(ask.seq().get(), Outcome::Ok(Value::Bool(true))))
            .unwrap_err();
        assert!(matches!(
            err,
            DecodeError::WrongType {
                expected: "bin",
                ..
            }
        ));
    }
}
