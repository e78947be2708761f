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

/// A [`Part`] whose value is kept in a heap block only while it is live: 16 bytes in
/// its entry while absent instead of the part's full size. For the parts of detectors
/// that see only a minority of principals (MFA failures, denies): every principal's
/// entry holds a slot for them, and most slots stay empty. The expiry stays inline, as
/// it is read on every event of the principal (a block would be one more cache miss).
/// It is a `Part` of an optional block, so expiry and counting are `Part`'s own code.
#[derive(Debug)]
pub(crate) struct BoxedPart<T>(Part<Option<Box<T>>>);

impl<T> Default for BoxedPart<T> {
    fn default() -> Self {
        BoxedPart(Part {
            until: ABSENT,
            value: None,
        })
    }
}

impl<T: Default> BoxedPart<T> {
    pub fn is_live(&self) -> bool {
        self.0.is_live()
    }

    /// When the part may be forgotten (`Micros::MIN` when absent).
    pub fn until(&self) -> Micros {
        self.0.until()
    }

    #[cfg(test)]
    pub fn get(&self) -> Option<&T> {
        self.0.value.as_deref()
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.value.as_deref_mut()
    }

    /// As [`Part::touch`]; allocates the block when the part was absent.
    pub fn touch(&mut self, until: Micros) -> &mut T {
        self.0.touch(until).get_or_insert_with(Box::default)
    }

    /// As [`Part::sweep`]; an expired part gives its block back.
    pub fn sweep(&mut self, now: Micros, counts: &mut PartCounts) {
        self.0.sweep(now, counts);
    }

    pub fn evicted(&self, counts: &mut PartCounts) {
        self.0.evicted(counts);
    }

    pub fn clear(&mut self, counts: &mut PartCounts) {
        self.0.clear(counts);
    }
}

/// [`Part`]'s encoding, borrowed.
#[derive(Serialize)]
struct PartRef<'a, T> {
    until: Micros,
    value: &'a T,
}

/// Encoded as the [`Part`] it stands for, so a checkpoint does not depend on which
/// parts are boxed.
impl<T: Default + Serialize> Serialize for BoxedPart<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let until = self.0.until;
        match &self.0.value {
            Some(value) => PartRef {
                until,
                value: &**value,
            }
            .serialize(serializer),
            None => PartRef {
                until,
                value: &T::default(),
            }
            .serialize(serializer),
        }
    }
}

impl<'de, T: Default + Deserialize<'de>> Deserialize<'de> for BoxedPart<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let part = Part::<T>::deserialize(deserializer)?;
        Ok(match part.is_live() {
            true => BoxedPart(Part {
                until: part.until,
                value: Some(Box::new(part.value)),
            }),
            false => BoxedPart::default(),
        })
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
    fn a_boxed_part_holds_a_block_only_while_live_and_encodes_as_a_part() {
        let mut counts = PartCounts::default();
        let mut part = BoxedPart::<u32>::default();
        let absent = postcard::to_allocvec(&part).unwrap();
        assert_eq!(
            absent,
            postcard::to_allocvec(&Part::<u32>::default()).unwrap()
        );
        assert!(part.get_mut().is_none() && part.until() == ABSENT);
        *part.touch(500) = 7;
        part.touch(100); // never shortened
        counts.created(false, part.is_live());
        assert_eq!((part.until(), part.get()), (500, Some(&7)));
        let bytes = postcard::to_allocvec(&part).unwrap();
        let mut plain = Part::<u32>::default();
        *plain.touch(500) = 7;
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let back: BoxedPart<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.get(), Some(&7));
        let back: BoxedPart<u32> = postcard::from_bytes(&absent).unwrap();
        assert!(back.0.value.is_none() && !back.is_live());
        part.sweep(500, &mut counts);
        assert!(part.is_live());
        part.sweep(501, &mut counts);
        assert!(part.0.value.is_none(), "the block is given back");
        assert_eq!((counts.live, counts.expired), (0, 1));
        part.touch(10);
        counts.created(false, true);
        part.clear(&mut counts);
        assert!(part.0.value.is_none());
        assert_eq!(counts.live, 0);
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
