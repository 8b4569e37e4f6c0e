//! A table of malformed frames with the error each must produce: never a panic, always a
//! reason precise enough to log.

use abo_proto::{
    decode, decode_value, decode_with, encode_value, DecodeError, Int, Limits, Malformed, Message,
    SeqNumber, Value, ValueKind,
};

fn s(x: &str) -> Value {
    Value::str(x)
}

fn i(n: i64) -> Value {
    Value::Int(Int::from(n))
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn frame(entries: &[(&str, Value)]) -> Vec<u8> {
    encode_value(&map(entries))
}

fn start(name: &str, args: Value) -> Vec<u8> {
    frame(&[
        ("op", s("start_command")),
        ("command_id", s("9")),
        ("command_name", s(name)),
        ("args", args),
        ("seq_number", i(4)),
    ])
}

fn update(args: Value) -> Vec<u8> {
    frame(&[
        ("op", s("update")),
        ("args", args),
        ("command_id", s("9")),
        ("seq_number", i(2)),
    ])
}

fn seq(n: u64) -> Option<SeqNumber> {
    Some(SeqNumber::new(n))
}

type Check = fn(&DecodeError) -> bool;

#[test]
fn malformed_frames_give_precise_errors() {
    let lines =
        |text: &str| Value::Array(vec![s(text), Value::Array(vec![]), Value::Array(vec![])]);
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("empty frame", vec![], |e| {
            matches!(
                e,
                DecodeError::Malformed {
                    offset: 0,
                    reason: Malformed::Truncated
                }
            )
        }),
        ("reserved byte", vec![0xc1], |e| {
            matches!(
                e,
                DecodeError::Malformed {
                    reason: Malformed::ReservedByte,
                    ..
                }
            )
        }),
        ("ext type", vec![0xd4, 0x01, 0x00], |e| {
            matches!(
                e,
                DecodeError::Malformed {
                    reason: Malformed::ExtType,
                    ..
                }
            )
        }),
        ("two values", vec![0x80, 0x80], |e| {
            matches!(
                e,
                DecodeError::Malformed {
                    offset: 1,
                    reason: Malformed::TrailingBytes
                }
            )
        }),
        ("truncated str", vec![0x81, 0xa2, b'o'], |e| {
            matches!(
                e,
                DecodeError::Malformed {
                    reason: Malformed::Truncated,
                    ..
                }
            )
        }),
        (
            "map32 claiming 2^32-1 entries",
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            |e| {
                matches!(
                    e,
                    DecodeError::Malformed {
                        reason: Malformed::Truncated,
                        ..
                    }
                )
            },
        ),
        (
            "nesting too deep",
            [vec![0x91; 40], vec![0xc0]].concat(),
            |e| {
                matches!(
                    e,
                    DecodeError::Malformed {
                        reason: Malformed::TooDeep,
                        ..
                    }
                )
            },
        ),
        (
            "not a map",
            encode_value(&Value::Array(vec![s("op")])),
            |e| {
                matches!(
                    e,
                    DecodeError::NotAMap {
                        found: ValueKind::Array
                    }
                )
            },
        ),
        (
            "int key",
            encode_value(&Value::Map(vec![(i(1), i(2))])),
            |e| {
                matches!(
                    e,
                    DecodeError::NonStringKey {
                        found: ValueKind::Int
                    }
                )
            },
        ),
        (
            "duplicate op",
            frame(&[("op", s("print")), ("op", s("print"))]),
            |e| matches!(e, DecodeError::DuplicateKey { key } if key == "op"),
        ),
        ("no op", frame(&[("seq_number", i(1))]), |e| {
            matches!(e, DecodeError::MissingOp)
        }),
        (
            "op not a str",
            frame(&[("op", i(3)), ("seq_number", i(1))]),
            |e| matches!(e, DecodeError::WrongType { key, expected: "str", found: ValueKind::Int, .. } if key == "op"),
        ),
        (
            "no seq_number",
            frame(&[("op", s("keepalive"))]),
            |e| matches!(e, DecodeError::MissingKey { op, seq: None, key } if op == "keepalive" && key == "seq_number"),
        ),
        (
            "negative seq_number",
            frame(&[("op", s("keepalive")), ("seq_number", i(-1))]),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "seq_number"),
        ),
        (
            "seq_number as str",
            frame(&[("op", s("keepalive")), ("seq_number", s("1"))]),
            |e| matches!(e, DecodeError::WrongType { key, found: ValueKind::Str, .. } if key == "seq_number"),
        ),
        (
            "print message not UTF-8",
            {
                let mut b = vec![0x83, 0xa2, b'o', b'p', 0xa5];
                b.extend(b"print\xa7message\xa2\xff\xfe\xaaseq_number\x01");
                b
            },
            |e| matches!(e, DecodeError::InvalidValue { op, seq: Some(_), key, .. } if op == "print" && key == "message"),
        ),
        ("update args not an array", update(s("x")), |e| {
            matches!(e, DecodeError::WrongType { op, seq, key, expected: "array", .. }
                if op == "update" && *seq == Some(SeqNumber::new(2)) && key == "args")
        }),
        (
            "update entry not a pair",
            update(Value::Array(vec![Value::Array(vec![s("rc")])])),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args[0]"),
        ),
        (
            "rc as str",
            update(Value::Array(vec![Value::Array(vec![s("rc"), s("0")])])),
            |e| matches!(e, DecodeError::WrongType { key, expected: "int", .. } if key == "args[0].rc"),
        ),
        (
            "stat with 9 fields",
            update(Value::Array(vec![Value::Array(vec![
                s("stat"),
                Value::Array(vec![i(0); 9]),
            ])])),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args[0].stat"),
        ),
        (
            "stdout lines as str",
            update(Value::Array(vec![Value::Array(vec![
                s("stdout"),
                s("hi\n"),
            ])])),
            |e| matches!(e, DecodeError::WrongType { key, .. } if key == "args[0].stdout"),
        ),
        (
            "log without name",
            update(Value::Array(vec![Value::Array(vec![
                s("log"),
                Value::Array(vec![lines("x\n")]),
            ])])),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args[0].log"),
        ),
        (
            "complete args as int",
            frame(&[
                ("op", s("complete")),
                ("args", i(1)),
                ("command_id", s("9")),
                ("seq_number", i(3)),
            ]),
            |e| matches!(e, DecodeError::WrongType { op, key, .. } if op == "complete" && key == "args"),
        ),
        (
            "command_id as int",
            frame(&[
                ("op", s("complete")),
                ("args", Value::Nil),
                ("command_id", i(9)),
                ("seq_number", i(3)),
            ]),
            |e| matches!(e, DecodeError::WrongType { key, .. } if key == "command_id"),
        ),
        (
            "read_file length negative",
            frame(&[
                ("op", s("update_read_file")),
                ("length", i(-5)),
                ("command_id", s("9")),
                ("seq_number", i(3)),
            ]),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "length"),
        ),
        (
            "upload chunk as int",
            frame(&[
                ("op", s("update_upload_file_write")),
                ("args", i(5)),
                ("command_id", s("9")),
                ("seq_number", i(3)),
            ]),
            |e| matches!(e, DecodeError::WrongType { key, expected: "bin", .. } if key == "args"),
        ),
        (
            "utime missing modified_time",
            frame(&[
                ("op", s("update_upload_file_utime")),
                ("access_time", Value::Float(1.0)),
                ("command_id", s("9")),
                ("seq_number", i(3)),
            ]),
            |e| matches!(e, DecodeError::MissingKey { key, .. } if key == "modified_time"),
        ),
        (
            "unknown command",
            start("uploadFile", map(&[])),
            |e| matches!(e, DecodeError::UnknownCommand { name, .. } if name == "uploadFile"),
        ),
        (
            "compress zip",
            start(
                "upload_directory",
                map(&[
                    ("path", s("/p")),
                    ("blocksize", i(1)),
                    ("maxsize", Value::Nil),
                    ("compress", s("zip")),
                ]),
            ),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args.compress"),
        ),
        (
            "env value as int",
            start(
                "shell",
                map(&[
                    ("workdir", s("/w")),
                    ("command", s("true")),
                    ("env", map(&[("X", i(1))])),
                ]),
            ),
            |e| matches!(e, DecodeError::WrongType { key, .. } if key == "args.env.X"),
        ),
        (
            "mode beyond u32",
            start(
                "download_file",
                map(&[
                    ("path", s("/p")),
                    ("blocksize", i(1)),
                    ("maxsize", Value::Nil),
                    ("mode", i(1 << 40)),
                ]),
            ),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args.mode"),
        ),
        (
            "mkdir paths as str",
            start("mkdir", map(&[("paths", s("/p"))])),
            |e| matches!(e, DecodeError::WrongType { key, expected: "array", .. } if key == "args.paths"),
        ),
        (
            "args not a map",
            start("stat", Value::Array(vec![])),
            |e| matches!(e, DecodeError::WrongType { key, expected: "map", .. } if key == "args"),
        ),
        (
            "duplicate args key",
            start(
                "stat",
                Value::Map(vec![(s("path"), s("/a")), (s("path"), s("/b"))]),
            ),
            |e| matches!(e, DecodeError::InvalidValue { key, .. } if key == "args.path"),
        ),
        (
            "exception result not a str",
            frame(&[
                ("op", s("response")),
                ("seq_number", i(1)),
                ("result", i(1)),
                ("is_exception", Value::Bool(true)),
            ]),
            |e| matches!(e, DecodeError::WrongType { op, key, .. } if op == "response" && key == "result"),
        ),
        (
            "set_worker_settings args nil",
            frame(&[
                ("op", s("set_worker_settings")),
                ("args", Value::Nil),
                ("seq_number", i(1)),
            ]),
            |e| matches!(e, DecodeError::WrongType { key, expected: "map", found: ValueKind::Nil, .. } if key == "args"),
        ),
    ];
    for (name, bytes, check) in &cases {
        match decode(bytes) {
            Err(e) => assert!(check(&e), "{name}: unexpected error {e:?}"),
            Ok(m) => panic!("{name}: decoded {m:?}"),
        }
    }
}

#[test]
fn errors_say_whether_the_peer_is_owed_an_answer() {
    let missing = decode(&frame(&[("op", s("print")), ("seq_number", i(7))])).unwrap_err();
    assert_eq!(missing.answerable_seq(), seq(7));
    assert_eq!(missing.to_string(), "missing key message in op print");
    // A refused response is never answered: that would be a stray response.
    let bad_response = decode(&frame(&[
        ("op", s("response")),
        ("seq_number", i(1)),
        ("result", i(1)),
        ("is_exception", Value::Bool(true)),
    ]))
    .unwrap_err();
    assert_eq!(bad_response.answerable_seq(), None);
    let no_seq = decode(&frame(&[("op", s("print")), ("message", s("x"))])).unwrap_err();
    assert_eq!(no_seq.answerable_seq(), None);
    let unknown = decode(&start("no_such", map(&[]))).unwrap_err();
    assert_eq!(unknown.answerable_seq(), seq(4));
}

#[test]
fn the_size_cap_is_checked_before_decoding() {
    let limits = Limits {
        max_frame_bytes: 8,
        ..Limits::default()
    };
    // Garbage that would be Malformed: the size check comes first.
    let err = decode_with(&[0xc1; 9], &limits).unwrap_err();
    assert_eq!(err, DecodeError::TooLarge { len: 9, max: 8 });
    assert!(
        decode_with(&[0xc1; 8], &limits).is_err_and(|e| matches!(e, DecodeError::Malformed { .. }))
    );
    assert_eq!(Limits::default().max_frame_bytes, 16 * 1024 * 1024);
    let big = vec![0u8; 16 * 1024 * 1024 + 1];
    assert!(matches!(decode(&big), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn liberal_where_the_python_peers_are() {
    // Unknown op with a seq: typed, so the receiver can answer it.
    let m = decode(&frame(&[
        ("op", s("set_builder_list")),
        ("seq_number", i(5)),
    ]))
    .expect("typed");
    assert_eq!(
        m,
        Message::Unknown {
            op: "set_builder_list".into(),
            seq: SeqNumber::new(5)
        }
    );
    // Response without `result`: nil. is_exception false still counts as an exception, as for
    // the stock worker, which only checks that the key is present.
    let m = decode(&frame(&[("op", s("response")), ("seq_number", i(1))])).expect("nil");
    assert!(matches!(m, Message::Response(r) if r.outcome == abo_proto::Outcome::nil()));
    let m = decode(&frame(&[
        ("op", s("response")),
        ("seq_number", i(1)),
        ("result", s("boom")),
        ("is_exception", Value::Bool(false)),
    ]))
    .expect("exception");
    assert!(
        matches!(m, Message::Response(r) if r.outcome == abo_proto::Outcome::Exception("boom".into()))
    );
    // Unknown update keys are kept; ints where floats are expected are accepted.
    let m = decode(&update(Value::Array(vec![
        Value::Array(vec![s("got_revision"), s("abc")]),
        Value::Array(vec![s("elapsed"), i(2)]),
    ])))
    .expect("liberal update");
    let Message::FromWorker {
        request: abo_proto::WorkerRequest::Update { entries, .. },
        ..
    } = m
    else {
        panic!()
    };
    assert_eq!(
        entries,
        [
            abo_proto::UpdateEntry::Other {
                key: "got_revision".into(),
                value: s("abc")
            },
            abo_proto::UpdateEntry::Elapsed(2.0),
        ]
    );
    // delete_leftover_dirs and other bools may come as ints; extra keys are ignored.
    let m = decode(&start(
        "upload_file",
        map(&[
            ("path", s("/p")),
            ("blocksize", i(16)),
            ("maxsize", Value::Nil),
            ("keepstamp", i(1)),
            ("workersrc", s("p")),
        ]),
    ))
    .expect("liberal start");
    let Message::FromMaster {
        request:
            abo_proto::MasterRequest::StartCommand {
                command: abo_proto::Command::UploadFile(a),
                ..
            },
        ..
    } = m
    else {
        panic!()
    };
    assert_eq!(a.keepstamp, Some(true));
    // A float32 timestamp is widened.
    let mut b = frame(&[
        ("op", s("update_upload_file_utime")),
        ("access_time", Value::Nil),
        ("modified_time", Value::Float(2.0)),
        ("command_id", s("9")),
        ("seq_number", i(3)),
    ]);
    let nil_at = b.iter().position(|&x| x == 0xc0).expect("nil");
    b.splice(nil_at..=nil_at, [0xca, 0x3f, 0xc0, 0, 0]);
    let m = decode(&b).expect("float32");
    assert!(matches!(m, Message::FromWorker {
        request: abo_proto::WorkerRequest::UploadFileUtime { access_time, .. }, ..
    } if access_time == 1.5));
}

#[test]
fn the_deepest_accepted_nesting_converts_without_overflow() {
    let unlimited = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    // The message map, `args`, the entry pair and 125 more arrays: the hard cap of 128
    // nested containers.
    let mut deep = Value::Nil;
    for _ in 0..125 {
        deep = Value::Array(vec![deep]);
    }
    let bytes = update(Value::Array(vec![Value::Array(vec![s("x"), deep.clone()])]));
    let m = decode_with(&bytes, &unlimited).expect("within the cap");
    assert!(
        abo_proto::decode(&abo_proto::encode(&m)).is_err(),
        "default depth is 32"
    );
    assert!(decode_value(&bytes, &unlimited).is_ok());
    let deeper = update(Value::Array(vec![Value::Array(vec![
        s("x"),
        Value::Array(vec![deep]),
    ])]));
    assert!(matches!(
        decode_with(&deeper, &unlimited),
        Err(DecodeError::Malformed {
            reason: Malformed::TooDeep,
            ..
        })
    ));
}
