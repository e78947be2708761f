//! `RuleSet`: a pack's rules with their state, run on each event like the built-in
//! detectors: alerts with ids derived from the evidence, repeats suppressed per rule
//! and key, correlation state on event time with the same allowed lateness.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use authtrail_model::{Alert, Event, Micros, Severity};
use serde::{Deserialize, Serialize};

use crate::correlation::{self, FnvMap, Groups, SavedGroups};
use crate::error::Error;
use crate::matcher::Memo;
use crate::matches::Match;
use crate::pack::Pack;
use crate::rule::{CorrelationType, Meta};

pub use authtrail_detect::ClockReading;

/// 2: groups name their correlation by position, with the checkpoint's list of
/// correlation names to map positions to a reloaded pack (1: by name in each group).
const CHECKPOINT_VERSION: u32 = 2;
/// Event time between two sweeps of expired correlation state.
const SWEEP_EVERY: Micros = 60 * 1_000_000;
/// How long a suppressed count waits for the next alert of its key.
const COUNT_RETENTION: Micros = 24 * 3_600 * 1_000_000;

/// How rules run: the detectors' engine-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Events this far behind the newest event time seen are late: they still match
    /// detection rules but no longer enter correlation windows.
    pub allowed_lateness: Duration,
    /// Most correlation groups, and most suppression keys, held.
    pub max_keys: usize,
    /// How long repeats of a rule's alert for one key are suppressed.
    pub suppression: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_lateness: Duration::from_secs(30),
            max_keys: 1_000_000,
            suppression: Duration::from_secs(600),
        }
    }
}

fn micros(duration: Duration) -> Micros {
    Micros::try_from(duration.as_micros()).unwrap_or(Micros::MAX)
}

/// Counters and state sizes, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesStats {
    pub events: u64,
    pub late_events: u64,
    pub alerts: u64,
    pub suppressed: u64,
    /// Correlation groups held now.
    pub groups: u64,
    /// Correlation groups evicted at the key cap.
    pub evicted: u64,
    /// Matches dropped from a full correlation group.
    pub trimmed: u64,
    /// Alerts raised per rule (its detector name).
    pub alerts_by_rule: Vec<(String, u64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Raised {
    until: Micros,
    keep: Micros,
    severity: Option<Severity>,
    suppressed: u64,
}

#[derive(Serialize)]
struct CheckpointRef<'a> {
    version: u32,
    watermark: Micros,
    next_sweep: Micros,
    /// The pack's correlations by position, as the groups number them.
    correlations: Vec<&'a str>,
    groups: &'a Groups,
    raised: Vec<(u64, &'a Raised)>,
    stats: RulesStats,
}

#[derive(Deserialize)]
struct Checkpoint {
    _version: u32,
    watermark: Micros,
    next_sweep: Micros,
    correlations: Vec<String>,
    groups: SavedGroups,
    raised: Vec<(u64, Raised)>,
    stats: RulesStats,
}

/// A pack's rules and their state.
pub struct RuleSet {
    pack: Arc<Pack>,
    state: State,
}

/// What a rule set remembers, apart from its rules (so both can be borrowed at once).
struct State {
    lateness: Micros,
    suppression: Micros,
    max_keys: usize,
    /// Newest event time seen.
    watermark: Micros,
    next_sweep: Micros,
    groups: Groups,
    /// Suppression state by the FNV hash of rule and key (not hashed again).
    raised: FnvMap<u64, Raised>,
    raised_order: VecDeque<u64>,
    stats: RulesStats,
    alerts_by_rule: HashMap<String, u64>,
    /// Scratch list of the rules an event may match, reused across events.
    candidates: Vec<u32>,
    /// The shared field tests' results on the event at hand.
    memo: Memo,
    /// Scratch buffer for group keys, reused across matches.
    key: String,
    /// Per correlation, the FNV state after its detector name, which every group hash
    /// of it begins with.
    correlation_seeds: Vec<u64>,
    /// The correlations completed by the match being handled, as (correlation, position
    /// of the matching rule, alert key, evidence), for those sharing their groups.
    completed: Vec<(usize, usize, String, Vec<String>)>,
}

impl RuleSet {
    /// The rules of `pack` with empty state.
    pub fn new(pack: Arc<Pack>, settings: Settings) -> Self {
        let lateness = micros(settings.allowed_lateness);
        let state = State {
            groups: Groups::new(&pack.correlations, lateness, settings.max_keys),
            lateness,
            suppression: micros(settings.suppression),
            max_keys: settings.max_keys.max(1),
            watermark: Micros::MIN,
            next_sweep: Micros::MIN,
            raised: FnvMap::default(),
            raised_order: VecDeque::new(),
            stats: RulesStats::default(),
            alerts_by_rule: HashMap::new(),
            candidates: Vec::new(),
            memo: Memo::default(),
            key: String::new(),
            correlation_seeds: pack
                .correlations
                .iter()
                .map(|rule| correlation::fnv(&[rule.meta.detector.as_bytes()]))
                .collect(),
            completed: Vec::new(),
        };
        RuleSet { pack, state }
    }

    /// The rules this set runs.
    pub fn pack(&self) -> &Arc<Pack> {
        &self.pack
    }

    /// Runs every rule on `event` of a single stream (a file, a backtest, tests):
    /// lateness is judged against the newest event time seen. Appends the alerts it
    /// completes to `alerts`.
    pub fn observe(&mut self, event: &Event<'_>, alerts: &mut Vec<Alert>) {
        let state = &self.state;
        let late = event.time < state.watermark.saturating_sub(state.lateness);
        let now = state.watermark.max(event.time);
        self.observe_at(event, ClockReading { late, now }, alerts);
    }

    /// Runs every rule on `event` as the built-in detectors judged it (`reading`: late
    /// for its own source or not, and the clock of the slowest active source), so rules
    /// follow the same per-partition watermarks. Late events still match detection
    /// rules but do not enter correlation windows; windows are swept by the clock.
    pub fn observe_at(
        &mut self,
        event: &Event<'_>,
        reading: ClockReading,
        alerts: &mut Vec<Alert>,
    ) {
        let pack = &*self.pack;
        let state = &mut self.state;
        state.stats.events += 1;
        let late = reading.late;
        state.stats.late_events += u64::from(late);
        state.watermark = state.watermark.max(event.time);
        let mut candidates = std::mem::take(&mut state.candidates);
        candidates.clear();
        pack.candidates(event, &mut candidates);
        state.memo.next_event(pack.shared_tests);
        for &at in &candidates {
            let at = at as usize;
            let rule = &pack.detections[at];
            if !rule.matches(event, &mut state.memo) {
                continue;
            }
            if pack.generates[at] {
                state.raise(
                    &rule.meta,
                    event,
                    event.principal.to_string(),
                    vec![event.id.to_string()],
                    alerts,
                );
            }
            if late {
                continue;
            }
            for &(correlation_at, position) in &pack.feeds[at] {
                let shared = pack.shares[correlation_at];
                if shared == correlation_at {
                    state.correlate(pack, correlation_at, position, event, reading.now, alerts);
                    continue;
                }
                // Its definition's first correlation came earlier in this list and kept
                // the group: raise what that one raised, in this correlation's name.
                let completed = state
                    .completed
                    .iter()
                    .position(|done| (done.0, done.1) == (shared, position));
                if let Some(done) = completed {
                    let (_, _, key, evidence) = &state.completed[done];
                    let (key, evidence) = (key.clone(), evidence.clone());
                    let meta = &pack.correlations[correlation_at].meta;
                    state.raise(meta, event, key, evidence, alerts);
                }
            }
            state.completed.clear();
        }
        state.candidates = candidates;
        if reading.now >= state.next_sweep {
            state.sweep(reading.now);
        }
    }

    /// Counters and state sizes.
    pub fn stats(&self) -> RulesStats {
        let state = &self.state;
        let mut by_rule: Vec<(String, u64)> = state
            .alerts_by_rule
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        by_rule.sort();
        RulesStats {
            groups: state.groups.len() as u64,
            evicted: state.groups.evicted,
            trimmed: state.groups.trimmed,
            alerts_by_rule: by_rule,
            ..state.stats.clone()
        }
    }

    /// All state as bytes; [`restore`](Self::restore) takes them back.
    pub fn checkpoint(&self) -> Vec<u8> {
        let state = &self.state;
        let raised: Vec<(u64, &Raised)> = state
            .raised_order
            .iter()
            .filter_map(|key| state.raised.get(key).map(|raised| (*key, raised)))
            .collect();
        let checkpoint = CheckpointRef {
            version: CHECKPOINT_VERSION,
            watermark: state.watermark,
            next_sweep: state.next_sweep,
            correlations: self
                .pack
                .correlations
                .iter()
                .map(|rule| rule.meta.detector.as_str())
                .collect(),
            groups: &state.groups,
            raised,
            stats: self.stats(),
        };
        postcard::to_allocvec(&checkpoint).expect("rule state always encodes")
    }

    /// The rules of `pack` with the state of `checkpoint`; groups of correlations the
    /// pack no longer has are dropped at the next sweep.
    pub fn restore(pack: Arc<Pack>, settings: Settings, checkpoint: &[u8]) -> Result<Self, Error> {
        let (version, _) = postcard::take_from_bytes::<u32>(checkpoint)?;
        if version != CHECKPOINT_VERSION {
            return Err(Error::CheckpointVersion {
                found: version,
                expected: CHECKPOINT_VERSION,
            });
        }
        let saved: Checkpoint = postcard::from_bytes(checkpoint)?;
        let positions: HashMap<&str, u32> = pack
            .correlations
            .iter()
            .enumerate()
            .map(|(at, rule)| (rule.meta.detector.as_str(), at as u32))
            .collect();
        let groups = Groups::restore(
            saved.groups,
            &pack.correlations,
            micros(settings.allowed_lateness),
            settings.max_keys,
            |saved_at| {
                let name = saved.correlations.get(saved_at as usize)?;
                let at = *positions.get(name.as_str())? as usize;
                // A correlation sharing another's groups keeps none of its own (such
                // groups, saved before they were shared, are the first one's too).
                (pack.shares[at] == at).then_some(at)
            },
        );
        drop(positions);
        let mut set = RuleSet::new(pack, settings);
        let state = &mut set.state;
        state.watermark = saved.watermark;
        state.next_sweep = saved.next_sweep;
        state.groups = groups;
        for (key, raised) in saved.raised {
            if state.raised.insert(key, raised).is_none() {
                state.raised_order.push_back(key);
            }
        }
        state.alerts_by_rule = saved.stats.alerts_by_rule.iter().cloned().collect();
        state.stats = saved.stats;
        Ok(set)
    }
}

impl State {
    fn correlate(
        &mut self,
        pack: &Pack,
        at: usize,
        position: usize,
        event: &Event<'_>,
        now: Micros,
        alerts: &mut Vec<Alert>,
    ) {
        let rule = &pack.correlations[at];
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        for (i, field) in rule.group_by.iter().enumerate() {
            if i > 0 {
                key.push(' ');
            }
            key.push_str(field.name());
            key.push('=');
            field.render(event, &mut key);
        }
        let tag = match (rule.kind, &rule.value_field) {
            (CorrelationType::ValueCount, Some(field)) => {
                if !field.exists(event) {
                    self.key = key;
                    return;
                }
                let start = key.len();
                field.render(event, &mut key);
                let tag = correlation::fnv(&[&key.as_bytes()[start..]]);
                key.truncate(start);
                tag
            }
            _ => position as u64,
        };
        let hash = correlation::fnv_from(self.correlation_seeds[at], &[key.as_bytes()]);
        let new = Match {
            time: event.time,
            id: event.id.as_bytes(),
            tag,
        };
        if let Some(evidence) = self.groups.add(rule, at, hash, new, now) {
            let alert_key = if key.is_empty() {
                "all".to_owned()
            } else {
                key.clone()
            };
            let done = (at, position, alert_key.clone(), evidence.clone());
            self.completed.push(done);
            self.raise(&rule.meta, event, alert_key, evidence, alerts);
        }
        self.key = key;
    }

    /// Raises `meta`'s alert completed by `event` unless it repeats one of the same
    /// rule and key within the suppression period.
    fn raise(
        &mut self,
        meta: &Meta,
        event: &Event<'_>,
        key: String,
        evidence: Vec<String>,
        alerts: &mut Vec<Alert>,
    ) {
        let hash = correlation::fnv(&[meta.detector.as_bytes(), key.as_bytes()]);
        // The count first: below the cap (nearly always) the key is probed once.
        if self.raised.len() >= self.max_keys && !self.raised.contains_key(&hash) {
            while self.raised.len() >= self.max_keys {
                match self.raised_order.pop_front() {
                    Some(oldest) => {
                        self.raised.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        let raised = self.raised.entry(hash).or_insert_with(|| {
            self.raised_order.push_back(hash);
            Raised::default()
        });
        if event.time < raised.until
            && raised
                .severity
                .is_some_and(|before| meta.severity <= before)
        {
            raised.suppressed += 1;
            self.stats.suppressed += 1;
            return;
        }
        let suppressed_count = std::mem::take(&mut raised.suppressed);
        raised.until = event.time.saturating_add(self.suppression);
        raised.keep = raised.until.saturating_add(COUNT_RETENTION);
        raised.severity = Some(meta.severity);
        self.stats.alerts += 1;
        *self
            .alerts_by_rule
            .entry(meta.detector.clone())
            .or_default() += 1;
        alerts.push(Alert {
            id: authtrail_model::alert_id(&meta.detector, &key, &evidence),
            detector: meta.detector.clone(),
            severity: meta.severity,
            time: event.time,
            principal: event.principal.to_string(),
            token_id: event.token_id.as_deref().map(str::to_owned),
            source_ip: event.source_ip,
            target_service: event.target_service.as_deref().map(str::to_owned),
            summary: format!("{} ({key})", meta.title),
            key,
            evidence_ids: evidence,
            attack_technique: meta.attack_technique.clone(),
            suppressed_count,
        });
    }

    fn sweep(&mut self, now: Micros) {
        self.next_sweep = now.saturating_add(SWEEP_EVERY);
        self.groups.sweep(now);
        self.raised.retain(|_, raised| raised.keep >= now);
        if self.raised_order.len() > 2 * self.raised.len() + 1024 {
            let raised = &self.raised;
            self.raised_order.retain(|key| raised.contains_key(key));
        }
    }
}
