//! `abo start [DIR]`: the master in the foreground. Reads the master directory like
//! `abo check` (every mistake printed, exit status 1), opens the store (`database`, by
//! default `DIR/abo.sqlite`), then serves the worker port and the JSON API and runs the
//! builds until SIGTERM or SIGINT, and shuts down cleanly (exit status 0). Builds still
//! running then are marked interrupted at the next start and run again.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` is respected, default `info`); the first
//! lines name the bound addresses (`listening for workers on HOST:PORT`), which is how
//! scripts and tests find a port chosen with `:0`.

use crate::config_repo::{self, ConfigRepo};
use crate::load::{self, load, Loaded, Sources};
use crate::pidfile::{self, Kind};
use crate::MasterDirArgs;
use abo_config::MasterSettings;
use abo_master::{BuildSetup, Capability, MasterConfig, Timing, Webhooks, WorkerAccount};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    master: MasterDirArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sources = args.master.sources();
    // Claimed before anything else, held until the master exits: two masters on one
    // directory would share its database and both dispatch its builds.
    let claimed = pidfile::claim_for(Kind::Master, pid_file(&sources.dir), &sources.dir)?;
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The blocking pool runs short jobs only (SQLite statements, chunk compression,
        // transfer I/O, password checks), none waiting for another, so a few threads keep
        // up: SQLite writes are serialized anyway. Tokio's default of 512 let a burst of
        // builds start a dozen more threads, each with its own stack in use.
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        // Idle blocking threads exit after 2 s instead of 10 s: memory comes back sooner
        // after a burst.
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .context("starting the async runtime")?;
    // The configuration repository is cloned before anything else is read from it.
    let config_repo = match load::settings_only(&sources) {
        Some(settings) => config_repo::from_settings(&sources.dir, &settings)?,
        None => None,
    };
    if let Some(repo) = &config_repo {
        let cloned = runtime
            .block_on(repo.working_copy.ensure())
            .with_context(|| format!("config-repository: cloning into {}", repo.dir.display()))?;
        if cloned {
            eprintln!("config-repository: cloned into {}", repo.dir.display());
        }
    }
    let loaded = match load(&sources) {
        Ok(loaded) => loaded,
        Err(diags) => {
            crate::load::print_mistakes(&diags, "the master was not started");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    init_logging();
    let config = master_config(&args.master.dir, loaded);
    let exit = runtime.block_on(serve(config, sources, config_repo));
    drop(claimed);
    exit
}

/// Threads of tokio's blocking pool (see `run`).
const MAX_BLOCKING_THREADS: usize = 8;

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
/// each arena keeps its freed memory: with a dozen threads the master held several MB of
/// arenas mostly empty. The master allocates little and briefly (frames, rows, JSON), and
/// small blocks come from per-thread caches without the arena's lock, so one arena costs
/// no measurable time and keeps resident memory near what is in use. Called before any
/// thread starts.
fn limit_malloc_arenas() {
    // glibc's own MALLOC_ARENA_MAX, when set, is left in force.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt(3) only sets an allocator parameter; no thread is running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Gives the memory freed after reading the configuration back to the system. Reading and
/// planning a large configuration leaves freed blocks inside the heap (about 2 MB with
/// 2,000 builders), which glibc only returns from its top: `malloc_trim` returns every
/// free page. Done once the master runs, after each reload, and every `TRIM_EVERY`: a
/// burst of builds leaves a few MB free inside the heap too (frames, rows, JSON pages),
/// and SQLite's page caches full (emptied first, so that their pages are returned too).
async fn release_free_memory(master: &abo_master::RunningMaster) {
    master.release_memory().await;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim(3) only releases free pages of the allocator's arenas.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

/// How often the running master gives its free memory back (`release_free_memory`).
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Where `abo start` writes its process id, for `abo reconfig` (and scripts).
pub fn pid_file(dir: &Path) -> PathBuf {
    dir.join(PID_FILE)
}

/// The pid file's name in the master directory.
pub const PID_FILE: &str = "abo.pid";

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn seconds(s: f64) -> Duration {
    // The settings reader only accepts positive, finite values.
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

/// Where the store is: master.toml's `database` (a relative path is relative to the master
/// directory), or `DIR/abo.sqlite`.
pub fn database_location(dir: &Path, settings: &MasterSettings) -> String {
    let Some(db) = settings.database.as_deref() else {
        return dir
            .join(abo_store::migrations::DEFAULT_FILE_NAME)
            .to_string_lossy()
            .into_owned();
    };
    let (scheme, path) = match db.strip_prefix("sqlite://") {
        Some(rest) => ("sqlite://", rest),
        None => match db.strip_prefix("sqlite:") {
            Some(rest) => ("sqlite:", rest),
            None => ("", db),
        },
    };
    if db.contains("://") && scheme.is_empty() || Path::new(path).is_absolute() {
        // Another kind of URL (refused by the store with its reason), or absolute.
        return db.to_owned();
    }
    format!("{scheme}{}", dir.join(path).to_string_lossy())
}

/// A master.toml directory setting: relative to the master directory.
fn in_dir(dir: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The webhook secrets, masked like master.toml's `secrets`.
fn webhook_secrets(w: &abo_config::settings::WebhookSettings) -> impl Iterator<Item = &String> {
    let github = w.github.as_ref().map(|h| &h.secret);
    let gitlab = w.gitlab.as_ref().map(|h| &h.token);
    let gitea = w.gitea.as_ref().map(|h| &h.secret);
    github.into_iter().chain(gitlab).chain(gitea)
}

/// The workers file's accounts, as the master runtime takes them.
fn worker_accounts(loaded: &Loaded) -> Vec<WorkerAccount> {
    loaded
        .workers
        .iter()
        .map(|w| WorkerAccount {
            name: w.name.clone(),
            password: w.password.clone(),
            capabilities: w
                .capabilities
                .iter()
                .map(|c| Capability {
                    name: c.name.clone(),
                    version: c.version.clone(),
                    options: c.options.clone(),
                })
                .collect(),
        })
        .collect()
}

/// What the master runtime needs from the master directory.
fn master_config(dir: &Path, loaded: Loaded) -> MasterConfig {
    let s = &loaded.settings;
    let workers = worker_accounts(&loaded);
    let mut config = MasterConfig::new(s.worker_listen.clone(), workers);
    config.http_listen = Some(s.http_listen.clone());
    config.max_frame_bytes = s.max_frame_bytes;
    config.timing = Timing {
        ping_interval: seconds(s.worker_ping_interval),
        lost_after: seconds(s.worker_lost_after),
        ..Timing::default()
    };
    config.builds = Some(BuildSetup {
        master_dir: dir.to_path_buf(),
        database: database_location(dir, s),
        time_zone: s.timezone.clone(),
        poller_options: abo_master::PollerOptions::default(),
        artifacts_dir: in_dir(dir, s.artifacts_dir.as_deref().unwrap_or("artifacts")),
        allowed_upload_roots: s.allowed_upload_roots.iter().map(PathBuf::from).collect(),
        log_cap_bytes: s.log_cap_bytes,
        secrets: s
            .secrets
            .iter()
            .chain(webhook_secrets(&s.webhooks))
            .cloned()
            .collect(),
        webhooks: Webhooks {
            github_secret: s.webhooks.github.as_ref().map(|h| h.secret.clone()),
            gitlab_token: s.webhooks.gitlab.as_ref().map(|h| h.token.clone()),
            gitea_secret: s.webhooks.gitea.as_ref().map(|h| h.secret.clone()),
        },
        url_rewrite: s
            .url_rewrite
            .iter()
            .map(|r| (r.from.clone(), r.to.clone()))
            .collect(),
        web_public: s.web.public,
        missing_worker_after: std::time::Duration::from_secs(s.web.missing_worker_after),
        plan: Arc::new(loaded.plan),
    });
    config
}

async fn serve(
    config: MasterConfig,
    sources: Sources,
    config_repo: Option<ConfigRepo>,
) -> anyhow::Result<ExitCode> {
    // Installed before anything listens, so a signal never finds the default action.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let started = Restart::of(&config);
    let master = abo_master::start(config).await?;
    release_free_memory(&master).await;
    let (pulled_tx, mut pulled) = tokio::sync::mpsc::channel(1);
    let puller = config_repo.map(|repo| tokio::spawn(pull_config_repository(repo, pulled_tx)));
    let mut trim = tokio::time::interval_at(tokio::time::Instant::now() + TRIM_EVERY, TRIM_EVERY);
    trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name = loop {
        tokio::select! {
            _ = trim.tick() => release_free_memory(&master).await,
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                tracing::info!("SIGHUP received, reading the configuration again");
                reconfigure(&master, &sources, &started).await;
                release_free_memory(&master).await;
            }
            Some(revision) = pulled.recv() => {
                tracing::info!(%revision, "the configuration repository changed, reading the configuration again");
                reconfigure(&master, &sources, &started).await;
                release_free_memory(&master).await;
            }
        }
    };
    if let Some(puller) = puller {
        puller.abort();
    }
    tracing::info!("{name} received, shutting down");
    master.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Pulls the configuration repository every interval and reports each new revision. A
/// failing pull (unreachable server, local edits, diverged history) is logged and tried
/// again at the next interval; the running configuration stays.
async fn pull_config_repository(repo: ConfigRepo, changed: tokio::sync::mpsc::Sender<String>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(repo.interval).await;
        match repo.working_copy.update().await {
            Ok(Some(revision)) => {
                failing = false;
                if changed.send(revision).await.is_err() {
                    return;
                }
            }
            Ok(None) => failing = false,
            Err(e) => {
                // Once per failure streak at warn level: a server down for a day must not
                // fill the log.
                if failing {
                    tracing::debug!("config-repository: {e}");
                } else {
                    tracing::warn!("config-repository: cannot pull {}: {e}", repo.dir.display());
                }
                failing = true;
            }
        }
    }
}

/// The settings a running master cannot change: a reconfiguration that changes them takes
/// effect at the next start (and says so).
#[derive(PartialEq)]
struct Restart {
    worker_listen: String,
    http_listen: Option<String>,
    database: Option<String>,
}

impl Restart {
    fn of(config: &MasterConfig) -> Restart {
        Restart {
            worker_listen: config.worker_listen.clone(),
            http_listen: config.http_listen.clone(),
            database: config.builds.as_ref().map(|b| b.database.clone()),
        }
    }
}

/// SIGHUP: reads every file again; a valid configuration replaces the running one, an
/// invalid one is refused with all its diagnostics and the running one stays.
async fn reconfigure(master: &abo_master::RunningMaster, sources: &Sources, started: &Restart) {
    let read = sources.clone();
    let loaded = match tokio::task::spawn_blocking(move || load(&read)).await {
        Ok(loaded) => loaded,
        Err(e) => {
            master.reload_refused(vec![format!("reading the configuration failed: {e}")]);
            return;
        }
    };
    match loaded {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let accounts = worker_accounts(&loaded);
            let config = master_config(&sources.dir, loaded);
            if Restart::of(&config) != *started {
                tracing::warn!(
                    "worker-listen, http-listen and database changes take effect at the next start"
                );
            }
            let Some(setup) = &config.builds else {
                return;
            };
            let generation = master.reload(&accounts, setup).await;
            tracing::info!(generation, "the new configuration is in force");
        }
        Err(diags) => master.reload_refused(diags.iter().map(ToString::to_string).collect()),
    }
}
