//! Properties: `decode` never panics, whatever the bytes; `decode(encode(m)) == m` for every
//! message the types can express; `WorkerInfo` survives its value form.

use std::collections::BTreeMap;

use abo_proto::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Mostly short printable strings, sometimes long ones to reach str8/str16 forms.
    prop_oneof![
        8 => "\\PC{0,12}",
        1 => "[a-z]{30,300}",
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
        Just(0.0),
    ]
}

fn int() -> impl Strategy<Value = Int> {
    prop_oneof![
        any::<i64>().prop_map(Int::from),
        any::<u64>().prop_map(Int::from),
        (-40i64..300).prop_map(Int::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        int().prop_map(Value::Int),
        finite().prop_map(Value::Float),
        text().prop_map(Value::Str),
        vec(any::<u8>(), 0..40).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((inner.clone(), inner), 0..5).prop_map(Value::Map),
        ]
    })
}

fn seq() -> impl Strategy<Value = SeqNumber> {
    any::<u64>().prop_map(SeqNumber::new)
}

fn command_id() -> impl Strategy<Value = CommandId> {
    text().prop_map(CommandId::new)
}

fn seconds() -> impl Strategy<Value = Seconds> {
    finite().prop_map(Seconds)
}

fn shell() -> impl Strategy<Value = ShellArgs> {
    let command = prop_oneof![
        text().prop_map(CommandLine::Shell),
        vec(text(), 0..4).prop_map(CommandLine::Argv),
    ];
    let env_value = prop_oneof![
        text().prop_map(EnvValue::Set),
        vec(text(), 0..3).prop_map(EnvValue::PathList),
        Just(EnvValue::Unset),
    ];
    let logfile = prop_oneof![
        text().prop_map(LogFile::Path),
        (text(), any::<bool>()).prop_map(|(filename, follow)| LogFile::Watch { filename, follow }),
    ];
    (
        (text(), command, btree_map(text(), env_value, 0..3)),
        (
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        ),
        (
            option::of(seconds()),
            option::of(seconds()),
            option::of(any::<u64>()),
            option::of(seconds()),
        ),
        (
            btree_map(text(), logfile, 0..3),
            option::of(text()),
            option::of(text()),
        ),
    )
        .prop_map(
            |(
                (workdir, command, env),
                (want_stdout, want_stderr, log_environ, use_pty),
                (timeout, max_time, max_lines, sigterm_time),
                (logfiles, initial_stdin, interrupt_signal),
            )| ShellArgs {
                workdir,
                command,
                env,
                want_stdout,
                want_stderr,
                log_environ,
                timeout,
                max_time,
                max_lines,
                sigterm_time,
                use_pty,
                logfiles,
                initial_stdin,
                interrupt_signal,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    let compress = option::of(prop_oneof![Just(Compression::Gz), Just(Compression::Bz2)]);
    prop_oneof![
        shell().prop_map(|a| Command::Shell(Box::new(a))),
        (
            text(),
            any::<u64>(),
            option::of(any::<u64>()),
            option::of(any::<bool>())
        )
            .prop_map(|(path, blocksize, maxsize, keepstamp)| Command::UploadFile(
                UploadFileArgs {
                    path,
                    blocksize,
                    maxsize,
                    keepstamp
                }
            )),
        (text(), any::<u64>(), option::of(any::<u64>()), compress).prop_map(
            |(path, blocksize, maxsize, compress)| Command::UploadDirectory(UploadDirectoryArgs {
                path,
                blocksize,
                maxsize,
                compress
            })
        ),
        (
            text(),
            any::<u64>(),
            option::of(any::<u64>()),
            option::of(any::<u32>())
        )
            .prop_map(|(path, blocksize, maxsize, mode)| Command::DownloadFile(
                DownloadFileArgs {
                    path,
                    blocksize,
                    maxsize,
                    mode
                }
            )),
        vec(text(), 0..3).prop_map(|paths| Command::Mkdir { paths }),
        (
            vec(text(), 0..3),
            option::of(any::<bool>()),
            option::of(seconds()),
            option::of(seconds())
        )
            .prop_map(|(paths, log_environ, timeout, max_time)| Command::Rmdir(
                RmdirArgs {
                    paths,
                    log_environ,
                    timeout,
                    max_time
                }
            )),
        (
            text(),
            text(),
            option::of(any::<bool>()),
            option::of(seconds()),
            option::of(seconds())
        )
            .prop_map(|(from_path, to_path, log_environ, timeout, max_time)| {
                Command::Cpdir(CpdirArgs {
                    from_path,
                    to_path,
                    log_environ,
                    timeout,
                    max_time,
                })
            }),
        text().prop_map(|path| Command::Stat { path }),
        text().prop_map(|path| Command::Glob { path }),
        text().prop_map(|path| Command::Listdir { path }),
        text().prop_map(|path| Command::Rmfile { path }),
    ]
}

fn master_request() -> impl Strategy<Value = MasterRequest> {
    prop_oneof![
        text().prop_map(|message| MasterRequest::Print { message }),
        Just(MasterRequest::Keepalive),
        Just(MasterRequest::GetWorkerInfo),
        Just(MasterRequest::Shutdown),
        (any::<u64>(), seconds(), text(), any::<u64>()).prop_map(
            |(buffer_size, buffer_timeout, newline_re, max_line_length)| {
                MasterRequest::SetWorkerSettings(WorkerSettings {
                    buffer_size,
                    buffer_timeout,
                    newline_re,
                    max_line_length,
                })
            }
        ),
        (command_id(), option::of(text()), command()).prop_map(
            |(command_id, builder_name, command)| MasterRequest::StartCommand {
                command_id,
                builder_name,
                command
            }
        ),
        (command_id(), text(), option::of(text())).prop_map(|(command_id, why, builder_name)| {
            MasterRequest::InterruptCommand {
                command_id,
                why,
                builder_name,
            }
        }),
    ]
}

const KNOWN_UPDATE_KEYS: [&str; 9] = [
    "header",
    "stdout",
    "stderr",
    "log",
    "rc",
    "elapsed",
    "failure_reason",
    "files",
    "stat",
];

fn lines() -> impl Strategy<Value = LineInfo> {
    (text(), vec(any::<u64>(), 0..4), vec(finite(), 0..4)).prop_map(
        |(text, newline_idx, line_times)| LineInfo {
            text: text.into(),
            newline_idx,
            line_times,
        },
    )
}

fn update_entry() -> impl Strategy<Value = UpdateEntry> {
    let reason = prop_oneof![
        Just(FailureReason::TimeoutWithoutOutput),
        Just(FailureReason::Timeout),
        Just(FailureReason::MaxLinesFailure),
        text()
            .prop_filter("not a known reason", |s| {
                !["timeout_without_output", "timeout", "max_lines_failure"].contains(&s.as_str())
            })
            .prop_map(FailureReason::Other),
    ];
    let stat = (vec(any::<u64>(), 7), vec(any::<i64>(), 3)).prop_map(|(u, t)| StatResult {
        mode: u[0],
        ino: u[1],
        dev: u[2],
        nlink: u[3],
        uid: u[4],
        gid: u[5],
        size: u[6],
        atime: t[0],
        mtime: t[1],
        ctime: t[2],
    });
    prop_oneof![
        lines().prop_map(UpdateEntry::Header),
        lines().prop_map(UpdateEntry::Stdout),
        lines().prop_map(UpdateEntry::Stderr),
        (text(), lines()).prop_map(|(name, lines)| UpdateEntry::Log { name, lines }),
        any::<i64>().prop_map(UpdateEntry::Rc),
        finite().prop_map(UpdateEntry::Elapsed),
        reason.prop_map(UpdateEntry::FailureReason),
        vec(text(), 0..4).prop_map(UpdateEntry::Files),
        stat.prop_map(UpdateEntry::Stat),
        (
            text().prop_filter("unknown key", |k| !KNOWN_UPDATE_KEYS.contains(&k.as_str())),
            value()
        )
            .prop_map(|(key, value)| UpdateEntry::Other { key, value }),
    ]
}

fn worker_request() -> impl Strategy<Value = WorkerRequest> {
    let data = vec(any::<u8>(), 0..300);
    prop_oneof![
        (command_id(), vec(update_entry(), 0..5)).prop_map(|(command_id, entries)| {
            WorkerRequest::Update {
                command_id,
                entries,
            }
        }),
        (command_id(), option::of(text())).prop_map(|(command_id, failure)| {
            WorkerRequest::Complete {
                command_id,
                failure,
            }
        }),
        (command_id(), data.clone())
            .prop_map(|(command_id, data)| WorkerRequest::UploadFileWrite { command_id, data }),
        command_id().prop_map(|command_id| WorkerRequest::UploadFileClose { command_id }),
        (command_id(), finite(), finite()).prop_map(|(command_id, access_time, modified_time)| {
            WorkerRequest::UploadFileUtime {
                command_id,
                access_time,
                modified_time,
            }
        }),
        (command_id(), data).prop_map(|(command_id, data)| WorkerRequest::UploadDirectoryWrite {
            command_id,
            data
        }),
        command_id().prop_map(|command_id| WorkerRequest::UploadDirectoryUnpack { command_id }),
        (command_id(), any::<u64>())
            .prop_map(|(command_id, length)| WorkerRequest::ReadFile { command_id, length }),
        command_id().prop_map(|command_id| WorkerRequest::ReadFileClose { command_id }),
    ]
}

const KNOWN_OPS: [&str; 17] = [
    "response",
    "print",
    "keepalive",
    "get_worker_info",
    "set_worker_settings",
    "start_command",
    "interrupt_command",
    "shutdown",
    "update",
    "complete",
    "update_upload_file_write",
    "update_upload_file_close",
    "update_upload_file_utime",
    "update_upload_directory_write",
    "update_upload_directory_unpack",
    "update_read_file",
    "update_read_file_close",
];

fn message() -> impl Strategy<Value = Message> {
    let outcome = prop_oneof![
        value().prop_map(Outcome::Ok),
        text().prop_map(Outcome::Exception),
    ];
    prop_oneof![
        (seq(), master_request()).prop_map(|(seq, request)| Message::FromMaster { seq, request }),
        (seq(), worker_request()).prop_map(|(seq, request)| Message::FromWorker { seq, request }),
        (seq(), outcome).prop_map(|(seq, outcome)| Message::Response(Response { seq, outcome })),
        (
            text().prop_filter("unknown op", |op| !KNOWN_OPS.contains(&op.as_str())),
            seq()
        )
            .prop_map(|(op, seq)| Message::Unknown { op, seq }),
    ]
}

fn worker_info() -> impl Strategy<Value = WorkerInfo> {
    const RESERVED: [&str; 8] = [
        "environ",
        "worker_commands",
        "system",
        "basedir",
        "version",
        "numcpus",
        "delete_leftover_dirs",
        "",
    ];
    let plain_key = "[a-z_]{1,10}".prop_filter("not reserved", |k| {
        !RESERVED.contains(&k.as_str()) && !k.starts_with("os_")
    });
    let str_map = || btree_map(text(), text(), 0..4);
    (
        (
            btree_map(plain_key.clone(), text(), 0..3),
            str_map(),
            str_map(),
            str_map(),
        ),
        (
            option::of(text()),
            option::of(text()),
            option::of(any::<u64>()),
            option::of(text()),
            option::of(any::<bool>()),
        ),
        btree_map(
            plain_key,
            value().prop_filter("not a str", |v| !matches!(v, Value::Str(_))),
            0..3,
        ),
    )
        .prop_map(
            |(
                (info, os, environ, worker_commands),
                (system, basedir, numcpus, version, dld),
                other,
            )| {
                WorkerInfo {
                    info,
                    os,
                    environ,
                    system,
                    basedir,
                    numcpus,
                    version,
                    worker_commands,
                    delete_leftover_dirs: dld,
                    other: other.into_iter().collect(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_value(&bytes, &Limits::default());
    }

    #[test]
    fn decode_never_panics_on_mutated_frames(
        m in message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&m);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_inverts_encode(m in message()) {
        let bytes = encode(&m);
        prop_assert_eq!(decode(&bytes), Ok(m));
    }

    #[test]
    fn sharing_the_frame_decodes_the_same(m in message(), junk in vec(any::<u8>(), 0..8)) {
        // Appending to a used buffer gives the same bytes as a fresh encode.
        let mut buf = junk.clone();
        encode_into(&m, &mut buf);
        let bytes = encode(&m);
        prop_assert_eq!(&buf[junk.len()..], &bytes[..]);
        let shared = bytes::Bytes::from(bytes.clone());
        prop_assert_eq!(decode_bytes(&shared, &Limits::default()), decode(&bytes));
        // And refuses the same frames.
        let mut bad = bytes.clone();
        bad.truncate(bad.len() / 2);
        prop_assert_eq!(
            decode_bytes(&bytes::Bytes::from(bad.clone()), &Limits::default()),
            decode(&bad)
        );
    }

    #[test]
    fn values_round_trip(v in value()) {
        prop_assert_eq!(decode_value(&encode_value(&v), &Limits::default()), Ok(v));
    }

    #[test]
    fn worker_info_round_trips_through_its_value(info in worker_info()) {
        prop_assert_eq!(WorkerInfo::from_value(info.to_value()), Ok(info));
    }
}

#[test]
fn btree_maps_are_used_for_env() {
    // Documented choice: env and logfiles are ordered maps, so encoding is deterministic.
    let mut a = ShellArgs::new("/w", CommandLine::Shell("true".into()));
    a.env = BTreeMap::from([
        ("B".into(), EnvValue::Unset),
        ("A".into(), EnvValue::Set("1".into())),
    ]);
    let m = Message::FromMaster {
        seq: SeqNumber::new(0),
        request: MasterRequest::StartCommand {
            command_id: CommandId::new("0"),
            builder_name: None,
            command: Command::Shell(Box::new(a)),
        },
    };
    let bytes = encode(&m);
    let a_at = bytes.windows(2).position(|w| w == [0xa1, b'A']).expect("A");
    let b_at = bytes.windows(2).position(|w| w == [0xa1, b'B']).expect("B");
    assert!(a_at < b_at);
}

#[test]
fn output_text_shares_the_frame_and_must_be_utf8() {
    let update = |text: &str| Message::FromWorker {
        seq: SeqNumber::new(3),
        request: WorkerRequest::Update {
            command_id: CommandId::new("7"),
            entries: vec![UpdateEntry::Stdout(LineInfo {
                text: text.into(),
                newline_idx: vec![5],
                line_times: vec![1.5],
            })],
        },
    };
    let frame = bytes::Bytes::from(encode(&update("héllo\n")));
    let Ok(Message::FromWorker {
        request: WorkerRequest::Update { entries, .. },
        ..
    }) = decode_bytes(&frame, &Limits::default())
    else {
        panic!("an update")
    };
    let [UpdateEntry::Stdout(l)] = &entries[..] else {
        panic!("one stdout entry")
    };
    assert_eq!(l.text, "héllo\n");
    let inside = frame.as_ptr_range();
    assert!(
        inside.contains(&l.text.as_ptr()),
        "not copied out of the frame"
    );

    // The same frame with a byte of the text made invalid: refused, naming the key.
    let mut bad = encode(&update("hello\n"));
    let at = bad.windows(5).position(|w| w == b"hello").unwrap();
    bad[at] = 0xff;
    let err = decode_bytes(&bytes::Bytes::from(bad), &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
    assert!(err.to_string().contains("args[0].stdout[0]"), "{err}");
}
