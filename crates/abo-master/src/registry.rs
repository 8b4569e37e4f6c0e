//! [`WorkerRegistry`]: the configured workers, who is connected, since when, and what they
//! said about themselves.
//!
//! Connections are numbered per worker (generations). Only the current generation may
//! publish or withdraw itself, so an old connection that is still winding down can never undo
//! what its replacement registered. [`WorkerRegistry`] states the duplicate-connection rule.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Capability, WorkerAccount};
use crate::error::LostReason;
use crate::handle::WorkerConnection;

/// Why a connection attempt was refused (answered with 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthRefusal {
    /// No `Authorization: Basic` header, or not decodable.
    NoCredentials,
    /// The name is not in the workers file.
    UnknownWorker,
    /// The password does not match.
    WrongPassword,
}

/// What the registry shows about a worker: its declaration and, while connected, what
/// `get_worker_info` said, minus the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    /// The worker's name.
    pub name: String,
    /// Capabilities as declared in the workers file.
    pub capabilities: Vec<Capability>,
    /// Present while a connection is registered and has answered `get_worker_info`.
    pub connection: Option<ConnectionStatus>,
}

/// A live connection, as shown to users.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionStatus {
    /// When the worker connected (the WebSocket opened).
    pub since: SystemTime,
    /// Its address.
    pub peer: SocketAddr,
    /// The connection's generation for this worker (1 for the first since the master
    /// started).
    pub generation: u64,
    /// What the worker said about itself.
    pub info: PublicInfo,
}

/// The parts of `get_worker_info` that may be shown: never the environment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublicInfo {
    /// The worker software's version (`"4.3.0"` for buildbot-worker).
    pub version: Option<String>,
    /// The OS, from `/etc/os-release` (`PRETTY_NAME`, else `ID VERSION_ID`).
    pub os: Option<String>,
    /// The worker's base directory.
    pub basedir: Option<String>,
    /// `"posix"` or `"nt"`.
    pub system: Option<String>,
    /// Number of CPUs.
    pub numcpus: Option<u64>,
    /// `info/admin`, as the worker's owner wrote it.
    pub admin: Option<String>,
    /// `info/host`, as the worker's owner wrote it.
    pub host: Option<String>,
}

impl PublicInfo {
    /// The public part of a worker's `get_worker_info` answer.
    pub fn from_info(info: &abo_proto::WorkerInfo) -> PublicInfo {
        let os = info.os.get("pretty_name").cloned().or_else(|| {
            let id = info.os.get("id")?;
            Some(match info.os.get("version_id") {
                Some(v) => format!("{id} {v}"),
                None => id.clone(),
            })
        });
        let text = |k: &str| info.info.get(k).map(|s| s.trim_end().to_owned());
        PublicInfo {
            version: info.version.clone(),
            os,
            basedir: info.basedir.clone(),
            system: info.system.clone(),
            numcpus: info.numcpus,
            admin: text("admin"),
            host: text("host"),
        }
    }
}

/// A change of who is connected, for whoever schedules work on workers.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    /// A connection answered `get_worker_info` and is ready for commands.
    Connected {
        /// The worker.
        name: String,
        /// The connection's generation.
        generation: u64,
    },
    /// A ready connection ended; its commands are lost.
    Lost {
        /// The worker.
        name: String,
        /// The connection's generation.
        generation: u64,
        /// Why.
        reason: LostReason,
    },
}

struct Slot {
    account: WorkerAccount,
    /// SHA-256 of the password: comparing fixed-size digests in constant time does not leak
    /// the password's length, as comparing the passwords themselves would.
    digest: [u8; 32],
    last_generation: u64,
    live: Option<Live>,
    /// Removed from the workers file by a reconfiguration while connected: it keeps its
    /// connection (and its running builds) but no new one is accepted, and the slot goes
    /// when the connection ends.
    retired: bool,
}

impl Slot {
    /// A configured worker, never connected yet.
    fn new(account: &WorkerAccount) -> Slot {
        Slot {
            digest: digest(&account.password),
            account: account.clone(),
            last_generation: 0,
            live: None,
            retired: false,
        }
    }
}

struct Live {
    generation: u64,
    since: SystemTime,
    peer: SocketAddr,
    /// Cancelled to close this connection when a newer one replaces it.
    replaced: CancellationToken,
    /// Set once the connection answered `get_worker_info`.
    ready: Option<(WorkerConnection, PublicInfo)>,
}

/// A successful attach: the new connection's generation and the token that closes it when
/// it is replaced in turn.
pub(crate) struct Attached {
    pub generation: u64,
    pub replaced: CancellationToken,
    pub since: SystemTime,
}

/// The configured workers and their live connections. Shared (`Arc`) by the accept loop,
/// every connection task, the HTTP API and the build runner.
///
/// **Duplicate connections.** When a worker authenticates while a connection under its name
/// is still registered, the new connection wins: the old one is closed at once and its
/// running commands end as lost ([`LostReason::Replaced`]). Knowing the password is the
/// proof of identity, and a half-open old connection (a worker whose machine rebooted, a cut
/// network) would otherwise lock the worker out until liveness notices it. Two live
/// processes sharing a name therefore take turns every couple of seconds; each replacement
/// is logged.
pub struct WorkerRegistry {
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Names in the workers file's order, for listings (replaced by a reconfiguration).
    order: Mutex<Vec<String>>,
    events: broadcast::Sender<RegistryEvent>,
    /// Bumped on every change, so waiters need not hold a broadcast receiver.
    changed: watch::Sender<u64>,
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl WorkerRegistry {
    /// A registry of these workers, none connected.
    pub fn new(workers: &[WorkerAccount]) -> WorkerRegistry {
        let mut slots = BTreeMap::new();
        let mut order = Vec::new();
        for account in workers {
            if slots.contains_key(&account.name) {
                // The workers file reader refuses duplicates; keep the first regardless.
                continue;
            }
            order.push(account.name.clone());
            slots.insert(account.name.clone(), Slot::new(account));
        }
        WorkerRegistry {
            slots: Mutex::new(slots),
            order: Mutex::new(order),
            events: broadcast::channel(256).0,
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        // No code holding this lock can panic midway, but a poisoned lock must not take the
        // master down with it.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a reconfiguration's workers in force. Workers still configured keep their
    /// connection (a new password applies to the next one); new workers may connect at
    /// once; a removed worker that is connected keeps its connection until it ends (its
    /// running builds finish; it is given no new ones, no builder names it), and cannot
    /// connect again. Returns the names added and removed.
    pub fn update_accounts(&self, workers: &[WorkerAccount]) -> (Vec<String>, Vec<String>) {
        let mut slots = self.lock();
        let mut order = Vec::new();
        let mut added = Vec::new();
        for account in workers {
            if order.contains(&account.name) {
                continue;
            }
            order.push(account.name.clone());
            match slots.get_mut(&account.name) {
                Some(slot) => {
                    slot.account = account.clone();
                    slot.digest = digest(&account.password);
                    slot.retired = false;
                }
                None => {
                    added.push(account.name.clone());
                    slots.insert(account.name.clone(), Slot::new(account));
                }
            }
        }
        let mut removed = Vec::new();
        slots.retain(|name, slot| {
            if order.contains(name) || slot.retired {
                return true;
            }
            removed.push(name.clone());
            slot.retired = true;
            slot.live.is_some()
        });
        drop(slots);
        *self.order.lock().unwrap_or_else(|e| e.into_inner()) = order;
        self.bump();
        (added, removed)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Checks a worker's credentials in constant time (for a known name; an unknown name
    /// costs the same digest and comparison).
    pub(crate) fn authenticate(&self, name: &str, password: &str) -> Result<(), AuthRefusal> {
        let offered = digest(password);
        let slots = self.lock();
        match slots.get(name).filter(|slot| !slot.retired) {
            Some(slot) => {
                if bool::from(slot.digest.ct_eq(&offered)) {
                    Ok(())
                } else {
                    Err(AuthRefusal::WrongPassword)
                }
            }
            None => {
                let _ = [0u8; 32].ct_eq(&offered);
                Err(AuthRefusal::UnknownWorker)
            }
        }
    }

    /// Registers a new, authenticated connection, closing the one it replaces.
    pub(crate) fn attach(&self, name: &str, peer: SocketAddr) -> Option<Attached> {
        let mut slots = self.lock();
        let slot = slots.get_mut(name)?;
        slot.last_generation += 1;
        let generation = slot.last_generation;
        if let Some(old) = slot.live.take() {
            tracing::warn!(
                worker = name,
                "new connection from {peer} replaces the one from {} (generation {}); \
                 its running commands are lost",
                old.peer,
                old.generation
            );
            old.replaced.cancel();
            if old.ready.is_some() {
                let _ = self.events.send(RegistryEvent::Lost {
                    name: name.to_owned(),
                    generation: old.generation,
                    reason: LostReason::Replaced,
                });
            }
        }
        let replaced = CancellationToken::new();
        let since = SystemTime::now();
        slot.live = Some(Live {
            generation,
            since,
            peer,
            replaced: replaced.clone(),
            ready: None,
        });
        drop(slots);
        self.bump();
        Some(Attached {
            generation,
            replaced,
            since,
        })
    }

    /// Makes a connection available for commands, unless it was replaced meanwhile.
    pub(crate) fn publish(&self, conn: &WorkerConnection) -> bool {
        let mut slots = self.lock();
        let Some(live) = slots
            .get_mut(conn.name())
            .and_then(|s| s.live.as_mut())
            .filter(|l| l.generation == conn.generation())
        else {
            return false;
        };
        live.ready = Some((conn.clone(), PublicInfo::from_info(conn.info())));
        drop(slots);
        let _ = self.events.send(RegistryEvent::Connected {
            name: conn.name().to_owned(),
            generation: conn.generation(),
        });
        self.bump();
        true
    }

    /// Withdraws a connection that ended, if it is still the current one.
    pub(crate) fn detach(&self, name: &str, generation: u64, reason: &LostReason) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(name) else {
            return;
        };
        if slot.live.as_ref().map(|l| l.generation) != Some(generation) {
            return;
        }
        let was_ready = slot.live.take().is_some_and(|l| l.ready.is_some());
        if slot.retired {
            slots.remove(name);
        }
        drop(slots);
        if was_ready {
            let _ = self.events.send(RegistryEvent::Lost {
                name: name.to_owned(),
                generation,
                reason: reason.clone(),
            });
        }
        self.bump();
    }

    /// Every configured worker, in the workers file's order.
    pub fn status(&self) -> Vec<WorkerStatus> {
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let slots = self.lock();
        order
            .iter()
            .filter_map(|name| slots.get(name))
            .map(|slot| WorkerStatus {
                name: slot.account.name.clone(),
                capabilities: slot.account.capabilities.clone(),
                connection: slot.live.as_ref().and_then(|live| {
                    let (_, info) = live.ready.as_ref()?;
                    Some(ConnectionStatus {
                        since: live.since,
                        peer: live.peer,
                        generation: live.generation,
                        info: info.clone(),
                    })
                }),
            })
            .collect()
    }

    /// The ready connection of a worker, if it has one.
    pub fn connection(&self, name: &str) -> Option<WorkerConnection> {
        let slots = self.lock();
        let live = slots.get(name)?.live.as_ref()?;
        live.ready.as_ref().map(|(c, _)| c.clone())
    }

    /// Waits until the worker has a ready connection (wrap in a timeout).
    pub async fn wait_for(&self, name: &str) -> WorkerConnection {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(c) = self.connection(name) {
                return c;
            }
            // The sender lives as long as the registry, which `self` keeps alive.
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the worker has a ready connection of a generation newer than `after`.
    pub async fn wait_for_newer(&self, name: &str, after: u64) -> WorkerConnection {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(c) = self.connection(name).filter(|c| c.generation() > after) {
                return c;
            }
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Connected and lost events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }
}

impl std::fmt::Debug for WorkerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistry")
            .field(
                "workers",
                &self.order.lock().unwrap_or_else(|e| e.into_inner()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, password: &str) -> WorkerAccount {
        WorkerAccount {
            name: name.into(),
            password: password.into(),
            capabilities: vec![],
        }
    }

    #[test]
    fn credentials() {
        let r = WorkerRegistry::new(&[account("w1", "pass:1"), account("w2", "")]);
        assert_eq!(r.authenticate("w1", "pass:1"), Ok(()));
        assert_eq!(
            r.authenticate("w1", "pass:"),
            Err(AuthRefusal::WrongPassword)
        );
        assert_eq!(r.authenticate("w2", ""), Ok(()));
        assert_eq!(r.authenticate("w3", ""), Err(AuthRefusal::UnknownWorker));
    }

    #[test]
    fn a_new_connection_replaces_the_old_one_and_the_old_one_cannot_withdraw_it() {
        let r = WorkerRegistry::new(&[account("w1", "p")]);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let first = r.attach("w1", peer).unwrap();
        let second = r.attach("w1", peer).unwrap();
        assert!(first.replaced.is_cancelled());
        assert!(!second.replaced.is_cancelled());
        assert_eq!((first.generation, second.generation), (1, 2));
        // The replaced connection winds down and detaches: nothing changes.
        r.detach("w1", first.generation, &LostReason::Replaced);
        assert!(r.lock()["w1"].live.is_some());
        r.detach("w1", second.generation, &LostReason::Closed);
        assert!(r.lock()["w1"].live.is_none());
        assert!(r.attach("nobody", peer).is_none());
    }
}
