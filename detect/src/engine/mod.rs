//! `Detectors`: runs every enabled detector on each event, turns findings into alerts,
//! and saves and restores all state as one checkpoint.

use authtrail_model::{Alert, Event, Kind, Micros};
use serde::{Deserialize, Serialize};

use crate::config::{micros, DetectConfig};
use crate::detector::{Context, Facts, Finding, Rule, Shared};
use crate::detectors::{self, Enabled};
use crate::error::Error;
use crate::state::hash::KeyHasher;
use crate::state::TableStats;
use crate::tracked::{
    is_presentation, Baseline, PrincipalDetectors, PrincipalTable, Revocations, TokenTable,
};
use crate::Result;
use suppress::Suppressor;

/// 2: `token_replay`'s sightings moved into the token table; `service_fan_out`,
/// `brute_force`, `authz_probing` and `mfa_fatigue` keep their state in the principal
/// table.
/// 3: token audiences are interned (a token holds the id of its audience set); token
/// and principal entries no longer repeat their earliest part expiry; a watermark per
/// source (Kafka partition) instead of one event-time clock.
/// 4: the revocations moved out of `revoked_token_use` into a shared table, which
/// `validation_gap` reads too. Later within 4 (readable both ways, so not a new version):
/// `validation_gap`'s bytes carry its held decisions after its state; bytes without
/// them restore with none held.
/// 5: `validation_gap`'s held decisions keep the decision as the other token detectors
/// keep a presentation (time, service hash, id, caller, service, address), then the
/// token id and its two flags.
/// 6: a principal's failures, denies and MFA prompts are encoded together after its
/// parts (`tracked::principals::Windows`), no longer inside the parts of `brute_force`,
/// `authz_probing` and `mfa_fatigue`.
/// 7: the principal and token tables and the records of presentations before their
/// token's issue no longer keep an expiry beside each entry (read from its parts).
const CHECKPOINT_VERSION: u32 = 7;

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
    /// A detector's name, or `edge_baseline`, `tokens`, `revocations`, `suppression` for
    /// shared tables.
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
    /// The clock state expires on (the oldest watermark of the active sources); `None`
    /// before every active source has shown an event time.
    pub clock: Option<Micros>,
    /// Sources (partitions) holding the clock: active, neither idle nor released.
    pub active_sources: usize,
    /// Per detector and shared table: live keys, expiries, evictions.
    pub tables: Vec<DetectorStats>,
}

/// Every enabled detector with its state.
pub struct Detectors {
    hasher: KeyHasher,
    lateness: Micros,
    max_keys: usize,
    /// The watermark of each source and the clock state expires on.
    clocks: Clocks,
    /// The earliest of `next_sweeps`.
    next_sweep: Micros,
    /// Per table (`sweep::table`), when it is swept next.
    next_sweeps: Vec<Micros>,
    counters: Counters,
    baseline: Option<Baseline>,
    tokens: Option<TokenTable>,
    principals: Option<PrincipalTable>,
    revocations: Option<Revocations>,
    suppressor: Suppressor,
    detectors: Vec<Enabled>,
    /// Per event kind (`kind_index`), the detectors that take it, in their order.
    by_kind: [Vec<usize>; 4],
    /// Scratch buffer reused across events, so observing allocates nothing by itself.
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct CheckpointRef<'a> {
    version: u32,
    hasher: KeyHasher,
    sources: Vec<SavedSource>,
    counters: Counters,
    baseline: Option<&'a Baseline>,
    tokens: Option<&'a TokenTable>,
    principals: Option<&'a PrincipalTable>,
    revocations: Option<&'a Revocations>,
    suppressor: &'a Suppressor,
    detectors: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Deserialize)]
struct Checkpoint {
    /// Checked on its own before the rest is decoded.
    _version: u32,
    hasher: KeyHasher,
    sources: Vec<SavedSource>,
    counters: Counters,
    baseline: Option<Baseline>,
    tokens: Option<TokenTable>,
    principals: Option<PrincipalTable>,
    revocations: Option<Revocations>,
    suppressor: Suppressor,
    detectors: Vec<(String, Vec<u8>)>,
}

impl Detectors {
    /// The detectors `config` enables, with empty state.
    pub fn new(config: &DetectConfig) -> Result<Self> {
        config.validate()?;
        let detectors = detectors::build(config);
        let edges = config.new_service_edge.enabled || config.service_fan_out.enabled;
        let tokens = config.token_replay.enabled
            || config.revoked_token_use.enabled
            || config.audience_mismatch.enabled
            || config.validation_gap.enabled;
        let revocations = config.revoked_token_use.enabled || config.validation_gap.enabled;
        Ok(Detectors {
            hasher: KeyHasher::random(),
            lateness: micros(config.allowed_lateness),
            max_keys: config.max_keys,
            clocks: Clocks::new(config.source_idle_after),
            next_sweep: Micros::MIN,
            next_sweeps: vec![Micros::MIN; sweep::TABLES + detectors.len()],
            counters: Counters::default(),
            baseline: edges.then(|| {
                Baseline::new(
                    micros(config.new_service_edge.learning),
                    micros(config.baseline_ttl),
                    config.max_keys,
                )
            }),
            tokens: tokens.then(|| TokenTable::new(micros(config.token_ttl), config.max_keys)),
            principals: principal_detectors(config)
                .any()
                .then(|| PrincipalTable::new(config.max_keys)),
            revocations: revocations.then(|| {
                let ttl = micros(config.revoked_token_use.revocation_ttl);
                Revocations::new(ttl, config.max_keys)
            }),
            suppressor: Suppressor::new(config.max_keys),
            by_kind: by_kind(&detectors),
            detectors,
            findings: Vec::new(),
        })
    }

    /// Feeds one accepted event from `source` (see [`source`](Self::source); the
    /// default one for a single stream); appends any alerts it completes to `alerts`.
    pub fn observe_from(&mut self, source: SourceId, event: &Event<'_>, alerts: &mut Vec<Alert>) {
        self.counters.events += 1;
        // Late for its own source; state and windows live on the slowest one's clock.
        let late = self.clocks.observe(source, event.time, self.lateness);
        self.counters.late_events += u64::from(late);
        let now = self.clocks.now();

        let hasher = self.hasher;
        let principal = hasher.str(&event.principal);
        let token = event.token_id.as_deref().map(|token| hasher.str(token));
        let target = event.target_service.as_deref().map(|t| hasher.str(t));
        let edge = match &mut self.baseline {
            Some(baseline) => baseline.observe(event, principal, target, now),
            None => None,
        };
        // The token's entry is probed once for the facts, the token detectors' parts
        // and the update after them.
        let mut open = match (&mut self.tokens, token) {
            (Some(tokens), Some(token)) => Some(tokens.open(token, now)),
            _ => None,
        };
        let token_facts = open.as_ref().and_then(|open| open.facts(target));
        // Both `revoked_token_use` and `validation_gap` judge a presentation by whether
        // its token was revoked: one lookup for both.
        let revoked = match (&self.revocations, token) {
            (Some(revocations), Some(token)) if is_presentation(event) => {
                revocations.covering(event.time, token, token_facts.as_ref(), principal)
            }
            _ => None,
        };
        // Likewise the principal's entry, for the kinds the per-principal detectors take.
        let mut principal_open = match (&mut self.principals, event.kind) {
            (Some(principals), Kind::Authn | Kind::Authz) => Some(principals.open(principal, now)),
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
            revoked,
        };

        for &at in &self.by_kind[kind_index(event.kind)] {
            let Enabled { rule, detector } = &mut self.detectors[at];
            let mut cx = Context {
                rule,
                facts: &facts,
                shared: Shared {
                    token: open.as_mut().map(|open| open.entry()),
                    principal: principal_open.as_mut().map(|open| open.entry()),
                },
                findings: &mut self.findings,
            };
            detector.observe(event, &mut cx);
            // Nearly every call finds nothing; a drain per detector and event cost more
            // than some detectors' whole work.
            if !self.findings.is_empty() {
                let raise = Raise {
                    hasher: &hasher,
                    suppressor: &mut self.suppressor,
                    counters: &mut self.counters,
                    now,
                };
                raise.all(rule, &mut self.findings, alerts);
            }
        }
        // Recorded after the detectors, which judge every event against the state
        // before it.
        if let (Some(revocations), Kind::TokenRevoke) = (&mut self.revocations, event.kind) {
            revocations.record(event, &facts);
        }
        let empty = open.and_then(|open| open.close(event, &hasher, principal));
        if let (Some(tokens), Some(token)) = (&mut self.tokens, empty) {
            tokens.remove(token);
        }
        let empty = principal_open.and_then(|open| open.close());
        if let (Some(principals), Some(principal)) = (&mut self.principals, empty) {
            principals.remove(principal);
        }
        if now >= self.next_sweep {
            self.sweep(now, alerts);
        }
    }

    /// All state as bytes; [`restore`](Self::restore) takes them back.
    pub fn checkpoint(&self) -> Vec<u8> {
        let checkpoint = CheckpointRef {
            version: CHECKPOINT_VERSION,
            hasher: self.hasher,
            sources: self.clocks.save(),
            counters: self.counters,
            baseline: self.baseline.as_ref(),
            tokens: self.tokens.as_ref(),
            principals: self.principals.as_ref(),
            revocations: self.revocations.as_ref(),
            suppressor: &self.suppressor,
            detectors: self
                .detectors
                .iter()
                .map(|enabled| (enabled.rule.name, enabled.detector.save()))
                .collect(),
        };
        postcard::to_allocvec(&checkpoint).expect("detector state always encodes")
    }

    /// The detectors `config` enables, with the state of `checkpoint`. State of a
    /// detector the config no longer enables is dropped; a newly enabled one starts empty.
    pub fn restore(config: &DetectConfig, checkpoint: &[u8]) -> Result<Self> {
        // The version leads, so a checkpoint of another layout is named as such rather
        // than failing somewhere in its decoding.
        let (version, _) = postcard::take_from_bytes::<u32>(checkpoint)?;
        if version != CHECKPOINT_VERSION {
            return Err(Error::CheckpointVersion {
                found: version,
                expected: CHECKPOINT_VERSION,
            });
        }
        let saved: Checkpoint = postcard::from_bytes(checkpoint)?;
        if let Some(tokens) = &saved.tokens {
            tokens.check()?;
        }
        let mut detectors = Detectors::new(config)?;
        detectors.hasher = saved.hasher;
        detectors.clocks.restore(saved.sources);
        detectors.counters = saved.counters;
        detectors.baseline = match (detectors.baseline, saved.baseline) {
            (Some(fresh), Some(saved)) => Some(fresh.restored(saved)),
            (fresh, _) => fresh,
        };
        detectors.tokens = match (detectors.tokens, saved.tokens) {
            (Some(fresh), Some(saved)) => {
                Some(fresh.restored(saved, config.max_keys, config.token_replay.enabled))
            }
            (fresh, _) => fresh,
        };
        detectors.principals = match (detectors.principals, saved.principals) {
            (Some(_), Some(saved)) => Some(PrincipalTable::restored(
                saved,
                config.max_keys,
                principal_detectors(config),
            )),
            (fresh, _) => fresh,
        };
        detectors.revocations = match (detectors.revocations, saved.revocations) {
            (Some(fresh), Some(saved)) => Some(fresh.restored(saved, config.max_keys)),
            (fresh, _) => fresh,
        };
        detectors.suppressor = Suppressor::restored(saved.suppressor, config.max_keys);
        for (name, state) in &saved.detectors {
            let mut enabled = detectors.detectors.iter_mut();
            if let Some(enabled) = enabled.find(|enabled| enabled.rule.name == name) {
                enabled.detector.load(state)?;
            }
        }
        Ok(detectors)
    }

    /// Live keys and removals per detector and shared table, and event counters.
    pub fn stats(&self) -> DetectStats {
        let mut tables: Vec<DetectorStats> = self
            .detectors
            .iter()
            .map(|enabled| DetectorStats {
                name: enabled.rule.name,
                state: self.with_parts(enabled.rule.name, enabled.detector.stats()),
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
        if let Some(revocations) = &self.revocations {
            tables.push(DetectorStats {
                name: "revocations",
                state: revocations.stats(),
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
            clock: self.clock(),
            active_sources: self.clocks.active(),
            tables,
        }
    }

    /// A detector's stats with those of its part of the token or principal table.
    fn with_parts(&self, name: &str, own: TableStats) -> TableStats {
        let tokens = self.tokens.as_ref().map(TokenTable::counts);
        let principals = self.principals.as_ref().map(PrincipalTable::counts);
        let part = match (name, tokens, principals) {
            ("token_replay", Some(tokens), _) => tokens.replay,
            ("service_fan_out", _, Some(principals)) => principals.fan_out,
            ("brute_force", _, Some(principals)) => principals.brute_force,
            ("authz_probing", _, Some(principals)) => principals.authz_probing,
            ("mfa_fatigue", _, Some(principals)) => principals.mfa_fatigue,
            _ => return own,
        };
        let part = part.stats();
        TableStats {
            live_keys: own.live_keys + part.live_keys,
            expired: own.expired + part.expired,
            evicted: own.evicted + part.evicted,
        }
    }

    /// The configured cap on keys per table.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
}

/// Turns findings into alerts: ids, and repeats suppressed.
struct Raise<'a> {
    hasher: &'a KeyHasher,
    suppressor: &'a mut Suppressor,
    counters: &'a mut Counters,
    /// The clock, which suppression records expire on.
    now: Micros,
}

impl Raise<'_> {
    /// Raises the alerts of `findings` (emptied) by `rule`'s detector, bar repeats.
    fn all(self, rule: &Rule, findings: &mut Vec<Finding>, alerts: &mut Vec<Alert>) {
        for finding in findings.drain(..) {
            let (name, period) = (rule.name, rule.suppression);
            match self
                .suppressor
                .admit(self.hasher, name, period, finding, self.now)
            {
                Some(alert) => {
                    self.counters.alerts += 1;
                    alerts.push(alert);
                }
                None => self.counters.suppressed += 1,
            }
        }
    }
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Authn => 0,
        Kind::TokenIssue => 1,
        Kind::TokenRevoke => 2,
        Kind::Authz => 3,
    }
}

/// For each event kind, the detectors that take it.
fn by_kind(detectors: &[Enabled]) -> [Vec<usize>; 4] {
    let mut by_kind: [Vec<usize>; 4] = Default::default();
    for (at, enabled) in detectors.iter().enumerate() {
        for &kind in enabled.rule.kinds {
            by_kind[kind_index(kind)].push(at);
        }
    }
    by_kind
}

/// Which of the per-principal detectors `config` runs.
fn principal_detectors(config: &DetectConfig) -> PrincipalDetectors {
    PrincipalDetectors {
        fan_out: config.service_fan_out.enabled,
        brute_force: config.brute_force.enabled,
        authz_probing: config.authz_probing.enabled,
        mfa_fatigue: config.mfa_fatigue.enabled,
    }
}

#[cfg(test)]
impl Detectors {
    pub(crate) fn token_table(&self) -> Option<&TokenTable> {
        self.tokens.as_ref()
    }

    pub(crate) fn principal_table(&self) -> Option<&PrincipalTable> {
        self.principals.as_ref()
    }
}

mod clock;
mod suppress;
mod sweep;
#[cfg(test)]
mod tests;

pub use clock::{ClockReading, SourceId};
use clock::{Clocks, SavedSource};
