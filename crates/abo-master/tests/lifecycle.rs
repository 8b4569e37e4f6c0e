//! Connections coming and going: authentication, duplicates, killed, stopped and cut-off
//! workers, the worker's shutdown, the master's shutdown, and peers that break the protocol.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abo_master::{End, LostReason, RegistryEvent};
use abo_proto::{
    decode, encode, CommandId, Message, Outcome, Response, SeqNumber, UpdateEntry, Value,
    WorkerInfo, WorkerRequest,
};
use base64::Engine as _;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

peers!(
    wrong_credentials_are_refused,
    a_new_connection_replaces_a_silent_one,
    a_killed_worker_loses_its_command,
    a_stopped_worker_is_lost_within_the_bound,
    a_cut_off_worker_is_lost_within_the_bound,
    shutdown_ends_the_worker,
    master_shutdown_ends_connections,
    bad_frames_close_only_their_connection,
    a_slow_consumer_stalls_without_loss,
);

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking for a worker, with any credentials.
async fn raw_connect(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
) -> Result<RawWs, tungstenite::Error> {
    let mut request = format!("ws://{addr}/").into_client_request()?;
    if let Some((name, password)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        request
            .headers_mut()
            .insert("Authorization", format!("Basic {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

fn status_of(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Plays a minimal worker on a raw connection: answers the master's setup requests, so that
/// the connection becomes ready.
async fn raw_introduce(ws: &mut RawWs) {
    loop {
        let frame = within(Duration::from_secs(10), ws.next())
            .await
            .expect("the master sends its setup requests")
            .unwrap();
        let WsMessage::Binary(bytes) = frame else {
            continue;
        };
        let Message::FromMaster { seq, request } = decode(&bytes).unwrap() else {
            panic!("unexpected frame")
        };
        let result = match request.op() {
            "get_worker_info" => WorkerInfo {
                basedir: Some("/nowhere".into()),
                version: Some("raw".into()),
                ..WorkerInfo::default()
            }
            .to_value(),
            _ => Value::Nil,
        };
        let answer = Message::Response(Response {
            seq,
            outcome: Outcome::Ok(result),
        });
        ws.send(WsMessage::Binary(encode(&answer).into()))
            .await
            .unwrap();
        if request.op() == "get_worker_info" {
            return;
        }
    }
}

/// Reads until the master closes the connection; returns the close code, if it sent one.
async fn closed_with(ws: &mut RawWs) -> Option<CloseCode> {
    loop {
        match within(Duration::from_secs(10), ws.next()).await {
            Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

async fn wait_lost(
    events: &mut tokio::sync::broadcast::Receiver<RegistryEvent>,
    name: &str,
) -> LostReason {
    loop {
        match within(Duration::from_secs(60), events.recv()).await {
            Ok(RegistryEvent::Lost {
                name: n, reason, ..
            }) if n == name => return reason,
            Ok(_) => continue,
            Err(e) => panic!("registry events: {e}"),
        }
    }
}

async fn wrong_credentials_are_refused(peer: Peer) {
    let config = master_config(&[(NAME, PASSWORD)]);
    let master = abo_master::start(config).await.unwrap();
    let addr = master.worker_addr();
    for auth in [Some((NAME, "wrong")), Some(("nobody", PASSWORD)), None] {
        let err = raw_connect(addr, auth).await.unwrap_err();
        assert_eq!(status_of(err), 401, "{auth:?}");
    }
    // A real worker with a wrong password keeps retrying and is never connected.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("worker");
    peer.create(&dir, addr, NAME, "not-the-password");
    let worker = peer.spawn(&dir, &tmp.path().join("worker.log"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        master.registry().connection(NAME).is_none(),
        "{}",
        worker.log_tail()
    );
    assert!(master.registry().status()[0].connection.is_none());
    master.shutdown().await;
}

async fn a_new_connection_replaces_a_silent_one(peer: Peer) {
    let mut f = fixture(peer).await;
    let cmd = f
        .conn
        .run(shell(argv(&f.wpath("build"), &["sleep", "60"])))
        .await
        .unwrap();
    // The first worker goes silent (half-open as far as the master can tell) and a second
    // process authenticates under the same name: it must get in at once.
    f.worker.signal(libc::SIGSTOP);
    let started = Instant::now();
    let (mut second, conn2) = {
        let wdir = f.tmp.path().join("second");
        peer.create(&wdir, f.master.worker_addr(), NAME, PASSWORD);
        let w = peer.spawn(&wdir, &f.tmp.path().join("second.log"));
        let c = within(
            Duration::from_secs(30),
            f.master.registry().wait_for_newer(NAME, 1),
        )
        .await;
        (w, c)
    };
    eprintln!("replaced after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(conn2.generation(), 2);
    let r = within(Duration::from_secs(10), cmd.result()).await;
    assert_eq!(r.end, End::Lost(LostReason::Replaced), "{r:?}");
    assert!(f.conn.is_closed());
    // Stop the first worker before it wakes up and takes its turn again.
    f.worker.kill();
    let out = run(&conn2, shell(argv(&f.wpath("build"), &["true"]))).await;
    assert!(out.result.is_success(), "{out:?}");
    second.kill();
    f.stop().await;
}

async fn a_killed_worker_loses_its_command(peer: Peer) {
    let mut f = fixture(peer).await;
    let mut events = f.master.registry().subscribe();
    let mut cmd = f
        .conn
        .run(shell(script(&f.wpath("build"), "echo started; sleep 20")))
        .await
        .unwrap();
    // Wait until it runs, then kill the worker process outright.
    while let Some(entry) = within(Duration::from_secs(20), cmd.next()).await {
        if matches!(&entry, UpdateEntry::Stdout(l) if l.text.contains("started")) {
            break;
        }
    }
    let killed = Instant::now();
    f.worker.kill();
    let r = within(Duration::from_secs(10), cmd.result()).await;
    assert!(matches!(r.end, End::Lost(_)), "{r:?}");
    assert!(killed.elapsed() < Duration::from_secs(5));
    let reason = wait_lost(&mut events, NAME).await;
    assert_eq!(reason, LostReason::Closed);
    assert!(f.master.registry().connection(NAME).is_none());
    let err = f.conn.keepalive().await.unwrap_err();
    assert!(
        matches!(err, abo_master::Error::Disconnected { .. }),
        "{err}"
    );
    f.stop().await;
}

/// When a silent worker must be declared lost: `lost_after` after the last sign of life,
/// which came at most one ping interval before the silence began.
fn assert_within_bound(took: Duration) {
    let t = fast_timing();
    let earliest = t
        .lost_after
        .saturating_sub(t.ping_interval + Duration::from_millis(200));
    let latest = t.lost_after + Duration::from_secs(1);
    assert!(
        took >= earliest && took <= latest,
        "lost after {took:?}, expected between {earliest:?} and {latest:?}"
    );
}

async fn a_stopped_worker_is_lost_within_the_bound(peer: Peer) {
    let f = fixture(peer).await;
    let mut events = f.master.registry().subscribe();
    let cmd = f
        .conn
        .run(shell(argv(&f.wpath("build"), &["sleep", "30"])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.worker.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let reason = wait_lost(&mut events, NAME).await;
    let took = stopped.elapsed();
    eprintln!("{peer:?} stopped: declared lost after {took:?}");
    assert!(matches!(reason, LostReason::Silent(_)), "{reason:?}");
    assert_within_bound(took);
    let r = within(Duration::from_secs(5), cmd.result()).await;
    assert!(matches!(r.end, End::Lost(LostReason::Silent(_))), "{r:?}");
    f.stop().await;
}

/// A TCP relay between worker and master that can stop forwarding without closing anything:
/// the network goes silent while both sockets stay open.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

async fn relay(to: SocketAddr) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let c = cut.clone();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let Ok(up) = TcpStream::connect(to).await else {
                continue;
            };
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            tokio::spawn(pump(dr, uw, c.clone()));
            tokio::spawn(pump(ur, dw, c.clone()));
        }
    });
    Relay { addr, cut }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            // Keep both sockets open and forward nothing, ever again.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn a_cut_off_worker_is_lost_within_the_bound(peer: Peer) {
    let tmp = tempfile::tempdir().unwrap();
    let master = abo_master::start(master_config(&[(NAME, PASSWORD)]))
        .await
        .unwrap();
    let relay = relay(master.worker_addr()).await;
    let wdir = tmp.path().join("worker");
    peer.create(&wdir, relay.addr, NAME, PASSWORD);
    let _worker = peer.spawn(&wdir, &tmp.path().join("worker.log"));
    let conn = within(CONNECT_TIMEOUT, master.registry().wait_for(NAME)).await;
    let mut events = master.registry().subscribe();
    let basedir = conn.info().basedir.clone().unwrap();
    let cmd = conn
        .run(shell(argv(&basedir, &["sleep", "30"])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.cut.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    let reason = wait_lost(&mut events, NAME).await;
    let took = cut.elapsed();
    eprintln!("{peer:?} cut off: declared lost after {took:?}");
    assert!(matches!(reason, LostReason::Silent(_)), "{reason:?}");
    assert_within_bound(took);
    let r = within(Duration::from_secs(5), cmd.result()).await;
    assert!(matches!(r.end, End::Lost(_)), "{r:?}");
    master.shutdown().await;
}

async fn shutdown_ends_the_worker(peer: Peer) {
    let mut f = fixture(peer).await;
    let mut events = f.master.registry().subscribe();
    f.conn.shutdown().await.unwrap();
    let status = f.worker.wait_exit(Duration::from_secs(15));
    assert!(status.is_some(), "the worker process exits after shutdown");
    let reason = wait_lost(&mut events, NAME).await;
    assert_eq!(reason, LostReason::Closed);
    // It does not come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(f.master.registry().connection(NAME).is_none());
    f.stop().await;
}

async fn master_shutdown_ends_connections(peer: Peer) {
    let f = fixture(peer).await;
    let cmd = f
        .conn
        .run(shell(argv(&f.wpath("build"), &["sleep", "30"])))
        .await
        .unwrap();
    let conn = f.conn.clone();
    let started = Instant::now();
    let Fixture {
        master, mut worker, ..
    } = f;
    within(Duration::from_secs(10), master.shutdown()).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        within(Duration::from_secs(5), conn.closed()).await,
        LostReason::Shutdown
    );
    let r = within(Duration::from_secs(5), cmd.result()).await;
    assert_eq!(r.end, End::Lost(LostReason::Shutdown));
    worker.kill();
}

async fn bad_frames_close_only_their_connection(peer: Peer) {
    let mut config = master_config(&[(NAME, PASSWORD), ("raw", "raw-pass")]);
    config.max_frame_bytes = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let master = abo_master::start(config).await.unwrap();
    let addr = master.worker_addr();
    let (_worker, conn) = connect_worker(peer, &master, tmp.path(), "worker", NAME, PASSWORD).await;
    let basedir = conn.info().basedir.clone().unwrap();

    // A request for a command that is not this connection's is answered with an exception;
    // the connection stays.
    let mut ws = raw_connect(addr, Some(("raw", "raw-pass"))).await.unwrap();
    raw_introduce(&mut ws).await;
    within(Duration::from_secs(5), master.registry().wait_for("raw")).await;
    let foreign = Message::FromWorker {
        seq: SeqNumber::new(0),
        request: WorkerRequest::Update {
            command_id: CommandId::new("0"),
            entries: vec![UpdateEntry::Rc(0)],
        },
    };
    ws.send(WsMessage::Binary(encode(&foreign).into()))
        .await
        .unwrap();
    ws.send(WsMessage::text("text frames are ignored"))
        .await
        .unwrap();
    let answer = loop {
        let Some(Ok(WsMessage::Binary(bytes))) = within(Duration::from_secs(5), ws.next()).await
        else {
            continue;
        };
        if let Message::Response(r) = decode(&bytes).unwrap() {
            break r;
        }
    };
    assert_eq!(answer.seq, SeqNumber::new(0));
    assert!(
        matches!(&answer.outcome, Outcome::Exception(t) if t.contains("not an active command")),
        "{answer:?}"
    );
    assert!(master.registry().connection("raw").is_some());

    // An op the master does not know is answered as the stock worker answers one.
    let unknown = Message::Unknown {
        op: "bogus_op".into(),
        seq: SeqNumber::new(1),
    };
    ws.send(WsMessage::Binary(encode(&unknown).into()))
        .await
        .unwrap();
    let answer = loop {
        let Some(Ok(WsMessage::Binary(bytes))) = within(Duration::from_secs(5), ws.next()).await
        else {
            continue;
        };
        if let Message::Response(r) = decode(&bytes).unwrap() {
            break r;
        }
    };
    assert_eq!(answer.seq, SeqNumber::new(1));
    assert_eq!(
        answer.outcome,
        Outcome::Exception("Command bogus_op does not exist.".into())
    );

    // Garbage: the connection is closed with a protocol error.
    ws.send(WsMessage::Binary(vec![0xc1, 0x00, 0xff].into()))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Protocol));

    // Over the frame cap: closed with "message too big", before the master reads it.
    let mut ws = raw_connect(addr, Some(("raw", "raw-pass"))).await.unwrap();
    raw_introduce(&mut ws).await;
    let _ = ws.send(WsMessage::Binary(vec![0x80; 200_000].into())).await;
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Size));

    // A peer that connects and never finishes the handshake is dropped too.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = within(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");

    // Through all this, the real worker stayed connected and usable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(master.registry().connection("raw").is_none());
    let still = master.registry().connection(NAME).expect("still connected");
    assert_eq!(still.generation(), 1);
    let out = run(&still, shell(argv(&basedir, &["echo", "fine"]))).await;
    assert_eq!(out.stdout, "fine\n", "{out:?}");
    master.shutdown().await;
}

async fn a_slow_consumer_stalls_without_loss(peer: Peer) {
    let f = fixture(peer).await;
    // Lines of 49 characters and a newline: 600,000 whole lines.
    const TOTAL: u64 = 30_000_000;
    let line = "0123456789".repeat(5);
    let text = format!("yes {} | head -c {TOTAL}", &line[..49]);
    let mut cmd = f
        .conn
        .run(shell(script(&f.wpath("build"), &text)))
        .await
        .unwrap();
    // Nothing is read for longer than `lost_after`: the command's queue fills, the
    // connection stops reading the socket, and that is not the worker's silence.
    tokio::time::sleep(fast_timing().lost_after + Duration::from_secs(2)).await;
    assert!(!f.conn.is_closed(), "a slow consumer made the worker lost");
    let mut bytes = 0u64;
    while let Some(entry) = within(Duration::from_secs(120), cmd.next()).await {
        if let UpdateEntry::Stdout(l) = entry {
            bytes += l.text.len() as u64;
        }
    }
    let r = cmd.result().await;
    assert!(r.is_success(), "{r:?}");
    assert_eq!(bytes, TOTAL);
    let conn = f
        .master
        .registry()
        .connection(NAME)
        .expect("still connected");
    assert_eq!(conn.generation(), 1);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_time_out() {
    let mut config = master_config(&[("raw", "raw-pass")]);
    config.timing.request_timeout = Duration::from_secs(1);
    let master = abo_master::start(config).await.unwrap();
    let addr = master.worker_addr();

    // A peer that never answers get_worker_info is dropped once the request times out.
    let mut mute = raw_connect(addr, Some(("raw", "raw-pass"))).await.unwrap();
    let started = Instant::now();
    assert_eq!(closed_with(&mut mute).await, Some(CloseCode::Protocol));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(master.registry().connection("raw").is_none());

    // A ready peer that stops answering: requests fail with a timeout, and a command whose
    // start is never answered ends as unanswered (and is interrupted).
    let mut ws = raw_connect(addr, Some(("raw", "raw-pass"))).await.unwrap();
    raw_introduce(&mut ws).await;
    let conn = within(Duration::from_secs(5), master.registry().wait_for("raw")).await;
    let (ops_tx, mut ops) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        // Reading keeps the pongs flowing: the peer is alive, only mute.
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Binary(bytes) = frame {
                if let Ok(msg) = decode(&bytes) {
                    let _ = ops_tx.send(msg.op().to_owned());
                }
            }
        }
    });
    let err = conn.print("anyone?").await.unwrap_err();
    assert!(
        matches!(err, abo_master::Error::Timeout { op: "print", .. }),
        "{err}"
    );
    let cmd = conn.run(shell(argv("/", &["true"]))).await.unwrap();
    let r = within(Duration::from_secs(10), cmd.result()).await;
    assert_eq!(r.end, End::Unanswered, "{r:?}");
    let mut seen = Vec::new();
    while let Ok(Some(op)) = tokio::time::timeout(Duration::from_secs(2), ops.recv()).await {
        seen.push(op);
        if seen.iter().any(|o| o == "interrupt_command") {
            break;
        }
    }
    assert_eq!(seen, ["print", "start_command", "interrupt_command"]);
    assert!(
        !conn.is_closed(),
        "a mute peer that answers pings stays connected"
    );
    reader.abort();
    master.shutdown().await;
}
