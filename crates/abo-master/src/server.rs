//! [`start`]: binds the worker port (and the HTTP port), and [`RunningMaster`], the handle
//! that owns every task the master spawned and shuts them down.
//!
//! Task ownership: one root [`CancellationToken`] and one [`TaskTracker`]. The accept loop,
//! the HTTP server and every connection (handshake included) are tracked; each selects on the
//! token. [`RunningMaster::shutdown`] cancels it and waits for all of them.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MasterConfig;
use crate::connection::{self, Setup};
use crate::error::Error;
use crate::registry::{AuthRefusal, WorkerRegistry};

/// The running master: its bound addresses, its registry, and its tasks.
#[derive(Debug)]
pub struct RunningMaster {
    worker_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    registry: Arc<WorkerRegistry>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl RunningMaster {
    /// Where workers connect (the real port when the configuration said 0).
    pub fn worker_addr(&self) -> SocketAddr {
        self.worker_addr
    }

    /// Where the JSON API listens, if it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The workers and their connections.
    pub fn registry(&self) -> &Arc<WorkerRegistry> {
        &self.registry
    }

    /// Stops accepting, closes every connection (their commands end as lost) and waits for
    /// every task to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), Error> {
    let err = |source| Error::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Binds the listeners and starts serving. Returns once both ports are bound.
pub async fn start(config: MasterConfig) -> Result<RunningMaster, Error> {
    let registry = Arc::new(WorkerRegistry::new(&config.workers));
    // The store is ready (interrupted builds marked, the queue read) before any port is
    // bound: nothing is accepted that could not be recorded.
    let prepared = match &config.builds {
        Some(setup) => {
            let passwords: Vec<String> =
                config.workers.iter().map(|w| w.password.clone()).collect();
            Some(crate::runner::prepare(setup, &passwords).await?)
        }
        None => None,
    };
    let (worker_listener, worker_addr) = bind(&config.worker_listen).await?;
    let http = match &config.http_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let api = prepared.map(|prepared| {
        let shared = prepared.shared.clone();
        // Subscribed before the accept loop runs, so no connection is missed.
        let events = registry.subscribe();
        let (runner, handle) = crate::runner::Runner::new(
            prepared,
            registry.clone(),
            events,
            shutdown.clone(),
            tracker.clone(),
        );
        tracker.spawn(runner.run());
        // Read by the scheduler task (wired in with the pollers).
        let (changes, _feed) = crate::scheduling::ChangeFeed::new();
        crate::api::Api::new(shared, handle, changes)
    });
    tracing::info!("listening for workers on {worker_addr}");
    let http_addr = http.as_ref().map(|(_, a)| *a);
    if let Some((listener, addr)) = http {
        tracing::info!("serving the API on http://{addr}");
        let app = crate::http::full_router(registry.clone(), api);
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("the HTTP server stopped: {e}");
            }
        });
    }
    tracker.spawn(accept_loop(
        worker_listener,
        Arc::new(config),
        registry.clone(),
        shutdown.clone(),
        tracker.clone(),
    ));
    Ok(RunningMaster {
        worker_addr,
        http_addr,
        registry,
        shutdown,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<MasterConfig>,
    registry: Arc<WorkerRegistry>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Acks and small requests must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                tracker.spawn(handshake(
                    stream,
                    peer,
                    config.clone(),
                    registry.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::error!("accepting a worker connection failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

/// `Authorization: Basic base64(name:password)`, split on the first `:` (names cannot hold
/// one, passwords can).
fn credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// A name from the network, fit for a log line.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s.escape_debug().to_string()
}

fn unauthorized() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some("unknown worker or wrong password\n".to_owned()));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"abo\""),
    );
    response
}

// The callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<MasterConfig>,
    registry: Arc<WorkerRegistry>,
    shutdown: CancellationToken,
) {
    let mut accepted_name: Option<String> = None;
    let callback = |request: &Request, response: Response| {
        let Some((name, password)) = credentials(request) else {
            tracing::warn!(%peer, refusal = ?AuthRefusal::NoCredentials, "refused a connection without Basic credentials");
            return Err(unauthorized());
        };
        match registry.authenticate(&name, &password) {
            Ok(()) => {
                accepted_name = Some(name);
                Ok(response)
            }
            Err(refusal) => {
                let why = match refusal {
                    AuthRefusal::UnknownWorker => "unknown worker",
                    AuthRefusal::WrongPassword => "wrong password",
                    AuthRefusal::NoCredentials => "no credentials",
                };
                tracing::warn!(%peer, worker = %shown(&name), "refused a connection: {why}");
                Err(unauthorized())
            }
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_frame_size(Some(config.max_frame_bytes))
        .max_message_size(Some(config.max_frame_bytes));
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let ws = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(config.timing.handshake_timeout, accept) => match r {
            Err(_) => {
                tracing::warn!(%peer, "no WebSocket handshake within {:?}; closed", config.timing.handshake_timeout);
                return;
            }
            // Refusals were logged by the callback; other failures are not worker connections.
            Ok(Err(e)) => {
                tracing::debug!(%peer, "handshake failed: {e}");
                return;
            }
            Ok(Ok(ws)) => ws,
        },
    };
    let Some(name) = accepted_name else {
        return;
    };
    let Some(attached) = registry.attach(&name, peer) else {
        return;
    };
    connection::serve(
        ws,
        Setup {
            name,
            peer,
            attached,
            registry,
            shutdown,
            timing: config.timing,
            limits: config.limits(),
            connect_settings: config.connect_settings.clone(),
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: Option<&str>) -> Request {
        let mut r = Request::builder().uri("/");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn basic_credentials_split_on_the_first_colon() {
        // base64("w1:pa:ss")
        let r = request(Some("Basic dzE6cGE6c3M="));
        assert_eq!(credentials(&r), Some(("w1".into(), "pa:ss".into())));
        assert_eq!(
            credentials(&request(Some("basic dzE6cGE6c3M="))),
            Some(("w1".into(), "pa:ss".into()))
        );
        assert_eq!(credentials(&request(None)), None);
        assert_eq!(credentials(&request(Some("Bearer x"))), None);
        assert_eq!(credentials(&request(Some("Basic !!!"))), None);
        // base64("nocolon")
        assert_eq!(credentials(&request(Some("Basic bm9jb2xvbg=="))), None);
    }

    #[test]
    fn names_are_shown_escaped_and_short() {
        assert_eq!(shown("w1"), "w1");
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 65);
    }
}
