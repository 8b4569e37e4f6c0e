//! `/events`: server-sent events for live pages. One task ([`StampWatch`]) computes, every
//! [`TICK`] while at least one stream is open, a stamp of what the pages show (the store's
//! [`abo_store::StatusStamp`]: newest build, step, request and change, and how many run or
//! wait; plus which workers are connected) and shares it with every open stream; a stream
//! sends a `change` event when the stamp differs from the last one it sent. The page's
//! script then reloads the page's live fragment. However many pages are open, the store
//! answers one stamp query per tick. Streams end when the master stops.

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::Web;

/// How often the state is compared.
const TICK: Duration = Duration::from_secs(1);

/// The latest stamp, shared by the open streams; see the module documentation.
pub(crate) struct StampWatch {
    latest: watch::Sender<Option<u64>>,
    ticking: AtomicBool,
}

impl Default for StampWatch {
    fn default() -> Self {
        StampWatch {
            latest: watch::Sender::new(None),
            ticking: AtomicBool::new(false),
        }
    }
}

impl StampWatch {
    /// A receiver of the stamps; the first one starts the ticking task.
    fn subscribe(&self, web: &Web) -> watch::Receiver<Option<u64>> {
        let rx = self.latest.subscribe();
        if !self.ticking.swap(true, Ordering::AcqRel) {
            web.opts().tracker.spawn(tick(web.clone()));
        }
        rx
    }
}

/// Computes the stamp every [`TICK`] while someone listens, until the master stops.
async fn tick(web: Web) {
    let shutdown = web.opts().shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let latest = &web.stamps().latest;
        if latest.receiver_count() == 0 {
            continue;
        }
        if let Some(now) = stamp(&web).await {
            latest.send_if_modified(|current| {
                let changed = *current != Some(now);
                *current = Some(now);
                changed
            });
        }
    }
}

async fn stamp(web: &Web) -> Option<u64> {
    let s = web.store().status_stamp().await.ok()?;
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    for (w, _) in web.worker_status() {
        w.name.hash(&mut h);
        w.connection.map(|c| c.generation).hash(&mut h);
    }
    Some(h.finish())
}

pub(crate) async fn stream(State(web): State<Web>) -> Response {
    let shutdown = web.opts().shutdown.clone();
    // Subscribed before this stream's own first stamp, so that no change made after it is
    // missed; the shared value may be older, which only costs a comparison.
    let mut stamps = web.stamps().subscribe(&web);
    stamps.borrow_and_update();
    let first = stamp(&web).await;
    let stream = futures_util::stream::unfold((stamps, first), move |(mut stamps, last)| {
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    changed = stamps.changed() => changed.ok()?,
                }
                let now = *stamps.borrow_and_update();
                if now.is_some() && now != last {
                    let event = Event::default()
                        .event("change")
                        .data(format!("{:x}", now.unwrap_or(0)));
                    return Some((Ok::<Event, Infallible>(event), (stamps, now)));
                }
            }
        }
    });
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    r
}
