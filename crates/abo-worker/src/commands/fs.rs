//! The file-system commands: `mkdir`, `rmdir`, `cpdir`, `stat`, `glob`, `listdir`, `rmfile`.
//!
//! Results follow buildbot-worker 4.3.0 (spec §3.10): `rc` 0, or the errno with a
//! `<command>: <strerror>: <path>` header line; `files`/`stat` entries; `elapsed`. `rmdir`
//! and `cpdir` run `rm -rf` / `cp -R -P -p -v` as the stock worker does on POSIX, with its
//! timeouts, so their output and interrupts behave like a shell command's; `rmdir` only
//! removes paths inside the base directory (see [`crate::paths`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abo_proto::{CpdirArgs, RmdirArgs, Seconds, StatResult, UpdateEntry};
use nix::sys::signal::Signal;

use super::process::{self, shell_quote, Spec};
use super::{os_error, unix_now, Ctx};
use crate::env::EnvChanges;
use crate::output::{OutputBuffer, Stream};
use crate::paths;

/// `rmdir`/`cpdir` default `timeout` (s without output), as in the stock worker.
const FS_TIMEOUT: f64 = 120.0;

async fn finish(mut ctx: Ctx, mut out: OutputBuffer, rc: i64, started: Instant) {
    out.entry(UpdateEntry::Rc(rc));
    out.entry(UpdateEntry::Elapsed(started.elapsed().as_secs_f64()));
    if ctx.flush(&mut out).await.is_ok() {
        ctx.complete(None);
    }
}

fn error_header(out: &mut OutputBuffer, what: &str, e: &std::io::Error, path: &Path) -> i64 {
    let (text, rc) = os_error(e);
    out.text(
        &Stream::Header,
        &format!("{what}: {text}: {}\n", path.display()),
        unix_now(),
    );
    rc
}

pub(crate) async fn mkdir(paths: Vec<String>, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let mut rc = 0;
    for p in paths {
        let path = paths::resolve(&ctx.shared.basedir, &p);
        if let Err(e) = std::fs::create_dir_all(&path) {
            rc = error_header(&mut out, "mkdir", &e, &path);
            break;
        }
    }
    finish(ctx, out, rc, started).await;
}

fn tool_spec(
    argv: Vec<String>,
    ctx: &Ctx,
    log_environ: Option<bool>,
    timeout: Option<Seconds>,
    max_time: Option<Seconds>,
) -> Spec {
    let secs = |s: f64| Duration::try_from_secs_f64(s).ok();
    Spec {
        display: argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
        argv,
        workdir: ctx.shared.basedir.clone(),
        env: EnvChanges::default(),
        log_environ: log_environ.unwrap_or(true),
        timeout: secs(timeout.map_or(FS_TIMEOUT, |t| t.0)),
        max_time: max_time.and_then(|t| secs(t.0)),
        max_lines: None,
        sigterm_time: None,
        interrupt_signal: Signal::SIGKILL,
        want_stdout: true,
        want_stderr: true,
        logfiles: Vec::new(),
        stdin: None,
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) async fn rmdir(args: RmdirArgs, mut ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let mut rc = 0;
    for p in &args.paths {
        let path = paths::resolve(&ctx.shared.basedir, p);
        if let Err(why) = paths::check_removable(&ctx.shared.basedir, &path) {
            out.text(&Stream::Header, &format!("rmdir: {why}\n"), unix_now());
            rc = 1;
            continue;
        }
        let rm = || vec!["rm".to_owned(), "-rf".to_owned(), path_arg(&path)];
        let spec = tool_spec(rm(), &ctx, args.log_environ, args.timeout, args.max_time);
        let Ok(mut ended) = process::run(spec, &mut ctx, &mut out).await else {
            return;
        };
        if ended.rc != 0 && !ended.interrupted {
            // Read-only directories inside the tree: make them writable and try again, as
            // the stock worker does.
            let chmod = vec![
                "chmod".into(),
                "-Rf".into(),
                "u+rwx".into(),
                path_arg(&path),
            ];
            let spec = tool_spec(chmod, &ctx, args.log_environ, args.timeout, args.max_time);
            if process::run(spec, &mut ctx, &mut out).await.is_err() {
                return;
            }
            let spec = tool_spec(rm(), &ctx, args.log_environ, args.timeout, args.max_time);
            let Ok(again) = process::run(spec, &mut ctx, &mut out).await else {
                return;
            };
            ended = again;
        }
        if ended.rc != 0 {
            rc = ended.rc;
        }
        if ended.interrupted {
            break;
        }
    }
    finish(ctx, out, rc, started).await;
}

pub(crate) async fn cpdir(args: CpdirArgs, mut ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let from = paths::resolve(&ctx.shared.basedir, &args.from_path);
    let to = paths::resolve(&ctx.shared.basedir, &args.to_path);
    if let Some(parent) = to.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            let rc = error_header(&mut out, "cpdir", &e, parent);
            return finish(ctx, out, rc, started).await;
        }
    }
    let argv = ["cp", "-R", "-P", "-p", "-v"]
        .iter()
        .map(|s| s.to_string())
        .chain([path_arg(&from), path_arg(&to)])
        .collect();
    let spec = tool_spec(argv, &ctx, args.log_environ, args.timeout, args.max_time);
    let Ok(ended) = process::run(spec, &mut ctx, &mut out).await else {
        return;
    };
    finish(ctx, out, ended.rc, started).await;
}

pub(crate) async fn stat(path: String, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &path);
    // os.stat follows symlinks; so does metadata().
    let rc = match std::fs::metadata(&path) {
        Ok(m) => {
            out.entry(UpdateEntry::Stat(StatResult {
                mode: u64::from(m.mode()),
                ino: m.ino(),
                dev: m.dev(),
                nlink: m.nlink(),
                uid: u64::from(m.uid()),
                gid: u64::from(m.gid()),
                size: m.size(),
                atime: m.atime(),
                mtime: m.mtime(),
                ctime: m.ctime(),
            }));
            0
        }
        Err(e) => error_header(&mut out, "stat", &e, &path),
    };
    finish(ctx, out, rc, started).await;
}

/// Python's `glob.glob(pattern, recursive=True)`: `*` stays within one path component and
/// skips names starting with `.`; `**` as a whole component spans directories.
pub(crate) fn glob_paths(pattern: &str) -> Result<Vec<String>, String> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        // The glob crate then never matches hidden names with a wildcard, not even
        // `.*`; `hidden_ok` applies Python's rule instead.
        require_literal_leading_dot: false,
    };
    let paths = glob::glob_with(pattern, options).map_err(|e| e.to_string())?;
    Ok(paths
        .filter_map(Result::ok)
        .filter(|p| hidden_ok(Path::new(pattern), p))
        .map(|p: PathBuf| p.to_string_lossy().into_owned())
        .collect())
}

/// Python's rule for names starting with `.`: a wildcard never matches one; only a pattern
/// component that starts with `.` itself does.
fn hidden_ok(pattern: &Path, found: &Path) -> bool {
    let is_hidden = |c: &std::ffi::OsStr| c.as_encoded_bytes().first() == Some(&b'.');
    let pat: Vec<&std::ffi::OsStr> = pattern.iter().collect();
    let got: Vec<&std::ffi::OsStr> = found.iter().collect();
    let recursive = pat.iter().any(|c| *c == "**");
    if !recursive && pat.len() == got.len() {
        return pat
            .iter()
            .zip(&got)
            .all(|(p, g)| !is_hidden(g) || is_hidden(p));
    }
    // With `**` the components do not pair up: below the literal prefix, only the last
    // component may be hidden, and only if the pattern's last component is.
    let prefix = pat
        .iter()
        .take_while(|c| !c.as_encoded_bytes().iter().any(|b| b"*?[".contains(b)))
        .count();
    let last_hidden_ok = pat.last().is_some_and(|c| is_hidden(c));
    got.iter()
        .enumerate()
        .skip(prefix)
        .all(|(i, g)| !is_hidden(g) || (i + 1 == got.len() && last_hidden_ok))
}

pub(crate) async fn glob(pattern: String, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let pattern = path_arg(&paths::resolve(&ctx.shared.basedir, &pattern));
    // A large tree takes a while: keep it off the connection's threads.
    let found = tokio::task::spawn_blocking(move || glob_paths(&pattern))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let rc = match found {
        Ok(files) => {
            out.entry(UpdateEntry::Files(files));
            0
        }
        Err(e) => {
            out.text(&Stream::Header, &format!("glob: {e}\n"), unix_now());
            1
        }
    };
    finish(ctx, out, rc, started).await;
}

pub(crate) async fn listdir(path: String, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &path);
    let listed = std::fs::read_dir(&path).and_then(|entries| {
        entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<Vec<String>>>()
    });
    let rc = match listed {
        Ok(mut names) => {
            names.sort();
            out.entry(UpdateEntry::Files(names));
            0
        }
        Err(e) => error_header(&mut out, "listdir", &e, &path),
    };
    finish(ctx, out, rc, started).await;
}

pub(crate) async fn rmfile(path: String, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &path);
    let rc = match std::fs::remove_file(&path) {
        Ok(()) => 0,
        Err(e) => error_header(&mut out, "rmfile", &e, &path),
    };
    finish(ctx, out, rc, started).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_like_pythons() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.txt",
            "b.log",
            ".hidden.txt",
            "sub/c.txt",
            "sub/deep/d.txt",
            ".git/x.txt",
        ] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let rel = |pattern: &str| -> Vec<String> {
            let base = format!("{}/", d.display());
            let mut v: Vec<String> = glob_paths(&format!("{base}{pattern}"))
                .unwrap()
                .into_iter()
                .map(|p| p.strip_prefix(&base).unwrap().to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(rel("*.txt"), ["a.txt"]);
        assert_eq!(rel("*/*.txt"), ["sub/c.txt"]);
        assert_eq!(rel("**/*.txt"), ["a.txt", "sub/c.txt", "sub/deep/d.txt"]);
        assert_eq!(rel(".*.txt"), [".hidden.txt"]);
        assert!(rel("nothing*").is_empty());
        assert!(glob_paths("[").is_err());
    }
}
