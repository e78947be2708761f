//! Correlation state: per correlation rule and group key, the recent matches of the
//! rules it correlates, in event time, bounded in keys and in events per key.
//!
//! Kept compact, since a pack over many principals holds hundreds of thousands of groups:
//! a group is its rule's position and its matches in one block of exactly their number
//! (no spare capacity, no group key: the completing event gives it), and a match is its
//! time, the event id as detect's 16-byte `EventId` and an 8-byte tag (32 bytes). The
//! table is keyed by the group's FNV hash as it is, without hashing it again.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use authtrail_detect::EventId;
use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::rule::{CorrelationRule, CorrelationType, MAX_GROUP_EVENTS};

/// Most evidence event ids one alert carries (the oldest ones in its window).
const MAX_EVIDENCE: usize = 100;

/// One match kept in a group: when, which event, and a tag (the correlated rule's
/// position for temporal types, a hash of the counted value for `value_count`).
/// Serialized as before (time, id as text, tag), so checkpoints of version 2 load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub time: Micros,
    pub id: EventId,
    pub tag: u64,
}

/// The matches of one group of one correlation, oldest first. Its group-by values are
/// not kept: every match of a group has the same, so the completing event gives them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    /// The correlation's position in the pack (checkpoints map it by name).
    pub rule: u32,
    pub entries: Box<[Entry]>,
}

/// Group keys are FNV hashes already: the table only folds them, without SipHash.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are `u64`); anything else is folded in.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, key: u64) {
        // FNV's low bits (the bucket) depend on the input's low bits only: fold the
        // high half in.
        self.0 = (key ^ (key >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
}

type Table = HashMap<u64, Group, BuildHasherDefault<KeyHasher>>;

/// Every group of every correlation, capped at `max_keys` groups: past it the oldest
/// group is evicted (and counted).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Groups {
    groups: Table,
    /// Keys in the order their groups were created; may hold keys already removed.
    order: VecDeque<u64>,
    #[serde(skip)]
    max_keys: usize,
    pub evicted: u64,
    /// Matches dropped because their group already held `MAX_GROUP_EVENTS`.
    pub trimmed: u64,
}

impl Groups {
    pub fn new(max_keys: usize) -> Self {
        Groups {
            max_keys: max_keys.max(1),
            ..Groups::default()
        }
    }

    pub fn with_cap(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Adds `entry` to the group `hash` and returns it, creating (and evicting for) it.
    pub fn add(&mut self, hash: u64, rule: u32, entry: Entry) -> &mut Group {
        if !self.groups.contains_key(&hash) {
            while self.groups.len() >= self.max_keys {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.evicted += u64::from(self.groups.remove(&oldest).is_some())
                    }
                    None => break,
                }
            }
            self.order.push_back(hash);
        }
        let group = self.groups.entry(hash).or_insert_with(|| Group {
            rule,
            entries: Box::default(),
        });
        let mut kept = std::mem::take(&mut group.entries).into_vec();
        if kept.len() >= MAX_GROUP_EVENTS {
            kept.remove(0);
            self.trimmed += 1;
        }
        // Kept in time order; events mostly arrive in order, so this scans little.
        let at = kept
            .iter()
            .rposition(|old| old.time <= entry.time)
            .map_or(0, |at| at + 1);
        // One block of exactly the new number of matches.
        let mut entries = Vec::with_capacity(kept.len() + 1);
        let mut kept = kept.into_iter();
        entries.extend(kept.by_ref().take(at));
        entries.push(entry);
        entries.extend(kept);
        group.entries = entries.into_boxed_slice();
        group
    }

    /// Forgets matches older than `horizon(rule)` before `now`, and groups left empty.
    pub fn sweep(&mut self, now: Micros, horizon: impl Fn(u32) -> Option<Micros>) {
        self.groups.retain(|_, group| {
            let Some(horizon) = horizon(group.rule) else {
                return false;
            };
            let oldest = now.saturating_sub(horizon);
            let gone = group.entries.partition_point(|entry| entry.time < oldest);
            if gone > 0 {
                group.entries = std::mem::take(&mut group.entries)
                    .into_vec()
                    .split_off(gone)
                    .into_boxed_slice();
            }
            !group.entries.is_empty()
        });
        if self.order.len() > 2 * self.groups.len() + 1024 {
            self.order.retain(|key| self.groups.contains_key(key));
        }
    }

    /// The groups with their rules renumbered by `renumber` (a checkpoint restored into
    /// a pack whose rules moved); groups of rules it no longer has are dropped.
    pub fn renumbered(mut self, renumber: impl Fn(u32) -> Option<u32>) -> Self {
        self.groups.retain(|_, group| match renumber(group.rule) {
            Some(rule) => {
                group.rule = rule;
                true
            }
            None => false,
        });
        self
    }
}

/// Whether `group`, after a match at `time`, completes `rule`; if so, the evidence ids
/// (oldest first), and the group is emptied so the next alert needs new matches. Counts
/// without allocating; only a completed correlation collects its evidence.
pub fn complete(rule: &CorrelationRule, group: &mut Group, time: Micros) -> Option<Vec<String>> {
    let start = time.saturating_sub(rule.timespan);
    let entries = &group.entries;
    let window = &entries
        [entries.partition_point(|e| e.time < start)..entries.partition_point(|e| e.time <= time)];
    let evidence: Vec<String> = match rule.kind {
        CorrelationType::EventCount => {
            if !rule.bounds.holds(window.len() as u64) {
                return None;
            }
            ids(window.iter())
        }
        CorrelationType::ValueCount | CorrelationType::Temporal => {
            // Too few matches for enough distinct tags: no need to count them.
            if rule
                .bounds
                .min
                .is_some_and(|min| (window.len() as u64) < min)
            {
                return None;
            }
            let mut distinct: Vec<u64> = window.iter().map(|e| e.tag).collect();
            distinct.sort_unstable();
            distinct.dedup();
            if !rule.bounds.holds(distinct.len() as u64) {
                return None;
            }
            ids(window.iter())
        }
        CorrelationType::TemporalOrdered => {
            // The earliest match of each rule in turn, each after the previous one's.
            let chain = || {
                let mut next = 0;
                window.iter().filter(move |entry| {
                    let link = next < rule.rules.len() && entry.tag == next as u64;
                    next += usize::from(link);
                    link
                })
            };
            if chain().count() != rule.rules.len() {
                return None;
            }
            ids(chain())
        }
    };
    group.entries = Box::default();
    Some(evidence)
}

fn ids<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<String> {
    entries
        .take(MAX_EVIDENCE)
        .map(|e| e.id.to_string())
        .collect()
}

/// FNV-1a, 64 bits: group keys and counted values hash the same in every process, so
/// state restored from a checkpoint finds its groups again.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
