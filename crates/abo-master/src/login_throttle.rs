//! Slows password guessing on the web login and the API's Basic authentication, and bounds
//! what verifying passwords costs.
//!
//! Failures are counted per client address and user name, and per client address alone.
//! Past [`FREE_FAILURES_PER_USER`] failures for one name (or [`FREE_FAILURES_PER_ADDRESS`]
//! for all names from one address, against spraying), each further failure makes that key
//! wait before its next attempt: 1 s, 2 s, 4 s… up to [`MAX_WAIT`]. An attempt during the
//! wait is refused at once, without looking at the password, so an attacker gets a handful
//! of guesses per hour and not thousands per second. A success clears the (address, name)
//! key; a key without failure for [`FORGET_AFTER`] is forgotten. The table is bounded
//! ([`MAX_KEYS`]): when full, the key whose last failure is oldest goes.
//!
//! The address is the TCP peer's: behind a reverse proxy every client shares the proxy's,
//! and `X-Forwarded-For` is not trusted (anyone can write it). The per-address rule then
//! applies to all clients together, which is why its allowance is large.
//!
//! Every argon2 verification allocates its memory cost (7 MiB for abo's hashes) and runs
//! for tens of milliseconds; [`LoginThrottle::verify`] runs at most [`MAX_VERIFYING`] at a
//! time, so a burst of logins cannot grow the master by hundreds of MiB.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio::sync::Semaphore;

/// Failures of one name from one address before attempts are slowed.
pub(crate) const FREE_FAILURES_PER_USER: u32 = 5;
/// Failures of all names from one address before attempts are slowed.
pub(crate) const FREE_FAILURES_PER_ADDRESS: u32 = 50;
/// The longest wait between two attempts of one key.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// A key without failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most keys remembered at once.
const MAX_KEYS: usize = 10_000;
/// Password verifications running at once.
const MAX_VERIFYING: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// No attempt before this.
    until: Instant,
}

/// Failed logins, by client address and name. See the module documentation.
pub(crate) struct LoginThrottle {
    keys: Mutex<HashMap<Key, Failures>>,
    verifying: Semaphore,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            keys: Mutex::new(HashMap::new()),
            verifying: Semaphore::new(MAX_VERIFYING),
        }
    }
}

/// An attempt refused before its password was looked at: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled(pub Duration);

impl Throttled {
    /// Whole seconds to wait, at least one (for `Retry-After` and messages).
    pub(crate) fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

impl LoginThrottle {
    /// Whether `user` may try a password from `address` now.
    pub(crate) fn check(&self, address: IpAddr, user: &str, now: Instant) -> Result<(), Throttled> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let wait = [Key::User(address, user.to_owned()), Key::Address(address)]
            .iter()
            .filter_map(|k| keys.get(k))
            .map(|f| f.until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Throttled(wait))
        }
    }

    /// Records a failed attempt.
    pub(crate) fn failed(&self, address: IpAddr, user: &str, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for (key, free) in [
            (Key::User(address, user.to_owned()), FREE_FAILURES_PER_USER),
            (Key::Address(address), FREE_FAILURES_PER_ADDRESS),
        ] {
            if !keys.contains_key(&key) && keys.len() >= MAX_KEYS {
                make_room(&mut keys, now);
            }
            let f = keys.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                until: now,
            });
            if now.duration_since(f.last) >= FORGET_AFTER {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            f.until = now + wait_after(f.count, free);
        }
    }

    /// Records a success: the name's failures from this address are forgotten (the
    /// address's are not: a valid login must not reset a spraying count).
    pub(crate) fn succeeded(&self, address: IpAddr, user: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&Key::User(address, user.to_owned()));
    }

    /// Runs `verify` (an argon2 verification) on the blocking pool once one of the
    /// [`MAX_VERIFYING`] places is free; false if it could not run.
    pub(crate) async fn verify<F>(&self, verify: F) -> bool
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let Ok(_place) = self.verifying.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(verify).await.unwrap_or(false)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

/// The client's address (the TCP peer's), for handlers that check passwords. Never fails:
/// a router served without connection information (not the master's) gets 0.0.0.0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer::of(&parts.extensions))
    }
}

impl Peer {
    /// The peer recorded in a request's extensions.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Peer {
        Peer(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        )
    }
}

/// The wait after the `count`th failure of a key allowed `free` failures.
fn wait_after(count: u32, free: u32) -> Duration {
    if count <= free {
        return Duration::ZERO;
    }
    let doublings = (count - free - 1).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_WAIT)
}

/// Forgets the keys without failure for [`FORGET_AFTER`], and if the table is still full,
/// the tenth whose last failures are oldest (a batch, so that a full table does not cost a
/// scan per failure).
fn make_room(keys: &mut HashMap<Key, Failures>, now: Instant) {
    keys.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
    if keys.len() >= MAX_KEYS {
        let mut by_age: Vec<(Instant, Key)> =
            keys.iter().map(|(k, f)| (f.last, k.clone())).collect();
        by_age.sort_unstable_by_key(|(last, _)| *last);
        for (_, key) in by_age.into_iter().take(MAX_KEYS / 10) {
            keys.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_few_mistakes_are_free_then_waits_double_up_to_the_cap() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES_PER_USER {
            assert_eq!(t.check(A, "alice", now), Ok(()));
            t.failed(A, "alice", now);
        }
        assert_eq!(t.check(A, "alice", now), Ok(()));
        t.failed(A, "alice", now);
        assert_eq!(
            t.check(A, "alice", now),
            Err(Throttled(Duration::from_secs(1)))
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(t.check(A, "alice", later), Ok(()));
        t.failed(A, "alice", later);
        assert_eq!(
            t.check(A, "alice", later),
            Err(Throttled(Duration::from_secs(2)))
        );
        assert_eq!(wait_after(100, 5), MAX_WAIT);
        // Another name and another address are not slowed.
        assert_eq!(t.check(A, "bob", later), Ok(()));
        assert_eq!(t.check(B, "alice", later), Ok(()));
    }

    #[test]
    fn a_success_clears_the_name_and_old_failures_are_forgotten() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..=FREE_FAILURES_PER_USER {
            t.failed(A, "alice", now);
        }
        t.succeeded(A, "alice");
        assert_eq!(t.check(A, "alice", now), Ok(()));
        for _ in 0..=FREE_FAILURES_PER_USER {
            t.failed(A, "carol", now);
        }
        let much_later = now + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(t.check(A, "carol", much_later), Ok(()));
        t.failed(A, "carol", much_later);
        assert_eq!(
            t.check(A, "carol", much_later),
            Ok(()),
            "the count restarted"
        );
    }

    #[test]
    fn spraying_many_names_from_one_address_is_slowed() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            t.failed(A, &format!("user{i}"), now);
        }
        assert_eq!(t.check(A, "someone-else", now), Ok(()));
        t.failed(A, "user-last", now);
        assert!(t.check(A, "someone-else", now).is_err());
        assert_eq!(t.check(B, "someone-else", now), Ok(()));
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 500) {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed(address, "x", now);
        }
        assert!(t.len() <= MAX_KEYS, "{}", t.len());
    }

    #[test]
    fn throttled_seconds_round_up() {
        assert_eq!(Throttled(Duration::from_millis(1500)).seconds(), 2);
        assert_eq!(Throttled(Duration::from_secs(3)).seconds(), 3);
    }
}
