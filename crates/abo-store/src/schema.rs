//! The migrations of both backends and how they are applied: the same versions and names,
//! each with its own SQL (`migrations/sqlite/`, `migrations/postgres/`), recorded with a
//! checksum in `schema_migrations`, applied in one transaction.

use crate::db::Tx;
use crate::error::{Error, Result};
use crate::types::Timestamp;

/// One migration: a version (its position, from 1), a name, and the SQL run to apply it.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version once applied.
    pub version: u32,
    /// A short name, stored with the version.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal $file:literal,)+) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $dir, "/", $file)),
        },)+]
    };
}

/// The SQLite migrations, in order. Append-only: a released migration is never edited (the
/// checksum stored with each applied version catches it); a change to the schema is a new
/// entry, here and in [`POSTGRES_MIGRATIONS`] under the same version. New `NOT NULL`
/// columns need a `DEFAULT`.
pub const MIGRATIONS: &[Migration] = migrations!("sqlite":
    1 "builds" "0001_builds.sql",
    2 "logs" "0002_logs.sql",
    3 "changes" "0003_changes.sql",
    4 "users" "0004_users.sql",
    5 "web_indexes" "0005_web_indexes.sql",
);

/// The PostgreSQL migrations: [`MIGRATIONS`] version for version, in PostgreSQL's types.
pub const POSTGRES_MIGRATIONS: &[Migration] = migrations!("postgres":
    1 "builds" "0001_builds.sql",
    2 "logs" "0002_logs.sql",
    3 "changes" "0003_changes.sql",
    4 "users" "0004_users.sql",
    5 "web_indexes" "0005_web_indexes.sql",
);

/// The schema version this abo migrates to.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// FNV-1a of a migration's text, stored with its version to detect an edited migration.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The table of applied versions; the same text on both backends (BIGINT is an integer in
/// SQLite).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
     version    INTEGER PRIMARY KEY,
     name       TEXT    NOT NULL,
     checksum   TEXT    NOT NULL,
     applied_at BIGINT  NOT NULL
 )";

/// Applies `list` up to `target` in `tx` (the caller commits); returns the version reached.
pub(crate) fn apply(tx: &Tx<'_>, list: &[Migration], target: u32) -> Result<u32> {
    tx.batch(CREATE_TABLE)?;
    let applied: Vec<(u32, String)> = tx.query_all(
        "SELECT version, checksum FROM schema_migrations ORDER BY version",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let latest = list.last().map_or(0, |m| m.version);
    let mut current = 0;
    for (version, sum) in &applied {
        let Some(m) = list.iter().find(|m| m.version == *version) else {
            return Err(Error::SchemaTooNew {
                found: applied.last().map_or(*version, |a| a.0),
                known: latest,
            });
        };
        if *sum != checksum(m.sql) {
            return Err(Error::MigrationChanged {
                version: m.version,
                name: m.name,
            });
        }
        current = current.max(*version);
    }
    let from = current;
    for m in list
        .iter()
        .filter(|m| m.version > from && m.version <= target)
    {
        tx.batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at)
             VALUES (?1, ?2, ?3, ?4)",
            &[&m.version, &m.name, &checksum(m.sql), &Timestamp::now()],
        )?;
        current = m.version;
    }
    Ok(current)
}
