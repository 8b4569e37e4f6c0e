//! Where a step's files are, on the worker and on the master. Master paths built from
//! rendered templates (forced properties reach them) are confined: uploads land under the
//! artifacts directory or an allowed root, downloads read under the master directory, and a
//! symlink on the way cannot lead elsewhere.

use std::path::{Component, Path, PathBuf};

use super::Shared;

/// A worker path: `rel` under `base` (joined with `/`, the worker is POSIX), or `rel` itself
/// when absolute.
pub(crate) fn worker_join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return rel.to_owned();
    }
    let rel = rel.trim_start_matches("./");
    if rel.is_empty() || rel == "." {
        return base.to_owned();
    }
    format!("{}/{rel}", base.trim_end_matches('/'))
}

/// `rel` (relative, no `..`) under `root`, refusing a path whose existing part leads out of
/// `root` through a symlink. `root` must be canonical.
pub(crate) fn resolve_under(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = crate::transfer::confine(root, rel).map_err(|e| e.to_string())?;
    check_no_escape(root, &path)?;
    Ok(path)
}

/// The deepest existing ancestor of `path` (itself included), canonicalized, must be
/// inside `root`.
fn check_no_escape(root: &Path, path: &Path) -> Result<(), String> {
    let mut probe = path.to_path_buf();
    loop {
        if let Ok(real) = std::fs::canonicalize(&probe) {
            if real.starts_with(root) {
                return Ok(());
            }
            return Err(format!(
                "{} leads out of {} through a symbolic link",
                path.display(),
                root.display()
            ));
        }
        if !probe.pop() {
            return Err(format!(
                "{} is not inside {}",
                path.display(),
                root.display()
            ));
        }
    }
}

/// An absolute path without `.` and with no `..` (refused rather than resolved).
fn normal_absolute(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Where an upload lands on the master: `dest` under the artifacts directory, or an
/// absolute `dest` strictly inside one of `allowed-upload-roots`.
pub(crate) fn upload_dest(shared: &Shared, dest: &str) -> Result<PathBuf, String> {
    if !dest.starts_with('/') {
        return resolve_under(&shared.artifacts_dir, dest)
            .map_err(|e| format!("upload destination refused: {e}"));
    }
    let path = normal_absolute(dest)
        .ok_or_else(|| format!("upload destination {dest:?} must not contain `..`"))?;
    for root in &shared.allowed_roots {
        let Some(root) = normal_absolute(&root.to_string_lossy()) else {
            continue;
        };
        let Ok(rel) = path.strip_prefix(&root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        // The root itself may be a link (/var/www → /srv/www): what lies under it must stay
        // under its real path.
        let real_root = std::fs::canonicalize(&root)
            .map_err(|e| format!("upload root {} (allowed-upload-roots): {e}", root.display()))?;
        let target = real_root.join(rel);
        check_no_escape(&real_root, &target)
            .map_err(|e| format!("upload destination refused: {e}"))?;
        return Ok(target);
    }
    Err(format!(
        "upload destination {dest} is outside the artifacts directory and not under any of \
         allowed-upload-roots (master.toml)"
    ))
}

/// The master file a `download` step sends. A relative `src` is read under the master
/// directory (never above it); an absolute one only when the plan wrote it so (a standalone
/// buildout's manifest outside the master directory), not when a property made it.
pub(crate) fn download_src(
    shared: &Shared,
    template: Option<&str>,
    src: &str,
) -> Result<PathBuf, String> {
    if src.starts_with('/') {
        if template == Some(src) {
            return Ok(PathBuf::from(src));
        }
        return Err(format!(
            "download source {src} is absolute but was made by a property: only the \
             configuration may name master files outside the master directory"
        ));
    }
    let root = std::fs::canonicalize(&shared.master_dir)
        .map_err(|e| format!("{}: {e}", shared.master_dir.display()))?;
    resolve_under(&root, src).map_err(|e| format!("download source refused: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_paths() {
        assert_eq!(worker_join("/w/b", "build"), "/w/b/build");
        assert_eq!(worker_join("/w/b/", "./x/y"), "/w/b/x/y");
        assert_eq!(worker_join("/w/b", "/abs"), "/abs");
        assert_eq!(worker_join("/w/b", "."), "/w/b");
    }

    #[test]
    fn symlinks_do_not_lead_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("art");
        std::fs::create_dir_all(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::fs::create_dir_all(root.join("ok")).unwrap();
        assert!(resolve_under(&root, "ok/new/file").is_ok());
        assert!(resolve_under(&root, "fresh/file").is_ok());
        assert!(resolve_under(&root, "evil/file").is_err());
        assert!(resolve_under(&root, "../x").is_err());
        assert!(resolve_under(&root, "/etc/passwd").is_err());
    }

    #[test]
    fn absolute_paths_are_normalised_or_refused() {
        assert_eq!(normal_absolute("/a/./b"), Some(PathBuf::from("/a/b")));
        assert_eq!(normal_absolute("/a/../b"), None);
        assert_eq!(normal_absolute("a/b"), None);
    }
}
