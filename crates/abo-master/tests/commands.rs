//! Every remote command, through `WorkerConnection`, against real worker processes of each
//! kind: worker info and settings, the fs commands, shell commands with their options.

mod common;

use std::time::Duration;

use abo_master::{End, Error};
use abo_proto::{Command, EnvValue, FailureReason, LogFile, Seconds, UpdateEntry, WorkerSettings};
use common::*;

peers!(
    info_settings_print_keepalive,
    fs_commands,
    shell_argv_string_env_workdir,
    shell_stdin_and_logfiles,
    long_lines_arrive_whole,
    timeouts,
    interrupts,
    refused_and_transfer_through_run,
);

async fn info_settings_print_keepalive(peer: Peer) {
    let f = fixture(peer).await;
    let info = f.conn.info();
    assert!(info.version.is_some(), "{info:?}");
    assert_eq!(info.system.as_deref(), Some("posix"));
    assert!(info.numcpus.unwrap_or(0) >= 1);
    // The worker's environment arrives (for ~ expansion) but is kept out of Debug output.
    assert_eq!(
        info.environ.get(WORKER_VAR.0).map(String::as_str),
        Some(WORKER_VAR.1)
    );
    assert!(!format!("{info:?}").contains(WORKER_SECRET.1));
    let again = f.conn.get_worker_info().await.unwrap();
    assert_eq!(again.basedir, info.basedir);

    f.conn
        .set_worker_settings(WorkerSettings {
            max_line_length: 8192,
            ..WorkerSettings::default()
        })
        .await
        .unwrap();
    f.conn.print("hello from the tests").await.unwrap();
    f.conn.keepalive().await.unwrap();

    let status = f.master.registry().status();
    assert_eq!(status.len(), 1);
    let c = status[0].connection.as_ref().expect("connected");
    assert_eq!(c.generation, 1);
    assert_eq!(c.info.basedir, info.basedir);
    assert_eq!(c.info.version, info.version);
    f.stop().await;
}

async fn fs_commands(peer: Peer) {
    let f = fixture(peer).await;
    let c = &f.conn;

    let r = c.mkdir(vec![f.wpath("a/b/c"), f.wpath("d")]).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert!(f.local("a/b/c").is_dir() && f.local("d").is_dir());
    std::fs::write(f.local("a/b/c/file.txt"), "12345").unwrap();
    std::fs::write(f.local("a/x.log"), "").unwrap();

    let r = c.stat(f.wpath("a/b/c/file.txt")).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    let st = r.stat.expect("stat result");
    assert_eq!(st.size, 5);
    assert_eq!(st.mode & 0o170000, 0o100000, "a regular file");
    let r = c.stat(f.wpath("missing")).await.unwrap();
    assert_eq!(r.end, End::Complete { failure: None });
    assert_ne!(r.rc, Some(0), "{r:?}");

    let r = c.listdir(f.wpath("a")).await.unwrap();
    let mut files = r.files.clone().expect("files");
    files.sort();
    assert_eq!(files, ["b", "x.log"], "{r:?}");
    let r = c.listdir(f.wpath("missing")).await.unwrap();
    assert!(!r.is_success());

    let r = c.glob(f.wpath("a/**/*.txt")).await.unwrap();
    assert_eq!(r.files, Some(vec![f.wpath("a/b/c/file.txt")]), "{r:?}");

    let r = c.cpdir(f.wpath("a"), f.wpath("copy/of-a")).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(f.local("copy/of-a/b/c/file.txt")).unwrap(),
        "12345"
    );

    let r = c.rmfile(f.wpath("a/x.log")).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert!(!f.local("a/x.log").exists());
    let r = c.rmfile(f.wpath("a/x.log")).await.unwrap();
    assert!(!r.is_success(), "removing a missing file fails");

    let r = c.rmdir(vec![f.wpath("a"), f.wpath("copy")]).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert!(!f.local("a").exists() && !f.local("copy").exists());
    f.stop().await;
}

async fn shell_argv_string_env_workdir(peer: Peer) {
    let f = fixture(peer).await;
    let work = f.wpath("build/sub");

    // An argv is executed directly: no shell expansion of its elements.
    let out = run(&f.conn, shell(argv(&work, &["echo", "$HOME", "a  b"]))).await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(out.stdout, "$HOME a  b\n");
    assert!(f.local("build/sub").is_dir(), "workdir is created");

    // A string runs through /bin/sh -c, in workdir.
    let out = run(
        &f.conn,
        shell(script(&work, "pwd; echo out; echo err >&2; exit 3")),
    )
    .await;
    assert_eq!(out.result.end, End::Complete { failure: None });
    assert_eq!(out.result.rc, Some(3));
    assert!(!out.result.is_success());
    assert_eq!(out.stdout, format!("{work}\nout\n"));
    assert_eq!(out.stderr, "err\n");

    // env: ${VAR} is expanded from the worker's environment, lists are joined with ':',
    // nil removes a variable.
    let mut args = script(&work, "echo \"$GREETING|$MYPATH|${HOME:-unset}\"");
    args.env
        .insert("GREETING".into(), set(&format!("hi ${{{}}}", WORKER_VAR.0)));
    args.env.insert(
        "MYPATH".into(),
        EnvValue::PathList(vec!["/opt/a".into(), "/opt/b".into()]),
    );
    args.env.insert("HOME".into(), EnvValue::Unset);
    let out = run(&f.conn, shell(args)).await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(
        out.stdout,
        format!("hi {}|/opt/a:/opt/b|unset\n", WORKER_VAR.1)
    );

    // PATH as a list: a command found through it.
    std::fs::create_dir_all(f.local("bin")).unwrap();
    let tool = f.local("bin/abo-test-tool");
    std::fs::write(&tool, "#!/bin/sh\necho tool ran\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut args = argv(&work, &["abo-test-tool"]);
    args.env.insert(
        "PATH".into(),
        EnvValue::PathList(vec![f.wpath("bin"), "${PATH}".into()]),
    );
    let out = run(&f.conn, shell(args)).await;
    assert_eq!(out.stdout, "tool ran\n", "{out:?}");

    // A missing program fails without output on stdout.
    let out = run(&f.conn, shell(argv(&work, &["/nonexistent/program"]))).await;
    assert!(!out.result.is_success(), "{out:?}");
    f.stop().await;
}

async fn shell_stdin_and_logfiles(peer: Peer) {
    let f = fixture(peer).await;
    let work = f.wpath("build");

    let mut args = argv(&work, &["cat"]);
    args.initial_stdin = Some("line 1\nline 2\n".into());
    let out = run(&f.conn, shell(args)).await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(out.stdout, "line 1\nline 2\n");

    // A log file written while the command runs is followed (the stock worker polls it
    // every 2 s) and reported under its name.
    let mut args = script(
        &work,
        "for i in 1 2 3; do echo \"log $i\" >> test.log; sleep 1; done; echo done",
    );
    args.logfiles
        .insert("test".into(), LogFile::Path("test.log".into()));
    let out = run(&f.conn, shell(args)).await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(out.stdout, "done\n");
    assert_eq!(
        out.logs.get("test").map(String::as_str),
        Some("log 1\nlog 2\nlog 3\n"),
        "{out:?}"
    );
    f.stop().await;
}

async fn long_lines_arrive_whole(peer: Peer) {
    let f = fixture(peer).await;
    // 300,000 characters on one line, then a partial last line without a newline. The master
    // raised max_line_length on connect, so nothing is split (or lost, with the stock worker).
    let text = "python3 -c \"import sys; sys.stdout.write('x' * 300000 + '\\n' + 'tail')\"";
    let out = run(&f.conn, shell(script(&f.wpath("build"), text))).await;
    assert!(out.result.is_success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.split('\n').collect();
    assert_eq!(lines[0].len(), 300_000);
    assert!(lines[0].bytes().all(|b| b == b'x'));
    assert_eq!(lines[1], "tail");
    f.stop().await;
}

async fn timeouts(peer: Peer) {
    let f = fixture(peer).await;
    let work = f.wpath("build");

    // No output for `timeout` seconds: killed.
    let mut args = argv(&work, &["sleep", "30"]);
    args.timeout = Some(Seconds(1.0));
    let started = std::time::Instant::now();
    let out = run(&f.conn, shell(args)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        out.result.failure_reason,
        Some(FailureReason::TimeoutWithoutOutput),
        "{out:?}"
    );
    assert!(!out.result.is_success());

    // Output keeps coming, but maxTime is over: killed too.
    let mut args = script(&work, "while true; do echo tick; sleep 0.2; done");
    args.max_time = Some(Seconds(1.5));
    let started = std::time::Instant::now();
    let out = run(&f.conn, shell(args)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        out.result.failure_reason,
        Some(FailureReason::Timeout),
        "{out:?}"
    );
    assert!(out.stdout.starts_with("tick\n"));
    f.stop().await;
}

async fn interrupts(peer: Peer) {
    let f = fixture(peer).await;
    let work = f.wpath("build");

    // Interrupt while the consumer reads the output.
    let mut cmd = f
        .conn
        .run(shell(script(&work, "echo started; sleep 30")))
        .await
        .unwrap();
    let stop = cmd.interrupter();
    let started = std::time::Instant::now();
    let mut stdout = String::new();
    while let Some(entry) = within(Duration::from_secs(20), cmd.next()).await {
        if let UpdateEntry::Stdout(l) = entry {
            stdout.push_str(&l.text);
            if stdout.contains("started") {
                stop.interrupt("the test says stop").await.unwrap();
            }
        }
    }
    let r = cmd.result().await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(r.end, End::Complete { failure: None }, "{r:?}");
    assert_ne!(r.rc, Some(0));

    // TERM first, then KILL after sigtermTime: the trap runs, then the process dies.
    let mut args = script(
        &work,
        "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done",
    );
    args.sigterm_time = Some(Seconds(1.0));
    args.interrupt_signal = Some("KILL".into());
    let mut cmd = f.conn.run(shell(args)).await.unwrap();
    let mut stdout = String::new();
    let mut interrupted_at = None;
    while let Some(entry) = within(Duration::from_secs(20), cmd.next()).await {
        if let UpdateEntry::Stdout(l) = entry {
            stdout.push_str(&l.text);
            if interrupted_at.is_none() && stdout.contains("ready") {
                cmd.interrupt("stop").await.unwrap();
                interrupted_at = Some(std::time::Instant::now());
            }
        }
    }
    let r = cmd.result().await;
    let took = interrupted_at.expect("interrupted").elapsed();
    assert!(stdout.contains("got TERM"), "{stdout:?} {r:?}");
    assert!(
        took >= Duration::from_millis(900),
        "KILL came after sigtermTime: {took:?}"
    );
    assert_ne!(r.rc, Some(0), "{r:?}");

    // Interrupting a command that has ended is a no-op.
    let cmd = f.conn.run(shell(argv(&work, &["true"]))).await.unwrap();
    let id = cmd.id().clone();
    assert!(cmd.result().await.is_success());
    f.conn.interrupt(&id, "too late").await.unwrap();
    f.stop().await;
}

async fn refused_and_transfer_through_run(peer: Peer) {
    let f = fixture(peer).await;
    // A transfer needs its master end: run() refuses it.
    let err = f
        .conn
        .run(Command::UploadFile(abo_proto::UploadFileArgs {
            path: f.wpath("x"),
            blocksize: 10,
            maxsize: None,
            keepstamp: None,
        }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransferThroughRun { .. }), "{err}");

    // A shell command without a usable command: the worker refuses or fails it, and the
    // connection stays usable.
    let out = run(&f.conn, shell(argv(&f.wpath("build"), &[]))).await;
    assert!(!out.result.is_success(), "{out:?}");
    let out = run(&f.conn, shell(argv(&f.wpath("build"), &["true"]))).await;
    assert!(out.result.is_success(), "{out:?}");
    f.stop().await;
}
