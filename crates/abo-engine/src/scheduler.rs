//! Schedulers: when to build. A pure state machine, like the [`Engine`](crate::Engine): the
//! runtime feeds it stored changes and the time, persists what it says and sleeps until
//! [`Schedulers::next_deadline`].
//!
//! Two triggers, both per plan [`Scheduler`] (one per buildout section):
//!
//! - **Changes** (`watch`): a change the scheduler's [`ChangeFilter`] accepts (0.9's rules:
//!   the change's repository, or its branch when the repository is empty (bzr), must be a
//!   watched URL *after* URL rewriting; for hg and git the branch must be the watched one,
//!   `default` being hg's default branch by name; any change of a watched bzr branch counts)
//!   (re)starts the scheduler's tree-stable timer: it fires `tree_stable_timer` seconds after
//!   the *last* accepted change, with every change gathered meanwhile. A timer of 0 seconds
//!   fires on the next [`Schedulers::due`], which the runtime calls right after
//!   [`Schedulers::on_change`]: a webhook's change becomes requests without delay.
//! - **The clock** (`nightly`): at `HH:MM` on the listed weekdays, in the master's time
//!   zone, with no change. A time that does not exist that day (skipped by a daylight
//!   saving time change) fires when the clocks have moved on (`02:30` on a spring-forward
//!   night at 02:00 fires at 03:30 new time); a time that happens twice (fall back) fires at
//!   the first one only. A master that was down at that time does not catch up: the next
//!   occurrence after start is the next build.
//!
//! What the runtime does with the [`SchedulerAction`]s, in order:
//!
//! - `SetTimer`: store the timer, replacing the scheduler's previous one and its changes
//!   (`Store::set_scheduler_timer`). The change list is always complete.
//! - `DropTimer`: delete it (`Store::delete_scheduler_timer`).
//! - `Fire` with [`Trigger::TreeStable`]: store one request per builder (mergeable, with the
//!   changes and the reason) atomically with the timer's removal
//!   (`Store::fire_scheduler_timer`), then tell the engine. A crash before that leaves the
//!   timer stored: [`Schedulers::restore`] brings it back and it fires again (at least
//!   once, never lost).
//! - `Fire` with [`Trigger::Nightly`]: store one request per builder; the scheduler's
//!   tree-stable timer, if one is pending, is *not* touched.
//!
//! At start: [`Schedulers::new`], then [`Schedulers::restore`] with the stored timers,
//! before any change is fed. On a configuration reload: [`Schedulers::reload`].

use crate::ids::Timestamp;
use abo_plan::watch::ChangeFilter;
use abo_plan::{Nightly, Plan};
pub use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a scheduler needs of a stored change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRef {
    /// The store's id.
    pub id: u64,
    /// The repository URL as the poller (or webhook) recorded it: the rewritten URL; empty
    /// allowed for bzr, whose branch is then the URL.
    pub repository: String,
    /// The branch name (hg, git); for bzr, the branch URL (pollers put the URL there too).
    pub branch: String,
}

/// Why a [`SchedulerAction::Fire`] happened, which tells the runtime how to store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// The tree-stable timer expired: remove the stored timer with the requests.
    TreeStable,
    /// A `nightly` time came: requests only, the timer (if any) stays.
    Nightly,
}

/// What the runtime must persist or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerAction {
    /// Store `scheduler`'s timer: it fires at `fires_at` with `changes` (all of them,
    /// ascending).
    SetTimer {
        scheduler: String,
        fires_at: Timestamp,
        changes: Vec<u64>,
    },
    /// Delete `scheduler`'s stored timer.
    DropTimer { scheduler: String },
    /// Request a build of each of `builders` (possibly none) for `changes` (ascending; none
    /// for a nightly build), with `reason` (`2 changes on default`, `nightly 02:30 mon-fri`).
    Fire {
        scheduler: String,
        builders: Vec<String>,
        changes: Vec<u64>,
        reason: String,
        trigger: Trigger,
    },
}

/// A scheduler's pending tree-stable timer: as stored, as restored, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTimer {
    pub scheduler: String,
    pub fires_at: Timestamp,
    /// Change ids, ascending.
    pub changes: Vec<u64>,
}

/// A `nightly` time of a scheduler and when it fires next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NightlyView {
    pub scheduler: String,
    pub nightly: Nightly,
    /// `None` only for a time zone or a clock out of jiff's range.
    pub next: Option<Timestamp>,
}

/// One plan scheduler, as the state machine uses it.
#[derive(Debug, Clone)]
struct Entry {
    builders: Vec<String>,
    timer_ms: u64,
    filter: ChangeFilter,
}

#[derive(Debug, Clone)]
struct Pending {
    fires_at: Timestamp,
    /// When the last accepted change came, if this engine saw it (not for a restored
    /// timer): a reload with another timer length counts from it.
    last_change: Option<Timestamp>,
    changes: BTreeSet<u64>,
    /// Branches the changes seen were on (hg/git branch name, bzr URL), for the reason.
    branches: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Clock {
    scheduler: String,
    nightly: Nightly,
    next: Option<Timestamp>,
}

/// Every scheduler of a plan: pending tree-stable timers and nightly clocks.
#[derive(Debug, Clone)]
pub struct Schedulers {
    tz: TimeZone,
    entries: BTreeMap<String, Entry>,
    /// Watched URL → schedulers watching it, ascending: a change is checked against the
    /// schedulers of its URL only.
    by_url: HashMap<String, Vec<String>>,
    pending: BTreeMap<String, Pending>,
    clocks: Vec<Clock>,
}

/// `after + seconds`, saturating.
fn plus_seconds(after: Timestamp, seconds: u64) -> Timestamp {
    Timestamp(after.0.saturating_add(seconds.saturating_mul(1000)))
}

/// The first occurrence of `nightly` strictly after `after`, in `tz`: `HH:MM` local time on
/// one of its weekdays (the weekday of the local date). A local time skipped by a DST change
/// is moved forward by the gap; one that happens twice is its first instant. `None` when out
/// of range (or for a [`Nightly`] with no weekday or an invalid time).
pub fn next_occurrence(tz: &TimeZone, nightly: &Nightly, after: Timestamp) -> Option<Timestamp> {
    let after_ms = i64::try_from(after.0).ok()?;
    let time = jiff::civil::Time::new(
        i8::try_from(nightly.hour).ok()?,
        i8::try_from(nightly.minute).ok()?,
        0,
        0,
    )
    .ok()?;
    let instant = jiff::Timestamp::from_millisecond(after_ms).ok()?;
    // From the day before: where the clock goes back across midnight, the local date of
    // `after` may be a day past a later occurrence.
    let mut date = tz.to_datetime(instant).date().yesterday().ok()?;
    for _ in 0..10 {
        let weekday = date.weekday().to_monday_zero_offset();
        if nightly
            .weekdays
            .iter()
            .any(|d| i8::try_from(d.days_from_monday()).ok() == Some(weekday))
        {
            if let Ok(at) = tz
                .to_ambiguous_timestamp(date.to_datetime(time))
                .compatible()
            {
                let ms = at.as_millisecond();
                if ms > after_ms {
                    return u64::try_from(ms).ok().map(Timestamp);
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// `2 changes on default`, `1 change on master, 16.0`, `3 changes`.
fn changes_reason(count: usize, branches: &BTreeSet<String>) -> String {
    let mut reason = match count {
        1 => "1 change".to_string(),
        n => format!("{n} changes"),
    };
    if !branches.is_empty() && branches.len() <= 3 {
        reason.push_str(" on ");
        reason.push_str(&branches.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    reason
}

impl Schedulers {
    /// The schedulers of `plan`, no timer pending, nightly clocks set to their first
    /// occurrence after `now` in `tz` (the master's `timezone`, or `TimeZone::system()`).
    pub fn new(plan: &Plan, tz: TimeZone, now: Timestamp) -> Schedulers {
        let mut s = Schedulers {
            tz,
            entries: BTreeMap::new(),
            by_url: HashMap::new(),
            pending: BTreeMap::new(),
            clocks: Vec::new(),
        };
        s.load(plan, now);
        s
    }

    /// Replaces the plan's part: entries, URL index and clocks (keeping the next occurrence
    /// of a clock whose scheduler and time are unchanged).
    fn load(&mut self, plan: &Plan, now: Timestamp) {
        let old_clocks = std::mem::take(&mut self.clocks);
        self.entries.clear();
        self.by_url.clear();
        for sched in &plan.schedulers {
            let filter = ChangeFilter::new(sched.watch.clone());
            for w in filter.entries() {
                let names = self.by_url.entry(w.url.clone()).or_default();
                if !names.contains(&sched.name) {
                    names.push(sched.name.clone());
                }
            }
            for nightly in &sched.nightly {
                let kept = old_clocks
                    .iter()
                    .find(|c| c.scheduler == sched.name && c.nightly == *nightly)
                    .map(|c| c.next);
                let next = kept.unwrap_or_else(|| next_occurrence(&self.tz, nightly, now));
                if !self
                    .clocks
                    .iter()
                    .any(|c| c.scheduler == sched.name && c.nightly == *nightly)
                {
                    self.clocks.push(Clock {
                        scheduler: sched.name.clone(),
                        nightly: nightly.clone(),
                        next,
                    });
                }
            }
            // A name twice in a plan cannot happen (the planner refuses it); the first wins.
            self.entries.entry(sched.name.clone()).or_insert(Entry {
                builders: sched.builders.clone(),
                timer_ms: sched.tree_stable_timer,
                filter,
            });
        }
        for names in self.by_url.values_mut() {
            names.sort();
        }
    }

    /// A stored change: every scheduler whose filter accepts it (re)starts its timer,
    /// `tree_stable_timer` seconds from `now`, with the change added to those gathered.
    /// One `SetTimer` per such scheduler, by name; none for a change nobody watches.
    pub fn on_change(&mut self, now: Timestamp, change: &ChangeRef) -> Vec<SchedulerAction> {
        let key = if change.repository.is_empty() {
            &change.branch
        } else {
            &change.repository
        };
        let Some(names) = self.by_url.get(key) else {
            return Vec::new();
        };
        let repository = Some(change.repository.as_str()).filter(|r| !r.is_empty());
        let branch = Some(change.branch.as_str()).filter(|b| !b.is_empty());
        let mut actions = Vec::new();
        for name in names {
            let Some(entry) = self.entries.get(name) else {
                continue;
            };
            if !entry.filter.accepts(repository, branch) {
                continue;
            }
            let fires_at = plus_seconds(now, entry.timer_ms);
            let pending = self.pending.entry(name.clone()).or_insert_with(|| Pending {
                fires_at,
                last_change: None,
                changes: BTreeSet::new(),
                branches: BTreeSet::new(),
            });
            pending.fires_at = fires_at;
            pending.last_change = Some(now);
            pending.changes.insert(change.id);
            if !change.branch.is_empty() {
                pending.branches.insert(change.branch.clone());
            }
            actions.push(SchedulerAction::SetTimer {
                scheduler: name.clone(),
                fires_at,
                changes: pending.changes.iter().copied().collect(),
            });
        }
        actions
    }

    /// What is due at `now`: expired timers (`Fire` with their changes; the timer is gone)
    /// and nightly times come (`Fire` without changes; the clock moves to its next
    /// occurrence after `now`), in order of due time, then scheduler name. A time missed
    /// several times over (a clock jump) fires once.
    pub fn due(&mut self, now: Timestamp) -> Vec<SchedulerAction> {
        let mut fired: Vec<(Timestamp, String, Trigger, SchedulerAction)> = Vec::new();
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.fires_at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            let Some(p) = self.pending.remove(&name) else {
                continue;
            };
            let action = match self.entries.get(&name) {
                Some(entry) => SchedulerAction::Fire {
                    scheduler: name.clone(),
                    builders: entry.builders.clone(),
                    reason: changes_reason(p.changes.len(), &p.branches),
                    changes: p.changes.into_iter().collect(),
                    trigger: Trigger::TreeStable,
                },
                // Not reachable: reload drops the timers of removed schedulers.
                None => SchedulerAction::DropTimer {
                    scheduler: name.clone(),
                },
            };
            fired.push((p.fires_at, name, Trigger::TreeStable, action));
        }
        for clock in &mut self.clocks {
            let Some(at) = clock.next.filter(|at| *at <= now) else {
                continue;
            };
            clock.next = next_occurrence(&self.tz, &clock.nightly, now);
            let builders = self
                .entries
                .get(&clock.scheduler)
                .map(|e| e.builders.clone())
                .unwrap_or_default();
            fired.push((
                at,
                clock.scheduler.clone(),
                Trigger::Nightly,
                SchedulerAction::Fire {
                    scheduler: clock.scheduler.clone(),
                    builders,
                    changes: Vec::new(),
                    reason: format!("nightly {}", clock.nightly),
                    trigger: Trigger::Nightly,
                },
            ));
        }
        fired.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        fired.into_iter().map(|(_, _, _, a)| a).collect()
    }

    /// The earliest pending timer or nightly occurrence: the runtime sleeps until then (or
    /// until a change comes). `None`: nothing to wait for.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let timers = self.pending.values().map(|p| p.fires_at);
        let clocks = self.clocks.iter().filter_map(|c| c.next);
        timers.chain(clocks).min()
    }

    /// After a master restart, the stored timers: those of schedulers still in the plan are
    /// kept with their changes (one already past fires on the next [`Schedulers::due`]);
    /// the others get a `DropTimer`. A timer is never made to wait longer than the
    /// scheduler's current `tree_stable_timer` from `now` (the configuration may have
    /// shortened it meanwhile): such a timer gets a `SetTimer` with its new time. Call it
    /// before feeding changes; a timer the engine already has is merged (changes united,
    /// the later time kept) and stored again.
    pub fn restore(
        &mut self,
        now: Timestamp,
        timers: impl IntoIterator<Item = PendingTimer>,
    ) -> Vec<SchedulerAction> {
        let mut actions = Vec::new();
        for timer in timers {
            let Some(entry) = self.entries.get(&timer.scheduler) else {
                actions.push(SchedulerAction::DropTimer {
                    scheduler: timer.scheduler,
                });
                continue;
            };
            let fires_at = timer.fires_at.min(plus_seconds(now, entry.timer_ms));
            let mut changed = fires_at != timer.fires_at;
            let pending = match self.pending.get_mut(&timer.scheduler) {
                Some(p) => {
                    changed = true;
                    p.fires_at = p.fires_at.max(fires_at);
                    p
                }
                None => self
                    .pending
                    .entry(timer.scheduler.clone())
                    .or_insert(Pending {
                        fires_at,
                        last_change: None,
                        changes: BTreeSet::new(),
                        branches: BTreeSet::new(),
                    }),
            };
            pending.changes.extend(timer.changes);
            if changed {
                actions.push(SchedulerAction::SetTimer {
                    scheduler: timer.scheduler,
                    fires_at: pending.fires_at,
                    changes: pending.changes.iter().copied().collect(),
                });
            }
        }
        actions
    }

    /// A new plan (configuration reload). Pending timers of schedulers still present are
    /// kept with their changes (accepted under the old filter, they are still built) and
    /// fire with the scheduler's *new* builders; their time follows the new
    /// `tree_stable_timer`, counted from the last change this engine saw (for a restored
    /// timer, at most the new length from `now`): a `SetTimer` when it moves. Timers of
    /// removed schedulers get a `DropTimer`. Nightly clocks whose scheduler and time are
    /// unchanged keep their next occurrence; new ones start after `now`.
    pub fn reload(&mut self, plan: &Plan, now: Timestamp) -> Vec<SchedulerAction> {
        self.load(plan, now);
        let mut actions = Vec::new();
        let names: Vec<String> = self.pending.keys().cloned().collect();
        for name in names {
            let Some(entry) = self.entries.get(&name) else {
                self.pending.remove(&name);
                actions.push(SchedulerAction::DropTimer { scheduler: name });
                continue;
            };
            let Some(p) = self.pending.get_mut(&name) else {
                continue;
            };
            let fires_at = match p.last_change {
                Some(last) => plus_seconds(last, entry.timer_ms),
                None => p.fires_at.min(plus_seconds(now, entry.timer_ms)),
            };
            if fires_at != p.fires_at {
                p.fires_at = fires_at;
                actions.push(SchedulerAction::SetTimer {
                    scheduler: name,
                    fires_at,
                    changes: p.changes.iter().copied().collect(),
                });
            }
        }
        actions
    }

    /// Another time zone (master.toml's `timezone` changed): nightly clocks not yet due
    /// move to their next occurrence after `now` in `tz`; due ones still fire.
    pub fn set_time_zone(&mut self, tz: TimeZone, now: Timestamp) {
        self.tz = tz;
        for clock in &mut self.clocks {
            if !matches!(clock.next, Some(next) if next <= now) {
                clock.next = next_occurrence(&self.tz, &clock.nightly, now);
            }
        }
    }

    /// The time zone of nightly times.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Pending tree-stable timers, by scheduler name.
    pub fn timers(&self) -> Vec<PendingTimer> {
        self.pending
            .iter()
            .map(|(name, p)| PendingTimer {
                scheduler: name.clone(),
                fires_at: p.fires_at,
                changes: p.changes.iter().copied().collect(),
            })
            .collect()
    }

    /// Nightly times with their next occurrence, in plan order.
    pub fn nightly(&self) -> Vec<NightlyView> {
        self.clocks
            .iter()
            .map(|c| NightlyView {
                scheduler: c.scheduler.clone(),
                nightly: c.nightly.clone(),
                next: c.next,
            })
            .collect()
    }
}
