//! A compact map from key hashes to values: a small open-addressing index of 8-byte
//! buckets (entry number and the key's upper half) in front of the entries themselves,
//! stored densely in one vector.
//!
//! A `HashMap<u64, V>` keeps its values in its buckets, so after the table doubles
//! about half of a large value's worth of memory per key lies empty, and a probe walks
//! buckets of hundreds of bytes. Here only the 8-byte index is over-allocated; the
//! entries grow by an eighth at a time (a large block grows in place, by remapping, so
//! this costs no copying of note), and a sweep reads them in order. Keys are already seeded hashes, so their bits index the buckets
//! directly. Removal moves the last entry into the hole (entry numbers stay dense) and
//! uses backward-shift deletion in the index (no tombstones).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries a table can hold: entry numbers are `u32`, and `u32::MAX` marks an empty
/// bucket. `max_keys` is checked against it.
pub(crate) const MAX_ENTRIES: usize = u32::MAX as usize - 1;
/// Entries the vector grows by at least.
const MIN_GROWTH: usize = 64;
/// An empty bucket.
const EMPTY: Bucket = Bucket {
    at: u32::MAX,
    tag: 0,
};
/// The index has at least this many buckets once anything is stored.
const MIN_BUCKETS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// Entry number, `u32::MAX` when empty.
    at: u32,
    /// The key's upper 32 bits: most probes of other keys stop here, without reading
    /// the entry.
    tag: u32,
}

/// Map from a 64-bit key hash to `V`.
pub(crate) struct Table<V> {
    buckets: Vec<Bucket>,
    entries: Vec<(u64, V)>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            buckets: Vec::new(),
            entries: Vec::new(),
        }
    }
}

fn tag(key: u64) -> u32 {
    (key >> 32) as u32
}

impl<V> Table<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn entry(&self, at: usize) -> &(u64, V) {
        &self.entries[at]
    }

    fn entry_mut(&mut self, at: usize) -> &mut (u64, V) {
        &mut self.entries[at]
    }

    /// The bucket holding `key`, if present.
    fn find(&self, key: u64) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        self.probe(key).ok()
    }

    /// Linear probing from `key`'s home bucket: the bucket holding `key`, or else the
    /// empty bucket where it would go. The index must have an empty bucket.
    #[inline]
    fn probe(&self, key: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let tag = tag(key);
        let mut i = key as usize & mask;
        loop {
            let bucket = self.buckets[i];
            if bucket.at == u32::MAX {
                return Err(i);
            }
            if bucket.tag == tag && self.entry(bucket.at as usize).0 == key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        let bucket = self.find(key)?;
        Some(&self.entry(self.buckets[bucket].at as usize).1)
    }

    #[cfg(test)]
    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let bucket = self.find(key)?;
        let at = self.buckets[bucket].at as usize;
        Some(&mut self.entry_mut(at).1)
    }

    /// The value of `key`, inserted from `init` when absent.
    pub fn get_or_insert_with(&mut self, key: u64, init: impl FnOnce() -> V) -> &mut V {
        // Grow at 7/8 full. The 32-bit tag in each bucket settles nearly every probe of
        // another key without reading its entry, so the longer runs of linear probing
        // cost little, and a table just past a power of two (100k principals in 2^17
        // buckets) no longer doubles its index for a sixth more keys.
        if (self.entries.len() + 1) * 8 > self.buckets.len() * 7 {
            self.grow();
        }
        let i = match self.probe(key) {
            Ok(found) => {
                let at = self.buckets[found].at as usize;
                return &mut self.entry_mut(at).1;
            }
            Err(empty) => empty,
        };
        let at = self.entries.len();
        if at == self.entries.capacity() {
            self.entries.reserve_exact((at / 8).max(MIN_GROWTH));
        }
        self.entries.push((key, init()));
        self.buckets[i] = Bucket {
            at: at as u32,
            tag: tag(key),
        };
        &mut self.entry_mut(at).1
    }

    /// Doubles the index and re-inserts every entry (read in order, not by probing).
    fn grow(&mut self) {
        let size = (self.buckets.len() * 2).max(MIN_BUCKETS);
        self.buckets = vec![EMPTY; size];
        let mask = size - 1;
        for (at, &(key, _)) in self.entries.iter().enumerate() {
            let mut i = key as usize & mask;
            while self.buckets[i].at != u32::MAX {
                i = (i + 1) & mask;
            }
            self.buckets[i] = Bucket {
                at: at as u32,
                tag: tag(key),
            };
        }
    }

    /// Empties bucket `hole`, shifting later buckets of the probe run back so every key
    /// stays reachable from its home bucket.
    fn clear_bucket(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let bucket = self.buckets[i];
            if bucket.at == u32::MAX {
                break;
            }
            let home = self.entry(bucket.at as usize).0 as usize & mask;
            // The bucket may move to the hole unless its home lies cyclically in (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.buckets[hole] = bucket;
                hole = i;
            }
        }
        self.buckets[hole] = EMPTY;
    }

    /// Removes the entry in bucket `bucket`: the last entry takes its place.
    fn remove_bucket(&mut self, bucket: usize) -> V {
        let at = self.buckets[bucket].at as usize;
        self.clear_bucket(bucket);
        let last = self.entries.len() - 1;
        if at != last {
            let moved = self.entry(last).0;
            let mask = self.mask();
            let mut i = moved as usize & mask;
            while self.buckets[i].at as usize != last {
                i = (i + 1) & mask;
            }
            self.buckets[i].at = at as u32;
        }
        self.entries.swap_remove(at).1
    }

    pub fn remove(&mut self, key: u64) -> Option<V> {
        let bucket = self.find(key)?;
        Some(self.remove_bucket(bucket))
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        let mut at = 0;
        // Most entries are kept: scan to the next one that is not.
        while let Some(gone) = self.entries[at..]
            .iter_mut()
            .position(|(key, value)| !keep(*key, value))
        {
            at += gone;
            // The last entry moves to `at` and is looked at next.
            let bucket = self
                .find(self.entries[at].0)
                .expect("a stored key is indexed");
            self.remove_bucket(bucket);
        }
        if self.entries.is_empty() {
            self.buckets = Vec::new();
        }
        // After a large drop, give the memory back (keeping room to grow an eighth).
        let len = self.entries.len();
        if len < self.entries.capacity() / 2 {
            self.entries.shrink_to(len + len / 8);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.entries.iter().map(|(key, value)| (*key, value))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, value)| value)
    }
}

impl<V: fmt::Debug> fmt::Debug for Table<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Encoded as a map of key to value, as the `HashMap` it replaces was (checkpoints of
/// either read as the other).
impl<V: Serialize> Serialize for Table<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in self.iter() {
            map.serialize_entry(&key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Table<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = Table<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of key hashes to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table<V>, A::Error> {
                let mut table = Table::default();
                while let Some((key, value)) = map.next_entry::<u64, V>()? {
                    if table.len() >= MAX_ENTRIES {
                        return Err(serde::de::Error::custom("more entries than a table holds"));
                    }
                    // A repeated key keeps its first value, as no encoder writes one.
                    let mut value = Some(value);
                    table.get_or_insert_with(key, || value.take().expect("taken once"));
                }
                Ok(table)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// xorshift64: keys and choices for the model test.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn agrees_with_a_hash_map_under_inserts_removes_and_retains() {
        let mut table = Table::default();
        let mut model = HashMap::new();
        let mut rng = 0x2545_F491_4F6C_DD1D;
        for round in 0..40_000u64 {
            // Few distinct keys with colliding low bits, so probe runs are long, wrap and shift.
            let key = ((next(&mut rng) % 3_000) << 40) | (next(&mut rng) % 4_096);
            match next(&mut rng) % 4 {
                0 | 1 => {
                    *table.get_or_insert_with(key, || 0) += round;
                    *model.entry(key).or_insert(0) += round;
                }
                2 => assert_eq!(table.remove(key), model.remove(&key)),
                _ => assert_eq!(table.get(key), model.get(&key)),
            }
            if round % 5_000 == 4_999 {
                table.retain(|key, value| (key ^ *value) % 3 != 0);
                model.retain(|key, value| (key ^ *value) % 3 != 0);
            }
            assert_eq!(table.len(), model.len());
        }
        for (key, value) in &model {
            assert_eq!(table.get(*key), Some(value));
        }
        assert_eq!(table.iter().count(), model.len());
    }

    #[test]
    fn encodes_as_the_hash_map_it_replaces() {
        let mut table = Table::default();
        let mut map = HashMap::new();
        table.get_or_insert_with(7, || "seven".to_string());
        map.insert(7u64, "seven".to_string());
        let bytes = postcard::to_allocvec(&table).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&map).unwrap());
        let back: Table<String> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.get(7).map(String::as_str), Some("seven"));
    }

    #[test]
    fn grows_by_an_eighth_and_gives_memory_back() {
        let mut table = Table::default();
        for key in 0..3_000u64 {
            table.get_or_insert_with(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), || key);
            assert!(table.entries.capacity() <= table.len() + table.len() / 8 + 64);
        }
        table.retain(|_, value| *value < 100);
        assert_eq!(table.len(), 100);
        assert!(table.entries.capacity() <= 112);
        for key in 0..100u64 {
            assert_eq!(
                table.get(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                Some(&key)
            );
        }
        table.retain(|_, _| false);
        assert_eq!((table.len(), table.buckets.len()), (0, 0));
    }
}
