//! Correlation state: per correlation rule and group key, the recent matches of the
//! rules it correlates, in event time, bounded in keys and in matches per group.
//!
//! Kept compact, since a pack over many principals holds hundreds of thousands of
//! groups: one table per correlation (so a group does not name its rule), keyed by the
//! group's FNV hash as it is (no SipHash over it), whose value is the group's matches in
//! one encoded block of exactly their size (`matches.rs`; no group key either: the
//! completing event gives it). At the key cap the groups whose newest match is oldest
//! are evicted, an eighth of the cap at a time, found by one pass over the tables rather
//! than kept in a queue of creation order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use authtrail_model::Micros;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::matches::{Match, Matches, Tagging};
use crate::rule::{CorrelationRule, CorrelationType, MAX_GROUP_EVENTS};

/// Most evidence event ids one alert carries (the oldest ones in its window).
const MAX_EVIDENCE: usize = 100;

/// Group keys are FNV hashes already: the table only folds them, without SipHash.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
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

/// Short texts (the rule index's values and prefixes, the rules' own) hashed eight bytes
/// at a time: they are looked up for every event, and nothing hashed here is kept
/// beyond the process.
#[derive(Default)]
pub struct TextHasher(u64);

/// An odd constant with well-spread bits (2^64 over the golden ratio).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for TextHasher {
    fn finish(&self) -> u64 {
        // The table takes its control byte from the top bits: fold the low bits in, so
        // texts that differ in their last byte do not share them.
        (self.0 ^ (self.0 >> 32)).wrapping_mul(MIX)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            self.0 = (self.0 ^ word).wrapping_mul(MIX).rotate_left(29);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(MIX)
                .rotate_left(29);
        }
    }
}

/// A map of short texts hashed with [`TextHasher`].
pub type TextMap<K, V> = HashMap<K, V, BuildHasherDefault<TextHasher>>;

/// A map hashed with [`KeyHasher`]: FNV hashes as keys.
pub type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// The groups of one correlation.
#[derive(Debug)]
struct Table {
    tagging: Tagging,
    /// How long a match may matter after its time: the timespan plus the allowed
    /// lateness (a later event that is not late has a window reaching back no further).
    horizon: Micros,
    groups: FnvMap<u64, Matches>,
}

impl Table {
    fn for_rule(rule: &CorrelationRule, lateness: Micros) -> Table {
        let tagging = match rule.kind {
            CorrelationType::EventCount => Tagging::None,
            CorrelationType::ValueCount => Tagging::Hash,
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => Tagging::Position,
        };
        Table {
            tagging,
            horizon: rule.timespan.saturating_add(lateness),
            groups: FnvMap::default(),
        }
    }
}

/// Every group of every correlation of a pack, capped at `max_keys` groups in all.
#[derive(Debug)]
pub struct Groups {
    /// One per correlation of the pack, by position.
    tables: Vec<Table>,
    max_keys: usize,
    /// Groups evicted at the key cap.
    pub evicted: u64,
    /// Matches dropped because their group already held `MAX_GROUP_EVENTS`.
    pub trimmed: u64,
    /// Where blocks are built before they are copied out at their exact size.
    scratch: Vec<u8>,
    /// Where a window's tags are counted.
    tags: Vec<u64>,
}

impl Groups {
    /// Empty tables for `correlations` (a pack's, in its order).
    pub fn new(correlations: &[CorrelationRule], lateness: Micros, max_keys: usize) -> Self {
        Groups {
            tables: correlations
                .iter()
                .map(|rule| Table::for_rule(rule, lateness))
                .collect(),
            max_keys: max_keys.max(1),
            evicted: 0,
            trimmed: 0,
            scratch: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Groups held now.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|table| table.groups.len()).sum()
    }

    /// Adds `new` to group `key` of correlation `at` (`rule`), creating the group (and
    /// making room for it at the cap, judged by the clock `now`). If the group then
    /// completes the rule, returns the evidence ids (oldest first) and forgets the
    /// group, so the next alert needs new matches.
    pub fn add(
        &mut self,
        rule: &CorrelationRule,
        at: usize,
        key: u64,
        new: Match<'_>,
        now: Micros,
    ) -> Option<Vec<String>> {
        // The count first: below the cap (nearly always) the key is probed once.
        if self.len() >= self.max_keys && !self.tables[at].groups.contains_key(&key) {
            self.make_room(now);
        }
        let table = &mut self.tables[at];
        let tagging = table.tagging;
        let group = table.groups.entry(key).or_default();
        // One pass over the block: how many matches, the newest one's time, and how many
        // (with which tags, where the type counts them) fall in `new`'s window.
        let start = new.time.saturating_sub(rule.timespan);
        let tags = &mut self.tags;
        tags.clear();
        let distinct = matches!(
            rule.kind,
            CorrelationType::ValueCount | CorrelationType::Temporal
        );
        let (mut held, mut last, mut in_window) = (0, None, 0u64);
        for m in group.iter(tagging) {
            held += 1;
            last = Some(m.time);
            if (start..=new.time).contains(&m.time) {
                in_window += 1;
                if distinct {
                    tags.push(m.tag);
                }
            }
        }
        let full = held >= MAX_GROUP_EVENTS;
        self.trimmed += u64::from(full);
        match last {
            // Events mostly arrive in order: `new` goes after the block's bytes.
            Some(last) if !full && last <= new.time => {
                group.push(new, last, tagging, &mut self.scratch)
            }
            None => *group = Matches::encode([new], tagging, &mut self.scratch),
            // Else in time order, after the matches of the same time, the oldest dropped
            // from a full group.
            Some(_) => {
                let merged = Insert {
                    old: group.iter(tagging).skip(usize::from(full)),
                    new: Some(new),
                    held: None,
                };
                *group = Matches::encode(merged, tagging, &mut self.scratch);
            }
        }
        // Whether the window counted above may complete the rule; `complete` decides
        // and collects the evidence. A full group dropped its oldest match, which the
        // count may hold: it is left to `complete`.
        let may_complete = full
            || match rule.kind {
                CorrelationType::EventCount => rule.bounds.holds(in_window + 1),
                CorrelationType::ValueCount | CorrelationType::Temporal => {
                    tags.push(new.tag);
                    let enough = rule.bounds.min.is_none_or(|min| tags.len() as u64 >= min);
                    enough && {
                        tags.sort_unstable();
                        tags.dedup();
                        rule.bounds.holds(tags.len() as u64)
                    }
                }
                CorrelationType::TemporalOrdered => held + 1 >= rule.rules.len(),
            };
        if !may_complete {
            return None;
        }
        let evidence = complete(rule, group.iter(tagging), new.time, &mut self.tags)?;
        table.groups.remove(&key);
        Some(evidence)
    }

    /// Forgets matches that can enter no window any more at the clock `now`, and groups
    /// left empty.
    pub fn sweep(&mut self, now: Micros) {
        let scratch = &mut self.scratch;
        for table in &mut self.tables {
            let oldest = now.saturating_sub(table.horizon);
            let tagging = table.tagging;
            table.groups.retain(|_, group| {
                if group.iter(tagging).next().is_some_and(|m| m.time < oldest) {
                    let kept = group.iter(tagging).filter(|m| m.time >= oldest);
                    *group = Matches::encode(kept, tagging, scratch);
                }
                !group.is_empty()
            });
        }
    }

    /// Makes room below the cap: expired matches go first; if that is not enough, the
    /// eighth of the cap whose newest match is oldest (soonest to expire) is evicted, so
    /// the pass over every group is paid once per `max_keys / 8` new groups.
    fn make_room(&mut self, now: Micros) {
        self.sweep(now);
        if self.len() < self.max_keys {
            return;
        }
        let expiry = |table: &Table, group: &Matches| {
            let newest = group
                .iter(table.tagging)
                .last()
                .map_or(Micros::MIN, |m| m.time);
            newest.saturating_add(table.horizon)
        };
        let mut expiries: Vec<Micros> = self
            .tables
            .iter()
            .flat_map(|table| table.groups.values().map(move |group| expiry(table, group)))
            .collect();
        let quota = (self.max_keys / 8).max(1).min(expiries.len());
        if quota == 0 {
            return;
        }
        let (_, &mut cutoff, _) = expiries.select_nth_unstable(quota - 1);
        // Ties at the cutoff are evicted only up to the quota.
        let mut at_cutoff = quota - expiries.iter().filter(|&&e| e < cutoff).count();
        drop(expiries);
        let before = self.len();
        for table in &mut self.tables {
            let (tagging, horizon) = (table.tagging, table.horizon);
            table.groups.retain(|_, group| {
                let newest = group.iter(tagging).last().map_or(Micros::MIN, |m| m.time);
                let expires = newest.saturating_add(horizon);
                let evict = expires < cutoff || (expires == cutoff && at_cutoff > 0);
                if expires == cutoff && evict {
                    at_cutoff -= 1;
                }
                !evict
            });
        }
        self.evicted += (before - self.len()) as u64;
    }

    /// The groups of a checkpoint in tables for `correlations` (a pack's): `renumber`
    /// gives the position a saved group's correlation has in it; groups of correlations
    /// it no longer has are dropped.
    pub fn restore(
        saved: SavedGroups,
        correlations: &[CorrelationRule],
        lateness: Micros,
        max_keys: usize,
        renumber: impl Fn(u32) -> Option<usize>,
    ) -> Self {
        let mut groups = Groups::new(correlations, lateness, max_keys);
        groups.evicted = saved.evicted;
        groups.trimmed = saved.trimmed;
        for (key, group) in saved.groups {
            let Some(at) = renumber(group.rule) else {
                continue;
            };
            let table = &mut groups.tables[at];
            let matches = group.entries.iter().map(|entry| Match {
                time: entry.time,
                id: entry.id.as_bytes(),
                tag: entry.tag,
            });
            let block = Matches::encode(matches, table.tagging, &mut groups.scratch);
            if !block.is_empty() {
                table.groups.insert(key, block);
            }
        }
        groups
    }
}

/// A group's matches `old` (oldest first) with `new` among them in time order, after
/// those of the same time (events mostly arrive in order, so `new` mostly goes last):
/// one pass over the block.
struct Insert<'a, I> {
    old: I,
    new: Option<Match<'a>>,
    /// An old match that came after `new`, given out next.
    held: Option<Match<'a>>,
}

impl<'a, I: Iterator<Item = Match<'a>>> Iterator for Insert<'a, I> {
    type Item = Match<'a>;

    fn next(&mut self) -> Option<Match<'a>> {
        if let Some(held) = self.held.take() {
            return Some(held);
        }
        match self.old.next() {
            Some(old) if self.new.is_some_and(|new| new.time < old.time) => {
                self.held = Some(old);
                self.new.take()
            }
            Some(old) => Some(old),
            None => self.new.take(),
        }
    }
}

/// Whether `matches` (a group's, oldest first), after a match at `time`, complete
/// `rule`; if so, the evidence ids, oldest first. Counts without allocating; only a
/// completed correlation collects its evidence.
fn complete<'a>(
    rule: &CorrelationRule,
    matches: impl Iterator<Item = Match<'a>> + Clone,
    time: Micros,
    tags: &mut Vec<u64>,
) -> Option<Vec<String>> {
    let start = time.saturating_sub(rule.timespan);
    let window = matches
        .skip_while(|m| m.time < start)
        .take_while(|m| m.time <= time);
    let evidence = match rule.kind {
        CorrelationType::EventCount => {
            if !rule.bounds.holds(window.clone().count() as u64) {
                return None;
            }
            ids(window)
        }
        CorrelationType::ValueCount | CorrelationType::Temporal => {
            // One pass, into a buffer kept across calls.
            let distinct = tags;
            distinct.clear();
            distinct.extend(window.clone().map(|m| m.tag));
            // Too few matches for enough distinct tags: no need to count them.
            if rule
                .bounds
                .min
                .is_some_and(|min| (distinct.len() as u64) < min)
            {
                return None;
            }
            distinct.sort_unstable();
            distinct.dedup();
            if !rule.bounds.holds(distinct.len() as u64) {
                return None;
            }
            ids(window)
        }
        CorrelationType::TemporalOrdered => {
            // The earliest match of each rule in turn, each after the previous one's.
            let chain = || {
                let mut next = 0;
                window.clone().filter(move |m| {
                    let link = next < rule.rules.len() && m.tag == next as u64;
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
    Some(evidence)
}

fn ids<'a>(matches: impl Iterator<Item = Match<'a>>) -> Vec<String> {
    matches
        .take(MAX_EVIDENCE)
        .map(|m| String::from_utf8_lossy(m.id).into_owned())
        .collect()
}

/// FNV-1a's starting state.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, over `parts`, each followed by a 0xff byte: group keys and counted
/// values hash the same in every process, so state restored from a checkpoint finds its
/// groups again.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    fnv_from(FNV_START, parts)
}

/// [`fnv`] continued from `hash`, the state after the parts before these (so a part
/// every hash begins with, a correlation's name, is hashed once).
pub fn fnv_from(mut hash: u64, parts: &[&[u8]]) -> u64 {
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Groups as checkpoints of version 2 encode them, which both read and write: every
/// group as its key, its correlation's position and its matches (time, id as text,
/// tag), then a list of keys once used for eviction order (written empty, ignored when
/// read) and the counters.
#[derive(Deserialize)]
pub struct SavedGroups {
    groups: HashMap<u64, SavedGroup>,
    _order: Vec<u64>,
    evicted: u64,
    trimmed: u64,
}

#[derive(Deserialize)]
struct SavedGroup {
    rule: u32,
    entries: Vec<SavedMatch>,
}

#[derive(Deserialize)]
struct SavedMatch {
    time: Micros,
    id: String,
    tag: u64,
}

impl Serialize for Groups {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Groups", 4)?;
        fields.serialize_field("groups", &AllGroups(self))?;
        // A slice, not an array: postcard writes a sequence with its length.
        fields.serialize_field("order", &[0u64; 0][..])?;
        fields.serialize_field("evicted", &self.evicted)?;
        fields.serialize_field("trimmed", &self.trimmed)?;
        fields.end()
    }
}

struct AllGroups<'a>(&'a Groups);

impl Serialize for AllGroups<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (at, table) in self.0.tables.iter().enumerate() {
            for (key, group) in &table.groups {
                let rule = u32::try_from(at).expect("fewer than 2^32 correlations");
                map.serialize_entry(key, &(rule, GroupMatches(group, table.tagging)))?;
            }
        }
        map.end()
    }
}

struct GroupMatches<'a>(&'a Matches, Tagging);

impl Serialize for GroupMatches<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let GroupMatches(group, tagging) = *self;
        let mut seq = serializer.serialize_seq(Some(group.iter(tagging).count()))?;
        for m in group.iter(tagging) {
            seq.serialize_element(&(m.time, String::from_utf8_lossy(m.id), m.tag))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::rule::{Bounds, Meta};
    use authtrail_model::Severity;

    fn rule(kind: CorrelationType) -> CorrelationRule {
        CorrelationRule {
            meta: Meta {
                id: "c".into(),
                name: None,
                title: "c".into(),
                severity: Severity::Low,
                attack_technique: String::new(),
                detector: "sigma:c".into(),
                line: 1,
            },
            kind,
            rules: vec![(1, "a".into()), (2, "b".into())],
            group_by: Vec::new(),
            timespan: 60_000_000,
            bounds: Bounds {
                min: Some(3),
                max: None,
            },
            value_field: None,
            generate: false,
        }
    }

    /// Groups as the code before encoded blocks wrote them (derived serde).
    #[derive(Serialize)]
    struct OldGroups {
        groups: HashMap<u64, OldGroup>,
        order: VecDeque<u64>,
        evicted: u64,
        trimmed: u64,
    }

    #[derive(Serialize)]
    struct OldGroup {
        rule: u32,
        entries: Vec<OldEntry>,
    }

    #[derive(Serialize)]
    struct OldEntry {
        time: Micros,
        id: String,
        tag: u64,
    }

    fn matches_of(groups: &Groups, at: usize, key: u64) -> Vec<(Micros, String, u64)> {
        let table = &groups.tables[at];
        table.groups[&key]
            .iter(table.tagging)
            .map(|m| (m.time, String::from_utf8(m.id.to_vec()).unwrap(), m.tag))
            .collect()
    }

    #[test]
    fn checkpoints_of_version_2_load_and_are_written_alike() {
        let old = OldGroups {
            groups: HashMap::from([(
                42,
                OldGroup {
                    rule: 1,
                    entries: vec![
                        OldEntry {
                            time: 5,
                            id: "0c5e3a4f-9d2b-4e1a-8f00-123456789abc".into(),
                            tag: 0,
                        },
                        OldEntry {
                            time: 9,
                            id: "e2".into(),
                            tag: 1,
                        },
                    ],
                },
            )]),
            order: VecDeque::from([42, 7]),
            evicted: 3,
            trimmed: 4,
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let saved: SavedGroups = postcard::from_bytes(&bytes).unwrap();
        let pack = [
            rule(CorrelationType::EventCount),
            rule(CorrelationType::TemporalOrdered),
        ];
        let groups = Groups::restore(saved, &pack, 0, 10, |at| Some(at as usize));
        assert_eq!((groups.len(), groups.evicted, groups.trimmed), (1, 3, 4));
        let expected = vec![
            (5, "0c5e3a4f-9d2b-4e1a-8f00-123456789abc".to_owned(), 0),
            (9, "e2".to_owned(), 1),
        ];
        assert_eq!(matches_of(&groups, 1, 42), expected);
        // Written back, they read as the old form did, less the eviction order.
        let again: SavedGroups =
            postcard::from_bytes(&postcard::to_allocvec(&groups).unwrap()).unwrap();
        assert!(again._order.is_empty());
        let groups = Groups::restore(again, &pack, 0, 10, |at| Some(at as usize));
        assert_eq!(matches_of(&groups, 1, 42), expected);
    }

    #[test]
    fn at_the_cap_the_groups_matched_longest_ago_are_evicted() {
        let pack = [rule(CorrelationType::EventCount)];
        let mut groups = Groups::new(&pack, 0, 16);
        let at = |time| Match {
            time,
            id: b"e",
            tag: 0,
        };
        // Group k was last matched at 100 + k, except group 0, matched again last.
        for key in 0..16 {
            groups.add(&pack[0], 0, key, at(100 + key as Micros), 0);
        }
        groups.add(&pack[0], 0, 0, at(200), 0);
        groups.add(&pack[0], 0, 99, at(201), 0);
        // An eighth of the cap (2) went: groups 1 and 2; 0 stayed.
        assert_eq!((groups.len(), groups.evicted), (15, 2));
        let held = &groups.tables[0].groups;
        assert!(held.contains_key(&0) && held.contains_key(&99) && held.contains_key(&3));
        assert!(!held.contains_key(&1) && !held.contains_key(&2));
    }

    #[test]
    fn a_group_keeps_time_order_and_at_most_its_cap_of_matches() {
        let pack = [rule(CorrelationType::EventCount)];
        let mut rule = rule(CorrelationType::EventCount);
        rule.bounds.min = Some(MAX_GROUP_EVENTS as u64 + 1);
        let mut groups = Groups::new(&pack, 0, 16);
        let ids: Vec<String> = (0..MAX_GROUP_EVENTS + 2).map(|n| format!("e{n}")).collect();
        for (n, id) in ids.iter().enumerate() {
            // Every other match comes a little late, before the previous one.
            let time = 1_000 * n as Micros - if n % 2 == 1 { 1_500 } else { 0 };
            let new = Match {
                time,
                id: id.as_bytes(),
                tag: 0,
            };
            assert!(groups.add(&rule, 0, 7, new, 0).is_none());
        }
        let held = matches_of(&groups, 0, 7);
        assert_eq!(held.len(), MAX_GROUP_EVENTS);
        assert_eq!(groups.trimmed, 2);
        assert!(held.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    }
}
