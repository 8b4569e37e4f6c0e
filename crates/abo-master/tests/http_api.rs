//! `GET /api/v1/workers` before and after a real worker connects, and the 404 of unknown
//! routes. Nothing secret appears: no password, no environment.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use abo_master::Capability;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

peers!(workers_listing);

/// A bare HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, body.to_owned())
}

async fn workers_listing(peer: Peer) {
    let mut config = master_config(&[(NAME, PASSWORD), ("w2", "other-password")]);
    config.http_listen = Some("127.0.0.1:0".into());
    config.workers[0].capabilities = vec![Capability {
        name: "postgresql".into(),
        version: Some("9.6".into()),
        options: [("port".to_string(), "5434".to_string())].into(),
    }];
    let tmp = tempfile::tempdir().unwrap();
    let master = abo_master::start(config).await.unwrap();
    let http = master.http_addr().unwrap();

    let (status, body) = get(http, "/api/v1/workers").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["name"], "w1");
    assert_eq!(list[0]["connected"], false);
    assert!(list[0]["connected_since"].is_null());
    assert_eq!(list[0]["capabilities"][0]["name"], "postgresql");
    assert_eq!(list[0]["capabilities"][0]["options"]["port"], "5434");
    assert_eq!(list[1]["name"], "w2");

    let before = std::time::SystemTime::now();
    let (_worker, conn) = connect_worker(peer, &master, tmp.path(), "worker", NAME, PASSWORD).await;
    let (status, body) = get(http, "/api/v1/workers").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let w1 = &list[0];
    assert_eq!(w1["connected"], true, "{body}");
    let since = humantime::parse_rfc3339(w1["connected_since"].as_str().unwrap()).unwrap();
    assert!(since + Duration::from_secs(1) >= before, "{body}");
    assert_eq!(w1["version"], conn.info().version.clone().unwrap().as_str());
    assert_eq!(w1["basedir"], conn.info().basedir.clone().unwrap().as_str());
    assert_eq!(w1["numcpus"], conn.info().numcpus.unwrap());
    assert_eq!(w1["system"], "posix");
    assert!(w1["os"].is_string(), "{body}");
    assert_eq!(list[1]["connected"], false);
    for secret in [PASSWORD, "other-password", WORKER_SECRET.1, WORKER_VAR.1] {
        assert!(!body.contains(secret), "{secret:?} shown in {body}");
    }
    assert!(!body.contains("environ"), "{body}");

    let (status, body) = get(http, "/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "not found");
    assert!(err["reason"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing-here"));
    master.shutdown().await;
}
