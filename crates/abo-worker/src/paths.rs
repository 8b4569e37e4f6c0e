//! Paths the master sends, resolved the way the stock worker resolves them.
//!
//! In msgpack mode buildbot-worker 4.3.0 does no path joining (spec §3.10): the master sends
//! absolute paths it built as `basedir/builddir/workdir/file` from the `basedir` the worker
//! reported. abo's worker takes them as they are. A relative path is taken relative to the
//! worker's base directory, which is what the stock worker's process (whose current
//! directory is its basedir) does with one.
//!
//! Buildbot workers trust their master, and so does abo's, with one exception: `rmdir` only
//! removes paths strictly inside the base directory, checked both lexically (no `..` escape)
//! and physically (the parent, with symlinks resolved, is inside the base directory), so a
//! wrong path can never remove the worker's home or `/`.

use std::path::{Component, Path, PathBuf};

/// The path `p` from the master, made absolute against `basedir`.
pub fn resolve(basedir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        basedir.join(p)
    }
}

/// Removes `.` components and resolves `..` against the preceding component, without
/// touching the filesystem. `..` above the root stays at the root.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Checks that `path` (absolute) may be removed recursively: it must lie strictly inside
/// `basedir`. On refusal, says why.
pub fn check_removable(basedir: &Path, path: &Path) -> Result<(), String> {
    let base = normalize(basedir);
    let target = normalize(path);
    if target == base || !target.starts_with(&base) {
        return Err(format!(
            "refusing to remove {}: not inside the worker's base directory {}",
            path.display(),
            basedir.display()
        ));
    }
    // A symlinked directory on the way could lead outside: compare real locations too. The
    // target itself may be a symlink, which `rm -rf` removes without following.
    if let (Some(parent), Ok(real_base)) = (target.parent(), basedir.canonicalize()) {
        if let Ok(real_parent) = parent.canonicalize() {
            if !real_parent.starts_with(&real_base) {
                return Err(format!(
                    "refusing to remove {}: it resolves to {}, outside the worker's base directory",
                    path.display(),
                    real_parent.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_basedir() {
        let base = Path::new("/srv/w1");
        assert_eq!(resolve(base, "/abs/x"), Path::new("/abs/x"));
        assert_eq!(resolve(base, "b1/build"), Path::new("/srv/w1/b1/build"));
        assert_eq!(
            resolve(base, "../../buildout-caches/eggs"),
            Path::new("/srv/w1/../../buildout-caches/eggs")
        );
    }

    #[test]
    fn normalize_is_lexical() {
        for (input, expected) in [
            ("/a/b/../c/./d", "/a/c/d"),
            ("/a/../../b", "/b"),
            ("/", "/"),
            ("/a/b/", "/a/b"),
        ] {
            assert_eq!(normalize(Path::new(input)), Path::new(expected), "{input}");
        }
    }

    #[test]
    fn rmdir_stays_inside_the_basedir() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("w");
        std::fs::create_dir_all(base.join("b1/build")).unwrap();
        let ok = |p: &Path| check_removable(&base, p);
        assert!(ok(&base.join("b1/build")).is_ok());
        assert!(ok(&base.join("b1/missing/deeper")).is_ok());
        assert!(ok(&base).is_err());
        assert!(ok(&base.join("b1/../..")).is_err());
        assert!(ok(&base.join("..")).is_err());
        assert!(ok(Path::new("/")).is_err());
        assert!(ok(&dir.path().join("w2")).is_err());
        // A symlink inside the basedir pointing out of it.
        std::fs::create_dir_all(dir.path().join("outside/victim")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), base.join("link")).unwrap();
        assert!(ok(&base.join("link/victim")).is_err());
        // The symlink itself may go (rm -rf removes the link, not its target).
        assert!(ok(&base.join("link")).is_ok());
    }
}
