//! Web users and master-wide settings. The store keeps argon2 hashes in PHC form
//! (`$argon2id$v=19$...`) and never a password: hashing and verifying happen in the caller
//! (the CLI's `abo user add`, the web login), which keeps the argon2 crate and its cost
//! settings out of the database layer.

use crate::error::{Error, Result};
use crate::types::Timestamp;
use crate::Store;
use serde::Serialize;

/// A user, without the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The login name.
    pub name: String,
    /// When the user was added.
    pub created_at: Timestamp,
}

/// Refuses anything that is not an argon2 PHC string, so a password given by mistake is
/// never stored in clear.
fn check_hash(hash: &str) -> Result<()> {
    let ok = ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| hash.starts_with(p))
        && hash.split('$').count() >= 5
        && !hash.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            "a password hash must be an argon2 PHC string ($argon2id$v=19$...)".into(),
        ))
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!(
            "user name {name:?} must be non-empty, without spaces"
        )));
    }
    Ok(())
}

impl Store {
    /// Adds a user with an argon2 PHC hash; [`Error::UserExists`] if the name is taken.
    pub async fn add_user(&self, name: &str, password_hash: &str, now: Timestamp) -> Result<()> {
        check_name(name)?;
        check_hash(password_hash)?;
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            let n = tx.execute(
                "INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                &[&name, &hash, &now],
            )?;
            if n == 0 {
                return Err(Error::UserExists(name.clone()));
            }
            Ok(())
        })
        .await
    }

    /// Replaces a user's hash; returns whether the user exists.
    pub async fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<bool> {
        check_hash(password_hash)?;
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            Ok(tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                &[&name, &hash],
            )? == 1)
        })
        .await
    }

    /// A user's hash, to verify a login against.
    pub async fn password_hash(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |tx| {
            tx.query_opt(
                "SELECT password_hash FROM users WHERE name = ?1",
                &[&name],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        self.read(|tx| {
            tx.query_all(
                "SELECT name, created_at FROM users ORDER BY name",
                &[],
                |r| {
                    Ok(User {
                        name: r.get(0)?,
                        created_at: r.get(1)?,
                    })
                },
            )
        })
        .await
    }

    /// Removes a user; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| Ok(tx.execute("DELETE FROM users WHERE name = ?1", &[&name])? == 1))
            .await
    }

    /// A master-wide setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |tx| {
            tx.query_opt("SELECT value FROM settings WHERE key = ?1", &[&key], |r| {
                r.get(0)
            })
        })
        .await
    }

    /// Sets a master-wide setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
        .await
    }
}
