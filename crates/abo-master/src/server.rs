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

use crate::config::{BuildSetup, MasterConfig, WorkerAccount};
use crate::connection::{self, Setup};
use crate::error::Error;
use crate::master_api::ConfigStatus;
use crate::registry::{AuthRefusal, WorkerRegistry};

/// The running master: its bound addresses, its registry, and its tasks.
#[derive(Debug)]
pub struct RunningMaster {
    worker_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    registry: Arc<WorkerRegistry>,
    /// The build side: `None` when the configuration runs no builds.
    builds: Option<Builds>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// The build side of a running master, for reconfiguration and the API.
struct Builds {
    api: crate::api::Api,
    scheduling: crate::scheduling::SchedulingHandle,
    status: Arc<std::sync::Mutex<ConfigStatus>>,
}

impl Builds {
    fn master_api(&self) -> crate::master_api::MasterApi {
        crate::master_api::MasterApi {
            pollers: self.scheduling.pollers.clone(),
            status: self.status.clone(),
        }
    }
}

impl std::fmt::Debug for Builds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builds").finish_non_exhaustive()
    }
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

    /// Puts a new configuration in force without dropping connected workers or running
    /// builds: the workers' accounts, the plan (builds running keep the steps they started
    /// with; requests waiting for builders that are gone are cancelled), the pollers and
    /// the schedulers (pending timers of schedulers that remain are kept), the webhook
    /// secrets and URL rewriting of pushed changes. `setup`'s other fields (database,
    /// directories, log cap, secrets, web settings) take effect at the next start. The caller has
    /// checked the configuration; an invalid one never reaches here (see
    /// [`RunningMaster::reload_refused`]). Returns the new configuration generation.
    pub async fn reload(&self, workers: &[WorkerAccount], setup: &BuildSetup) -> u64 {
        let (added, removed) = self.registry.update_accounts(workers);
        let Some(builds) = &self.builds else {
            return self.note_reload(Ok(()));
        };
        let plan = setup.plan.clone();
        builds.api.shared.set_plan(plan.clone());
        builds
            .api
            .shared
            .set_push(crate::webhook::PushSettings::new(setup));
        builds.api.runner.reload(plan.clone());
        builds.scheduling.reload(plan.clone()).await;
        tracing::info!(
            builders = plan.builders.len(),
            pollers = plan.pollers.len(),
            schedulers = plan.schedulers.len(),
            workers_added = ?added,
            workers_removed = ?removed,
            "configuration reloaded"
        );
        self.note_reload(Ok(()))
    }

    /// Records a reconfiguration that was refused (its diagnostics, one per line): the
    /// running configuration stays, and the API shows why.
    pub fn reload_refused(&self, diagnostics: Vec<String>) {
        tracing::error!(
            mistakes = diagnostics.len(),
            "the new configuration was refused; the running one stays"
        );
        for d in &diagnostics {
            tracing::error!("{d}");
        }
        self.note_reload(Err(diagnostics));
    }

    fn note_reload(&self, outcome: Result<(), Vec<String>>) -> u64 {
        let Some(builds) = &self.builds else {
            return 0;
        };
        let mut status = builds.status.lock().unwrap_or_else(|e| e.into_inner());
        let at = abo_store::Timestamp::now();
        status.last_attempt = Some(at);
        match outcome {
            Ok(()) => {
                status.generation += 1;
                status.loaded_at = Some(at);
                status.last_error = Vec::new();
            }
            Err(diagnostics) => status.last_error = diagnostics,
        }
        status.generation
    }

    /// Empties the store's caches of database pages (see [`abo_store::Store::release_memory`]),
    /// for the caller to give the freed memory back to the system.
    pub async fn release_memory(&self) {
        let Some(builds) = &self.builds else {
            return;
        };
        if let Err(e) = builds.api.shared.store.release_memory().await {
            tracing::warn!("emptying the database page caches: {e}");
        }
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
    let mut builds = None;
    if let (Some(prepared), Some(setup)) = (prepared, &config.builds) {
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
        let (changes, feed) = crate::scheduling::ChangeFeed::new();
        let time_zone = match &setup.time_zone {
            // The zone database `abo check` checked the name against.
            Some(name) => abo_plan::nightly::time_zone(name)
                .map_err(|e| Error::Setup(format!("timezone: {e}")))?,
            None => jiff::tz::TimeZone::system(),
        };
        let (scheduler, scheduling) =
            crate::scheduling::SchedulerTask::start(crate::scheduling::SchedulingSetup {
                store: shared.store.clone(),
                plan: shared.plan(),
                master_dir: setup.master_dir.clone(),
                time_zone,
                poller_options: setup.poller_options.clone(),
                runner: handle.clone(),
                feed,
                shutdown: shutdown.clone(),
            })
            .await?;
        tracker.spawn(scheduler.run());
        builds = Some(Builds {
            api: crate::api::Api::new(shared, handle, changes),
            scheduling,
            status: Arc::new(std::sync::Mutex::new(ConfigStatus::started())),
        });
    }
    tracing::info!("listening for workers on {worker_addr}");
    let http_addr = http.as_ref().map(|(_, a)| *a);
    if let Some((listener, addr)) = http {
        tracing::info!("serving the API on http://{addr}");
        let web = config
            .builds
            .as_ref()
            .map(|b| crate::web::WebOptions::new(b, shutdown.clone(), tracker.clone()));
        let app = crate::http::full_router(
            registry.clone(),
            builds.as_ref().map(|b| (b.api.clone(), b.master_api())),
            web,
        );
        let stop = shutdown.clone();
        tracker.spawn(async move {
            // The peer's address is what the login throttle counts failures by.
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
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
        builds,
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

/// What each worker connection reads from its socket at once. tungstenite's default of
/// 128 KiB is allocated and zeroed per connection up front (1 MiB with 8 workers, all
/// resident); most frames are small (pings, status, short output), and a bigger frame
/// reserves its own length before it is read, so only frames above this take a few more
/// reads.
const WS_READ_BUFFER: usize = 32 * 1024;

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
        .read_buffer_size(WS_READ_BUFFER)
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
