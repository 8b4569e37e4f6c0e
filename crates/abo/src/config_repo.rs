//! master.toml's `config-repository`: the manifests directory is a working copy of a
//! repository the master pulls every `poll-interval`; when the checked-out revision
//! changes, the master reads its configuration again, exactly as on SIGHUP (a broken
//! configuration pushed there is refused and the running one stays). At start, a missing
//! working copy is cloned before anything is read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use abo_config::settings::{ConfigRepository, RepositoryVcs};
use abo_config::MasterSettings;
use abo_master::PollerOptions;
use abo_vcs::workcopy::WorkingCopy;

/// The working copy of the configuration repository, and how often to pull it.
pub struct ConfigRepo {
    pub working_copy: WorkingCopy,
    pub interval: Duration,
    pub dir: PathBuf,
}

/// Where the working copy lives: `path`, else the directory of the first manifest.
fn checkout_dir(master_dir: &Path, settings: &MasterSettings, repo: &ConfigRepository) -> PathBuf {
    let relative = match &repo.path {
        Some(path) => PathBuf::from(path),
        None => settings
            .manifests
            .first()
            .and_then(|m| Path::new(m).parent())
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("buildouts")),
    };
    if relative.is_absolute() {
        relative
    } else {
        master_dir.join(relative)
    }
}

/// The configuration repository of these settings, if any; an unsafe URL or branch is an
/// error that says so.
pub fn from_settings(
    master_dir: &Path,
    settings: &MasterSettings,
) -> anyhow::Result<Option<ConfigRepo>> {
    let Some(repo) = &settings.config_repository else {
        return Ok(None);
    };
    let vcs = match repo.vcs {
        RepositoryVcs::Git => abo_plan::Vcs::Git,
        RepositoryVcs::Hg => abo_plan::Vcs::Hg,
        RepositoryVcs::Bzr => abo_plan::Vcs::Bzr,
    };
    let master_dir = std::path::absolute(master_dir)?;
    let dir = checkout_dir(&master_dir, settings, repo);
    let working_copy = WorkingCopy::new(
        vcs,
        &repo.url,
        repo.branch.as_deref(),
        &dir,
        &PollerOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("config-repository: {e}"))?;
    let interval = Duration::from_secs(repo.poll_interval.unwrap_or(settings.poll_interval).max(1));
    Ok(Some(ConfigRepo {
        working_copy,
        interval,
        dir,
    }))
}
