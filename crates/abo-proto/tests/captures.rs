//! Every frame of every capture: decode, re-encode, compare with the captured bytes; then
//! whole sessions replayed through `MasterSession` and `WorkerSession`, and the stock
//! worker's odd frames one by one.

mod common;

use std::collections::HashMap;

use abo_proto::{
    decode, decode_value, encode, encode_value, CommandId, DecodeError, MasterEvent, MasterRequest,
    MasterSession, Message, Outcome, Reply, ReplyToken, Response, Sent, SeqNumber, UpdateEntry,
    Value, WorkerEvent, WorkerReply, WorkerRequest, WorkerSession,
};
use common::{all_frames, load, Dir, Frame};

/// Frames the decoder refuses, by design: each with the reason it gives.
const EXPECTED_ERRORS: &[(&str, usize, &str)] = &[
    // The fake master's deliberately broken requests (spec §3.5, §3.7).
    (
        "capture_edge.jsonl",
        17,
        "missing key seq_number in op print",
    ),
    ("capture_edge.jsonl", 19, "missing key message in op print"),
    (
        "capture_edge.jsonl",
        23,
        "missing key args.buffer_timeout in op set_worker_settings",
    ),
    (
        "capture_edge.jsonl",
        31,
        "missing key args.command in op start_command",
    ),
    (
        "capture_edge.jsonl",
        54,
        "missing key seq_number in op print",
    ),
    ("capture_edge.jsonl", 56, "missing key message in op print"),
    (
        "capture_edge.jsonl",
        60,
        "missing key args.buffer_timeout in op set_worker_settings",
    ),
    (
        "capture_edge.jsonl",
        68,
        "missing key args.command in op start_command",
    ),
    // listdir without path: the worker accepts it and fails at run time; abo refuses it.
    (
        "capture_fail.jsonl",
        14,
        "missing key args.path in op start_command",
    ),
    // PB-style obfuscated argv element: not understood in msgpack mode (spec §3.4).
    (
        "capture_fail.jsonl",
        22,
        "wrong type for key args.command[1] in op start_command: expected str, found array",
    ),
    (
        "capture_full.jsonl",
        155,
        "(command 114): unrecognized WorkerCommand 'no_such_command'",
    ),
];

fn expected_error(f: &Frame) -> Option<&'static str> {
    EXPECTED_ERRORS
        .iter()
        .find(|(file, line, _)| *file == f.file && *line == f.line)
        .map(|(_, _, e)| *e)
}

/// A msgpack value with map entries sorted and, inside `start_command` args, the entries the
/// encoder legitimately drops or adds removed: nil and empty-map values (absent and nil mean
/// the same to the worker) and the keys the worker ignores in transfer args.
fn canonical(v: &Value, in_args: bool) -> Value {
    match v {
        Value::Map(entries) => {
            let is_start = v.get("op").and_then(Value::as_str) == Some("start_command");
            let mut out: Vec<(Value, Value)> = entries
                .iter()
                .filter(|(k, val)| {
                    !in_args
                        || !(matches!(val, Value::Nil)
                            || matches!(val, Value::Map(m) if m.is_empty())
                            || matches!(k.as_str(), Some("workersrc" | "workerdest"))
                            || (k.as_str() == Some("workdir") && v.get("command").is_none()))
                })
                .map(|(k, val)| {
                    let nested = is_start && k.as_str() == Some("args");
                    (canonical(k, false), canonical(val, nested))
                })
                .collect();
            out.sort_by_key(|(k, _)| encode_value(k));
            Value::Map(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| canonical(i, false)).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_captured_frame_decodes_as_expected_and_round_trips() {
    let frames = all_frames();
    assert!(frames.len() > 500, "captures not found: {}", frames.len());
    let (mut exact, mut canonical_only, mut rebuilt) = (0, 0, 0);
    let mut errors_seen = 0;
    for f in &frames {
        let at = format!("{}:{}", f.file, f.line);
        let result = decode(&f.bytes());

        // The decoded JSON the capture tool printed must decode the same way. (Only the shape
        // is compared: scrubbed captures re-encoded their raw bytes, and a few floats differ
        // in the last digit between the two.)
        if f.raw.is_some() {
            let from_json = decode(&encode_value(&f.msg.to_value()));
            match (&result, &from_json) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(
                        (a.op(), a.seq()),
                        (b.op(), b.seq()),
                        "{at}: raw and JSON disagree"
                    )
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{at}: raw and JSON disagree"),
                _ => panic!("{at}: raw and JSON disagree: {result:?} / {from_json:?}"),
            }
        } else {
            rebuilt += 1;
        }

        let m = match (result, expected_error(f)) {
            (Ok(m), None) => m,
            (Err(e), Some(want)) => {
                assert_eq!(e.to_string(), want, "{at}");
                errors_seen += 1;
                continue;
            }
            (Ok(m), Some(want)) => panic!("{at}: decoded {m:?}, expected error {want}"),
            (Err(e), None) => panic!("{at}: {e}"),
        };

        let again = encode(&m);
        assert_eq!(
            decode(&again).as_ref(),
            Ok(&m),
            "{at}: decode(encode(m)) != m"
        );

        let Some(raw) = &f.raw else { continue };
        if &again == raw {
            exact += 1;
            continue;
        }
        // The worker's frames always come back byte for byte.
        assert_eq!(f.dir, Dir::ToWorker, "{at}: worker frame not byte-exact");
        // The masters' start_command args differ only in key order and in keys the
        // worker ignores.
        assert_eq!(m.op(), "start_command", "{at}: not byte-exact");
        let (a, b) = (
            decode_value(raw, &Default::default()).expect("raw"),
            decode_value(&again, &Default::default()).expect("again"),
        );
        assert_eq!(canonical(&a, false), canonical(&b, false), "{at}");
        canonical_only += 1;
    }
    eprintln!(
        "{} frames: {exact} byte-exact, {canonical_only} equal up to key order and ignored keys, \
         {rebuilt} rebuilt from JSON, {errors_seen} refused by design",
        frames.len()
    );
    assert_eq!(errors_seen, EXPECTED_ERRORS.len());
    assert!(exact > 400, "only {exact} byte-exact frames");
    assert!(
        canonical_only <= 12,
        "{canonical_only} frames only canonically equal"
    );
    assert!(rebuilt < 100, "{rebuilt} frames rebuilt from JSON");
}

/// Splits a capture into its WebSocket connections.
fn connections(file: &'static str) -> Vec<Vec<Frame>> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for f in load(file) {
        if out.last().and_then(|c| c.first()).map(|first| first.conn) != Some(f.conn) {
            out.push(Vec::new());
        }
        out.last_mut().expect("pushed").push(f);
    }
    out
}

/// Replays one connection through a `WorkerSession`: the master's frames are received, and
/// every worker frame must be exactly what the session produces for the same request or
/// answer. Returns the session and the refusals met.
///
/// Where abo refuses a start_command that the stock worker ran anyway (EXPECTED_ERRORS),
/// the stock worker's frames for that command are skipped, and seq_numbers are translated
/// from the stock worker's counter to the session's.
fn replay_worker(frames: &[Frame]) -> (WorkerSession, Vec<(usize, DecodeError)>) {
    let mut s = WorkerSession::new();
    let mut tokens: HashMap<SeqNumber, ReplyToken> = HashMap::new();
    let mut rejected: HashMap<SeqNumber, (usize, Message)> = HashMap::new();
    let mut refused_commands: Vec<String> = Vec::new();
    // Stock worker seq -> session seq, and the stock worker seqs that were skipped.
    let mut seq_map: HashMap<SeqNumber, SeqNumber> = HashMap::new();
    let mut skipped: Vec<SeqNumber> = Vec::new();
    let mut errors = Vec::new();
    for f in frames {
        let at = format!("{}:{}", f.file, f.line);
        match f.dir {
            Dir::ToWorker => match decode(&f.bytes()) {
                Ok(Message::Response(r)) if skipped.contains(&r.seq) => {}
                Ok(m) => {
                    let m = match m {
                        Message::Response(r) => Message::Response(Response {
                            seq: seq_map.get(&r.seq).copied().unwrap_or(r.seq),
                            outcome: r.outcome,
                        }),
                        other => other,
                    };
                    match s.receive(m) {
                        Ok(
                            WorkerEvent::Request { token, .. }
                            | WorkerEvent::UnknownOp { token, .. },
                        ) => {
                            tokens.insert(token.seq(), token);
                        }
                        Ok(WorkerEvent::Answered { .. }) => {}
                        Err(e) => errors.push((f.line, e)),
                    }
                }
                Err(e) => {
                    if let Some(resp) = s.reject(&e) {
                        rejected.insert(resp.seq(), (f.line, resp));
                    }
                    if let Some(id) = f.msg.get("command_id").and_then(|j| j.as_str()) {
                        refused_commands.push(id.to_owned());
                    }
                    errors.push((f.line, e));
                }
            },
            Dir::ToMaster => {
                let m = decode(&f.bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
                match &m {
                    Message::Response(r) => {
                        if let Some(token) = tokens.remove(&r.seq) {
                            let ours = s.respond(token, r.outcome.clone());
                            assert_eq!(ours.as_ref(), Some(&m), "{at}");
                        } else {
                            let (line, ours) = rejected.remove(&r.seq).unwrap_or_else(|| {
                                panic!("{at}: the worker answered {}, which abo would not", r.seq)
                            });
                            let Message::Response(Response {
                                outcome: Outcome::Exception(_),
                                ..
                            }) = ours
                            else {
                                panic!("{at}: {ours:?}")
                            };
                            // Both refuse (in other words), or the stock worker ran a command
                            // abo refuses by design.
                            let by_design = EXPECTED_ERRORS
                                .iter()
                                .any(|(file, l, _)| *file == f.file && *l == line);
                            assert!(
                                matches!(r.outcome, Outcome::Exception(_)) || by_design,
                                "{at}"
                            );
                        }
                    }
                    Message::FromWorker { seq, request } => {
                        if refused_commands
                            .iter()
                            .any(|id| id == request.command_id().as_str())
                        {
                            skipped.push(*seq);
                            continue;
                        }
                        let ours = s.send(request.clone()).expect("active");
                        seq_map.insert(*seq, ours.seq());
                        let expected = Message::FromWorker {
                            seq: ours.seq(),
                            request: request.clone(),
                        };
                        assert_eq!(ours, expected, "{at}");
                        if skipped.is_empty() {
                            assert_eq!(ours, m, "{at}");
                        }
                    }
                    other => panic!("{at}: worker sent {other:?}"),
                }
            }
        }
    }
    (s, errors)
}

#[test]
fn worker_session_reproduces_every_worker_frame() {
    for file in common::FILES {
        for conn in connections(file) {
            let (s, errors) = replay_worker(&conn);
            for (line, e) in &errors {
                let known = EXPECTED_ERRORS
                    .iter()
                    .any(|(f, l, _)| *f == file && l == line);
                // The only session-level refusal in the captures: the response for seq 9999.
                let stray = matches!(e, DecodeError::UnknownSeq { seq } if seq.get() == 9999);
                assert!(known || stray, "{file}:{line}: {e}");
            }
            if file != "capture_drop.jsonl" {
                assert_eq!(s.active_commands().count(), 0, "{file}");
            }
        }
    }
}

/// Replays one connection through a `MasterSession`, building each master frame with the
/// session's own constructors.
fn replay_master(frames: &[Frame]) -> MasterSession {
    let first_id = frames
        .iter()
        .find_map(|f| f.msg.get("command_id").and_then(|j| j.as_str()))
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let mut s = MasterSession::with_command_ids_from(first_id);
    let mut tokens: HashMap<SeqNumber, ReplyToken> = HashMap::new();
    for f in frames {
        let at = format!("{}:{}", f.file, f.line);
        let m = decode(&f.bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
        match f.dir {
            Dir::ToWorker => {
                let ours = match &m {
                    Message::FromMaster { request, .. } => match request.clone() {
                        MasterRequest::Print { message } => s.print(message),
                        MasterRequest::Keepalive => s.keepalive(),
                        MasterRequest::GetWorkerInfo => s.get_worker_info(),
                        MasterRequest::SetWorkerSettings(x) => s.set_worker_settings(x),
                        MasterRequest::Shutdown => s.shutdown(),
                        MasterRequest::StartCommand {
                            command_id,
                            builder_name,
                            command,
                        } => {
                            let (id, msg) = s.start_command(builder_name, command);
                            assert_eq!(id, command_id, "{at}");
                            msg
                        }
                        MasterRequest::InterruptCommand {
                            command_id,
                            why,
                            builder_name,
                        } => s
                            .interrupt_command(&command_id, why, builder_name)
                            .unwrap_or_else(|| panic!("{at}: not active")),
                    },
                    Message::Response(r) => {
                        let token = tokens.remove(&r.seq).expect("owed");
                        s.respond(token, r.outcome.clone()).expect("owed")
                    }
                    other => panic!("{at}: cannot replay {other:?}"),
                };
                assert_eq!(ours, m, "{at}");
            }
            Dir::ToMaster => match s.receive(m).unwrap_or_else(|e| panic!("{at}: {e}")) {
                MasterEvent::Request { token, .. } | MasterEvent::UnknownOp { token, .. } => {
                    tokens.insert(token.seq(), token);
                }
                MasterEvent::Answered { .. } => {}
            },
        }
    }
    assert!(tokens.is_empty());
    s
}

#[test]
fn master_session_reproduces_the_fake_masters_sessions() {
    // capture_full up to the deliberate no_such_command/bogus_op requests at its end.
    let full = connections("capture_full.jsonl").remove(0);
    let upto: Vec<Frame> = full.into_iter().filter(|f| f.line < 155).collect();
    let s = replay_master(&upto);
    assert_eq!(s.active_commands().count(), 0);
    assert_eq!(s.pending().count(), 0);
    assert_eq!(s.next_command_id(), 114);

    let s = replay_master(&connections("capture_stream.jsonl").remove(0));
    assert_eq!(s.active_commands().count(), 0);
    assert_eq!(s.pending().count(), 0);

    // The master dropped the connection while command 400 ran: it is what is lost.
    let s = replay_master(&connections("capture_drop.jsonl").remove(0));
    let lost: Vec<_> = s.active_commands().map(|(id, _)| id.clone()).collect();
    assert_eq!(lost, [CommandId::new("400")]);
}

fn frame_at(file: &'static str, line: usize) -> Message {
    let f = load(file)
        .into_iter()
        .find(|f| f.line == line)
        .expect("frame");
    decode(&f.bytes()).expect("decodes")
}

#[test]
fn update_and_complete_arrive_before_the_start_command_reply() {
    let mut s = MasterSession::with_command_ids_from(100);
    for line in [5, 8, 10] {
        // print, get_worker_info, set_worker_settings: their answers are not under test.
        let _ = frame_at("capture_full.jsonl", line);
    }
    let _ = s.print("attached");
    let _ = s.get_worker_info();
    let _ = s.set_worker_settings(Default::default());
    let Message::FromMaster {
        request: MasterRequest::StartCommand { command, .. },
        ..
    } = frame_at("capture_full.jsonl", 14)
    else {
        panic!("line 14 is start_command")
    };
    let (id, _) = s.start_command(Some("b1".into()), command);
    // Line 15: the update (frame #8), before the start_command response (line 19).
    let MasterEvent::Request { token, request } =
        s.receive(frame_at("capture_full.jsonl", 15)).expect("ours")
    else {
        panic!()
    };
    assert_eq!(request.command_id(), &id);
    let WorkerRequest::Update { entries, .. } = request else {
        panic!()
    };
    assert!(
        matches!(entries.as_slice(), [UpdateEntry::Files(f), UpdateEntry::Rc(0), UpdateEntry::Elapsed(_)] if f.len() == 5)
    );
    let _ = s.respond(token, Outcome::nil());
    let MasterEvent::Request { token, .. } = s
        .receive(frame_at("capture_full.jsonl", 17))
        .expect("complete")
    else {
        panic!()
    };
    let _ = s.respond(token, Outcome::nil());
    assert_eq!(s.active_commands().count(), 0);
    // The answers to print, get_worker_info and set_worker_settings (lines 6, 9, 11).
    for line in [6, 9, 11] {
        s.receive(frame_at("capture_full.jsonl", line))
            .expect("answer");
    }
    let ev = s
        .receive(frame_at("capture_full.jsonl", 19))
        .expect("late reply");
    assert_eq!(
        ev,
        MasterEvent::Answered {
            seq: SeqNumber::new(3),
            request: Sent::StartCommand(id),
            reply: Reply::Ok(Value::Nil),
        }
    );
}

#[test]
fn worker_info_answer_is_typed() {
    let mut s = MasterSession::new();
    let _ = s.print("attached");
    let _ = s.get_worker_info();
    s.receive(frame_at("capture_full.jsonl", 6))
        .expect("print answer");
    let MasterEvent::Answered {
        reply: Reply::WorkerInfo(info),
        ..
    } = s.receive(frame_at("capture_full.jsonl", 9)).expect("info")
    else {
        panic!("typed worker info")
    };
    assert_eq!(info.basedir.as_deref(), Some("/srv/bb/worker1"));
    assert_eq!(info.system.as_deref(), Some("posix"));
    assert!(!info.is_windows());
    assert_eq!(info.version.as_deref(), Some("4.3.0"));
    assert_eq!(info.numcpus, Some(2));
    assert_eq!(info.delete_leftover_dirs, Some(false));
    assert_eq!(info.os.get("id").map(String::as_str), Some("debian"));
    assert_eq!(
        info.info.get("host").map(String::as_str),
        Some("test host\n")
    );
    assert_eq!(info.worker_commands.len(), 14);
    assert!(!info.environ.is_empty());
    // The environment stays out of debug output.
    let shown = format!("{info:?}");
    assert!(shown.contains("variables>"), "{shown}");
    assert_eq!(
        info.environ.get("PATH").map(String::as_str),
        Some("/usr/local/bin:/usr/bin:/bin")
    );
    assert!(
        !shown.contains("PATH") && !shown.contains("/usr/local/bin"),
        "{shown}"
    );
}

#[test]
fn rc_can_be_missing_and_complete_carries_the_failure() {
    // listdir without path: only `elapsed`, then a failed complete (capture_fail).
    let frames = load("capture_fail.jsonl");
    let mut saw = false;
    for f in frames.iter().filter(|f| f.dir == Dir::ToMaster) {
        if let Ok(Message::FromWorker {
            request:
                WorkerRequest::Update {
                    command_id,
                    entries,
                },
            ..
        }) = decode(&f.bytes())
        {
            if command_id.as_str() == "500" {
                assert!(entries.iter().all(|e| !matches!(e, UpdateEntry::Rc(_))));
                assert!(matches!(entries.as_slice(), [UpdateEntry::Elapsed(_)]));
                saw = true;
            }
        }
        if let Ok(Message::FromWorker {
            request:
                WorkerRequest::Complete {
                    command_id,
                    failure,
                },
            ..
        }) = decode(&f.bytes())
        {
            if command_id.as_str() == "500" {
                let failure = failure.expect("failure text");
                assert!(failure.starts_with("[Failure instance: Traceback: <class 'KeyError'>"));
            }
        }
    }
    assert!(saw);
}

#[test]
fn unknown_ops_are_typed_and_answered_like_the_stock_worker() {
    // M->W {"op":"bogus_op","seq_number":21} and the worker's answer.
    let m = frame_at("capture_full.jsonl", 174);
    assert_eq!(
        m,
        Message::Unknown {
            op: "bogus_op".into(),
            seq: SeqNumber::new(21)
        }
    );
    let Message::Response(r) = frame_at("capture_full.jsonl", 175) else {
        panic!()
    };
    assert_eq!(r.outcome, Outcome::unknown_op("bogus_op"));
    // And the encoding of an Unknown message is the captured frame.
    let raw = load("capture_full.jsonl")
        .into_iter()
        .find(|f| f.line == 174)
        .and_then(|f| f.raw)
        .expect("raw");
    assert_eq!(encode(&m), raw);
}

#[test]
fn unknown_command_is_refused_with_the_stock_workers_words() {
    let f = load("capture_full.jsonl")
        .into_iter()
        .find(|f| f.line == 155)
        .expect("frame");
    let err = decode(&f.bytes()).unwrap_err();
    let mut w = WorkerSession::new();
    let answer = w.reject(&err).expect("answerable");
    // The stock worker's response, line 156, is the same message.
    assert_eq!(answer, frame_at("capture_full.jsonl", 156));
}

#[test]
fn responses_for_unknown_seqs_are_refused_not_answered() {
    // capture_edge line 35: the master's stray response for seq 9999.
    let m = frame_at("capture_edge.jsonl", 35);
    assert_eq!(m.seq(), SeqNumber::new(9999));
    let mut w = WorkerSession::new();
    let err = w.receive(m.clone()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownSeq {
            seq: SeqNumber::new(9999)
        }
    );
    assert_eq!(err.answerable_seq(), None);
    assert_eq!(w.reject(&err), None);
    let mut s = MasterSession::new();
    assert!(matches!(s.receive(m), Err(DecodeError::UnknownSeq { .. })));
}

#[test]
fn refused_master_requests_get_an_exception_for_their_seq() {
    // print without message (seq 3) is answerable; print without seq_number is not.
    let mut w = WorkerSession::new();
    let edge = load("capture_edge.jsonl");
    let at = |line| edge.iter().find(|f| f.line == line).expect("frame").bytes();
    let missing_message = decode(&at(19)).unwrap_err();
    let answer = w.reject(&missing_message).expect("answerable");
    assert!(
        matches!(answer, Message::Response(Response { seq, outcome: Outcome::Exception(_) }) if seq.get() == 3)
    );
    let no_seq = decode(&at(17)).unwrap_err();
    assert_eq!(w.reject(&no_seq), None);
}

#[test]
fn str_family_file_data_is_taken_as_raw_bytes() {
    // An upload chunk as msgpack-python 0.6 packs it: `bytes` as str8, not valid UTF-8.
    let mut frame = vec![0x84];
    frame.extend(b"\xa2op\xb8update_upload_file_write");
    frame.extend(b"\xa4args\xd9\x04\xff\xfe\x00x");
    frame.extend(b"\xaacommand_id\xa11\xaaseq_number\x05");
    let m = decode(&frame).expect("liberal");
    assert_eq!(
        m,
        Message::FromWorker {
            seq: SeqNumber::new(5),
            request: WorkerRequest::UploadFileWrite {
                command_id: CommandId::new("1"),
                data: vec![0xff, 0xfe, 0x00, b'x'],
            },
        }
    );
    // Re-encoded as bin, which is what msgpack-python 1.x would send.
    let again = encode(&m);
    assert!(again.windows(4).any(|w| w == [0xc4, 0x04, 0xff, 0xfe]));
}

#[test]
fn read_file_answers_become_data_whatever_the_master_packs() {
    // The stock master answers update_read_file with nil (its bug): that reads as EOF.
    for (result, want) in [
        (Value::Bin(b"abc".to_vec()), b"abc".to_vec()),
        (Value::Str("abc".into()), b"abc".to_vec()),
        (Value::Nil, Vec::new()),
    ] {
        let mut w = WorkerSession::new();
        let Ok(WorkerEvent::Request { token, .. }) = w.receive(Message::FromMaster {
            seq: SeqNumber::new(0),
            request: MasterRequest::StartCommand {
                command_id: CommandId::new("7"),
                builder_name: None,
                command: abo_proto::Command::DownloadFile(abo_proto::DownloadFileArgs {
                    path: "/w/f".into(),
                    blocksize: 16,
                    maxsize: None,
                    mode: None,
                }),
            },
        }) else {
            panic!()
        };
        let _ = w.respond(token, Outcome::nil());
        let ask = w
            .send(WorkerRequest::ReadFile {
                command_id: CommandId::new("7"),
                length: 16,
            })
            .expect("active");
        let answer = Message::Response(Response {
            seq: ask.seq(),
            outcome: Outcome::Ok(result),
        });
        let ev = w
            .receive(decode(&encode(&answer)).expect("decodes"))
            .expect("ours");
        assert!(
            matches!(ev, WorkerEvent::Answered { reply: WorkerReply::Data(d), .. } if d == want)
        );
    }
}
