//! `abo demo [--dir DIR] [--keep] [--stop]`: abo's main job on this machine, from nothing.
//!
//! 1. finds what this machine offers (`abo worker detect`): PostgreSQL server binaries,
//!    Python, VCS tools;
//! 2. starts a throwaway PostgreSQL cluster per PostgreSQL version found (as an
//!    unprivileged user when run as root: PostgreSQL refuses root), listening on a Unix
//!    socket of its own only;
//! 3. writes a master directory: a manifest, `workers.cfg` with one local worker offering
//!    those clusters and the other capabilities found, `master.toml`, a demo user;
//! 4. starts the master (`abo start`) and the worker (`abo worker start`) as child
//!    processes, each in its own process group, logging to files in DIR;
//! 5. forces every builder and shows the builds' progress step by step;
//! 6. says where to look next, then stops everything (or leaves it running with `--keep`;
//!    `abo demo --stop` stops a kept demo). Ctrl-C stops everything cleanly at any point.
//!
//! What the builds do: with PostgreSQL, `demo-psql` runs `psql` against each cluster
//! (server version, a fresh database, a query); when the offline zc.buildout and stand-in
//! OpenERP of abo's test support are installed (`ABO_BUILDOUT_VENV`), `demo-buildout` is a
//! real buildout whose tests run against each cluster, as the seed's builders do. Without
//! PostgreSQL, `demo-shell` runs a few shell commands.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::client::{self, human_duration, Client, ClientArgs};
use crate::cmd::force::Watch;

/// The marker that makes a directory a demo directory (safe to wipe on the next run).
const MARKER: &str = ".abo-demo";
/// What a kept demo left running.
const STATE: &str = "demo.json";
const WORKER_NAME: &str = "demo-worker";
const USER: &str = "demo";
/// The port every demo cluster's socket is named after (no cluster listens on TCP).
const PG_PORT: u16 = 5432;

/// The stand-in OpenERP buildout and its offline bootstrap (testsupport/buildouts).
const BOOTSTRAP_PY: &str = include_str!("../../../../testsupport/buildouts/bootstrap.py");
const STANDIN_CFG: &str = include_str!("../../../../testsupport/buildouts/standin-pass.cfg");

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  abo demo                     # everything in ./abo-demo, stopped at the end
  abo demo --keep              # leave the master, the worker and PostgreSQL running
  abo demo --stop              # stop a demo left running with --keep

Run as root, the worker runs with --allow-root and PostgreSQL as an unprivileged user
(abo-pg, postgres or nobody). Ctrl-C stops everything cleanly.")]
pub struct Args {
    /// The demo directory (created; a previous demo's is replaced)
    #[arg(long, value_name = "DIR", default_value = "abo-demo")]
    dir: PathBuf,
    /// Leave the master, the worker and the PostgreSQL clusters running at the end
    #[arg(long)]
    keep: bool,
    /// Stop a demo left running with --keep, then exit
    #[arg(long, conflicts_with = "keep")]
    stop: bool,
    /// PostgreSQL server binaries (a directory with initdb, pg_ctl, postgres) to make a
    /// cluster with, in addition to those `abo worker detect` finds (repeatable)
    #[arg(long = "pg-bin", value_name = "DIR")]
    pg_bins: Vec<PathBuf>,
    /// Make no PostgreSQL cluster (the builds then only run shell commands)
    #[arg(long)]
    no_postgresql: bool,
    /// Give up on the builds after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 900.0)]
    timeout: f64,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn check_interrupt() -> anyhow::Result<()> {
    if interrupted() {
        bail!(Interrupted);
    }
    Ok(())
}

#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The name of the user running abo (the PostgreSQL superuser of the demo clusters, whom
/// the worker's `psql` connects as).
fn user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            if let Ok(s) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str() {
                return s.to_owned();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "postgres".to_owned())
}

/// The uid and gid of a system user, if it exists.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !ok {
        // Weak but unique enough for a loopback demo.
        let seed = client::now().to_bits() ^ u64::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(37);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) == 0 }
}

fn signal_group(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) on a process group we created (negative pid); no memory involved.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

/// Prints a phase line with its duration.
struct Phases {
    out: std::io::Stdout,
    n: usize,
    total: usize,
}

impl Phases {
    fn start(&mut self, what: &str) -> Instant {
        self.n += 1;
        let _ = write!(self.out, "[{}/{}] {what}", self.n, self.total);
        let _ = self.out.flush();
        Instant::now()
    }

    fn done(&mut self, t: Instant, what: &str) {
        let _ = writeln!(
            self.out,
            "{what} ({})",
            human_duration(t.elapsed().as_secs_f64())
        );
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "      {text}");
    }
}

/// PostgreSQL server binaries of one major version.
#[derive(Debug, Clone)]
struct PgBin {
    major: String,
    full: String,
    bin: PathBuf,
    lib: Option<String>,
}

fn has_server(bin: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|p| bin.join(p).is_file())
}

/// `postgres (PostgreSQL) 15.14 (Debian ...)` → (`15`, `15.14`).
fn parse_pg_version(output: &str) -> Option<(String, String)> {
    let rest = output.split("(PostgreSQL)").nth(1)?.trim();
    let full: String = rest
        .split_whitespace()
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = full.split('.');
    let first: u32 = parts.next()?.parse().ok()?;
    let major = if first >= 10 {
        first.to_string()
    } else {
        format!("{first}.{}", parts.next()?)
    };
    Some((major, full))
}

fn pg_bin(bin: &Path, lib: Option<String>) -> Option<PgBin> {
    if !has_server(bin) {
        return None;
    }
    let out = Command::new(bin.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let (major, full) = parse_pg_version(&String::from_utf8_lossy(&out.stdout))?;
    let lib = lib.or_else(|| {
        let l = bin.parent()?.join("lib");
        l.is_dir().then(|| l.display().to_string())
    });
    Some(PgBin {
        major,
        full,
        bin: bin.to_owned(),
        lib,
    })
}

/// A running throwaway cluster.
#[derive(Debug, Clone)]
struct Cluster {
    pg: PgBin,
    /// Its directory: data in `data/`, its socket, `postgres.log`, `bin` (a link).
    dir: PathBuf,
    /// The user the server runs as when abo runs as root.
    owner: Option<String>,
    /// The server's `select version()`.
    version: String,
}

/// `runuser` (util-linux), by its full path: the server's environment has a short PATH.
fn runuser() -> PathBuf {
    [
        "/usr/sbin/runuser",
        "/sbin/runuser",
        "/usr/bin/runuser",
        "/bin/runuser",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("runuser"))
}

fn server_command(owner: Option<&str>, dir: &Path, program: &Path) -> Command {
    let mut c = match owner {
        Some(user) => {
            let mut c = Command::new(runuser());
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    c.current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        // Its own process group: Ctrl-C reaches abo demo only, which stops it in order.
        .process_group(0);
    c
}

fn run_logged(mut c: Command, log: &Path, what: &str) -> anyhow::Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    let status = c
        .stdout(file)
        .stderr(err)
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({status}):\n{}", tail.join("\n"));
    }
    Ok(())
}

fn psql_for(bin: &Path) -> PathBuf {
    if bin.join("psql").is_file() {
        bin.join("psql")
    } else {
        PathBuf::from("psql")
    }
}

impl Cluster {
    fn start(
        pg: &PgBin,
        dir: &Path,
        owner: Option<&str>,
        superuser: &str,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(user) = owner {
            let (uid, gid) = user_ids(user).with_context(|| format!("no system user {user}"))?;
            chown(dir, uid, gid)?;
        }
        let data = dir.join("data");
        if !data.join("PG_VERSION").exists() {
            let mut c = server_command(owner, dir, &pg.bin.join("initdb"));
            c.arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                superuser,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]);
            run_logged(c, &dir.join("initdb.log"), "initdb")?;
        }
        let opts = format!(
            "-k {} -p {PG_PORT} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c shared_buffers=16MB -c max_connections=40 \
             -c unix_socket_permissions=0777",
            dir.display()
        );
        let mut c = server_command(owner, dir, &pg.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        if let Err(e) = run_logged(c, &dir.join("pg_ctl.log"), "pg_ctl start") {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "{e}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        // The worker's steps find the cluster's client programs here.
        let link = dir.join("bin");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&pg.bin, &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        let out = Command::new(psql_for(&pg.bin))
            .args(["-X", "-A", "-t", "-d", "postgres", "-c", "select version()"])
            .arg("-h")
            .arg(dir)
            .args(["-p", &PG_PORT.to_string(), "-U", superuser])
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("PGCLUSTER")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let cluster = Cluster {
            pg: pg.clone(),
            dir: dir.to_owned(),
            owner: owner.map(str::to_owned),
            version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            cluster.stop();
            bail!(
                "PostgreSQL {} in {} does not answer: {err}",
                pg.major,
                dir.display()
            );
        }
        Ok(cluster)
    }

    fn stop(&self) {
        let mut c = server_command(
            self.owner.as_deref(),
            &self.dir,
            &self.pg.bin.join("pg_ctl"),
        );
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }

    /// Its `workers.cfg` capability line.
    fn capability(&self) -> String {
        let mut line = format!(
            "postgresql {} port={PG_PORT} host={} bin={}",
            self.pg.major,
            self.dir.display(),
            self.dir.join("bin").display()
        );
        if let Some(lib) = &self.pg.lib {
            line.push_str(&format!(" lib={lib}"));
        }
        line
    }
}

/// The user PostgreSQL runs as when abo runs as root.
fn pg_owner() -> anyhow::Result<String> {
    for user in ["abo-pg", "postgres", "nobody"] {
        if user_ids(user).is_some() {
            return Ok(user.to_owned());
        }
    }
    bail!("PostgreSQL refuses to run as root and there is no user abo-pg, postgres or nobody to run it as: `useradd --system abo-pg`, or run abo demo --no-postgresql")
}

/// Whether `user` can write `dir` and run `program` (through `runuser`).
fn reachable_by(user: &str, dir: &Path, program: &Path) -> bool {
    let ok = |args: &[&std::ffi::OsStr]| {
        Command::new(runuser())
            .args(["-u", user, "--", "test"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(&["-w".as_ref(), dir.as_os_str()]) && ok(&["-x".as_ref(), program.as_os_str()])
}

/// A fresh directory under /tmp (mode 755): short, and reachable by any user.
fn temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let template = CString::new(format!("/tmp/{prefix}.XXXXXX"))?;
    let mut bytes = template.into_bytes_with_nul();
    // SAFETY: mkdtemp writes into the NUL-terminated buffer we own.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        bail!(
            "cannot create a directory under /tmp: {}",
            std::io::Error::last_os_error()
        );
    }
    bytes.pop();
    let path = PathBuf::from(String::from_utf8(bytes)?);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(path)
}

fn plain_path(p: &Path) -> bool {
    p.to_str().is_some_and(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    })
}

/// What a kept demo leaves behind, for `abo demo --stop`.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    master_pid: i32,
    worker_pid: i32,
    clusters: Vec<StateCluster>,
    /// A directory under /tmp holding the clusters, removed at the end.
    temp: Option<PathBuf>,
    http: String,
    user: String,
    password: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateCluster {
    dir: PathBuf,
    bin: PathBuf,
    owner: Option<String>,
}

/// Everything the demo started; stopped in reverse order when dropped, unless kept.
#[derive(Default)]
struct Running {
    master: Option<Child>,
    worker: Option<Child>,
    clusters: Vec<Cluster>,
    temp: Option<PathBuf>,
    kept: bool,
}

fn stop_child(child: &mut Child, grace: Duration) {
    let pid = child.id() as i32;
    if child.try_wait().ok().flatten().is_some() {
        signal_group(pid, libc::SIGKILL); // whatever it left behind
        return;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            signal_group(pid, libc::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pid, libc::SIGKILL);
    let _ = child.wait();
}

impl Running {
    fn stop_all(&mut self) {
        if self.kept {
            return;
        }
        if let Some(mut w) = self.worker.take() {
            stop_child(&mut w, Duration::from_secs(15));
        }
        if let Some(mut m) = self.master.take() {
            stop_child(&mut m, Duration::from_secs(15));
        }
        for c in self.clusters.drain(..).rev() {
            c.stop();
        }
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn free_port(preferred: u16) -> anyhow::Result<u16> {
    if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", preferred)) {
        drop(l);
        return Ok(preferred);
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn spawn_logged(mut c: Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    c.stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {c:?}"))
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until `ready` says yes, `child` exits (an error with its log), or `limit` passes.
fn wait_for(
    what: &str,
    child: &mut Child,
    log: &Path,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupt()?;
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} stopped ({status}); the end of {}:\n{}",
                log.display(),
                log_tail(log, 20)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} not ready after {}s; the end of {}:\n{}",
                limit.as_secs(),
                log.display(),
                log_tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prepares DIR: a new directory, or a previous demo's (replaced). Anything else is left
/// alone.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "{} exists and is not a directory: choose another --dir",
                dir.display()
            );
        }
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and was not made by abo demo: choose another --dir (abo demo \
                     replaces only its own directories)",
                    dir.display()
                );
            }
            if let Ok(state) = read_state(dir) {
                let running = |pid| pid_alive(pid) && runs_in(pid, dir);
                if running(state.master_pid) || running(state.worker_pid) {
                    bail!(
                        "a demo is still running in {}: stop it first with `abo demo --stop \
                         --dir {}`",
                        dir.display(),
                        dir.display()
                    );
                }
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `abo demo`; the next `abo demo` in this directory replaces it\n",
    )?;
    Ok(())
}

fn read_state(dir: &Path) -> anyhow::Result<State> {
    let text = std::fs::read_to_string(dir.join(STATE))?;
    Ok(serde_json::from_str(&text)?)
}

/// Whether process `pid` is one the demo in `dir` started (`abo start DIR`, `abo worker
/// start DIR/worker`): a recorded pid may have been reused since.
fn runs_in(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let worker = dir.join("worker");
    cmdline.split(|b| *b == 0).any(|arg| {
        arg == dir.as_os_str().as_encoded_bytes() || arg == worker.as_os_str().as_encoded_bytes()
    })
}

/// `abo demo --stop`.
fn stop_kept(dir: &Path) -> anyhow::Result<ExitCode> {
    let state = match read_state(dir) {
        Ok(s) => s,
        Err(_) => {
            println!("no demo left running in {}", dir.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    for (name, pid) in [("worker", state.worker_pid), ("master", state.master_pid)] {
        if !pid_alive(pid) || !runs_in(pid, dir) {
            continue;
        }
        // SAFETY: kill(2) on the pid the demo recorded for its own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while pid_alive(pid) && Instant::now() < deadline {
            // Not our child any more: reap nothing, just wait for it to go.
            std::thread::sleep(Duration::from_millis(100));
            if std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
            {
                break;
            }
        }
        if pid_alive(pid) {
            signal_group(pid, libc::SIGKILL);
        }
        println!("stopped the {name} (pid {pid})");
    }
    for c in &state.clusters {
        let mut cmd = server_command(c.owner.as_deref(), &c.dir, &c.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(c.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = cmd.status();
        println!("stopped PostgreSQL in {}", c.dir.display());
    }
    if let Some(t) = &state.temp {
        let _ = std::fs::remove_dir_all(t);
    }
    let _ = std::fs::remove_file(dir.join(STATE));
    Ok(ExitCode::SUCCESS)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The files of the demo master directory.
struct Layout {
    manifest: String,
    workers: String,
    master_toml: String,
    buildout: bool,
}

fn layout(
    clusters: &[Cluster],
    base: Option<&Path>,
    other_caps: &[String],
    buildout: bool,
    password: &str,
    worker_port: u16,
    http_port: u16,
) -> Layout {
    let mut manifest = String::from(
        "# The demo's manifest (written by `abo demo`): each section is a buildout, or a step\n\
         # set of master.toml, built once per PostgreSQL version its build-for allows.\n\
         # See docs/manifest.md.\n\n[DEFAULT]\nbuild-category = demo\n\n",
    );
    let mut toml = format!(
        "# The demo's settings (written by `abo demo`); see docs/master-toml.md.\n\
         manifests = [\"buildouts/MANIFEST.cfg\"]\n\
         workers = \"workers.cfg\"\n\
         worker-listen = \"127.0.0.1:{worker_port}\"\n\
         http-listen = \"127.0.0.1:{http_port}\"\n\n"
    );
    if let (false, Some(base)) = (clusters.is_empty(), base) {
        manifest.push_str(
            "# psql against each PostgreSQL cluster of the worker (master.toml's step set).\n\
             [demo-psql]\nsteps = demo-psql\nbuild-for = postgresql\n\n",
        );
        if buildout {
            manifest.push_str(
                "# A real zc.buildout (offline) whose part is abo's stand-in OpenERP: bootstrap,\n\
                 # buildout, a fresh testing database, bin/test_openerp, the log analysis.\n\
                 [demo-buildout]\nbuildout = standalone demo-buildout.cfg\n\
                 bootstrap-type = v2\nbootstrap-version = 6.0.1\nbuild-for = postgresql\n\
                 openerp-addons = base, standin_mod\n\n",
            );
        }
        let cluster = format!("{}/%(pg_version)s", base.display());
        let env = format!(
            "env = {{ PGHOST = {}, PGPORT = \"{PG_PORT}\", PATH = [{}, \"${{PATH}}\"] }}\n",
            toml_str(&cluster),
            toml_str(&format!("{cluster}/bin"))
        );
        for (name, command) in [
            (
                "server version",
                r#"["psql", "-X", "-A", "-t", "-d", "postgres", "-c", "select version()"]"#,
            ),
            (
                "fresh database",
                r#"["psql", "-X", "-d", "postgres", "-c", 'DROP DATABASE IF EXISTS "abo-demo"', "-c", 'CREATE DATABASE "abo-demo"']"#,
            ),
            (
                "query",
                r#"["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "abo-demo", "-c", "CREATE TABLE numbers AS SELECT n FROM generate_series(1, 100000) AS n", "-c", "SELECT count(*) AS numbers, sum(n) AS total FROM numbers"]"#,
            ),
        ] {
            toml.push_str(&format!(
                "[[step-sets.demo-psql]]\nname = \"{name}\"\ncommand = {command}\n{env}halt-on-failure = true\n\n"
            ));
        }
    } else {
        manifest.push_str(
            "# No PostgreSQL here: a few shell commands (master.toml's step set).\n\
             [demo-shell]\nsteps = demo-shell\nbuild-for = postgresql not-used\n\n",
        );
        for (name, command) in [
            ("system", r#"["uname", "-a"]"#),
            ("where", r#""pwd && ls -la""#),
            (
                "tools",
                r#""(python3 --version; git --version) 2>&1 || true""#,
            ),
        ] {
            toml.push_str(&format!(
                "[[step-sets.demo-shell]]\nname = \"{name}\"\ncommand = {command}\n\n"
            ));
        }
    }
    let mut caps: Vec<String> = clusters.iter().map(Cluster::capability).collect();
    caps.extend(other_caps.iter().cloned());
    let mut workers = format!(
        "# The demo's workers (written by `abo demo`); see docs/workers.md.\n\
         [{WORKER_NAME}]\npassword = {password}\nmax_builds = 2\n\
         # testing databases are named <db_prefix>-<section>\ndb_prefix = demo\n"
    );
    if !caps.is_empty() {
        workers.push_str("capability = ");
        workers.push_str(&caps.join("\n             "));
        workers.push('\n');
    }
    Layout {
        manifest,
        workers,
        master_toml: toml,
        buildout,
    }
}

/// Whether the offline zc.buildout with the stand-in OpenERP of abo's test support is at
/// hand (testsupport/setup.sh installs it and exports ABO_BUILDOUT_VENV).
fn standin_venv() -> Option<PathBuf> {
    let venv = PathBuf::from(std::env::var_os("ABO_BUILDOUT_VENV")?);
    if !venv.join("bin/buildout").is_file() {
        return None;
    }
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(Result::ok)
        .any(|e| e.path().join("site-packages/abo_standin").is_dir())
        .then_some(venv)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_owned())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// `./abo-demo` rather than `/home/me/abo-demo` when it is under the current directory.
fn show(p: &Path) -> String {
    match std::env::current_dir()
        .ok()
        .and_then(|c| p.strip_prefix(c).ok().map(Path::to_owned))
    {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => p.display().to_string(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    if args.stop {
        return stop_kept(&dir);
    }
    install_signal_handlers();
    let mut running = Running::default();
    match demo(&args, &dir, &mut running) {
        Ok(code) => Ok(code),
        Err(e) if e.is::<Interrupted>() || interrupted() => {
            println!("\ninterrupted: stopping the worker, the master and PostgreSQL");
            running.stop_all();
            println!("stopped; the demo directory {} stays", show(&dir));
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            running.stop_all();
            Err(e)
        }
    }
}

fn demo(args: &Args, dir: &Path, running: &mut Running) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the abo binary")?;
    let root = is_root();
    let mut p = Phases {
        out: std::io::stdout(),
        n: 0,
        total: 6,
    };
    println!(
        "abo demo in {}: a master, a local worker{}, and builds",
        show(dir),
        if args.no_postgresql {
            ""
        } else {
            ", PostgreSQL"
        }
    );
    prepare_dir(dir)?;

    // 1. What this machine offers.
    let t = p.start("looking at this machine (abo worker detect): ");
    let caps = abo_worker::detect::detect();
    let mut bins: Vec<PgBin> = Vec::new();
    if !args.no_postgresql {
        let detected = caps
            .postgresql
            .iter()
            .filter_map(|pg| Some((PathBuf::from(pg.bin.as_ref()?), pg.lib.clone())));
        let given = args.pg_bins.iter().map(|b| (b.clone(), None));
        for (bin, lib) in given.chain(detected) {
            if let Some(found) = pg_bin(&bin, lib) {
                if !bins.iter().any(|b| b.major == found.major) {
                    bins.push(found);
                }
            } else if args.pg_bins.contains(&bin) {
                bail!(
                    "--pg-bin {}: no PostgreSQL server there (initdb, pg_ctl, postgres)",
                    bin.display()
                );
            }
        }
    }
    let numeric = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    bins.sort_by_key(|b| numeric(&b.major));
    let other_caps: Vec<String> = caps
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("postgresql "))
        .collect();
    let mut found: Vec<String> = bins
        .iter()
        .map(|b| format!("PostgreSQL {} ({})", b.full, b.bin.display()))
        .collect();
    found.extend(
        other_caps
            .iter()
            .map(|l| l.split(" bin=").next().unwrap_or(l).to_owned()),
    );
    p.done(
        t,
        &if found.is_empty() {
            "nothing in particular".to_owned()
        } else {
            found.join(", ")
        },
    );
    check_interrupt()?;

    // 2. Throwaway PostgreSQL clusters.
    let superuser = user_name();
    let mut base = None;
    if bins.is_empty() {
        let t = p.start("PostgreSQL: ");
        p.done(
            t,
            if args.no_postgresql {
                "skipped (--no-postgresql)"
            } else {
                "no server binaries found (Debian: apt-get install postgresql); the builds run shell commands only"
            },
        );
    } else {
        let t = p.start(&format!(
            "starting {} throwaway PostgreSQL cluster{}{}: ",
            bins.len(),
            if bins.len() == 1 { "" } else { "s" },
            if root {
                " (as an unprivileged user: PostgreSQL refuses root)"
            } else {
                ""
            }
        ));
        let owner = if root { Some(pg_owner()?) } else { None };
        // The socket path must be short (107 bytes) and the directory reachable by the
        // server's user; else the clusters go under /tmp.
        let mut chosen = dir.join("pg");
        std::fs::create_dir_all(&chosen)?;
        let fits = chosen.as_os_str().len() + 24 <= 100 && plain_path(&chosen);
        let reachable = match &owner {
            Some(user) => {
                if let Some((uid, gid)) = user_ids(user) {
                    let _ = chown(&chosen, uid, gid);
                }
                reachable_by(user, &chosen, &bins[0].bin.join("postgres"))
            }
            None => true,
        };
        if !fits || !reachable {
            let tmp = temp_dir("abo-demo-pg")?;
            running.temp = Some(tmp.clone());
            chosen = tmp;
        }
        for pg in &bins {
            check_interrupt()?;
            let cdir = chosen.join(&pg.major);
            let cluster = Cluster::start(pg, &cdir, owner.as_deref(), &superuser)?;
            running.clusters.push(cluster);
        }
        p.done(t, "ready");
        for c in &running.clusters {
            p.line(&format!("{}: {}", show(&c.dir), c.version));
        }
        base = Some(chosen);
    }
    check_interrupt()?;

    // 3. The master directory.
    let t = p.start("writing the master directory: ");
    let password = random_hex(12);
    let api_password = random_hex(12);
    let http_port = free_port(8010)?;
    let worker_port = free_port(9989)?;
    let buildout = !running.clusters.is_empty() && standin_venv().is_some();
    let files = layout(
        &running.clusters,
        base.as_deref(),
        &other_caps,
        buildout,
        &password,
        worker_port,
        http_port,
    );
    std::fs::create_dir_all(dir.join("buildouts"))?;
    std::fs::write(dir.join("buildouts/MANIFEST.cfg"), &files.manifest)?;
    if files.buildout {
        std::fs::write(dir.join("buildouts/bootstrap.py"), BOOTSTRAP_PY)?;
        std::fs::write(
            dir.join("buildouts/demo-buildout.cfg"),
            STANDIN_CFG.replace(
                "A standalone buildout for abo's end-to-end tests",
                "The demo's buildout (abo demo)",
            ),
        )?;
    }
    std::fs::write(dir.join("master.toml"), &files.master_toml)?;
    let workers_cfg = dir.join("workers.cfg");
    std::fs::write(&workers_cfg, &files.workers)?;
    std::fs::set_permissions(
        &workers_cfg,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let loaded = match crate::load::load(&crate::load::Sources {
        dir: dir.to_owned(),
        ..Default::default()
    }) {
        Ok(l) => l,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            bail!(
                "the demo's configuration does not check:\n{}",
                text.join("\n")
            );
        }
    };
    let builders: Vec<String> = loaded
        .plan
        .builders
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let mut user_add = Command::new(&exe);
    user_add
        .args(["user", "add"])
        .arg(dir)
        .args([USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = user_add.spawn().context("running abo user add")?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{api_password}");
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "abo user add {} {USER} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    p.done(
        t,
        &format!(
            "{} builder{} ({})",
            builders.len(),
            if builders.len() == 1 { "" } else { "s" },
            builders.join(", ")
        ),
    );
    p.line(&format!(
        "{}/buildouts/MANIFEST.cfg, workers.cfg, master.toml (abo check {} shows the plan)",
        show(dir),
        show(dir)
    ));
    if !buildout && !running.clusters.is_empty() {
        p.line("(set ABO_BUILDOUT_VENV from testsupport/setup.sh to add a real buildout build)");
    }

    // 4. The master.
    let t = p.start("starting the master: ");
    let master_log = dir.join("master.log");
    let mut start = Command::new(&exe);
    start.arg("start").arg(dir).env_remove("RUST_LOG");
    running.master = Some(spawn_logged(start, &master_log)?);
    let api = ClientArgs {
        master: format!("http://127.0.0.1:{http_port}"),
        user: Some(USER.to_owned()),
        password: Some(api_password.clone()),
    };
    let client = Client::with_timeout(&api, Duration::from_secs(10))?;
    {
        let master = running.master.as_mut().expect("just started");
        wait_for(
            "the master",
            master,
            &master_log,
            Duration::from_secs(60),
            || client.workers().is_ok(),
        )?;
    }
    p.done(
        t,
        &format!("{} (log: {})", client.master(), show(&master_log)),
    );

    // 5. The worker.
    let t = p.start(&format!(
        "starting the worker{}: ",
        if root {
            " (--allow-root: abo demo runs as root)"
        } else {
            ""
        }
    ));
    let wdir = dir.join("worker");
    abo_worker::settings::create(
        &wdir,
        &abo_worker::NewWorker {
            master: format!("127.0.0.1:{worker_port}"),
            name: WORKER_NAME.to_owned(),
            password: abo_worker::Password::new(password.clone()),
            basedir: None,
        },
    )?;
    let worker_log = dir.join("worker.log");
    let mut start = Command::new(&exe);
    start
        .args(["worker", "start"])
        .arg(&wdir)
        .env_remove("RUST_LOG");
    if root {
        start.arg("--allow-root");
    }
    running.worker = Some(spawn_logged(start, &worker_log)?);
    {
        let worker = running.worker.as_mut().expect("just started");
        wait_for(
            "the worker",
            worker,
            &worker_log,
            Duration::from_secs(60),
            || {
                client
                    .workers()
                    .is_ok_and(|ws| ws.iter().any(|w| w.name == WORKER_NAME && w.connected))
            },
        )?;
    }
    p.done(
        t,
        &format!("{WORKER_NAME} connected (log: {})", show(&worker_log)),
    );

    let state = State {
        master_pid: running.master.as_ref().map_or(0, |c| c.id() as i32),
        worker_pid: running.worker.as_ref().map_or(0, |c| c.id() as i32),
        clusters: running
            .clusters
            .iter()
            .map(|c| StateCluster {
                dir: c.dir.clone(),
                bin: c.pg.bin.clone(),
                owner: c.owner.clone(),
            })
            .collect(),
        temp: running.temp.clone(),
        http: client.master().to_owned(),
        user: USER.to_owned(),
        password: api_password.clone(),
    };
    let state_path = dir.join(STATE);
    std::fs::write(&state_path, serde_json::to_string_pretty(&state)?)?;
    std::fs::set_permissions(
        &state_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;

    // 6. The builds.
    let t = p.start(&format!(
        "forcing {} build{}:\n",
        builders.len(),
        if builders.len() == 1 { "" } else { "s" }
    ));
    let mut forced = Vec::new();
    for b in &builders {
        let request = client.force(b, &serde_json::Map::new(), "abo demo")?;
        forced.push((b.clone(), request));
    }
    let mut watch = Watch::new(&client, forced);
    let deadline = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .map(|d| Instant::now() + d);
    let mut out = std::io::stdout();
    let stopped = watch.run(&mut out, deadline, &interrupted)?;
    check_interrupt()?;
    let took = t.elapsed().as_secs_f64();
    let status = if stopped {
        println!("gave up waiting after {}s", args.timeout);
        2
    } else {
        watch.exit_status()
    };

    println!();
    println!("Builds ({}):", human_duration(took));
    for tr in &watch.tracked {
        let last = tr.builds.last().copied();
        let detail = last.and_then(|id| watch.details.get(&id));
        let took = detail
            .and_then(|d| {
                client::duration(
                    d.build.started_at.as_deref(),
                    d.build.finished_at.as_deref(),
                    client::now(),
                )
            })
            .map(human_duration)
            .unwrap_or_default();
        println!(
            "  {:<32} {:<9} {:>6}   abo log {}",
            tr.builder,
            tr.result.as_deref().unwrap_or("unfinished"),
            took,
            last.map(|i| i.to_string()).unwrap_or_else(|| "?".into())
        );
    }
    let url = client.master().to_owned();
    let env = format!("ABO_MASTER={url}");
    println!();
    if args.keep {
        running.kept = true;
        println!("Everything keeps running (--keep). Where to look next:");
        println!("  export {env} ABO_USER={USER} ABO_PASSWORD={api_password}");
        println!("  abo builds                        # the builds, newest first");
        if let Some(id) = watch.tracked.first().and_then(|t| t.builds.last()) {
            println!("  abo log {id}                         # a build's steps; abo log {id} STEP: a step's log");
        }
        if let Some(b) = builders.first() {
            println!("  abo force {b} --wait   # another build");
        }
        println!("  curl {url}/api/v1/builders    # the JSON API");
        println!(
            "  {}/master.toml, workers.cfg, buildouts/MANIFEST.cfg: change them, then abo check {}",
            show(dir),
            show(dir)
        );
        println!(
            "  {}, {}: the processes' logs",
            show(&master_log),
            show(&worker_log)
        );
        println!("Stop it all with: abo demo --stop --dir {}", show(dir));
    } else {
        println!("Stopping the worker, the master and PostgreSQL (--keep leaves them running).");
        running.stop_all();
        let _ = std::fs::remove_file(&state_path);
        println!("Where to look next:");
        println!("  abo demo --keep                    # the same, left running, to try abo builds, abo log, abo force");
        println!(
            "  abo start {} &   then   {env} abo builds   # the builds stay in its database",
            show(dir)
        );
        println!("  {}/master.toml, workers.cfg, buildouts/MANIFEST.cfg: the configuration (abo check {})", show(dir), show(dir));
        println!(
            "  {}, {}: the processes' logs",
            show(&master_log),
            show(&worker_log)
        );
        println!("  README.md and docs/: your own master directory (abo init), workers (abo worker create)");
    }
    Ok(ExitCode::from(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_versions() {
        assert_eq!(
            parse_pg_version("postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)\n"),
            Some(("15".into(), "15.14".into()))
        );
        assert_eq!(
            parse_pg_version("postgres (PostgreSQL) 9.6.24\n"),
            Some(("9.6".into(), "9.6.24".into()))
        );
        assert_eq!(
            parse_pg_version("postgres (PostgreSQL) 17beta1"),
            Some(("17".into(), "17".into()))
        );
        assert_eq!(parse_pg_version("nothing"), None);
    }

    #[test]
    fn the_layout_checks() {
        let pg = PgBin {
            major: "15".into(),
            full: "15.14".into(),
            bin: "/usr/lib/postgresql/15/bin".into(),
            lib: None,
        };
        let cluster = Cluster {
            pg,
            dir: "/tmp/d/pg/15".into(),
            owner: None,
            version: String::new(),
        };
        for (clusters, buildout) in [(vec![cluster.clone()], true), (vec![], false)] {
            let l = layout(
                &clusters,
                Some(Path::new("/tmp/d/pg")),
                &["git 2.47.3".to_owned()],
                buildout,
                "pw",
                9989,
                8010,
            );
            let tmp = std::env::temp_dir().join(format!(
                "abo-demo-layout-{}-{}",
                std::process::id(),
                clusters.len()
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(tmp.join("buildouts")).unwrap();
            std::fs::write(tmp.join("buildouts/MANIFEST.cfg"), &l.manifest).unwrap();
            std::fs::write(tmp.join("buildouts/bootstrap.py"), BOOTSTRAP_PY).unwrap();
            std::fs::write(tmp.join("buildouts/demo-buildout.cfg"), STANDIN_CFG).unwrap();
            std::fs::write(tmp.join("master.toml"), &l.master_toml).unwrap();
            std::fs::write(tmp.join("workers.cfg"), &l.workers).unwrap();
            let loaded = crate::load::load(&crate::load::Sources {
                dir: tmp.clone(),
                ..Default::default()
            });
            let loaded = match loaded {
                Ok(l) => l,
                Err(d) => panic!(
                    "{}\n{}\n{}\n{}",
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    l.manifest,
                    l.master_toml,
                    l.workers
                ),
            };
            let names: Vec<&str> = loaded
                .plan
                .builders
                .iter()
                .map(|b| b.name.as_str())
                .collect();
            if clusters.is_empty() {
                assert_eq!(names, ["demo-shell"]);
            } else {
                assert_eq!(
                    names,
                    ["demo-psql-postgresql-15", "demo-buildout-postgresql-15"]
                );
            }
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
}
