//! [`Settings`]: the worker's `worker.toml`, written by `abo worker create` and read by
//! `abo worker start` (documented in `docs/worker.md`).
//!
//! The file holds the password, so it is created with mode 0600 and never overwritten, and
//! `Settings`' `Debug` does not print the password.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// The settings file's name inside the worker directory.
pub const FILE_NAME: &str = "worker.toml";

/// Default `keepalive`: seconds between the worker's WebSocket pings while idle.
pub const DEFAULT_KEEPALIVE_SECS: u64 = 60;
/// Default `max-line-bytes`: the longest line kept whole (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// Default `kill-grace`: seconds between TERM and KILL when commands are killed because the
/// connection dropped or the worker stops.
pub const DEFAULT_KILL_GRACE_SECS: u64 = 10;

/// Where the master listens: `ws://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddr {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Request path, `/` unless given.
    pub path: String,
}

impl MasterAddr {
    /// Parses `HOST:PORT` (as `buildbot-worker create-worker` takes it) or
    /// `ws://HOST:PORT[/PATH]`. IPv6 hosts are written in brackets: `[::1]:9990`.
    pub fn parse(s: &str) -> Result<MasterAddr, Error> {
        let bad = || {
            Error::Invalid(format!(
                "invalid master address {s:?}: expected HOST:PORT or ws://HOST:PORT/PATH"
            ))
        };
        let rest = s.strip_prefix("ws://").unwrap_or(s);
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(MasterAddr {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The WebSocket URL the worker connects to.
    pub fn url(&self) -> String {
        format!("ws://{}:{}{}", self.host, self.port, self.path)
    }
}

/// A password that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Password {
        Password(s.into())
    }

    /// The password itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Everything `abo worker start` needs, read from `worker.toml`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The master to connect to.
    pub master: MasterAddr,
    /// The worker's name, as in the master's `workers.cfg`.
    pub name: String,
    /// The worker's password.
    pub password: Password,
    /// Where builds run: `basedir/<builder>/build`. Reported to the master, which builds
    /// every path from it.
    pub basedir: PathBuf,
    /// Ping interval while idle; the connection is dropped when the master has been silent
    /// for twice as long. `None` disables the worker's own liveness check.
    pub keepalive: Option<Duration>,
    /// Lines longer than this many bytes are cut (without loss) whatever the master asks.
    pub max_line_bytes: usize,
    /// Time between TERM and KILL when commands are killed on disconnect or stop.
    pub kill_grace: Duration,
}

/// The file's shape. Kebab-case keys; unknown keys are refused so that a typo is not
/// silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    master: String,
    name: String,
    password: String,
    basedir: Option<PathBuf>,
    keepalive: Option<u64>,
    max_line_bytes: Option<usize>,
    kill_grace: Option<u64>,
}

/// What `abo worker create` writes.
#[derive(Debug, Clone)]
pub struct NewWorker {
    /// `--master`
    pub master: String,
    /// `--name`
    pub name: String,
    /// `--password`
    pub password: Password,
    /// `--basedir`, written as given (relative paths are relative to the worker directory).
    pub basedir: Option<PathBuf>,
}

fn check_name(name: &str) -> Result<(), Error> {
    // Basic auth splits name:password on the first colon; the stock worker refuses it too.
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid worker name {name:?}: it must be non-empty, without ':' or control characters"
        )));
    }
    Ok(())
}

/// Quotes a string as a TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes `dir/worker.toml` (mode 0600), creating `dir` if needed; refuses to overwrite.
/// Returns the file's path.
pub fn create(dir: &Path, new: &NewWorker) -> Result<PathBuf, Error> {
    MasterAddr::parse(&new.master)?;
    check_name(&new.name)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(FILE_NAME);
    // Optional keys, commented out with their defaults, comments aligned.
    let optional = |setting: String, why: &str| format!("{setting:<28}# {why}\n");
    let basedir = match &new.basedir {
        Some(b) => format!("basedir = {}\n", toml_str(&b.to_string_lossy())),
        None => optional(
            "# basedir = \".\"".into(),
            "where builds run; default: this directory",
        ),
    };
    let text = format!(
        "# abo worker settings: see docs/worker.md. Holds the password: keep it mode 0600.\n\
         master = {master}\n\
         name = {name}\n\
         password = {password}\n\
         {basedir}{keepalive}{max_line}{grace}",
        master = toml_str(&new.master),
        name = toml_str(&new.name),
        password = toml_str(new.password.expose()),
        keepalive = optional(
            format!("# keepalive = {DEFAULT_KEEPALIVE_SECS}"),
            "seconds between pings while idle; 0 turns the check off",
        ),
        max_line = optional(
            format!("# max-line-bytes = {DEFAULT_MAX_LINE_BYTES}"),
            "longer output lines are cut, never truncated",
        ),
        grace = optional(
            format!("# kill-grace = {DEFAULT_KILL_GRACE_SECS}"),
            "seconds from TERM to KILL when the connection drops",
        ),
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(path.clone())
            } else {
                Error::io(&path, e)
            }
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

impl Settings {
    /// Reads `dir/worker.toml`. A relative `basedir` is relative to `dir`; the result is
    /// absolute, since the master builds absolute paths from it.
    pub fn load(dir: &Path) -> Result<Settings, Error> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Settings::parse(&text, dir).map_err(|message| Error::Settings { path, message })
    }

    /// Parses the file's text; `dir` is the directory holding it.
    pub fn parse(text: &str, dir: &Path) -> Result<Settings, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let master = MasterAddr::parse(&file.master).map_err(|e| format!("master: {e}"))?;
        check_name(&file.name).map_err(|e| format!("name: {e}"))?;
        let dir = std::path::absolute(dir).map_err(|e| e.to_string())?;
        let basedir = match file.basedir {
            Some(b) if b.is_absolute() => b,
            Some(b) => dir.join(b),
            None => dir,
        };
        let basedir = crate::paths::normalize(&basedir);
        let keepalive = match file.keepalive.unwrap_or(DEFAULT_KEEPALIVE_SECS) {
            0 => None,
            n => Some(Duration::from_secs(n)),
        };
        let max_line_bytes = file.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES);
        if max_line_bytes < 64 {
            return Err(format!(
                "max-line-bytes = {max_line_bytes} is too small: use at least 64"
            ));
        }
        Ok(Settings {
            master,
            name: file.name,
            password: Password(file.password),
            basedir,
            keepalive,
            max_line_bytes,
            kill_grace: Duration::from_secs(file.kill_grace.unwrap_or(DEFAULT_KILL_GRACE_SECS)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn master_addresses() {
        let a = MasterAddr::parse("127.0.0.1:9990").unwrap();
        assert_eq!(a.url(), "ws://127.0.0.1:9990/");
        let a = MasterAddr::parse("ws://ci.example.org:80/buildbot/ws").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("ci.example.org", 80));
        assert_eq!(a.url(), "ws://ci.example.org:80/buildbot/ws");
        assert_eq!(MasterAddr::parse("[::1]:9990").unwrap().host, "[::1]");
        for bad in ["host", "host:", ":9990", "host:0", "host:99999", "a b:1"] {
            assert!(MasterAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_then_load_round_trips_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let wdir = dir.path().join("w1");
        let new = NewWorker {
            master: "127.0.0.1:9990".into(),
            name: "w1".into(),
            password: Password::new("p\"ss:wörd"),
            basedir: None,
        };
        let path = create(&wdir, &new).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = Settings::load(&wdir).unwrap();
        assert_eq!(s.password.expose(), "p\"ss:wörd");
        assert_eq!(s.basedir, wdir);
        assert_eq!(s.keepalive, Some(Duration::from_secs(60)));
        assert_eq!(s.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert!(!format!("{s:?}").contains("wörd"));
        assert!(matches!(create(&wdir, &new), Err(Error::Exists(_))));
    }

    #[test]
    fn parse_checks_every_key() {
        let dir = Path::new("/srv/w");
        let base = "master = \"h:1\"\nname = \"w\"\npassword = \"p\"\n";
        let s = Settings::parse(
            &format!("{base}basedir = \"builds\"\nkeepalive = 0\nkill-grace = 3\n"),
            dir,
        )
        .unwrap();
        assert_eq!(s.basedir, Path::new("/srv/w/builds"));
        assert_eq!(s.keepalive, None);
        assert_eq!(s.kill_grace, Duration::from_secs(3));
        let err = Settings::parse(&format!("{base}keepalvie = 3\n"), dir).unwrap_err();
        assert!(err.contains("keepalvie"), "{err}");
        assert!(Settings::parse("name = \"w\"\npassword = \"p\"\n", dir).is_err());
        assert!(Settings::parse(&base.replace("\"w\"", "\"a:b\""), dir).is_err());
        assert!(Settings::parse(&format!("{base}max-line-bytes = 3\n"), dir).is_err());
    }
}
