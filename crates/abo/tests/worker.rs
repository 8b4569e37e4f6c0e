//! End-to-end tests of `abo worker`: the real binary, connected to a minimal master on
//! 127.0.0.1 (`worker_support`), running real processes.
//!
//! The throughput benchmark is `bench_output_throughput_200mb` (ignored by default):
//! `cargo test --release -p abo --test worker -- --ignored --nocapture`.

mod worker_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abo_proto::{
    encode, Command, CommandLine, Compression, CpdirArgs, DownloadFileArgs, EnvValue, LogFile,
    Message, Outcome, Reply, RmdirArgs, Seconds, SeqNumber, ShellArgs, UploadDirectoryArgs,
    UploadFileArgs, Value, WorkerSettings,
};
use tokio_tungstenite::tungstenite::Message as Ws;
use worker_support::*;

async fn setup_with(extra: &str) -> (Master, Worker, Conn) {
    let master = Master::bind().await;
    let worker = Worker::start_with(create(master.port, PASSWORD, extra));
    let mut conn = master.accept().await;
    conn.hello().await;
    (master, worker, conn)
}

async fn setup() -> (Master, Worker, Conn) {
    setup_with("").await
}

fn build_dir(conn: &Conn) -> PathBuf {
    conn.basedir().join("b1/build")
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn sh(workdir: &Path, script: &str) -> ShellArgs {
    ShellArgs::new(
        path_str(workdir),
        CommandLine::Argv(vec!["sh".into(), "-c".into(), script.into()]),
    )
}

fn shell(args: ShellArgs) -> Command {
    Command::Shell(Box::new(args))
}

/// Makes later commands flush output quickly (the default waits up to 5 s).
async fn fast_buffers(conn: &mut Conn, max_line_length: u64) {
    let msg = conn.session.set_worker_settings(WorkerSettings {
        buffer_timeout: Seconds(0.1),
        max_line_length,
        ..WorkerSettings::default()
    });
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));
}

#[test]
fn create_writes_private_settings_and_refuses_to_overwrite() {
    let dir = create(9990, PASSWORD, "");
    let file = dir.path().join("worker/worker.toml");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("master = \"127.0.0.1:9990\""), "{text}");
    assert!(text.contains("name = \"w1\""), "{text}");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_abo"))
        .args(["worker", "create"])
        .arg(dir.path().join("worker"))
        .args(["--master", "h:1", "--name", "x", "--password", "y"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn start_refuses_root_without_allow_root() {
    let dir = create(9, PASSWORD, "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_abo"))
        .args(["worker", "start"])
        .arg(dir.path().join("worker"))
        .output()
        .unwrap();
    if nix::unistd::geteuid().is_root() {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refusing to run as root"), "{err}");
        assert!(err.contains("--allow-root"), "{err}");
    } else {
        eprintln!("not root: the refusal cannot be tested here");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ops_info_keepalive_ping_and_unknown_ops() {
    let (_master, worker, mut conn) = setup().await;
    let info = conn.info.clone().unwrap();
    assert!(info.version.as_deref().unwrap().starts_with("abo "));
    assert_eq!(info.system.as_deref(), Some("posix"));
    assert_eq!(conn.basedir(), worker.worker_dir());
    assert!(info.numcpus.unwrap() >= 1);
    assert_eq!(info.worker_commands.len(), 11);
    // The master gets the environment (and keeps it private); the worker never logs it.
    assert_eq!(info.environ["ABO_TEST_SECRET_ENV"], "do-not-log-me");

    let msg = conn.session.keepalive();
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));
    let msg = conn.session.print("attached");
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));
    let msg = conn.session.set_worker_settings(WorkerSettings::default());
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));

    // An unknown op gets the stock worker's exception; the connection stays up.
    let bogus = Message::Unknown {
        op: "bogus_op".into(),
        seq: SeqNumber::new(1000),
    };
    conn.send_raw(Ws::Binary(encode(&bogus).into())).await;
    match conn.recv_raw().await {
        Message::Response(r) => {
            assert_eq!(r.seq, SeqNumber::new(1000));
            assert_eq!(
                r.outcome,
                Outcome::Exception("Command bogus_op does not exist.".into())
            );
        }
        other => panic!("{other:?}"),
    }
    // Text frames are ignored; pings are answered.
    conn.send_raw(Ws::Text("hello".into())).await;
    conn.send_raw(Ws::Ping(b"hi".to_vec().into())).await;
    let mut scratch = Run::default();
    assert!(matches!(conn.pump(&mut scratch).await, Got::Pong));
    let msg = conn.session.keepalive();
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));

    let log = worker.log();
    assert!(log.contains("message from the master: attached"), "{log}");
    assert!(!log.contains("do-not-log-me"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_env_path_lists_workdir_and_stdin() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    assert!(!build.exists());
    let mut args = sh(
        &build,
        "pwd; echo \"$PWD\"; echo \"port=$PGPORT\"; echo \"path=$PATH\"; echo \"home=$MYHOME\"; \
         echo \"secret=${ABO_TEST_SECRET_ENV:-unset}\"; cat; echo err >&2; \
         mkdir -p ../../buildout-caches/eggs; exit 3",
    );
    args.env = BTreeMap::from([
        ("PGPORT".into(), EnvValue::Set("5433".into())),
        (
            "PATH".into(),
            EnvValue::PathList(vec!["/opt/pgtest/bin".into(), "${PATH}".into()]),
        ),
        ("MYHOME".into(), EnvValue::Set("${HOME}/x".into())),
        ("ABO_TEST_SECRET_ENV".into(), EnvValue::Unset),
    ]);
    args.initial_stdin = Some("from stdin\n".into());
    let run = conn.run(shell(args)).await;
    let build_s = path_str(&build);
    let path = std::env::var("PATH").unwrap();
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        run.stdout(),
        format!(
            "{build_s}\n{build_s}\nport=5433\npath=/opt/pgtest/bin:{path}\nhome={home}/x\n\
             secret=unset\nfrom stdin\n"
        ),
        "{}",
        run.describe()
    );
    assert_eq!(run.stderr(), "err\n");
    assert_eq!(run.rc(), Some(3));
    assert!(run.has_elapsed());
    assert_eq!(run.complete, Some(None));
    assert_eq!(run.start_reply, Some(Reply::Ok(Value::Nil)));
    let header = run.header();
    assert!(header.contains(&format!(" in dir {build_s}")), "{header}");
    assert!(header.contains(" writing 11 bytes to stdin"), "{header}");
    assert!(header.contains("  PGPORT=5433\n"), "{header}");
    assert!(header.contains("elapsedTime="), "{header}");
    // The seed's relative cache paths land beside the builder directories.
    assert!(conn.basedir().join("buildout-caches/eggs").is_dir());

    // A string command runs with /bin/sh -c.
    let run = conn
        .run(shell(ShellArgs::new(
            path_str(&build),
            CommandLine::Shell("echo $((1+2)) | tr 3 x".into()),
        )))
        .await;
    assert_eq!(run.stdout(), "x\n");
    assert_eq!(run.rc(), Some(0));

    // A missing executable: rc -1 and a message, not a hang.
    let run = conn
        .run(shell(ShellArgs::new(
            path_str(&build),
            CommandLine::Argv(vec!["/nonexistent/tool".into()]),
        )))
        .await;
    assert_eq!(run.rc(), Some(-1));
    assert!(
        run.stderr().contains("/nonexistent/tool"),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_term_then_kill() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    let started = Instant::now();
    let mut args = sh(&build, "sleep 30");
    args.timeout = Some(Seconds(1.0));
    let run = conn.run(shell(args)).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        run.failure_reason().as_deref(),
        Some("timeout_without_output")
    );
    assert_eq!(run.rc(), Some(-1));
    let header = run.header();
    assert!(
        header.contains("command timed out: 1 seconds without output"),
        "{header}"
    );
    assert!(header.contains("process killed by signal 9"), "{header}");

    let mut args = sh(&build, "while :; do echo tick; sleep 0.1; done");
    args.max_time = Some(Seconds(1.0));
    args.timeout = Some(Seconds(20.0));
    let run = conn.run(shell(args)).await;
    assert_eq!(
        run.failure_reason().as_deref(),
        Some("timeout"),
        "{}",
        run.describe()
    );
    assert!(run.stdout().starts_with("tick\n"));
    assert_eq!(run.rc(), Some(-1));

    // A background process holding the pipes after the shell exited: the timeout still
    // applies, and kills it.
    let mut args = sh(&build, "sleep 300 & echo $! > bg.pid; echo bg");
    args.timeout = Some(Seconds(1.0));
    let started = Instant::now();
    let run = conn.run(shell(args)).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.stdout(), "bg\n");
    assert_eq!(
        run.failure_reason().as_deref(),
        Some("timeout_without_output")
    );
    assert_eq!(run.rc(), Some(-1));
    let bg = read_pid(&build.join("bg.pid")).await;
    assert!(wait_gone(bg, Duration::from_secs(10)).await);

    // sigtermTime: TERM first, and the process may clean up.
    let mut args = sh(
        &build,
        "trap 'echo got TERM; exit 7' TERM; while :; do sleep 0.1; done",
    );
    args.max_time = Some(Seconds(1.0));
    args.sigterm_time = Some(Seconds(5.0));
    let run = conn.run(shell(args)).await;
    assert_eq!(run.stdout(), "got TERM\n", "{}", run.describe());
    assert_eq!(run.rc(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_kills_the_whole_process_group() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    std::fs::create_dir_all(&build).unwrap();
    let mut run = Run::default();
    let cmd = shell(sh(
        &build,
        "sleep 300 & echo $! > grandchild.pid; echo $$ > sh.pid; echo started; wait",
    ));
    conn.start(cmd, &mut run).await;
    let grandchild = read_pid(&build.join("grandchild.pid")).await;
    let sh_pid = read_pid(&build.join("sh.pid")).await;
    assert!(alive(grandchild));
    conn.interrupt(&run, "stop requested").await;
    while !run.done() {
        conn.pump(&mut run).await;
    }
    assert_eq!(run.rc(), Some(-1), "{}", run.describe());
    assert!(!run.has_elapsed());
    assert_eq!(run.stdout(), "started\n");
    let header = run.header();
    assert!(
        header.contains("command interrupted, attempting to kill"),
        "{header}"
    );
    assert!(header.contains("process killed by signal 9"), "{header}");
    assert!(wait_gone(sh_pid, Duration::from_secs(10)).await);
    assert!(
        wait_gone(grandchild, Duration::from_secs(10)).await,
        "the grandchild sleep survived"
    );
    // Interrupting a command that is not running is answered with nil.
    let msg = Message::FromMaster {
        seq: SeqNumber::new(900),
        request: abo_proto::MasterRequest::InterruptCommand {
            command_id: abo_proto::CommandId::new("nope"),
            why: "x".into(),
            builder_name: None,
        },
    };
    conn.send_raw(Ws::Binary(encode(&msg).into())).await;
    match conn.recv_raw().await {
        Message::Response(r) => assert_eq!(r.outcome, Outcome::nil()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logfiles_are_followed_while_the_command_runs() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    let mut args = sh(
        &build,
        "for i in 1 2 3; do echo line$i >> test.log; sleep 0.7; done; printf tail >> test.log",
    );
    args.logfiles = BTreeMap::from([
        ("testlog".into(), LogFile::Path("test.log".into())),
        (
            "never".into(),
            LogFile::Watch {
                filename: "never.log".into(),
                follow: true,
            },
        ),
    ]);
    let run = conn.run(shell(args)).await;
    assert_eq!(
        run.log("testlog"),
        "line1\nline2\nline3\ntail\n",
        "{}",
        run.describe()
    );
    assert_eq!(run.log("never"), "");
    assert_eq!(run.rc(), Some(0));
}

const BIG_LINE_REST: &str =
    " the quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEF\n";

/// Expected line `n` of the big-output tests: 100 bytes with its newline.
fn big_line(n: u64) -> String {
    format!("{n:09}{BIG_LINE_REST}")
}

/// A shell loop printing `count` lines of [`big_line`] quickly (awk, one process).
fn big_output_script(count: u64) -> String {
    format!(
        "awk 'BEGIN {{ for (i = 0; i < {count}; i++) printf \"%09d the quick brown fox jumps over \
         the lazy dog; 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEF\\n\", i }}'"
    )
}

async fn big_output(conn: &mut Conn, count: u64) -> (Run, u64, Duration) {
    let build = build_dir(conn);
    let state = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64, String::new())));
    let seen = state.clone();
    let mut run = Run {
        stdout_sink: Some(Box::new(move |text: &str| {
            let mut s = seen.lock().unwrap();
            for line in text.split_inclusive('\n') {
                let (n, bytes, first_bad) = &mut *s;
                // Cheaper than formatting each expected line: the number, then the rest.
                let ok = line.len() == 100
                    && line[..9].parse::<u64>().ok() == Some(*n)
                    && line[9..] == BIG_LINE_REST[..];
                if first_bad.is_empty() && !ok {
                    *first_bad = format!("line {n}: {line:?}, expected {:?}", big_line(*n));
                }
                *n += 1;
                *bytes += line.len() as u64;
            }
        })),
        ..Run::default()
    };
    let started = Instant::now();
    conn.run_into(shell(sh(&build, &big_output_script(count))), &mut run)
        .await;
    let took = started.elapsed();
    let (lines, bytes, bad) = state.lock().unwrap().clone();
    assert_eq!(bad, "", "output corrupted");
    assert_eq!(lines, count);
    (run, bytes, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_output_arrives_complete_with_flat_memory() {
    let (_master, worker, mut conn) = setup().await;
    let (run, bytes, took) = big_output(&mut conn, 1_000_000).await;
    assert_eq!(bytes, 100_000_000);
    assert_eq!(run.rc(), Some(0));
    // Updates are batched near buffer_size (64 KiB), never the whole output.
    assert!(
        run.max_update_bytes <= 72 * 1024,
        "{}",
        run.max_update_bytes
    );
    assert!(run.updates > 1000);
    let peak = worker.peak_rss_kib();
    eprintln!(
        "100 MB in {took:?} ({:.0} MB/s), {} updates, worker peak RSS {peak} KiB",
        100.0 / took.as_secs_f64(),
        run.updates
    );
    assert!(peak < 64 * 1024, "worker peak RSS {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mb_line_arrives_intact() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    // 125,000 × "é€abc" = 1,000,000 bytes of UTF-8 and no newline at all.
    let script = "awk 'BEGIN { for (i = 0; i < 125000; i++) printf \"é€abc\" }'";
    let expected = "é€abc".repeat(125_000);

    // With the stock settings (4096) the line is cut into pieces, between characters,
    // without losing one.
    let run = conn.run(shell(sh(&build, script))).await;
    let out = run.stdout();
    let pieces: Vec<&str> = out.split_terminator('\n').collect();
    assert!(pieces.len() > 200);
    assert!(pieces.iter().all(|p| p.len() <= 4096));
    assert_eq!(pieces.concat(), expected);

    // A master that raises max_line_length gets the line whole.
    fast_buffers(&mut conn, 2_000_000).await;
    let run = conn.run(shell(sh(&build, script))).await;
    assert_eq!(run.stdout(), format!("{expected}\n"));
}

fn binary_content(len: usize) -> Vec<u8> {
    // Every byte value, in an order that is not periodic in small blocks.
    (0..len)
        .map(|i| ((i * 7919 + i / 251) % 256) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_both_ways_byte_for_byte() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    std::fs::create_dir_all(&build).unwrap();
    let data = binary_content(300_000);
    let src = build.join("bin.dat");
    std::fs::write(&src, &data).unwrap();

    let upload = |path: &Path, maxsize, keepstamp| {
        Command::UploadFile(UploadFileArgs {
            path: path_str(path),
            blocksize: 16384,
            maxsize,
            keepstamp,
        })
    };
    let run = conn.run(upload(&src, None, Some(true))).await;
    assert_eq!(run.rc(), Some(0), "{}", run.describe());
    assert!(run.uploaded == data, "upload differs");
    assert_eq!(run.upload_writes, 300_000usize.div_ceil(16384));
    assert!(run.closed);
    let mtime = std::fs::metadata(&src)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (_, m) = run.utime.expect("keepstamp sends utime");
    assert!((m - mtime).abs() < 0.001);
    assert_eq!(run.complete, Some(None));

    // maxsize: the first bytes only, and a failure.
    let run = conn.run(upload(&src, Some(1000), None)).await;
    assert_eq!(run.rc(), Some(1));
    assert_eq!(run.uploaded, data[..1000]);
    assert!(
        run.stderr().contains("Maximum filesize reached"),
        "{}",
        run.describe()
    );
    // Exactly maxsize bytes is not a truncation.
    let run = conn.run(upload(&src, Some(300_000), None)).await;
    assert_eq!(run.rc(), Some(0), "{}", run.describe());
    // A missing file: no writes, close, rc 1.
    let run = conn.run(upload(&build.join("missing"), None, None)).await;
    assert_eq!(run.rc(), Some(1));
    assert_eq!(run.upload_writes, 0);
    assert!(run.closed);
    assert!(run.stderr().contains("Cannot open file"));

    // Downloads, into a directory that does not exist yet.
    let dest = build.join("sub/dir/down.dat");
    let download = |maxsize, mode| {
        Command::DownloadFile(DownloadFileArgs {
            path: path_str(&dest),
            blocksize: 10_000,
            maxsize,
            mode,
        })
    };
    let mut run = Run {
        download: data.clone(),
        ..Run::default()
    };
    conn.run_into(download(None, Some(0o640)), &mut run).await;
    assert_eq!(run.rc(), Some(0), "{}", run.describe());
    assert!(std::fs::read(&dest).unwrap() == data, "download differs");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(run.read_requests.iter().all(|&l| l <= 10_000));
    assert!(run.closed);

    let mut run = Run {
        download: data.clone(),
        ..Run::default()
    };
    conn.run_into(download(Some(500), None), &mut run).await;
    assert_eq!(run.rc(), Some(1));
    assert_eq!(std::fs::read(&dest).unwrap(), data[..500]);
    assert!(run.stderr().contains("Maximum filesize reached"));
}

fn untar(data: &[u8], compress: Option<Compression>) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let reader: Box<dyn Read> = match compress {
        None => Box::new(data),
        Some(Compression::Gz) => Box::new(flate2::read::GzDecoder::new(data)),
        Some(Compression::Bz2) => Box::new(bzip2::read::BzDecoder::new(data)),
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        if let Ok(Some(target)) = entry.link_name() {
            content = format!("-> {}", target.display()).into_bytes();
        } else {
            entry.read_to_end(&mut content).unwrap();
        }
        out.insert(name, content);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_upload_as_tar_gz_and_bz2() {
    let (_master, _worker, mut conn) = setup().await;
    let dir = build_dir(&conn).join("out");
    std::fs::create_dir_all(dir.join("nested/deeper")).unwrap();
    let data = binary_content(50_000);
    std::fs::write(dir.join("bin.dat"), &data).unwrap();
    std::fs::write(dir.join("nested/deeper/a.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink("bin.dat", dir.join("link")).unwrap();
    for compress in [None, Some(Compression::Gz), Some(Compression::Bz2)] {
        let run = conn
            .run(Command::UploadDirectory(UploadDirectoryArgs {
                path: path_str(&dir),
                blocksize: 16384,
                maxsize: None,
                compress,
            }))
            .await;
        assert_eq!(run.rc(), Some(0), "{}", run.describe());
        assert!(run.unpacked);
        let files = untar(&run.uploaded, compress);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "bin.dat",
                "link",
                "nested",
                "nested/deeper",
                "nested/deeper/a.txt"
            ],
            "{compress:?}"
        );
        assert!(files["bin.dat"] == data);
        assert_eq!(files["nested/deeper/a.txt"], b"hello\n");
        assert_eq!(files["link"], b"-> bin.dat");
    }
    // Over maxsize: stopped, reported, and never unpacked.
    let run = conn
        .run(Command::UploadDirectory(UploadDirectoryArgs {
            path: path_str(&dir),
            blocksize: 1024,
            maxsize: Some(4096),
            compress: None,
        }))
        .await;
    assert_eq!(run.rc(), Some(1));
    assert!(!run.unpacked);
    assert!(run.uploaded.len() <= 4096);
    assert!(
        run.stderr().contains("Maximum filesize reached"),
        "{}",
        run.describe()
    );
    // A missing directory.
    let run = conn
        .run(Command::UploadDirectory(UploadDirectoryArgs {
            path: path_str(&dir.join("missing")),
            blocksize: 1024,
            maxsize: None,
            compress: None,
        }))
        .await;
    assert_eq!(run.rc(), Some(1));
    assert!(run.stderr().contains("Cannot read directory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_system_commands() {
    let (_master, _worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    let run = conn
        .run(Command::Mkdir {
            paths: vec![path_str(&build.join("a/b")), path_str(&build.join("c"))],
        })
        .await;
    assert_eq!(run.rc(), Some(0));
    assert!(build.join("a/b").is_dir() && build.join("c").is_dir());
    std::fs::write(build.join("a/x.txt"), "12345").unwrap();
    std::fs::write(build.join("a/y.txt"), "").unwrap();
    std::fs::write(build.join("a/z.log"), "").unwrap();

    let run = conn
        .run(Command::Stat {
            path: path_str(&build.join("a/x.txt")),
        })
        .await;
    let st = run.stat().unwrap();
    assert_eq!(st.size, 5);
    assert_eq!(st.mode & 0o170000, 0o100000);
    assert_eq!(run.rc(), Some(0));
    let run = conn
        .run(Command::Stat {
            path: path_str(&build.join("nope")),
        })
        .await;
    assert_eq!(run.rc(), Some(2));
    assert!(
        run.header().contains("stat: No such file or directory"),
        "{}",
        run.describe()
    );

    let run = conn
        .run(Command::Listdir {
            path: path_str(&build.join("a")),
        })
        .await;
    assert_eq!(run.files().unwrap(), ["b", "x.txt", "y.txt", "z.log"]);
    let run = conn
        .run(Command::Glob {
            path: path_str(&build.join("a/*.txt")),
        })
        .await;
    let mut found = run.files().unwrap();
    found.sort();
    assert_eq!(
        found,
        [
            path_str(&build.join("a/x.txt")),
            path_str(&build.join("a/y.txt"))
        ]
    );

    let run = conn
        .run(Command::Rmfile {
            path: path_str(&build.join("a/y.txt")),
        })
        .await;
    assert_eq!(run.rc(), Some(0));
    assert!(!build.join("a/y.txt").exists());
    let run = conn
        .run(Command::Rmfile {
            path: path_str(&build.join("a/y.txt")),
        })
        .await;
    assert_eq!(run.rc(), Some(2));

    let run = conn
        .run(Command::Cpdir(CpdirArgs {
            from_path: path_str(&build.join("a")),
            to_path: path_str(&build.join("copy/of/a")),
            log_environ: Some(false),
            timeout: None,
            max_time: None,
        }))
        .await;
    assert_eq!(run.rc(), Some(0), "{}", run.describe());
    assert_eq!(
        std::fs::read(build.join("copy/of/a/x.txt")).unwrap(),
        b"12345"
    );

    // rmdir: inside the base directory only.
    std::fs::set_permissions(build.join("a/b"), std::fs::Permissions::from_mode(0o500)).unwrap();
    let rmdir = |paths: Vec<String>| {
        Command::Rmdir(RmdirArgs {
            paths,
            log_environ: Some(false),
            timeout: None,
            max_time: None,
        })
    };
    let run = conn.run(rmdir(vec![path_str(&build.join("a"))])).await;
    assert_eq!(run.rc(), Some(0), "{}", run.describe());
    assert!(!build.join("a").exists());
    let outside = conn.basedir().parent().unwrap().join("precious");
    std::fs::create_dir_all(&outside).unwrap();
    for path in [
        path_str(&outside),
        path_str(&conn.basedir()),
        format!("{}/b1/../..", conn.basedir().display()),
        "/".to_owned(),
    ] {
        let run = conn.run(rmdir(vec![path.clone()])).await;
        assert_eq!(run.rc(), Some(1), "{path}");
        assert!(
            run.header().contains("refusing to remove"),
            "{}",
            run.describe()
        );
    }
    assert!(outside.is_dir() && conn.basedir().is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_kills_running_commands_and_the_worker_reconnects() {
    let (master, worker, mut conn) = setup_with("kill-grace = 2\n").await;
    let build = build_dir(&conn);
    std::fs::create_dir_all(&build).unwrap();
    let mut run = Run::default();
    conn.start(
        shell(sh(
            &build,
            "trap '' TERM; sleep 300 & echo $! > grandchild.pid; echo $$ > sh.pid; wait",
        )),
        &mut run,
    )
    .await;
    let grandchild = read_pid(&build.join("grandchild.pid")).await;
    let sh_pid = read_pid(&build.join("sh.pid")).await;
    conn.drop_hard();
    // TERM is ignored by the shell, so this also checks the KILL after kill-grace.
    assert!(
        wait_gone(sh_pid, Duration::from_secs(20)).await,
        "{}",
        worker.log()
    );
    assert!(wait_gone(grandchild, Duration::from_secs(20)).await);
    worker.wait_log("killed the command's process group").await;
    // The worker comes back by itself.
    let mut conn = master.accept().await;
    conn.hello().await;
    let run = conn.run(shell(sh(&build, "echo back"))).await;
    assert_eq!(run.stdout(), "back\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_after_the_master_restarts() {
    let master = Master::bind().await;
    let port = master.port;
    let worker = Worker::start(port);
    let mut conn = master.accept().await;
    conn.hello().await;
    conn.drop_hard();
    drop(master);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let master = Master::bind_port(port).await;
    let mut conn = master.accept().await;
    // A new session: seq numbers from 0 again, and commands work.
    conn.hello().await;
    let run = conn.run(shell(sh(&build_dir(&conn), "echo again"))).await;
    assert_eq!(run.stdout(), "again\n");
    let log = worker.log();
    assert!(log.contains("reconnecting in"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_master_is_noticed_and_the_worker_reconnects() {
    // keepalive = 1: a ping after 1 s of silence, the connection dropped after 2 s.
    let (master, worker, conn) = setup_with("keepalive = 1\n").await;
    let started = Instant::now();
    // This connection is never read again: pings stay unanswered.
    let mut conn2 = master.accept().await;
    assert!(started.elapsed() < Duration::from_secs(20));
    worker.wait_log("nothing from the master").await;
    conn2.hello().await;
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_clearly() {
    let master = Master::bind().await;
    let worker = Worker::start_with(create(master.port, "wrong-password", ""));
    assert!(master.accept_once().await.is_err());
    let log = worker.wait_log("wrong name or password").await;
    assert!(!log.contains("wrong-password"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_op_and_sigterm_stop_the_worker_cleanly() {
    // The master's shutdown: answered, then the process exits 0.
    let (_master, mut worker, mut conn) = setup().await;
    let msg = conn.session.shutdown();
    assert_eq!(conn.ask(msg).await, Reply::Ok(Value::Nil));
    let status = worker.wait(Duration::from_secs(20)).expect("worker exited");
    assert!(status.success(), "{status:?}");

    // SIGTERM: running commands are killed, exit 0.
    let (_master, mut worker, mut conn) = setup_with("kill-grace = 2\n").await;
    let build = build_dir(&conn);
    std::fs::create_dir_all(&build).unwrap();
    let mut run = Run::default();
    conn.start(
        shell(sh(&build, "sleep 300 & echo $! > gc.pid; wait")),
        &mut run,
    )
    .await;
    let grandchild = read_pid(&build.join("gc.pid")).await;
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let status = worker.wait(Duration::from_secs(30)).expect("worker exited");
    assert!(status.success(), "{status:?}\n{}", worker.log());
    assert!(wait_gone(grandchild, Duration::from_secs(10)).await);
}

/// The benchmark: 200 MB of output through the worker to the master, against the same
/// command with its output read directly from a pipe. The machine is shared (2 cores, other
/// builds), so each side runs three times, alternating, and the best times are compared.
/// Run with `cargo test --release -p abo --test worker -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_output_throughput_200mb() {
    let count: u64 = 2_000_000;
    let script = big_output_script(count);
    let (_master, worker, mut conn) = setup().await;
    let build = build_dir(&conn);
    let mut direct_best = Duration::MAX;
    let mut worker_best = Duration::MAX;
    let mut cpu_before = worker.cpu_time();
    let mut worker_cpu = Duration::MAX;
    for _ in 0..3 {
        // Directly: the same command, its stdout read through a pipe and discarded.
        let started = Instant::now();
        let mut direct = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = direct.stdout.take().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match std::io::Read::read(&mut pipe, &mut buf).unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert!(direct.wait().unwrap().success());
        direct_best = direct_best.min(started.elapsed());
        assert_eq!(total, 200_000_000);

        // Through the worker; the master decodes every frame and counts lines and bytes.
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
        let seen = counts.clone();
        let mut run = Run {
            stdout_sink: Some(Box::new(move |text: &str| {
                let mut c = seen.lock().unwrap();
                c.0 += text.bytes().filter(|&b| b == b'\n').count() as u64;
                c.1 += text.len() as u64;
            })),
            ..Run::default()
        };
        let started = Instant::now();
        conn.run_into(shell(sh(&build, &script)), &mut run).await;
        worker_best = worker_best.min(started.elapsed());
        assert_eq!(run.rc(), Some(0));
        assert_eq!(*counts.lock().unwrap(), (count, 200_000_000));
        let cpu = worker.cpu_time();
        worker_cpu = worker_cpu.min(cpu - cpu_before);
        cpu_before = cpu;
    }
    let overhead = (worker_best.as_secs_f64() / direct_best.as_secs_f64() - 1.0) * 100.0;
    println!(
        "200 MB of output, best of 3: direct {direct_best:.2?}, through the worker \
         {worker_best:.2?} ({overhead:+.1}%, target < +10%); worker CPU {worker_cpu:.2?}, \
         worker peak RSS {} KiB",
        worker.peak_rss_kib(),
    );
}
