//! Token audiences, interned: a token keeps a 4-byte id of its audience (the set of
//! hashes of the services it names) instead of the set itself.
//!
//! Tokens are many and their audiences few (a client asks for the same audience every
//! time), so a set stored once per distinct audience saves most of the 32 bytes each
//! token spent on three inline hashes. Sets no token refers to any more are collected
//! at the token table's sweep, by marking the ids its tokens hold. A collection runs
//! when the sets have doubled or the tokens halved since the last one, so its
//! O(tokens) pass is paid at most once per as many new sets or gone tokens as there
//! were, and the sets held stay within twice those the tokens use (or 64).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::state::table::Table;

/// The id of an audience; [`NONE`] when none was recorded.
pub(crate) type AudienceId = u32;

/// No audience recorded (or an empty one, which reads the same).
pub(crate) const NONE: AudienceId = 0;

/// Sets held before the first collection runs.
const MIN_COLLECT: usize = 64;

/// Every distinct audience the tokens refer to.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    /// Set of id `i` at `i - 1`; an empty set is a free id.
    sets: Vec<Box<[u64]>>,
    /// Fingerprint of a set -> its id. Two sets with the same fingerprint (64-bit, so
    /// practically never) take the next fingerprint up; a chain broken by a collection
    /// can at worst store a set twice under two ids, which reads the same.
    index: Table<AudienceId>,
    /// Free ids, reused first.
    free: Vec<AudienceId>,
    /// Sets in use at which the next collection runs.
    collect_at: usize,
    /// Tokens with facts at the last collection: one runs when half of them are gone.
    tokens_at: usize,
}

fn fingerprint(set: &[u64]) -> u64 {
    set.iter().fold(set.len() as u64, |h, &x| {
        (h ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
    })
}

impl Audiences {
    /// The id of the audience whose member hashes `members` yields (in order).
    pub fn intern(&mut self, members: impl Iterator<Item = u64>) -> AudienceId {
        let set: SmallVec<[u64; 8]> = members.collect();
        if set.is_empty() {
            return NONE;
        }
        let mut key = fingerprint(&set);
        loop {
            match self.index.get(key) {
                Some(&id) if *self.set(id) == *set => return id,
                Some(_) => key = key.wrapping_add(1),
                None => break,
            }
        }
        let stored: Box<[u64]> = set.as_slice().into();
        let id = match self.free.pop() {
            Some(id) => {
                self.sets[id as usize - 1] = stored;
                id
            }
            None => {
                self.sets.push(stored);
                self.sets.len() as AudienceId
            }
        };
        self.index.get_or_insert_with(key, || id);
        id
    }

    /// The member hashes of `id` (empty for [`NONE`] or an id not held).
    pub fn set(&self, id: AudienceId) -> &[u64] {
        match (id as usize).checked_sub(1) {
            Some(at) => self.sets.get(at).map_or(&[], |set| set),
            None => &[],
        }
    }

    /// Whether `id` is [`NONE`] or a set held (a checkpoint is checked with it).
    pub fn holds(&self, id: AudienceId) -> bool {
        id == NONE || !self.set(id).is_empty()
    }

    pub fn in_use(&self) -> usize {
        self.sets.len() - self.free.len()
    }

    /// Whether enough sets were added, or tokens gone, since the last collection to
    /// run one (`tokens`: tokens with facts now).
    pub fn due(&self, tokens: usize) -> bool {
        let in_use = self.in_use();
        in_use > 0 && (in_use >= self.collect_at.max(MIN_COLLECT) || 2 * tokens <= self.tokens_at)
    }

    /// Frees every set whose id `live` does not yield (the ids of the `tokens` tokens
    /// with facts).
    pub fn collect(&mut self, live: impl Iterator<Item = AudienceId>, tokens: usize) {
        let mut marked = vec![false; self.sets.len()];
        for id in live {
            if let Some(mark) = (id as usize)
                .checked_sub(1)
                .and_then(|at| marked.get_mut(at))
            {
                *mark = true;
            }
        }
        for (at, marked) in marked.into_iter().enumerate() {
            let id = at as AudienceId + 1;
            if marked || self.sets[at].is_empty() {
                continue;
            }
            let mut key = fingerprint(&self.sets[at]);
            while let Some(&other) = self.index.get(key) {
                if other == id {
                    self.index.remove(key);
                    break;
                }
                key = key.wrapping_add(1);
            }
            self.sets[at] = Box::default();
            self.free.push(id);
        }
        self.collect_at = 2 * self.in_use();
        self.tokens_at = tokens;
    }
}

/// Encoded as the list of sets by id (an empty one for a free id); the index and the
/// free list are rebuilt on decoding.
impl Serialize for Audiences {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.sets.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sets = Vec::<Box<[u64]>>::deserialize(deserializer)?;
        if sets.len() >= AudienceId::MAX as usize {
            return Err(serde::de::Error::custom("more audiences than ids"));
        }
        let mut audiences = Audiences::default();
        for (at, set) in sets.iter().enumerate() {
            let id = at as AudienceId + 1;
            if set.is_empty() {
                audiences.free.push(id);
                continue;
            }
            let mut key = fingerprint(set);
            while audiences.index.contains_key(key) {
                key = key.wrapping_add(1);
            }
            audiences.index.get_or_insert_with(key, || id);
        }
        audiences.sets = sets;
        // The first sweep after a restore collects (`collect_at` 0).
        Ok(audiences)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_audiences_share_one_id_and_empty_ones_are_none() {
        let mut audiences = Audiences::default();
        let a = audiences.intern([1, 2, 3].into_iter());
        let b = audiences.intern([1, 2, 3].into_iter());
        let c = audiences.intern([3, 2].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(audiences.set(a), [1, 2, 3]);
        assert_eq!(audiences.intern(std::iter::empty()), NONE);
        assert!(audiences.set(NONE).is_empty() && audiences.set(99).is_empty());
        assert!(audiences.holds(NONE) && audiences.holds(c) && !audiences.holds(99));
    }

    #[test]
    fn collection_frees_unreferenced_sets_and_reuses_their_ids() {
        let mut audiences = Audiences::default();
        let ids: Vec<_> = (1..=100u64)
            .map(|i| audiences.intern([i, i + 1].into_iter()))
            .collect();
        assert!(audiences.due(100));
        // Only the even ids are still held by a token.
        audiences.collect(ids.iter().copied().filter(|id| id % 2 == 0), 50);
        assert_eq!(audiences.in_use(), 50);
        assert!(!audiences.due(50) && !audiences.due(26));
        // Half the tokens gone: collected again.
        assert!(audiences.due(25));
        assert!(audiences.set(ids[0]).is_empty());
        assert_eq!(audiences.set(ids[1]), [2, 3]);
        // A live set is still found by its contents; a freed id is reused.
        assert_eq!(audiences.intern([2, 3].into_iter()), ids[1]);
        let again = audiences.intern([7, 7, 7].into_iter());
        assert!(again % 2 == 1 && again <= 100);
    }

    #[test]
    fn colliding_fingerprints_keep_sets_apart() {
        let mut audiences = Audiences::default();
        let a = audiences.intern([5].into_iter());
        // Occupy `b`'s fingerprint with `a`'s id, as a collision would.
        let key = fingerprint(&[6]);
        audiences.index.get_or_insert_with(key, || a);
        let b = audiences.intern([6].into_iter());
        assert_ne!(a, b);
        assert_eq!(audiences.intern([6].into_iter()), b);
        assert_eq!(audiences.set(b), [6]);
    }

    #[test]
    fn round_trips_with_free_ids() {
        let mut audiences = Audiences::default();
        let a = audiences.intern([1].into_iter());
        let b = audiences.intern([2, 3].into_iter());
        audiences.collect([b].into_iter(), 1);
        let bytes = postcard::to_allocvec(&audiences).unwrap();
        let mut back: Audiences = postcard::from_bytes(&bytes).unwrap();
        assert!(!back.holds(a));
        assert_eq!(back.intern([2, 3].into_iter()), b);
        assert_eq!(back.intern([9].into_iter()), a);
    }
}
