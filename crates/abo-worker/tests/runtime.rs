//! The worker runtime in-process (`abo_worker::run`), against a small master on 127.0.0.1:
//! how `run` ends (the stop token, the master's `shutdown`) and that a command started just
//! before a stop is killed, not left behind. The real binary's end-to-end tests are in
//! `crates/abo/tests/worker.rs`.

use std::time::Duration;

use abo_proto::{
    decode, encode, Command, CommandLine, MasterEvent, MasterSession, Message, Outcome, Reply,
    ShellArgs,
};
use abo_worker::{Exit, Settings};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_util::sync::CancellationToken;

fn settings(dir: &std::path::Path, port: u16) -> Settings {
    let text =
        format!("master = \"127.0.0.1:{port}\"\nname = \"w\"\npassword = \"p\"\nkill-grace = 1\n");
    Settings::parse(&text, dir).unwrap()
}

type Conn = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn accept(listener: &TcpListener) -> Conn {
    let (tcp, _) = listener.accept().await.unwrap();
    tokio_tungstenite::accept_async(tcp).await.unwrap()
}

/// Sends `msg` and returns the worker's answer to it, answering the worker's own requests
/// (updates of running commands) with nil meanwhile.
async fn ask(ws: &mut Conn, session: &mut MasterSession, msg: Message) -> Reply {
    let seq = msg.seq();
    ws.send(Ws::Binary(encode(&msg).into())).await.unwrap();
    loop {
        let Some(Ok(Ws::Binary(data))) = ws.next().await else {
            panic!("connection closed")
        };
        match session.receive(decode(&data).unwrap()).unwrap() {
            MasterEvent::Answered { seq: s, reply, .. } if s == seq => return reply,
            MasterEvent::Answered { .. } => {}
            MasterEvent::Request { token, .. } | MasterEvent::UnknownOp { token, .. } => {
                let answer = session.respond(token, Outcome::nil()).unwrap();
                ws.send(Ws::Binary(encode(&answer).into())).await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ends_on_stop_and_kills_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(abo_worker::run(settings(dir.path(), port), stop.clone()));
    let mut ws = accept(&listener).await;
    let mut session = MasterSession::new();
    let msg = session.get_worker_info();
    let Reply::WorkerInfo(info) = ask(&mut ws, &mut session, msg).await else {
        panic!("no worker info")
    };
    assert_eq!(info.basedir.as_deref(), dir.path().to_str());

    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 300", pidfile.display());
    let (_, start) = session.start_command(
        None,
        Command::Shell(Box::new(ShellArgs::new(
            dir.path().to_string_lossy(),
            CommandLine::Shell(script),
        ))),
    );
    assert_eq!(
        ask(&mut ws, &mut session, start).await,
        Reply::Ok(abo_proto::Value::Nil)
    );
    let pid: i32 = loop {
        if let Ok(t) = std::fs::read_to_string(&pidfile) {
            if let Ok(p) = t.trim().parse() {
                break p;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    let exit = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("run returned")
        .unwrap();
    assert_eq!(exit, Exit::Stopped);
    // The command's process is gone (a zombie at most, waiting for its reaper).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "{stat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ends_on_the_masters_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let worker = tokio::spawn(abo_worker::run(
        settings(dir.path(), port),
        CancellationToken::new(),
    ));
    let mut ws = accept(&listener).await;
    let mut session = MasterSession::new();
    let msg = session.shutdown();
    assert_eq!(
        ask(&mut ws, &mut session, msg).await,
        Reply::Ok(abo_proto::Value::Nil)
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("run returned")
        .unwrap();
    assert_eq!(exit, Exit::Shutdown);
}
