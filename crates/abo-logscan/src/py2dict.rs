//! The order in which the seed printed its label sections, reproduced by simulating CPython
//! 2.7's dict.
//!
//! The seed built `failures = {}` with `setdefault(label, [])` while reading the log, then
//! printed `failures.items()`. A Python 2 dict iterates in slot order, and slots depend on the
//! string hashes, on the table size and, when two labels collide, on which one was inserted
//! first. So no single fixed order of the eight labels reproduces every report: for
//! `critical_and_load_error.log` the seed printed "Error init db", "Errors loading addons",
//! "Critical logs", while the same three labels inserted in another order come out
//! differently. We therefore replay the seed's insertions into a model of the 2.7 dict
//! (64-bit build, hash randomisation off, as 2.7 defaults to): `stringobject.c`'s `string_hash`
//! and `dictobject.c`'s open addressing (`i = 5*i + perturb + 1`, `perturb >>= 5`), minimum
//! size 8 and growth to `4 * used` when two thirds full.

use crate::label::Label;

/// CPython 2.7's `string_hash` on a 64-bit build with `-R` off (prefix and suffix are zero).
pub(crate) fn py2_str_hash(s: &[u8]) -> i64 {
    let Some(&first) = s.first() else {
        return 0;
    };
    let mut x: i64 = i64::from(first) << 7;
    for &c in s {
        x = x.wrapping_mul(1_000_003) ^ i64::from(c);
    }
    // A length beyond i64 is impossible for a label; saturating keeps this total anyway.
    x ^= i64::try_from(s.len()).unwrap_or(i64::MAX);
    if x == -1 {
        x = -2;
    }
    x
}

/// `PyDict_MINSIZE` in 2.7.
const MIN_SIZE: usize = 8;

/// Just the part of a 2.7 dict that decides iteration order: which key sits in which slot.
/// There are never deletions (the seed only inserts), so dummy slots cannot occur and `fill`
/// equals `used`.
struct Py2Dict {
    slots: Vec<Option<Label>>,
    used: usize,
}

impl Py2Dict {
    /// A dict as `_PyDict_NewPresized(minused)` makes it (`{}` is `minused = 0`).
    fn presized(minused: usize) -> Self {
        let mut dict = Py2Dict {
            slots: vec![None; MIN_SIZE],
            used: 0,
        };
        // 2.7 only presizes display literals of more than five entries.
        if minused > 5 {
            dict.resize(minused);
        }
        dict
    }

    /// The slot `lookdict_string`/`insertdict_clean` pick for `key`: its own slot, or the first
    /// free one on its probe sequence.
    fn slot_for(slots: &[Option<Label>], key: Label) -> usize {
        let mask = slots.len() - 1;
        // The C code converts the signed hash to size_t for both the index and the perturbation.
        let hash = py2_str_hash(key.as_str().as_bytes()) as u64;
        let mut i = hash;
        let mut perturb = hash;
        loop {
            // `mask` is below the table length, which is a small power of two.
            let slot = (i & mask as u64) as usize;
            match slots[slot] {
                None => return slot,
                Some(existing) if existing == key => return slot,
                Some(_) => {}
            }
            i = (i << 2)
                .wrapping_add(i)
                .wrapping_add(perturb)
                .wrapping_add(1);
            perturb >>= 5;
        }
    }

    /// `PyDict_SetItem` for a key that may already be present (`setdefault` semantics).
    fn insert(&mut self, key: Label) {
        let slot = Self::slot_for(&self.slots, key);
        if self.slots[slot].is_some() {
            return;
        }
        self.slots[slot] = Some(key);
        self.used += 1;
        if self.used * 3 >= self.slots.len() * 2 {
            let factor = if self.used > 50_000 { 2 } else { 4 };
            self.resize(factor * self.used);
        }
    }

    /// `dictresize`: the smallest power of two above `minused` (at least 8), old entries
    /// re-inserted in old slot order.
    fn resize(&mut self, minused: usize) {
        let mut size = MIN_SIZE;
        while size <= minused {
            size <<= 1;
        }
        let old = std::mem::replace(&mut self.slots, vec![None; size]);
        for key in old.into_iter().flatten() {
            let slot = Self::slot_for(&self.slots, key);
            self.slots[slot] = Some(key);
        }
    }

    fn keys(&self) -> Vec<Label> {
        self.slots.iter().flatten().copied().collect()
    }
}

/// The order of `FAILURE_REGEXPS.items()` in the seed: the 8-entry literal is presized to 16
/// slots, and its keys were inserted in source order. This is the order in which the seed
/// tried the regexes on each line, hence the order in which one line's labels were first
/// `setdefault` into `failures`. Kept as a constant (checked against the simulation in the
/// tests) because it is used on every line.
pub(crate) const SEED_ITEMS_ORDER: [Label; 8] = [
    Label::ErrorsDuringXymlTests,
    Label::ErrorsDuringUnittest2Tests,
    Label::ErrorsLoadingAddons,
    Label::AtLeastOneTestFailed,
    Label::TestsFailedToExcute,
    Label::ErrorInitDb,
    Label::CriticalLogs,
    Label::FailureInPythonBlock,
];

/// The order the seed printed its sections in, given the seed labels in the order they were
/// first inserted into `failures` (duplicates are ignored, as `setdefault` did).
pub(crate) fn seed_report_order(first_seen: impl IntoIterator<Item = Label>) -> Vec<Label> {
    let mut dict = Py2Dict::presized(0);
    for label in first_seen {
        dict.insert(label);
    }
    dict.keys()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::SEED_RULES;

    /// Values computed independently with a Python script implementing 2.7's `string_hash`.
    #[test]
    fn hashes_match_python_2_7() {
        let expected: [(Label, u64); 8] = [
            (Label::FailureInPythonBlock, 0x7332eeafb714b4df),
            (Label::ErrorsDuringXymlTests, 0x158e594694dd61a1),
            (Label::ErrorsDuringUnittest2Tests, 0x48b4edf39b89a5f2),
            (Label::ErrorsLoadingAddons, 0x8e23576a1c2e2a93),
            (Label::CriticalLogs, 0x3bd136ddceedc84d),
            (Label::ErrorInitDb, 0xa1ff5db0eedf63bb),
            (Label::TestsFailedToExcute, 0xc25e52392c2cfe7f),
            (Label::AtLeastOneTestFailed, 0x8598495de462a212),
        ];
        for (label, hash) in expected {
            assert_eq!(
                py2_str_hash(label.as_str().as_bytes()) as u64,
                hash,
                "{label}"
            );
        }
        assert_eq!(py2_str_hash(b""), 0);
    }

    #[test]
    fn items_order_is_the_presized_literal() {
        let mut dict = Py2Dict::presized(SEED_RULES.len());
        for (label, _) in SEED_RULES {
            dict.insert(label);
        }
        assert_eq!(dict.slots.len(), 16);
        assert_eq!(dict.keys(), SEED_ITEMS_ORDER);
    }

    #[test]
    fn critical_and_load_error_order() {
        // Lines 1, 2, 3 of the sample: the order the seed really printed.
        let order = seed_report_order([
            Label::CriticalLogs,
            Label::ErrorsLoadingAddons,
            Label::ErrorInitDb,
        ]);
        assert_eq!(
            order,
            [
                Label::ErrorInitDb,
                Label::ErrorsLoadingAddons,
                Label::CriticalLogs
            ]
        );
    }

    #[test]
    fn order_depends_on_insertion_when_labels_collide() {
        // Both hash to slot 7 of the 8-slot table: the first one inserted keeps it and the
        // second probes to an earlier slot.
        assert_eq!(
            seed_report_order([Label::TestsFailedToExcute, Label::FailureInPythonBlock]),
            [Label::FailureInPythonBlock, Label::TestsFailedToExcute]
        );
        assert_eq!(
            seed_report_order([Label::FailureInPythonBlock, Label::TestsFailedToExcute]),
            [Label::TestsFailedToExcute, Label::FailureInPythonBlock]
        );
    }

    #[test]
    fn all_eight_force_a_resize() {
        let order = seed_report_order(SEED_ITEMS_ORDER);
        assert_eq!(order.len(), 8);
        // From the Python model: six insertions trigger growth to 32 slots.
        assert_eq!(
            order,
            [
                Label::ErrorsDuringXymlTests,
                Label::AtLeastOneTestFailed,
                Label::FailureInPythonBlock,
                Label::CriticalLogs,
                Label::ErrorsDuringUnittest2Tests,
                Label::ErrorsLoadingAddons,
                Label::ErrorInitDb,
                Label::TestsFailedToExcute,
            ]
        );
    }
}
