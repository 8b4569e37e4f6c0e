//! `/events`: server-sent events for live pages. Every [`TICK`] the stream computes a
//! stamp of what the pages show (the store's [`abo_store::StatusStamp`]: newest build,
//! step, request and change, and how many run or wait; plus which workers are connected)
//! and sends a `change` event when it differs from the last one sent. The page's script
//! then reloads the page's live fragment. The stream ends when the master stops.

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::Web;

/// How often the state is compared.
const TICK: Duration = Duration::from_secs(1);

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
    let first = stamp(&web).await;
    let stream = futures_util::stream::unfold((web, first), move |(web, last)| {
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(TICK) => {}
                }
                let now = stamp(&web).await;
                if now.is_some() && now != last {
                    let event = Event::default()
                        .event("change")
                        .data(format!("{:x}", now.unwrap_or(0)));
                    return Some((Ok::<Event, Infallible>(event), (web, now)));
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
