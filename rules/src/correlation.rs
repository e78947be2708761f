//! Correlation state: per correlation rule and group key, the recent matches of the
//! rules it correlates, in event time, bounded in keys and in events per key.

use std::collections::{HashMap, VecDeque};

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::rule::{CorrelationRule, CorrelationType, MAX_GROUP_EVENTS};

/// Most evidence event ids one alert carries (the oldest ones in its window).
const MAX_EVIDENCE: usize = 100;

/// One match kept in a group: when, which event, and a tag (the correlated rule's
/// position for temporal types, a hash of the counted value for `value_count`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub time: Micros,
    pub id: Box<str>,
    pub tag: u64,
}

/// The matches of one group of one correlation, oldest first. Its group-by values are
/// not kept: every match of a group has the same, so the completing event gives them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    /// The correlation's position in the pack (checkpoints map it by name).
    pub rule: u32,
    pub entries: VecDeque<Entry>,
}

/// Every group of every correlation, capped at `max_keys` groups: past it the oldest
/// group is evicted (and counted).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Groups {
    groups: HashMap<u64, Group>,
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
            entries: VecDeque::new(),
        });
        if group.entries.len() >= MAX_GROUP_EVENTS {
            group.entries.pop_front();
            self.trimmed += 1;
        }
        // Kept in time order; events mostly arrive in order, so this scans little.
        let at = group
            .entries
            .iter()
            .rposition(|kept| kept.time <= entry.time)
            .map_or(0, |at| at + 1);
        group.entries.insert(at, entry);
        group
    }

    /// Forgets matches older than `horizon(rule)` before `now`, and groups left empty.
    pub fn sweep(&mut self, now: Micros, horizon: impl Fn(u32) -> Option<Micros>) {
        self.groups.retain(|_, group| {
            let Some(horizon) = horizon(group.rule) else {
                return false;
            };
            let oldest = now.saturating_sub(horizon);
            while group
                .entries
                .front()
                .is_some_and(|entry| entry.time < oldest)
            {
                group.entries.pop_front();
            }
            !group.entries.is_empty()
        });
        if self.order.len() > 2 * self.groups.len() + 1024 {
            self.order.retain(|key| self.groups.contains_key(key));
        }
    }
}

impl Groups {
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
/// (oldest first), and the group is emptied so the next alert needs new matches.
pub fn complete(rule: &CorrelationRule, group: &mut Group, time: Micros) -> Option<Vec<String>> {
    let start = time.saturating_sub(rule.timespan);
    let window: Vec<&Entry> = group
        .entries
        .iter()
        .filter(|e| e.time >= start && e.time <= time)
        .collect();
    let used: Vec<&Entry> = match rule.kind {
        CorrelationType::EventCount => rule.bounds.holds(window.len() as u64).then_some(window)?,
        CorrelationType::ValueCount | CorrelationType::Temporal => {
            let mut distinct: Vec<u64> = window.iter().map(|e| e.tag).collect();
            distinct.sort_unstable();
            distinct.dedup();
            rule.bounds.holds(distinct.len() as u64).then_some(window)?
        }
        CorrelationType::TemporalOrdered => {
            // The earliest match of each rule in turn, each after the previous one's.
            let mut chain = Vec::with_capacity(rule.rules.len());
            for entry in &window {
                if entry.tag == chain.len() as u64 {
                    chain.push(*entry);
                    if chain.len() == rule.rules.len() {
                        break;
                    }
                }
            }
            (chain.len() == rule.rules.len()).then_some(chain)?
        }
    };
    let evidence = used
        .iter()
        .take(MAX_EVIDENCE)
        .map(|e| e.id.to_string())
        .collect();
    group.entries.clear();
    Some(evidence)
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
