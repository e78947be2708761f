//! One detector's share of an entry that several detectors keep on the same key (a
//! token): its own expiry and its own counts.
//!
//! Folding the detectors' state on one key into one entry costs one hash probe per event
//! instead of one per detector (each probe into a table of millions of keys is a cache
//! miss). Each part still expires on its own time and is counted as if it were a key of
//! its own table, so the detectors behave and report exactly as with separate tables.

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::state::TableStats;

/// `until` of a part that holds nothing.
const ABSENT: Micros = Micros::MIN;

/// A detector's value within a shared entry, live until `until` (event time).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Part<T> {
    until: Micros,
    value: T,
}

impl<T: Default> Default for Part<T> {
    fn default() -> Self {
        Part {
            until: ABSENT,
            value: T::default(),
        }
    }
}

impl<T: Default> Part<T> {
    pub fn is_live(&self) -> bool {
        self.until != ABSENT
    }

    /// When the part may be forgotten (`Micros::MIN` when absent).
    pub fn until(&self) -> Micros {
        self.until
    }

    pub fn get(&self) -> Option<&T> {
        self.is_live().then_some(&self.value)
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.is_live().then_some(&mut self.value)
    }

    /// The value, created empty when absent; its expiry is extended to at least `until`
    /// (never shortened), as `KeyedState::upsert` does for a key.
    pub fn touch(&mut self, until: Micros) -> &mut T {
        self.until = self.until.max(until);
        &mut self.value
    }

    /// At a sweep: forgets the part if it expired before `now`, counting it.
    pub fn sweep(&mut self, now: Micros, counts: &mut PartCounts) {
        if self.is_live() && self.until < now {
            *self = Part::default();
            counts.live -= 1;
            counts.expired += 1;
        }
    }

    /// Counts the part as evicted with its entry.
    pub fn evicted(&self, counts: &mut PartCounts) {
        if self.is_live() {
            counts.live -= 1;
            counts.evicted += 1;
        }
    }

    /// Forgets the part without counting it (its detector was disabled).
    pub fn clear(&mut self, counts: &mut PartCounts) {
        if self.is_live() {
            *self = Part::default();
            counts.live -= 1;
        }
    }
}

/// The latest expiry of the parts whose `until`s these are (`Micros::MIN` when none is
/// live), and the earliest of a live one (`Micros::MAX` when none is).
pub(crate) fn latest_and_next<const N: usize>(untils: [Micros; N]) -> (Micros, Micros) {
    let (mut latest, mut next) = (Micros::MIN, Micros::MAX);
    for until in untils {
        latest = latest.max(until);
        if until != ABSENT {
            next = next.min(until);
        }
    }
    (latest, next)
}

/// When a sweep next has something to do with an entry of parts whose `until`s these
/// are: the earliest expiry of a live part, or `Micros::MIN` when none is live (the
/// entry goes at the next sweep).
pub(crate) fn next_expiry<const N: usize>(untils: [Micros; N]) -> Micros {
    let (latest, next) = latest_and_next(untils);
    if latest == ABSENT {
        Micros::MIN
    } else {
        next
    }
}

/// Live parts and removals of one kind of part, reported like a table of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartCounts {
    pub live: usize,
    pub expired: u64,
    pub evicted: u64,
}

impl PartCounts {
    /// Counts a part that an event brought to life.
    pub fn created(&mut self, was_live: bool, is_live: bool) {
        if is_live && !was_live {
            self.live += 1;
        }
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live_keys: self.live,
            expired: self.expired,
            evicted: self.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_lives_until_its_own_expiry_and_is_counted() {
        let mut counts = PartCounts::default();
        let mut part = Part::<u32>::default();
        assert!(part.get().is_none());
        *part.touch(500) = 7;
        part.touch(100); // never shortened
        counts.created(false, part.is_live());
        assert_eq!(part.until(), 500);
        part.sweep(500, &mut counts);
        assert_eq!(part.get(), Some(&7));
        part.sweep(501, &mut counts);
        assert!(part.get().is_none());
        assert_eq!(counts.stats().expired, 1);
        assert_eq!(counts.stats().live_keys, 0);
    }

    #[test]
    fn latest_and_next_skip_absent_parts() {
        assert_eq!(latest_and_next([ABSENT, 5, 3]), (5, 3));
        assert_eq!(latest_and_next([ABSENT, ABSENT]), (ABSENT, Micros::MAX));
    }

    #[test]
    fn eviction_and_clearing_count_only_live_parts() {
        let mut counts = PartCounts::default();
        let mut part = Part::<u32>::default();
        part.evicted(&mut counts);
        assert_eq!(counts.evicted, 0);
        part.touch(10);
        counts.created(false, true);
        part.evicted(&mut counts);
        assert_eq!((counts.live, counts.evicted), (0, 1));
        counts.created(false, true);
        part.clear(&mut counts);
        assert_eq!((counts.live, counts.evicted, counts.expired), (0, 1, 0));
        assert!(!part.is_live());
    }
}
