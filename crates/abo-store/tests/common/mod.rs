//! Helpers shared by the store's tests: a store on a fresh SQLite file, times, builds.
#![allow(dead_code)]

use abo_store::{BuildId, Lease, NewRequest, RequestId, Store, Timestamp};

/// A store in a temporary directory (kept alive by the returned guard).
pub async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().to_str().expect("utf-8 temp path"))
        .await
        .expect("open store");
    (dir, store)
}

/// A time, in seconds, as the store's milliseconds.
pub fn t(secs: u64) -> Timestamp {
    Timestamp(secs * 1000)
}

/// Submits, claims and starts a build of `builder`, with `lease`.
pub async fn running_build(store: &Store, builder: &str, lease: u64) -> (RequestId, BuildId) {
    let req = store
        .submit_request(NewRequest::new(builder, t(1)))
        .await
        .unwrap();
    store.claim_request(req, Lease(lease), t(2)).await.unwrap();
    let (build, _) = store
        .create_build(req, "w1", Lease(lease), t(3))
        .await
        .unwrap();
    (req, build)
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
