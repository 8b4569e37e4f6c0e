//! Worker locks (`buildout`, `port-reserve`, user-defined): one table per worker, taken per
//! step as Buildbot does.
//!
//! Semantics are Buildbot's `BaseLock.isAvailable` with an unlimited `maxCount` (the plan has
//! no counts: a worker's `max_builds` already bounds how many builds can hold a counting
//! lock): an exclusive claim needs no holder and nobody waiting ahead of it; a counting
//! claim needs no exclusive holder and only counting claims waiting ahead of it. A step
//! takes all its locks or none; when it cannot, it queues on each of them, so that claims
//! are served in the order they were made (no starvation of an exclusive claim by a
//! stream of counting ones).

use crate::ids::Lease;
use abo_plan::{LockMode, LockUse};
use std::collections::{HashMap, VecDeque};

/// The locks one step needs: each name once, with the strongest mode asked for.
pub(crate) fn wanted(uses: &[LockUse]) -> Vec<(String, LockMode)> {
    let mut out: Vec<(String, LockMode)> = Vec::with_capacity(uses.len());
    for u in uses {
        match out.iter_mut().find(|(name, _)| *name == u.name) {
            Some((_, mode)) => {
                if u.mode == LockMode::Exclusive {
                    *mode = LockMode::Exclusive;
                }
            }
            None => out.push((u.name.clone(), u.mode)),
        }
    }
    out
}

#[derive(Debug, Default)]
struct LockState {
    exclusive: Option<Lease>,
    counting: Vec<Lease>,
    /// Claims not yet granted, oldest first.
    waiters: VecDeque<(Lease, LockMode)>,
}

impl LockState {
    fn is_idle(&self) -> bool {
        self.exclusive.is_none() && self.counting.is_empty() && self.waiters.is_empty()
    }

    fn available(&self, lease: Lease, mode: LockMode) -> bool {
        let mut ahead = self
            .waiters
            .iter()
            .take_while(|(waiter, _)| *waiter != lease);
        match mode {
            LockMode::Exclusive => {
                self.exclusive.is_none() && self.counting.is_empty() && ahead.count() == 0
            }
            LockMode::Counting => {
                self.exclusive.is_none() && ahead.all(|(_, m)| *m == LockMode::Counting)
            }
        }
    }
}

/// The locks of one worker.
#[derive(Debug, Default)]
pub(crate) struct LockTable {
    locks: HashMap<String, LockState>,
}

impl LockTable {
    /// Grants every lock of `wanted` to `lease`, or none: then `lease` waits on each of them
    /// and the name of a lock it waits for is returned.
    pub(crate) fn try_acquire(
        &mut self,
        lease: Lease,
        wanted: &[(String, LockMode)],
    ) -> Result<(), String> {
        let blocking = wanted.iter().find(|(name, mode)| {
            self.locks
                .get(name)
                .is_some_and(|state| !state.available(lease, *mode))
        });
        if let Some((name, _)) = blocking {
            let name = name.clone();
            for (name, mode) in wanted {
                let state = self.locks.entry(name.clone()).or_default();
                if !state.waiters.iter().any(|(w, _)| *w == lease) {
                    state.waiters.push_back((lease, *mode));
                }
            }
            return Err(name);
        }
        for (name, mode) in wanted {
            let state = self.locks.entry(name.clone()).or_default();
            state.waiters.retain(|(w, _)| *w != lease);
            match mode {
                LockMode::Exclusive => state.exclusive = Some(lease),
                LockMode::Counting => state.counting.push(lease),
            }
        }
        Ok(())
    }

    /// Gives back what `lease` holds and withdraws its waiting claims. The claims that may
    /// now be granted are pushed to `wake`, oldest first.
    pub(crate) fn release(&mut self, lease: Lease, wake: &mut VecDeque<Lease>) {
        self.locks.retain(|_, state| {
            let held = state.exclusive == Some(lease) || state.counting.contains(&lease);
            let waited = state.waiters.iter().any(|(w, _)| *w == lease);
            if held || waited {
                if state.exclusive == Some(lease) {
                    state.exclusive = None;
                }
                state.counting.retain(|l| *l != lease);
                state.waiters.retain(|(w, _)| *w != lease);
                wake.extend(state.waiters.iter().map(|(w, _)| *w));
            }
            !state.is_idle()
        });
    }

    /// Every holder, for the invariant check: (lock, exclusive holder, counting holders).
    pub(crate) fn holders(&self) -> impl Iterator<Item = (&str, Option<Lease>, &[Lease])> {
        self.locks
            .iter()
            .map(|(name, s)| (name.as_str(), s.exclusive, s.counting.as_slice()))
    }

    /// Every lease waiting on some lock, for the invariant check.
    pub(crate) fn waiters(&self) -> impl Iterator<Item = Lease> + '_ {
        self.locks
            .values()
            .flat_map(|s| s.waiters.iter().map(|(w, _)| *w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(name: &str) -> (String, LockMode) {
        (name.to_string(), LockMode::Exclusive)
    }
    fn co(name: &str) -> (String, LockMode) {
        (name.to_string(), LockMode::Counting)
    }

    #[test]
    fn exclusive_and_counting() {
        let mut t = LockTable::default();
        let mut wake = VecDeque::new();
        assert_eq!(t.try_acquire(Lease(1), &[co("db")]), Ok(()));
        assert_eq!(t.try_acquire(Lease(2), &[co("db")]), Ok(()));
        assert_eq!(t.try_acquire(Lease(3), &[ex("db")]), Err("db".into()));
        // A counting claim behind a waiting exclusive one waits (no starvation).
        assert_eq!(t.try_acquire(Lease(4), &[co("db")]), Err("db".into()));
        t.release(Lease(1), &mut wake);
        assert_eq!(t.try_acquire(Lease(3), &[ex("db")]), Err("db".into()));
        t.release(Lease(2), &mut wake);
        assert_eq!(t.try_acquire(Lease(4), &[co("db")]), Err("db".into()));
        assert_eq!(t.try_acquire(Lease(3), &[ex("db")]), Ok(()));
        assert_eq!(t.try_acquire(Lease(4), &[co("db")]), Err("db".into()));
        wake.clear();
        t.release(Lease(3), &mut wake);
        assert_eq!(wake, [Lease(4)]);
        assert_eq!(t.try_acquire(Lease(4), &[co("db")]), Ok(()));
        t.release(Lease(4), &mut wake);
        assert!(t.locks.is_empty(), "idle locks are forgotten");
    }

    #[test]
    fn all_or_nothing() {
        let mut t = LockTable::default();
        let mut wake = VecDeque::new();
        assert_eq!(t.try_acquire(Lease(1), &[ex("b")]), Ok(()));
        assert_eq!(
            t.try_acquire(Lease(2), &[ex("a"), ex("b")]),
            Err("b".into())
        );
        // Lease 2 queued on `a` too, so a later claim of `a` waits behind it.
        assert_eq!(t.try_acquire(Lease(3), &[ex("a")]), Err("a".into()));
        t.release(Lease(1), &mut wake);
        assert_eq!(t.try_acquire(Lease(2), &[ex("a"), ex("b")]), Ok(()));
        t.release(Lease(2), &mut wake);
        assert_eq!(t.try_acquire(Lease(3), &[ex("a")]), Ok(()));
    }

    #[test]
    fn wanted_dedupes_to_the_strongest_mode() {
        let uses = [
            LockUse {
                name: "a".into(),
                mode: LockMode::Counting,
            },
            LockUse {
                name: "a".into(),
                mode: LockMode::Exclusive,
            },
            LockUse {
                name: "b".into(),
                mode: LockMode::Counting,
            },
        ];
        assert_eq!(wanted(&uses), vec![ex("a"), co("b")]);
    }
}
