//! Pid files of the foreground processes (`abo start` writes `DIR/abo.pid`, `abo worker
//! start` writes `DIR/worker.pid`) and what the other commands do with them: find the
//! running process (`abo reconfig`, `abo stop`, `abo worker stop`) and stop it.
//!
//! The process holds its pid file locked while it runs ([`PidFile::claim`]): a second
//! `abo start` (or `abo worker start`) on the same directory is refused, however close the
//! two starts. A pid file can outlive its process (SIGKILL, a crash, a reboot) and its
//! number can then belong to any other process. Before signalling, the process's command
//! line is checked to be an abo process started with the expected verb, so a stale file
//! never makes abo signal a stranger.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A pid file this process holds: locked (`flock`) for the process's life, so that a second
/// process of the same directory finds it taken whatever the timing, and a crashed one
/// leaves no lock behind. Removed when dropped.
pub struct PidFile {
    path: PathBuf,
    /// Holds the lock; closed (unlocking) when dropped.
    _file: std::fs::File,
}

/// Why a pid file could not be claimed.
#[derive(Debug)]
pub enum Claim {
    /// Another live process holds it: its pid, as far as the file tells.
    Taken(Option<libc::pid_t>),
    /// The file cannot be created, opened or locked.
    Io(std::io::Error),
}

impl PidFile {
    /// Claims `path` for this process: locks it and writes this process's id.
    pub fn claim(path: PathBuf) -> Result<PidFile, Claim> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Claim::Io)?;
        // SAFETY: flock(2) on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Claim::Taken(text.trim().parse().ok()));
            }
            return Err(Claim::Io(e));
        }
        file.set_len(0).map_err(Claim::Io)?;
        file.rewind().map_err(Claim::Io)?;
        writeln!(file, "{}", std::process::id()).map_err(Claim::Io)?;
        Ok(PidFile { path, _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Still locked by this process: the file is ours to remove.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Which foreground process a pid file belongs to: what its command line must hold, and
/// how to tell the user to start one.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `abo start`
    Master,
    /// `abo worker start`
    Worker,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Worker => "worker",
        }
    }

    fn stop_command(self, dir: &Path) -> String {
        match self {
            Kind::Master => format!("abo stop {}", dir.display()),
            Kind::Worker => format!("abo worker stop {}", dir.display()),
        }
    }

    fn start_command(self, dir: &Path) -> String {
        match self {
            Kind::Master => format!("abo start {}", dir.display()),
            Kind::Worker => format!("abo worker start {}", dir.display()),
        }
    }

    /// Whether a command line (its arguments) is this kind's foreground process.
    fn matches(self, args: &[String]) -> bool {
        let Some(program) = args.first() else {
            return false;
        };
        let program = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !program.starts_with("abo") {
            return false;
        }
        // Options may come between the verbs (`abo worker --x start`), so look at the
        // words, not their positions.
        let words: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let has = |w: &str| words.contains(&w);
        match self {
            Kind::Master => has("start") && !has("worker"),
            Kind::Worker => has("worker") && has("start"),
        }
    }
}

/// Claims `kind`'s pid file `path` (in `dir`) for this process: an error saying how to stop
/// the one that holds it, or `None` with a warning when the file cannot be written (the
/// process runs, only the commands that read the file will not find it).
pub fn claim_for(kind: Kind, path: PathBuf, dir: &Path) -> anyhow::Result<Option<PidFile>> {
    match PidFile::claim(path.clone()) {
        Ok(file) => Ok(Some(file)),
        Err(Claim::Taken(pid)) => anyhow::bail!(
            "a {} already runs in {}{}; stop it first with `{}`",
            kind.noun(),
            dir.display(),
            pid.map(|p| format!(" (process {p})")).unwrap_or_default(),
            kind.stop_command(dir)
        ),
        Err(Claim::Io(e)) => {
            eprintln!(
                "warning: cannot write {}: {e}; `{}` will not find this {}",
                path.display(),
                kind.stop_command(dir),
                kind.noun()
            );
            Ok(None)
        }
    }
}

/// The process named by the pid file at `path`, checked to be alive and to be `kind`'s
/// process. The errors say what was found and what to do.
pub fn running(path: &Path, kind: Kind, dir: &Path) -> anyhow::Result<libc::pid_t> {
    let pid: libc::pid_t = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&p| p > 0)
        .with_context(|| {
            format!(
                "no running {}: {} is missing or unreadable (is `{}` running?)",
                kind.noun(),
                path.display(),
                kind.start_command(dir)
            )
        })?;
    if !alive(pid) {
        anyhow::bail!(
            "no running {}: {} names process {pid}, which does not exist (a stale file)",
            kind.noun(),
            path.display()
        );
    }
    if let Some(args) = command_line(pid) {
        if !kind.matches(&args) {
            anyhow::bail!(
                "no running {}: {} names process {pid}, which is `{}`, not `{}` (a stale \
                 file whose number was reused); nothing was signalled",
                kind.noun(),
                path.display(),
                args.join(" "),
                kind.start_command(dir)
            );
        }
    }
    Ok(pid)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: libc::pid_t, signal: libc::c_int) -> anyhow::Result<()> {
    // SAFETY: kill(2) only sends a signal; the pid was checked by `running`.
    if unsafe { libc::kill(pid, signal) } != 0 {
        anyhow::bail!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Sends SIGTERM to `pid` and waits until it has exited, printing a dot per second to
/// `progress` while it waits. Returns how long it took, or an error after `timeout`
/// (the process still runs; nothing more is sent).
pub fn terminate(
    pid: libc::pid_t,
    timeout: Duration,
    progress: &mut dyn Write,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    signal(pid, libc::SIGTERM)?;
    let mut next_dot = start + Duration::from_secs(1);
    while alive(pid) {
        let now = Instant::now();
        if now >= start + timeout {
            let _ = writeln!(progress);
            anyhow::bail!(
                "process {pid} did not stop within {} s (it is still running; its log says \
                 what it is waiting for)",
                timeout.as_secs()
            );
        }
        if now >= next_dot {
            let _ = write!(progress, ".");
            let _ = progress.flush();
            next_dot += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(start.elapsed())
}

/// Whether `pid` is a live process. A zombie (exited, not yet reaped by its parent) counts
/// as gone: it holds no socket, no file, no lock.
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !zombie(pid)
}

fn zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state is the first field after the command name, which may hold spaces and
        // parentheses: it follows the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

/// The arguments of `pid`'s command line, where the system shows them (`/proc`).
fn command_line(pid: libc::pid_t) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn command_lines_are_told_apart() {
        assert!(Kind::Master.matches(&args("/usr/bin/abo start /srv/abo")));
        assert!(Kind::Master.matches(&args("target/debug/abo start")));
        assert!(!Kind::Master.matches(&args("abo worker start /srv/w")));
        assert!(Kind::Worker.matches(&args("abo worker start /srv/w --allow-root")));
        assert!(!Kind::Worker.matches(&args("abo start /srv/abo")));
        assert!(!Kind::Master.matches(&args("/usr/bin/python3 -m http.server start")));
        assert!(!Kind::Master.matches(&args("sleep 100")));
    }

    #[test]
    fn a_claimed_pid_file_is_taken_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abo.pid");
        // A stale file (a killed process's) is claimed over.
        std::fs::write(&path, "99999999\n").unwrap();
        let held = PidFile::claim(path.clone()).unwrap();
        let ours = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), ours);
        match PidFile::claim(path.clone()) {
            Err(Claim::Taken(Some(pid))) => assert_eq!(pid.to_string(), ours),
            other => panic!("claimed twice: {:?}", other.map(|_| ())),
        }
        drop(held);
        assert!(!path.exists());
        assert!(PidFile::claim(path).is_ok());
    }

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive(std::process::id() as libc::pid_t));
        // Above the default pid_max (4,194,304 at most on 64-bit Linux).
        assert!(!alive(99_999_999));
    }
}
