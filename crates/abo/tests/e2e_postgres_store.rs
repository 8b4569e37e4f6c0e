//! End-to-end: `abo start` with `database = "postgresql://..."` (a throw-away server of
//! testsupport/pg.sh, reached over its Unix socket). `abo user add` writes the API user
//! there, a forced build on an `abo worker` completes and is queryable through the API
//! with its log; the master carries on when the PostgreSQL server restarts under it; and
//! everything survives a master restart (killed, as a crash would): the build, its log,
//! the build numbering. No SQLite file is created.
//!
//! Needs `scripts/test` (or `source testsupport/setup.sh`) for the PostgreSQL binaries.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_support::*;

/// The cluster, stopped (and its directory removed with the test's) when dropped, also
/// when the test fails.
struct Cluster {
    pg_sh: PathBuf,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.pg_sh)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server version to use: 15 (the system's, which has psql), else the first listed.
fn version() -> String {
    let bindirs = std::env::var("ABO_PG_BINDIRS").unwrap_or_default();
    assert!(
        !bindirs.is_empty(),
        "ABO_PG_BINDIRS is not set: the end-to-end fixtures (PostgreSQL) are not set up. Run \
         ./scripts/test, or `source testsupport/setup.sh` in this shell before cargo test \
         (testsupport/README.md)."
    );
    let versions: Vec<&str> = bindirs
        .split(':')
        .filter_map(|e| e.split_once('=').map(|p| p.0))
        .collect();
    if versions.contains(&"15") {
        "15".into()
    } else {
        versions[0].to_owned()
    }
}

fn chmod_755(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn layout(dir: &Path, database: &str) {
    std::fs::create_dir_all(dir.join("buildouts")).unwrap();
    std::fs::write(
        dir.join("master.toml"),
        format!(
            "manifests = [\"buildouts/MANIFEST.cfg\"]\nworkers = \"workers.cfg\"\n\
             worker-listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\
             worker-ping-interval = 1\nworker-lost-after = 5\n\
             database = \"{database}\"\n\n\
             [[step-sets.hello]]\nname = \"hello\"\n\
             command = [\"echo\", \"built with its history in PostgreSQL\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("buildouts/MANIFEST.cfg"),
        "[pgstore]\nsteps = hello\nbuild-for = postgresql not-used\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("workers.cfg"),
        "[pw]\npassword = pw-secret\nmax_builds = 1\n",
    )
    .unwrap();
    add_user(dir, API_USER, API_PASSWORD);
}

/// Forces a build of `pgstore` and waits for it: the build's JSON.
fn build_once(master: &Master) -> serde_json::Value {
    let request = force(master.http, "pgstore");
    let r = wait_request(master, request, Duration::from_secs(60));
    assert_eq!(r["result"], "success", "{r}");
    let id = r["builds"][0].as_u64().expect("a build");
    api(master.http, &format!("builds/{id}"))
}

#[test]
fn a_master_on_postgresql_builds_and_keeps_its_history_across_a_restart() {
    let tmp = TempDir::new("abo-e2e-pgstore.");
    chmod_755(tmp.path());
    let pg_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsupport/pg.sh");
    let version = version();
    let cluster = Cluster {
        pg_sh: pg_sh.clone(),
        dir: tmp.path().join("pg"),
    };
    std::fs::create_dir_all(&cluster.dir).unwrap();
    chmod_755(&cluster.dir);
    let port = "5432";
    run(Command::new(&pg_sh)
        .arg("start")
        .arg(&version)
        .arg(&cluster.dir)
        .arg(port));
    let user = run(Command::new("id").arg("-un")).trim().to_owned();
    let psql =
        PathBuf::from(run(Command::new(&pg_sh).arg("bindir").arg(&version)).trim()).join("psql");
    let psql = if psql.is_file() {
        psql
    } else {
        PathBuf::from("/usr/lib/postgresql/15/bin/psql")
    };
    run(Command::new(psql)
        .args(["-X", "-q", "-h"])
        .arg(&cluster.dir)
        .args(["-p", port, "-U", &user, "-d", "postgres", "-c"])
        .arg("CREATE DATABASE abo_master"));
    let database = format!(
        "postgresql://{user}@/abo_master?host={}&port={port}",
        cluster.dir.display()
    );

    let dir = tmp.path().join("master");
    layout(&dir, &database);
    let mut master = Master::start(&dir);
    let account = Account {
        name: "pw".into(),
        password: "pw-secret".into(),
    };
    let worker = WorkerProcess::start(
        Peer::Abo,
        &tmp.path().join("pw"),
        master.workers,
        &account,
        &[],
    );
    wait_connected(&master, &worker);

    let first = build_once(&master);
    assert_eq!(first["number"], 1, "{first}");
    let id = first["id"].as_u64().unwrap();
    let log = log_text(master.http, id, 0, "stdio");
    assert!(
        log.contains("built with its history in PostgreSQL"),
        "{log}"
    );
    assert!(
        !dir.join("abo.sqlite").exists(),
        "the master created an SQLite file next to its PostgreSQL database"
    );

    // The server restarts under the running master: the connections it pooled are dead,
    // and the next statements replace them instead of failing.
    run(Command::new(&pg_sh).arg("stop").arg(&cluster.dir));
    run(Command::new(&pg_sh)
        .arg("start")
        .arg(&version)
        .arg(&cluster.dir)
        .arg(port));
    let second = build_once(&master);
    assert_eq!(second["number"], 2, "{second}");

    // A crash and a new start: the history is in PostgreSQL, and numbering goes on.
    master.restart();
    wait_connected(&master, &worker);
    let again = api(master.http, &format!("builds/{id}"));
    assert_eq!(again["result"], "success", "{again}");
    assert_eq!(log_text(master.http, id, 0, "stdio"), log);
    let third = build_once(&master);
    assert_eq!(third["number"], 3, "{third}");
    let builds = api(master.http, "builds");
    assert_eq!(builds.as_array().map(Vec::len), Some(3), "{builds}");

    master.stop();
    drop(worker);
    drop(cluster);
}
