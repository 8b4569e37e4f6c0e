//! `abo worker detect`: this machine's capabilities as `workers.cfg` lines.
//!
//! Finds PostgreSQL clusters (Debian's `pg_lsclusters`, then `/etc/postgresql/*/*/
//! postgresql.conf`, `/usr/lib/postgresql/*/bin`, and the `postmaster.pid` of running
//! servers under the usual data directories), Python interpreters on `PATH`, and the VCS
//! tools the buildouts use (git, hg, bzr/brz). Every parser of command output or file text
//! is a pure function with unit tests; [`detect`] is the only part that looks at the
//! machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// One PostgreSQL cluster (or installed version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Postgres {
    /// Major version, e.g. `15` or `9.6`.
    pub version: String,
    /// Debian cluster name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Unix socket directory (the capability's `host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Directory of `psql`, `createdb`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    /// Directory of the client libraries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lib: Option<String>,
    /// Where it was found (`pg_lsclusters`, a config file, a pid file, ...).
    pub source: String,
}

/// One tool with its version: a Python interpreter or a VCS client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    /// Capability name: `python`, `git`, `hg`, `bzr`, `brz`.
    pub name: String,
    /// Version as the capability gives it (`3.11` for Python, full for VCS tools).
    pub version: String,
    /// The executable, for Python (the capability's `bin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
}

/// Everything found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// PostgreSQL clusters.
    pub postgresql: Vec<Postgres>,
    /// Python interpreters, one per major.minor version.
    pub python: Vec<Tool>,
    /// VCS tools.
    pub vcs: Vec<Tool>,
}

impl Capabilities {
    /// One capability line each: `postgresql 15 port=5432 host=... bin=... lib=...`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pg in &self.postgresql {
            let mut l = format!("postgresql {}", pg.version);
            for (k, v) in [
                ("port", pg.port.map(|p| p.to_string())),
                ("host", pg.host.clone()),
                ("bin", pg.bin.clone()),
                ("lib", pg.lib.clone()),
            ] {
                if let Some(v) = v {
                    l.push_str(&format!(" {k}={v}"));
                }
            }
            out.push(l);
        }
        for t in self.python.iter().chain(&self.vcs) {
            let mut l = format!("{} {}", t.name, t.version);
            if let Some(b) = &t.bin {
                l.push_str(&format!(" bin={b}"));
            }
            out.push(l);
        }
        out
    }

    /// The `capability = ...` option, continuation lines indented under the first value.
    pub fn to_ini(&self) -> String {
        let lines = self.lines();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i == 0 {
                out.push_str("capability = ");
            } else {
                out.push_str("             ");
            }
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// A row of `pg_lsclusters` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsCluster {
    /// `Ver`
    pub version: String,
    /// `Cluster`
    pub cluster: String,
    /// `Port`
    pub port: Option<u16>,
    /// `Data directory`
    pub data_dir: String,
}

/// Parses `pg_lsclusters` output: `Ver Cluster Port Status Owner Data-directory Log-file`,
/// with or without its header line.
pub fn parse_pg_lsclusters(text: &str) -> Vec<LsCluster> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || f[0] == "Ver" || !f[0].starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            Some(LsCluster {
                version: f[0].to_owned(),
                cluster: f[1].to_owned(),
                port: f[2].parse().ok(),
                data_dir: f[5].to_owned(),
            })
        })
        .collect()
}

/// Reads `port` and the first of `unix_socket_directories` (or the pre-9.3
/// `unix_socket_directory`) from `postgresql.conf` text; the last setting wins, as in
/// PostgreSQL.
pub fn parse_postgresql_conf(text: &str) -> (Option<u16>, Option<String>) {
    let mut port = None;
    let mut socket = None;
    for line in text.lines() {
        let line = strip_conf_comment(line).trim();
        let Some((key, value)) = line
            .split_once('=')
            .or_else(|| line.split_once(char::is_whitespace))
        else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        match key.trim() {
            "port" => port = value.parse().ok(),
            "unix_socket_directories" | "unix_socket_directory" => {
                socket = value
                    .split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(str::to_owned);
            }
            _ => {}
        }
    }
    (port, socket)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_conf_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// What a `postmaster.pid` says: data directory, port, socket directory.
pub fn parse_postmaster_pid(text: &str) -> Option<(String, Option<u16>, Option<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let data_dir = lines.get(1)?.trim();
    if data_dir.is_empty() {
        return None;
    }
    let port = lines.get(3).and_then(|p| p.trim().parse().ok());
    let socket = lines
        .get(4)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some((data_dir.to_owned(), port, socket))
}

/// The leading `N.N[.N...]` of `s`, or `None`.
fn leading_version(s: &str) -> Option<String> {
    let v: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v = v.trim_end_matches('.');
    (!v.is_empty() && v.starts_with(|c: char| c.is_ascii_digit())).then(|| v.to_owned())
}

/// `Python 3.11.7` → `3.11` (Python 2 prints it on stderr; pass both).
pub fn parse_python_version(output: &str) -> Option<String> {
    let rest = output.trim().strip_prefix("Python ")?;
    let full = leading_version(rest)?;
    let mut parts = full.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    Some(format!("{major}.{minor}"))
}

/// The version in `git version 2.39.2`, `Mercurial Distributed SCM (version 6.3.2)`,
/// `Bazaar (bzr) 2.7.0`, `Breezy (brz) 3.3.2`.
pub fn parse_vcs_version(tool: &str, output: &str) -> Option<String> {
    let first = output.lines().next()?.trim();
    let rest = match tool {
        "git" => first.strip_prefix("git version ")?,
        "hg" => first.split("(version ").nth(1)?,
        "bzr" => first.strip_prefix("Bazaar (bzr) ")?,
        "brz" => first.strip_prefix("Breezy (brz) ")?,
        _ => return None,
    };
    leading_version(rest)
}

/// Runs `program args` and returns stdout and stderr together, if it ran successfully.
fn output_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn which(name: &str) -> Option<PathBuf> {
    path_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `name` is an interpreter name worth asking: `python`, `python3`, `python3.11`,
/// `python2`, `python2.7`.
pub fn is_python_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("python") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let mut parts = rest.split('.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next();
    parts.next().is_none()
        && matches!(major, "2" | "3")
        && minor.is_none_or(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

fn python_interpreters() -> Vec<Tool> {
    let mut found: BTreeMap<(u32, u32), Tool> = BTreeMap::new();
    for dir in path_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_python_name(n))
            .collect();
        // Versioned names first, so `bin=` is the most specific executable.
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for name in names {
            let path = dir.join(&name);
            if !is_executable(&path) {
                continue;
            }
            let Some(version) = output_of(&path, &["--version"])
                .as_deref()
                .and_then(parse_python_version)
            else {
                continue;
            };
            let key = version
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or((0, 0));
            // The first on PATH wins, as the shell would choose.
            found.entry(key).or_insert(Tool {
                name: "python".into(),
                version,
                bin: Some(path.to_string_lossy().into_owned()),
            });
        }
    }
    found.into_values().collect()
}

fn vcs_tools() -> Vec<Tool> {
    ["git", "hg", "bzr", "brz"]
        .iter()
        .filter_map(|tool| {
            let path = which(tool)?;
            let version = parse_vcs_version(tool, &output_of(&path, &["--version"])?)?;
            Some(Tool {
                name: (*tool).to_owned(),
                version,
                bin: None,
            })
        })
        .collect()
}

fn glob_dirs(pattern: &str) -> Vec<PathBuf> {
    glob::glob(pattern)
        .map(|paths| paths.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Debian's layout for version `v`: `/usr/lib/postgresql/<v>/{bin,lib}`.
fn debian_dirs(version: &str) -> (Option<String>, Option<String>) {
    let base = Path::new("/usr/lib/postgresql").join(version);
    let dir = |d: &str| {
        let p = base.join(d);
        p.is_dir().then(|| p.to_string_lossy().into_owned())
    };
    (dir("bin"), dir("lib"))
}

fn debian_conf(version: &str, cluster: &str) -> (Option<u16>, Option<String>) {
    let conf = Path::new("/etc/postgresql")
        .join(version)
        .join(cluster)
        .join("postgresql.conf");
    std::fs::read_to_string(conf)
        .map(|t| parse_postgresql_conf(&t))
        .unwrap_or((None, None))
}

fn postgres_clusters() -> Vec<Postgres> {
    let mut found: Vec<Postgres> = Vec::new();
    let mut add = |pg: Postgres| {
        let same = found.iter_mut().find(|f| {
            f.version == pg.version && (f.port == pg.port || pg.port.is_none() || f.port.is_none())
        });
        match same {
            Some(f) => {
                f.port = f.port.or(pg.port);
                f.host = f.host.take().or(pg.host);
                f.bin = f.bin.take().or(pg.bin);
                f.lib = f.lib.take().or(pg.lib);
                f.cluster = f.cluster.take().or(pg.cluster);
            }
            None => found.push(pg),
        }
    };
    // 1. Debian's own list.
    if let Some(text) = which("pg_lsclusters").and_then(|p| output_of(&p, &[])) {
        for c in parse_pg_lsclusters(&text) {
            let (conf_port, socket) = debian_conf(&c.version, &c.cluster);
            let (bin, lib) = debian_dirs(&c.version);
            add(Postgres {
                port: c.port.or(conf_port),
                host: socket.or_else(|| Some("/var/run/postgresql".into())),
                version: c.version,
                cluster: Some(c.cluster),
                bin,
                lib,
                source: "pg_lsclusters".into(),
            });
        }
    }
    // 2. Cluster configurations.
    for conf in glob_dirs("/etc/postgresql/*/*/postgresql.conf") {
        let Some(cluster_dir) = conf.parent() else {
            continue;
        };
        let Some(version) = cluster_dir
            .parent()
            .and_then(Path::file_name)
            .map(|v| v.to_string_lossy().into_owned())
        else {
            continue;
        };
        let cluster = cluster_dir
            .file_name()
            .map(|c| c.to_string_lossy().into_owned());
        let (port, socket) = std::fs::read_to_string(&conf)
            .map(|t| parse_postgresql_conf(&t))
            .unwrap_or((None, None));
        let (bin, lib) = debian_dirs(&version);
        add(Postgres {
            version,
            cluster,
            port,
            host: socket,
            bin,
            lib,
            source: conf.to_string_lossy().into_owned(),
        });
    }
    // 3. Running servers.
    for pid in [
        "/var/lib/postgresql/*/*/postmaster.pid",
        "/var/lib/pgsql/data/postmaster.pid",
        "/var/lib/pgsql/*/data/postmaster.pid",
        "/usr/local/pgsql/data/postmaster.pid",
    ]
    .iter()
    .flat_map(|p| glob_dirs(p))
    {
        let Some((data_dir, port, socket)) = std::fs::read_to_string(&pid)
            .ok()
            .as_deref()
            .and_then(parse_postmaster_pid)
        else {
            continue;
        };
        let Ok(version) = std::fs::read_to_string(Path::new(&data_dir).join("PG_VERSION")) else {
            continue;
        };
        let version = version.trim().to_owned();
        let (bin, lib) = debian_dirs(&version);
        add(Postgres {
            version,
            cluster: None,
            port,
            host: socket,
            bin,
            lib,
            source: pid.to_string_lossy().into_owned(),
        });
    }
    // 4. Installed versions without a cluster (a build can still use their client tools).
    for bin in glob_dirs("/usr/lib/postgresql/*/bin") {
        let Some(version) = bin
            .parent()
            .and_then(Path::file_name)
            .map(|v| v.to_string_lossy().into_owned())
        else {
            continue;
        };
        let (bin, lib) = debian_dirs(&version);
        add(Postgres {
            version,
            cluster: None,
            port: None,
            host: None,
            bin,
            lib,
            source: "/usr/lib/postgresql".into(),
        });
    }
    found
}

/// Looks at this machine.
pub fn detect() -> Capabilities {
    Capabilities {
        postgresql: postgres_clusters(),
        python: python_interpreters(),
        vcs: vcs_tools(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_lsclusters_output() {
        let text = "Ver Cluster Port Status Owner    Data directory              Log file\n\
                    15  main    5432 down   postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n\
                    9.6 old     5433 online postgres /srv/pg/9.6/old             /var/log/postgresql/postgresql-9.6-old.log\n";
        assert_eq!(
            parse_pg_lsclusters(text),
            [
                LsCluster {
                    version: "15".into(),
                    cluster: "main".into(),
                    port: Some(5432),
                    data_dir: "/var/lib/postgresql/15/main".into()
                },
                LsCluster {
                    version: "9.6".into(),
                    cluster: "old".into(),
                    port: Some(5433),
                    data_dir: "/srv/pg/9.6/old".into()
                },
            ]
        );
        assert!(parse_pg_lsclusters("").is_empty());
    }

    #[test]
    fn postgresql_conf() {
        let text = "# port = 1\nport = 5433\t\t# (change requires restart)\n\
                    unix_socket_directories = '/var/run/postgresql, /tmp' # comma-separated\n\
                    #unix_socket_directories = '/x'\n";
        assert_eq!(
            parse_postgresql_conf(text),
            (Some(5433), Some("/var/run/postgresql".into()))
        );
        assert_eq!(
            parse_postgresql_conf("unix_socket_directory = '/tmp#x'\nport 5434\n"),
            (Some(5434), Some("/tmp#x".into()))
        );
        assert_eq!(parse_postgresql_conf(""), (None, None));
    }

    #[test]
    fn postmaster_pid() {
        let text = "1234\n/var/lib/postgresql/15/main\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001    65536\nready   \n";
        assert_eq!(
            parse_postmaster_pid(text),
            Some((
                "/var/lib/postgresql/15/main".into(),
                Some(5432),
                Some("/var/run/postgresql".into())
            ))
        );
        assert_eq!(parse_postmaster_pid("1234\n"), None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_python_version("Python 3.11.7\n"), Some("3.11".into()));
        assert_eq!(parse_python_version("Python 2.7.18"), Some("2.7".into()));
        assert_eq!(
            parse_python_version("Python 3.13.0rc1"),
            Some("3.13".into())
        );
        assert_eq!(
            parse_python_version("pyenv: python3.12: command not found"),
            None
        );
        assert_eq!(
            parse_vcs_version("git", "git version 2.39.2\n"),
            Some("2.39.2".into())
        );
        assert_eq!(
            parse_vcs_version("git", "git version 2.39.2.windows.1"),
            Some("2.39.2".into())
        );
        assert_eq!(
            parse_vcs_version("hg", "Mercurial Distributed SCM (version 6.3.2)\n(see https://mercurial-scm.org for more information)"),
            Some("6.3.2".into())
        );
        assert_eq!(
            parse_vcs_version("bzr", "Bazaar (bzr) 2.7.0\n"),
            Some("2.7.0".into())
        );
        assert_eq!(
            parse_vcs_version("brz", "Breezy (brz) 3.3.2\n"),
            Some("3.3.2".into())
        );
        assert_eq!(parse_vcs_version("git", "nonsense"), None);
    }

    #[test]
    fn python_names() {
        for ok in ["python", "python3", "python3.11", "python2.7", "python2"] {
            assert!(is_python_name(ok), "{ok}");
        }
        for bad in [
            "python3-config",
            "python3.11-config",
            "python3.",
            "python4",
            "pythonw",
            "python3.1.2",
        ] {
            assert!(!is_python_name(bad), "{bad}");
        }
    }

    #[test]
    fn capability_lines() {
        let caps = Capabilities {
            postgresql: vec![Postgres {
                version: "15".into(),
                cluster: Some("main".into()),
                port: Some(5432),
                host: Some("/var/run/postgresql".into()),
                bin: Some("/usr/lib/postgresql/15/bin".into()),
                lib: None,
                source: "pg_lsclusters".into(),
            }],
            python: vec![Tool {
                name: "python".into(),
                version: "3.11".into(),
                bin: Some("/usr/bin/python3.11".into()),
            }],
            vcs: vec![Tool {
                name: "git".into(),
                version: "2.39.2".into(),
                bin: None,
            }],
        };
        assert_eq!(
            caps.to_ini(),
            "capability = postgresql 15 port=5432 host=/var/run/postgresql bin=/usr/lib/postgresql/15/bin\n\
             \x20            python 3.11 bin=/usr/bin/python3.11\n\
             \x20            git 2.39.2\n"
        );
        assert_eq!(Capabilities::default().to_ini(), "");
    }
}
