//! `Detectors`: runs every enabled detector on each event, turns findings into alerts,
//! and saves and restores all state as one checkpoint.

use authtrail_model::{Alert, Event, Micros};
use serde::{Deserialize, Serialize};

use crate::config::{micros, DetectConfig};
use crate::detector::{Detector, Facts, Finding};
use crate::detectors;
use crate::error::Error;
use crate::hash::KeyHasher;
use crate::shared::{Baseline, TokenTable};
use crate::state::TableStats;
use crate::suppress::Suppressor;
use crate::Result;

/// Expired state is swept once per this much event time; sweeping is O(keys), so it is
/// amortised over many events rather than paid on each.
const SWEEP_INTERVAL: Micros = 5_000_000;
const CHECKPOINT_VERSION: u32 = 1;

/// Counters since the detectors were first started (they survive restores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counters {
    events: u64,
    late_events: u64,
    alerts: u64,
    suppressed: u64,
}

/// State of one detector or shared table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorStats {
    /// A detector's name, or `edge_baseline`, `tokens`, `suppression` for shared tables.
    pub name: &'static str,
    pub state: TableStats,
}

/// What the detectors hold and have done, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Events observed.
    pub events: u64,
    /// Events older than the allowed lateness when they arrived.
    pub late_events: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts suppressed as repeats.
    pub suppressed: u64,
    /// Per detector and shared table: live keys, expiries, evictions.
    pub tables: Vec<DetectorStats>,
}

/// Every enabled detector with its state.
pub struct Detectors {
    hasher: KeyHasher,
    lateness: Micros,
    max_keys: usize,
    /// The event-time clock: the newest event time seen.
    now: Micros,
    next_sweep: Micros,
    counters: Counters,
    baseline: Option<Baseline>,
    tokens: Option<TokenTable>,
    suppressor: Suppressor,
    detectors: Vec<Box<dyn Detector>>,
    /// Scratch buffer reused across events, so observing allocates nothing by itself.
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct CheckpointRef<'a> {
    version: u32,
    hasher: KeyHasher,
    now: Micros,
    counters: Counters,
    baseline: Option<&'a Baseline>,
    tokens: Option<&'a TokenTable>,
    suppressor: &'a Suppressor,
    detectors: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Deserialize)]
struct Checkpoint {
    version: u32,
    hasher: KeyHasher,
    now: Micros,
    counters: Counters,
    baseline: Option<Baseline>,
    tokens: Option<TokenTable>,
    suppressor: Suppressor,
    detectors: Vec<(String, Vec<u8>)>,
}

impl Detectors {
    /// The detectors `config` enables, with empty state.
    pub fn new(config: &DetectConfig) -> Result<Self> {
        config.validate()?;
        let edges = config.new_service_edge.enabled || config.service_fan_out.enabled;
        let tokens = config.token_replay.enabled
            || config.revoked_token_use.enabled
            || config.audience_mismatch.enabled;
        Ok(Detectors {
            hasher: KeyHasher::random(),
            lateness: micros(config.allowed_lateness),
            max_keys: config.max_keys,
            now: Micros::MIN,
            next_sweep: Micros::MIN,
            counters: Counters::default(),
            baseline: edges.then(|| {
                Baseline::new(
                    micros(config.new_service_edge.learning),
                    micros(config.baseline_ttl),
                    config.max_keys,
                )
            }),
            tokens: tokens.then(|| TokenTable::new(micros(config.token_ttl), config.max_keys)),
            suppressor: Suppressor::new(config.max_keys),
            detectors: detectors::build(config),
            findings: Vec::new(),
        })
    }

    /// Feeds one accepted event; appends any alerts it completes to `alerts`.
    pub fn observe(&mut self, event: &Event<'_>, alerts: &mut Vec<Alert>) {
        self.counters.events += 1;
        let late = self.now != Micros::MIN && event.time < self.now - self.lateness;
        self.counters.late_events += u64::from(late);
        self.now = self.now.max(event.time);
        let now = self.now;

        let hasher = self.hasher;
        let principal = hasher.str(&event.principal);
        let token = event.token_id.as_deref().map(|token| hasher.str(token));
        let target = event.target_service.as_deref().map(|t| hasher.str(t));
        let edge = match &mut self.baseline {
            Some(baseline) => baseline.observe(event, principal, target, now),
            None => None,
        };
        let token_facts = match (&self.tokens, token) {
            (Some(tokens), Some(token)) => tokens.lookup(token, target),
            _ => None,
        };
        let facts = Facts {
            now,
            late,
            principal,
            token,
            source_ip: event.source_ip.map(|ip| hasher.ip(ip)),
            target,
            edge,
            token_facts,
        };

        for detector in &mut self.detectors {
            detector.observe(event, &facts, &mut self.findings);
            for finding in self.findings.drain(..) {
                let name = detector.name();
                let period = detector.suppression();
                match self.suppressor.admit(&hasher, name, period, finding, now) {
                    Some(alert) => {
                        self.counters.alerts += 1;
                        alerts.push(alert);
                    }
                    None => self.counters.suppressed += 1,
                }
            }
        }
        if let (Some(tokens), Some(token)) = (&mut self.tokens, token) {
            tokens.update(event, &hasher, token, principal, now);
        }
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Micros) {
        // State stays until the allowed lateness has passed its expiry, so a late event
        // still finds it.
        let horizon = now - self.lateness;
        if let Some(baseline) = &mut self.baseline {
            baseline.sweep(horizon);
        }
        if let Some(tokens) = &mut self.tokens {
            tokens.sweep(horizon);
        }
        self.suppressor.sweep(horizon);
        for detector in &mut self.detectors {
            detector.sweep(horizon);
        }
        self.next_sweep = now + SWEEP_INTERVAL;
    }

    /// All state as bytes; [`restore`](Self::restore) takes them back.
    pub fn checkpoint(&self) -> Vec<u8> {
        let checkpoint = CheckpointRef {
            version: CHECKPOINT_VERSION,
            hasher: self.hasher,
            now: self.now,
            counters: self.counters,
            baseline: self.baseline.as_ref(),
            tokens: self.tokens.as_ref(),
            suppressor: &self.suppressor,
            detectors: self
                .detectors
                .iter()
                .map(|detector| (detector.name(), detector.save()))
                .collect(),
        };
        postcard::to_allocvec(&checkpoint).expect("detector state always encodes")
    }

    /// The detectors `config` enables, with the state of `checkpoint`. State of a
    /// detector the config no longer enables is dropped; a newly enabled one starts empty.
    pub fn restore(config: &DetectConfig, checkpoint: &[u8]) -> Result<Self> {
        let saved: Checkpoint = postcard::from_bytes(checkpoint)?;
        if saved.version != CHECKPOINT_VERSION {
            return Err(Error::CheckpointVersion {
                found: saved.version,
                expected: CHECKPOINT_VERSION,
            });
        }
        let mut detectors = Detectors::new(config)?;
        detectors.hasher = saved.hasher;
        detectors.now = saved.now;
        detectors.counters = saved.counters;
        detectors.baseline = match (detectors.baseline, saved.baseline) {
            (Some(fresh), Some(saved)) => Some(fresh.restored(saved)),
            (fresh, _) => fresh,
        };
        detectors.tokens = match (detectors.tokens, saved.tokens) {
            (Some(fresh), Some(saved)) => Some(fresh.restored(saved, config.max_keys)),
            (fresh, _) => fresh,
        };
        detectors.suppressor = Suppressor::restored(saved.suppressor, config.max_keys);
        for (name, state) in &saved.detectors {
            if let Some(detector) = detectors.detectors.iter_mut().find(|d| d.name() == name) {
                detector.load(state)?;
            }
        }
        Ok(detectors)
    }

    /// Live keys and removals per detector and shared table, and event counters.
    pub fn stats(&self) -> DetectStats {
        let mut tables: Vec<DetectorStats> = self
            .detectors
            .iter()
            .map(|detector| DetectorStats {
                name: detector.name(),
                state: detector.stats(),
            })
            .collect();
        if let Some(baseline) = &self.baseline {
            tables.push(DetectorStats {
                name: "edge_baseline",
                state: baseline.stats(),
            });
        }
        if let Some(tokens) = &self.tokens {
            tables.push(DetectorStats {
                name: "tokens",
                state: tokens.stats(),
            });
        }
        tables.push(DetectorStats {
            name: "suppression",
            state: self.suppressor.stats(),
        });
        DetectStats {
            events: self.counters.events,
            late_events: self.counters.late_events,
            alerts: self.counters.alerts,
            suppressed: self.counters.suppressed,
            tables,
        }
    }

    /// The configured cap on keys per table.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
}

#[cfg(test)]
mod tests;
