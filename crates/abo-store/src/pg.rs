//! Everything specific to PostgreSQL: parsing and masking the URL, a small pool of
//! connections, transactions (SERIALIZABLE writes retried on serialization failures,
//! REPEATABLE READ read-only snapshots) and migrating a database.
//!
//! Several masters (or `abo` commands) may share one database: every write is one
//! SERIALIZABLE transaction, so a read-then-write (a lease check, a claim, a build number)
//! behaves as if the transactions ran one after the other, as the single SQLite writer
//! makes them run. PostgreSQL refuses the loser of a conflict with SQLSTATE 40001 (or
//! 40P01 for a deadlock); the whole transaction is then run again, a few times.
//!
//! The `postgres` client is blocking: it drives its connection on a small tokio runtime of
//! its own, which is fine on tokio's blocking pool (where the store runs statements) but
//! must not be started or dropped on an async thread; [`Db`]'s `Drop` closes the pooled
//! connections on a thread of their own for that reason.

use crate::db::{PgTx, StatementCache, Tx};
use crate::error::{Error, Result};
use crate::schema::{apply, POSTGRES_MIGRATIONS};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls};
use std::cell::RefCell;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Connections one store opens at most: as many transactions run at once, the others wait
/// for one to be free. Bounded so that a burst (or several masters) stays well within the
/// server's `max_connections` (100 by default); statements are short, so ten is plenty.
const MAX_CONNECTIONS: usize = 10;

/// Times a write transaction is run again after a serialization failure or a deadlock.
const MAX_RETRIES: u32 = 12;

/// Connection timeout when the URL sets none: a server that does not answer is reported
/// instead of hanging the master's start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A key for `pg_advisory_xact_lock`: masters starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x61626f5f6d696772; // "abo_migr"

/// Whether `url_or_path` names a PostgreSQL database (a `postgres://` or `postgresql://`
/// URL, any case).
pub(crate) fn is_url(url_or_path: &str) -> bool {
    after_scheme(url_or_path).is_some_and(|rest| rest.starts_with("//"))
}

/// Whether `url_or_path` starts with a PostgreSQL scheme (`postgres:`, `postgresql:`).
pub(crate) fn is_scheme(url_or_path: &str) -> bool {
    after_scheme(url_or_path).is_some()
}

/// What follows a PostgreSQL scheme (`postgres:` or `postgresql:`, any case).
fn after_scheme(url_or_path: &str) -> Option<&str> {
    ["postgresql:", "postgres:"].iter().find_map(|scheme| {
        let head = url_or_path.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &url_or_path[scheme.len()..])
    })
}

/// The URL with its password (in the user info or a `password=` parameter) replaced by
/// `***`: what messages and `Store::location` show.
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let at = rest_start + at;
            if let Some(colon) = out[rest_start..at].find(':') {
                out.replace_range(rest_start + colon + 1..at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

/// One pooled connection and the statements prepared on it.
struct Conn {
    client: Client,
    stmts: StatementCache,
}

/// The pool's state: idle connections and how many are open (idle or in use).
#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// The connections to one PostgreSQL database.
pub(crate) struct Db {
    config: postgres::Config,
    /// The URL, password masked.
    location: String,
    pool: Mutex<Pool>,
    /// Signalled when a connection is returned or closed.
    freed: Condvar,
}

impl Db {
    /// Connects to `url` and applies the pending migrations.
    pub(crate) fn open(url: &str) -> Result<Db> {
        let db = Db::new(url)?;
        migrate(&mut *db.take()?, None)?;
        Ok(db)
    }

    fn new(url: &str) -> Result<Db> {
        let location = mask_url(url);
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| Error::Invalid(format!("invalid PostgreSQL URL {location}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("abo");
        }
        Ok(Db {
            config,
            location,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
        })
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    fn connect(&self) -> Result<Conn> {
        let client = self
            .config
            .connect(NoTls)
            .map_err(|source| Error::Connect {
                url: self.location.clone(),
                source,
            })?;
        Ok(Conn {
            client,
            stmts: StatementCache::new(),
        })
    }

    /// An idle connection, a new one while fewer than [`MAX_CONNECTIONS`] are open, or
    /// the next one returned.
    fn take(&self) -> Result<Taken<'_>> {
        let taken = |conn| Taken {
            db: self,
            conn: Some(conn),
        };
        let mut pool = lock(&self.pool);
        loop {
            match pool.idle.pop() {
                // A connection the server closed (restart, idle timeout) is dropped.
                Some(c) if c.client.is_closed() => pool.open -= 1,
                Some(c) => return Ok(taken(c)),
                None if pool.open < MAX_CONNECTIONS => {
                    pool.open += 1;
                    drop(pool);
                    let conn = self.connect();
                    if conn.is_err() {
                        lock(&self.pool).open -= 1;
                        self.freed.notify_one();
                    }
                    return conn.map(taken);
                }
                None => {
                    pool = self
                        .freed
                        .wait(pool)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut pool = lock(&self.pool);
        if conn.client.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(conn);
        }
        drop(pool);
        self.freed.notify_one();
    }

    /// Runs `f` in a SERIALIZABLE transaction and commits if it returns `Ok`; runs it again
    /// (on a fresh transaction) when PostgreSQL reports a serialization failure or a
    /// deadlock, which only means another transaction touched the same rows first.
    pub(crate) fn write<T>(&self, mut f: impl FnMut(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        let mut lost_connections = 0;
        loop {
            let mut conn = self.take()?;
            let mut ran = false;
            let out = transaction(&mut conn, IsolationLevel::Serializable, false, |tx| {
                ran = true;
                f(tx)
            });
            let lost = !ran && conn.client.is_closed();
            drop(conn);
            match out {
                // A pooled connection the server closed meanwhile (it restarted) fails at
                // BEGIN, before anything was sent: run again on another one.
                Err(_) if lost && lost_connections < MAX_CONNECTIONS => lost_connections += 1,
                Err(e) if attempt < MAX_RETRIES && retryable(&e) => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                out => return out,
            }
        }
    }

    /// Runs `f` in a read-only REPEATABLE READ transaction: one snapshot for its queries.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut lost_connections = 0;
        loop {
            let mut conn = self.take()?;
            let out = transaction(
                &mut conn,
                IsolationLevel::RepeatableRead,
                true,
                |tx| match f.take() {
                    Some(f) => f(tx),
                    None => Err(Error::Task("a read ran twice".into())),
                },
            );
            let lost = f.is_some() && conn.client.is_closed();
            drop(conn);
            match out {
                // As for writes: a connection found closed at BEGIN is replaced.
                Err(_) if lost && lost_connections < MAX_CONNECTIONS => lost_connections += 1,
                out => return out,
            }
        }
    }
}

/// A connection taken from the pool, returned to it when dropped (also when a transaction
/// panics: its transaction was rolled back while unwinding, so the connection is usable).
struct Taken<'a> {
    db: &'a Db,
    conn: Option<Conn>,
}

impl std::ops::Deref for Taken<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.give_back(conn);
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Closing a client runs its runtime; a `Store` may be dropped on an async thread,
        // where that would panic. The connections are closed on a thread of their own.
        let conns = std::mem::take(&mut lock(&self.pool).idle);
        if !conns.is_empty() {
            let _ = std::thread::Builder::new()
                .name("abo-store-pg-close".into())
                .spawn(move || drop(conns));
        }
    }
}

fn transaction<T>(
    conn: &mut Conn,
    isolation: IsolationLevel,
    read_only: bool,
    f: impl FnOnce(&Tx<'_>) -> Result<T>,
) -> Result<T> {
    let Conn { client, stmts } = conn;
    let tx = client
        .build_transaction()
        .isolation_level(isolation)
        .read_only(read_only)
        .start()?;
    let tx = Tx::Pg(RefCell::new(PgTx { tx, stmts }));
    let out = f(&tx);
    let Tx::Pg(cell) = tx else {
        unreachable!("built as Tx::Pg above")
    };
    let pg = cell.into_inner();
    match out {
        Ok(v) => {
            pg.tx.commit()?;
            Ok(v)
        }
        // Dropping the transaction rolls it back.
        Err(e) => Err(e),
    }
}

fn retryable(e: &Error) -> bool {
    matches!(e, Error::Postgres(pg) if matches!(
        pg.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    ))
}

/// 2, 4, 8 ... ms (at most 128), plus up to as much again, so that two retrying writers
/// drift apart.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(7);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_millis(base + nanos % (base + 1))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn migrate(conn: &mut Conn, target: Option<u32>) -> Result<u32> {
    let target = target.unwrap_or_else(crate::schema::latest_version);
    transaction(conn, IsolationLevel::ReadCommitted, false, |tx| {
        // One migrating abo at a time; the others find the work done when they get the lock.
        tx.query_one(
            "SELECT pg_advisory_xact_lock(?1)::text",
            &[&MIGRATION_LOCK],
            |_| Ok(()),
        )?;
        apply(tx, POSTGRES_MIGRATIONS, target)
    })
}

/// Migrates the database at `url` up to `target` (all when `None`); returns the version.
pub(crate) fn migrate_url(url: &str, target: Option<u32>) -> Result<u32> {
    let db = Db::new(url)?;
    let mut conn = db.connect()?;
    migrate(&mut conn, target)
}

/// The schema version of the database at `url`, without migrating it (0 when empty).
pub(crate) fn schema_version_url(url: &str) -> Result<u32> {
    let db = Db::new(url)?;
    let mut conn = db.connect()?;
    transaction(&mut conn, IsolationLevel::RepeatableRead, true, |tx| {
        let exists: bool = tx.query_one(
            "SELECT to_regclass('schema_migrations') IS NOT NULL",
            &[],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(0);
        }
        tx.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
            |r| r.get(0),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{is_url, mask_url};

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("postgresql://abo:s3cret@db.example:5432/abo"),
            "postgresql://abo:***@db.example:5432/abo"
        );
        assert_eq!(
            mask_url("postgres://abo@/abo?host=/run/pg&password=x&sslmode=disable"),
            "postgres://abo@/abo?host=/run/pg&password=***&sslmode=disable"
        );
        assert_eq!(mask_url("postgres://h/db"), "postgres://h/db");
        assert!(is_url("PostgreSQL://h/db") && is_url("postgres://h") && !is_url("sqlite:x"));
    }
}
