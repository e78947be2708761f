//! Bounded keyed state on event time: every key has an expiry, and a cap on the number
//! of keys evicts the soonest-expiring ones. Both kinds of removal are counted. A table
//! of values made of parts (`PartsState`) reads each key's expiry from its parts.

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::state::table::Table;

/// The value of one key and when (event time) it may be forgotten.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Slot<V> {
    pub expires_at: Micros,
    pub value: V,
}

/// Live keys and removals of one state table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Keys held now.
    pub live_keys: usize,
    /// Keys dropped because their time ran out.
    pub expired: u64,
    /// Keys dropped early because the table was at its cap.
    pub evicted: u64,
}

/// A map from key hashes to values with expiry and a cap on keys.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeyedState<V> {
    slots: Table<Slot<V>>,
    // The cap comes from the config, not from the checkpoint.
    #[serde(skip)]
    cap: usize,
    expired: u64,
    evicted: u64,
}

impl<V> KeyedState<V> {
    /// An empty table holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        KeyedState {
            slots: Table::default(),
            cap: cap.max(1),
            expired: 0,
            evicted: 0,
        }
    }

    /// Applies the configured cap to a table restored from a checkpoint.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.slots.get(key).map(|slot| &slot.value)
    }

    #[cfg(test)]
    pub fn get_mut(&mut self, key: u64) -> Option<&mut Slot<V>> {
        self.slots.get_mut(key)
    }

    /// The slot of `key`, created with `init` when absent (making room first if the
    /// table is full). Its expiry is extended to at least `expires_at`.
    pub fn upsert(
        &mut self,
        key: u64,
        now: Micros,
        expires_at: Micros,
        init: impl FnOnce() -> V,
    ) -> &mut Slot<V> {
        // The length check first: below the cap (nearly always) the key is probed once.
        if self.slots.len() >= self.cap && !self.slots.contains_key(key) {
            self.make_room(now);
        }
        let slot = self.slots.get_or_insert_with(key, || Slot {
            expires_at,
            value: init(),
        });
        slot.expires_at = slot.expires_at.max(expires_at);
        slot
    }

    /// Drops the keys whose expiry lies before `now`.
    pub fn sweep(&mut self, now: Micros) {
        let keep = |slot: &mut Slot<V>, _: &mut ()| slot.expires_at >= now;
        self.expired += retain(&mut self.slots, keep, &mut ());
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live_keys: self.slots.len(),
            expired: self.expired,
            evicted: self.evicted,
        }
    }

    /// Expired keys go first; if that is not enough, the eighth of the table that
    /// expires soonest is evicted, so the O(n) pass is paid once per cap/8 inserts.
    fn make_room(&mut self, now: Micros) {
        let keep = |slot: &mut Slot<V>, _: &mut ()| slot.expires_at >= now;
        self.expired += retain(&mut self.slots, keep, &mut ());
        if self.slots.len() >= self.cap {
            let expiry = |slot: &Slot<V>| slot.expires_at;
            self.evicted += evict(&mut self.slots, self.cap, expiry, |_, _| (), &mut ());
        }
    }
}

/// Keeps the values `keep` says to keep; returns how many went.
fn retain<E, C>(
    table: &mut Table<E>,
    mut keep: impl FnMut(&mut E, &mut C) -> bool,
    counts: &mut C,
) -> u64 {
    let before = table.len();
    table.retain(|_, value| keep(value, counts));
    (before - table.len()) as u64
}

/// Evicts the eighth of a full table (`cap` keys) that expires soonest by `expiry`,
/// calling `evicted` on each; returns how many went.
fn evict<E, C>(
    table: &mut Table<E>,
    cap: usize,
    expiry: impl Fn(&E) -> Micros,
    mut evicted: impl FnMut(&E, &mut C),
    counts: &mut C,
) -> u64 {
    let quota = (cap / 8).max(1);
    let mut expiries: Vec<Micros> = table.values().map(&expiry).collect();
    let (_, &mut cutoff, _) = expiries.select_nth_unstable(quota - 1);
    // Ties at the cutoff are evicted only up to the quota.
    let mut at_cutoff = quota - expiries.iter().filter(|&&e| e < cutoff).count();
    let before = table.len();
    table.retain(|_, value| {
        let expires_at = expiry(value);
        let evict = if expires_at < cutoff {
            true
        } else if expires_at == cutoff && at_cutoff > 0 {
            at_cutoff -= 1;
            true
        } else {
            false
        };
        if evict {
            evicted(value, counts);
        }
        !evict
    });
    (before - table.len()) as u64
}

/// A value made of parts that expire on their own (see `part`): removing keys
/// expires and counts parts, and a key goes when none of its parts is left.
pub(crate) trait Parts: Sized {
    /// The per-part counts, kept next to the table.
    type Counts;
    /// The earliest expiry of a live part (when a sweep next has something to do with
    /// the value), or `Micros::MIN` when no part is live (the next sweep drops it).
    /// Read from the parts at each sweep rather than kept beside them.
    fn next_expiry(&self) -> Micros;
    /// Expires the parts that ran out before `now`; false when nothing is left.
    fn sweep(&mut self, now: Micros, counts: &mut Self::Counts) -> bool;
    /// The latest expiry of a live part (orders evictions at the cap).
    fn latest(&self) -> Micros;
    /// Counts the live parts of a value evicted at the cap.
    fn evicted(&self, counts: &mut Self::Counts);
}

/// [`KeyedState`] for values of [`Parts`]: a value's expiry is its parts', so none is
/// kept beside it (8 bytes less per key of the principal and token tables).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PartsState<V> {
    values: Table<V>,
    // The cap comes from the config, not from the checkpoint.
    #[serde(skip)]
    cap: usize,
    expired: u64,
    evicted: u64,
}

impl<V: Parts> PartsState<V> {
    /// An empty table holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        PartsState {
            values: Table::default(),
            cap: cap.max(1),
            expired: 0,
            evicted: 0,
        }
    }

    /// Applies the configured cap to a table restored from a checkpoint.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The value of `key`, created with `init` when absent (making room first if the
    /// table is full); the caller brings its parts to life.
    pub fn upsert(
        &mut self,
        key: u64,
        now: Micros,
        init: impl FnOnce() -> V,
        counts: &mut V::Counts,
    ) -> &mut V {
        // The length check first: below the cap (nearly always) the key is probed once.
        if self.values.len() >= self.cap && !self.values.contains_key(key) {
            self.sweep(now, counts);
            if self.values.len() >= self.cap {
                let (cap, latest) = (self.cap, |value: &V| value.latest());
                self.evicted += evict(&mut self.values, cap, latest, V::evicted, counts);
            }
        }
        self.values.get_or_insert_with(key, init)
    }

    /// Forgets `key` (a value with nothing left in it); not counted as a removal.
    pub fn remove(&mut self, key: u64) {
        self.values.remove(key);
    }

    /// Takes `key`'s value out (its state is handed on); not counted as a removal.
    pub fn take(&mut self, key: u64) -> Option<V> {
        self.values.remove(key)
    }

    /// Expires the parts that ran out before `now` and drops the keys left with none.
    pub fn sweep(&mut self, now: Micros, counts: &mut V::Counts) {
        // Most values have nothing due: their parts' expiries alone are read.
        let keep = |value: &mut V, counts: &mut V::Counts| {
            value.next_expiry() >= now || value.sweep(now, counts)
        };
        self.expired += retain(&mut self.values, keep, counts);
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.values.values()
    }

    /// Every value, for a pass over the whole table (restores, records due).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.values.values_mut()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_are_swept_and_counted() {
        let mut state = KeyedState::new(10);
        state.upsert(1, 0, 100, || 'a');
        state.upsert(2, 0, 300, || 'b');
        state.sweep(200);
        assert_eq!(state.get(1), None);
        assert_eq!(state.get(2), Some(&'b'));
        assert_eq!(state.stats().expired, 1);
    }

    #[test]
    fn upsert_extends_but_never_shortens_expiry() {
        let mut state = KeyedState::new(10);
        state.upsert(1, 0, 500, || 0);
        state.upsert(1, 0, 100, || 0);
        assert_eq!(state.get_mut(1).unwrap().expires_at, 500);
    }

    #[test]
    fn stays_under_its_cap_with_ten_times_more_keys() {
        let cap = 1_000;
        let mut state = KeyedState::new(cap);
        for key in 0..(10 * cap as u64) {
            let time = key as Micros;
            state.upsert(key, time, time + 1_000_000, || key);
            assert!(state.len() <= cap);
        }
        let stats = state.stats();
        assert_eq!(stats.live_keys as u64 + stats.evicted, 10 * cap as u64);
        // The newest key survives; the oldest went first.
        assert!(state.get(10 * cap as u64 - 1).is_some());
        assert!(state.get(0).is_none());
    }

    #[test]
    fn eviction_with_equal_expiries_removes_only_the_quota() {
        let mut state = KeyedState::new(16);
        for key in 0..16 {
            state.upsert(key, 0, 100, || ());
        }
        state.upsert(99, 0, 100, || ());
        assert_eq!(state.len(), 15);
        assert_eq!(state.stats().evicted, 2);
    }
}
