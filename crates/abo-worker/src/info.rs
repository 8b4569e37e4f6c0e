//! The answer to `get_worker_info`: what buildbot-worker 4.3.0's `remote_getWorkerInfo`
//! sends (spec §3.7), with abo's version.
//!
//! `environ` is the worker's whole environment, as the stock worker sends it; the master
//! keeps it private. The worker itself never logs it.

use std::collections::BTreeMap;
use std::path::Path;

use abo_proto::{CommandKind, WorkerInfo};

/// The version string reported as `version`: abo's, so the master can tell abo's worker from
/// a stock one.
pub fn version() -> String {
    format!("abo {}", env!("CARGO_PKG_VERSION"))
}

/// Reads `/etc/os-release` text the way the stock worker does: `KEY=value` lines, keys
/// lower-cased, surrounding quotes removed.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_owned()))
        })
        .collect()
}

/// Collects the worker's info: `basedir/info/*` files, `/etc/os-release`, the environment,
/// CPUs, version and the commands this worker runs.
pub fn collect(basedir: &Path, environ: &BTreeMap<String, String>) -> WorkerInfo {
    let mut info = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(basedir.join("info")) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    info.insert(e.file_name().to_string_lossy().into_owned(), text);
                }
            }
        }
    }
    let os = std::fs::read_to_string("/etc/os-release")
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    // The names and command version the stock worker reports, so a master that checks
    // command versions treats abo's worker as current.
    let worker_commands = CommandKind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), "3.3".to_owned()))
        .collect();
    WorkerInfo {
        info,
        os,
        environ: environ.clone(),
        system: Some("posix".into()),
        basedir: Some(basedir.to_string_lossy().into_owned()),
        numcpus: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u64),
        version: Some(version()),
        worker_commands,
        delete_leftover_dirs: Some(false),
        other: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release() {
        let m = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n# c\nVERSION_ID='12'\n\n",
        );
        assert_eq!(m["pretty_name"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["id"], "debian");
        assert_eq!(m["version_id"], "12");
        assert_eq!(m.len(), 3);
    }
}
