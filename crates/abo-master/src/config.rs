//! [`MasterConfig`]: what the master runtime needs to know, already validated by the caller
//! (`abo start` builds it from `master.toml` and `workers.cfg`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use abo_plan::Plan;
use abo_proto::{Limits, WorkerSettings};

/// How often the master pings a connected worker: the stock worker never sends anything on
/// its own, so silence can only be noticed by asking.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long a worker may stay silent (no frame, no pong) before it is declared lost: three
/// ping intervals, so one delayed pong is not a loss.
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(45);
/// The worker's autobahn client gives up on the opening handshake after 5 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request to the worker (`get_worker_info`, `start_command`, `interrupt_command`,
/// ...) may stay unanswered. The stock worker answers `start_command` as soon as the command
/// is kicked off, not when it ends, so this bounds the protocol exchange, not the command.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The stock worker splits longer lines *and loses characters doing so* (4.3.0 keeps 4,095 of
/// every 4,096 and drops some more), so the master raises its 4,096 default on connect.
pub const DEFAULT_MAX_LINE_LENGTH: u64 = 1024 * 1024;

/// A worker allowed to connect, as declared in the workers file.
#[derive(Clone)]
pub struct WorkerAccount {
    /// The name it authenticates with.
    pub name: String,
    /// Its password. Never logged, never shown by the API (`Debug` hides it).
    pub password: String,
    /// Capabilities as declared, shown by the API.
    pub capabilities: Vec<Capability>,
}

impl fmt::Debug for WorkerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerAccount")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// One declared capability line: `name [version [key=value ...]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capability {
    /// `postgresql`, `python`, ...
    pub name: String,
    /// The version, if the line has one.
    pub version: Option<String>,
    /// `key=value` options (`port`, `bin`, ...).
    pub options: BTreeMap<String, String>,
}

/// Liveness and protocol timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A WebSocket ping is sent this often.
    pub ping_interval: Duration,
    /// A worker that sent nothing (not even a pong) for this long is lost.
    pub lost_after: Duration,
    /// The whole opening handshake (HTTP upgrade and authentication) must fit in this.
    pub handshake_timeout: Duration,
    /// A request the worker does not answer within this is failed with
    /// [`crate::Error::Timeout`].
    pub request_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ping_interval: DEFAULT_PING_INTERVAL,
            lost_after: DEFAULT_LOST_AFTER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Everything the master runtime is started with.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Where workers connect (`host:port`; port 0 picks a free port, see
    /// [`crate::RunningMaster::worker_addr`]).
    pub worker_listen: String,
    /// Where the JSON API listens; `None` serves no HTTP.
    pub http_listen: Option<String>,
    /// The workers allowed to connect, in the workers file's order.
    pub workers: Vec<WorkerAccount>,
    /// Frames longer than this are refused before they are read, and the connection closed.
    pub max_frame_bytes: usize,
    /// Liveness and timeouts.
    pub timing: Timing,
    /// Sent with `set_worker_settings` right after `get_worker_info` on every connection;
    /// `None` leaves the worker's own defaults.
    pub connect_settings: Option<WorkerSettings>,
    /// Running builds: the plan, the store and where artifacts go. `None` runs only the
    /// worker port and `GET /api/v1/workers` (what the connection tests need).
    pub builds: Option<BuildSetup>,
}

/// Longest a worker keeps command output before sending it (`buffer_timeout`).
pub const LIVE_OUTPUT_DELAY_SECS: f64 = 1.0;

/// What the build runner needs: the plan to run, where to persist, where uploads land.
#[derive(Clone)]
pub struct BuildSetup {
    /// The plan (builders, their steps and workers).
    pub plan: Arc<Plan>,
    /// The master directory: relative `download` sources are read from it.
    pub master_dir: PathBuf,
    /// The database (`Store::open`'s argument: a file, a directory, an `sqlite:` URL).
    pub database: String,
    /// Where uploads land and what `/artifacts/` serves (created if missing).
    pub artifacts_dir: PathBuf,
    /// Absolute directories where absolute upload destinations are accepted.
    pub allowed_upload_roots: Vec<PathBuf>,
    /// Stored bytes per log before it is truncated with a marker.
    pub log_cap_bytes: u64,
    /// Values masked in every log, property and API answer (master.toml's `secrets`).
    /// Worker passwords are added by [`crate::start`].
    pub secrets: Vec<String>,
    /// Forge webhooks and their secrets (master.toml `[webhooks.*]`). The secrets must also
    /// be in `secrets`, so that they are masked like the others.
    pub webhooks: Webhooks,
    /// master.toml's `url-rewrite` rules, `(from prefix, to prefix)` in order: repository
    /// URLs of pushed changes go through them before they are matched with the plan.
    pub url_rewrite: Vec<(String, String)>,
    /// The web status pages are readable without logging in (master.toml `[web] public`);
    /// mutations always need a login.
    pub web_public: bool,
    /// A worker disconnected for longer than this is flagged as missing on the workers page
    /// (master.toml `[web] missing-worker-after`).
    pub missing_worker_after: Duration,
    /// The time zone of nightly schedules (an IANA name); `None`: the system's.
    pub time_zone: Option<String>,
    /// How pollers run their VCS commands and pace their polls.
    pub poller_options: abo_vcs::PollerOptions,
}

/// The forges allowed to push changes (`POST /hooks/{forge}`): a forge whose secret is
/// `None` has no endpoint (404), so unsigned payloads are never accepted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Webhooks {
    /// GitHub's `X-Hub-Signature-256` HMAC key.
    pub github_secret: Option<String>,
    /// GitLab's `X-Gitlab-Token`.
    pub gitlab_token: Option<String>,
    /// Gitea's `X-Gitea-Signature` (Forgejo's `X-Forgejo-Signature`) HMAC key.
    pub gitea_secret: Option<String>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<hidden>" } else { "none" };
        f.debug_struct("Webhooks")
            .field("github_secret", &shown(&self.github_secret))
            .field("gitlab_token", &shown(&self.gitlab_token))
            .field("gitea_secret", &shown(&self.gitea_secret))
            .finish()
    }
}

impl fmt::Debug for BuildSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSetup")
            .field("builders", &self.plan.builders.len())
            .field("master_dir", &self.master_dir)
            .field("database", &abo_store::masked_location(&self.database))
            .field("artifacts_dir", &self.artifacts_dir)
            .field("allowed_upload_roots", &self.allowed_upload_roots)
            .field("log_cap_bytes", &self.log_cap_bytes)
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .field("webhooks", &self.webhooks)
            .field("url_rewrite", &self.url_rewrite)
            .field("time_zone", &self.time_zone)
            .field("poller_options", &self.poller_options)
            .field("web_public", &self.web_public)
            .field("missing_worker_after", &self.missing_worker_after)
            .finish()
    }
}

impl MasterConfig {
    /// Defaults for everything but the listen address and the workers.
    pub fn new(worker_listen: impl Into<String>, workers: Vec<WorkerAccount>) -> MasterConfig {
        MasterConfig {
            worker_listen: worker_listen.into(),
            http_listen: None,
            workers,
            max_frame_bytes: Limits::default().max_frame_bytes,
            timing: Timing::default(),
            connect_settings: Some(WorkerSettings {
                max_line_length: DEFAULT_MAX_LINE_LENGTH,
                // Output reaches live log pages within a second (Buildbot's 5 s default
                // shows running logs in bursts); size-triggered flushes are unchanged.
                buffer_timeout: abo_proto::Seconds(LIVE_OUTPUT_DELAY_SECS),
                ..WorkerSettings::default()
            }),
            builds: None,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            ..Limits::default()
        }
    }
}
