//! Alert ids and suppression of repeats per detector and key.

use authtrail_model::{Alert, Micros, Severity};
use serde::{Deserialize, Serialize};

use crate::detector::Finding;
use crate::state::hash::KeyHasher;
use crate::state::{KeyedState, TableStats};

/// How long a suppressed count is kept waiting for the next alert of its key.
const COUNT_RETENTION: Micros = 24 * 3_600 * 1_000_000;

pub(crate) use authtrail_model::alert_id;

#[derive(Debug, Serialize, Deserialize)]
struct Raised {
    /// Alerts before this event time repeat the last one.
    until: Micros,
    severity: Severity,
    suppressed: u64,
}

/// Remembers the last alert per detector and key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Suppressor {
    raised: KeyedState<Raised>,
}

impl Suppressor {
    pub fn new(max_keys: usize) -> Self {
        Suppressor {
            raised: KeyedState::new(max_keys),
        }
    }

    pub fn restored(saved: Suppressor, max_keys: usize) -> Self {
        Suppressor {
            raised: saved.raised.with_cap(max_keys),
        }
    }

    /// The alert for `finding`, or `None` when it repeats one raised less than `period`
    /// before. A more severe finding is never a repeat: a brute force turning critical
    /// must get through.
    pub fn admit(
        &mut self,
        hasher: &KeyHasher,
        detector: &str,
        period: Micros,
        finding: Finding,
        now: Micros,
    ) -> Option<Alert> {
        let key = hasher.pair(hasher.str(detector), hasher.str(&finding.key));
        let until = finding.time.saturating_add(period);
        let keep = until.saturating_add(COUNT_RETENTION);
        let slot = self.raised.upsert(key, now, keep, || Raised {
            until: Micros::MIN,
            severity: Severity::Low,
            suppressed: 0,
        });
        let raised = &mut slot.value;
        if finding.time < raised.until && finding.severity <= raised.severity {
            raised.suppressed += 1;
            return None;
        }
        let suppressed_count = std::mem::take(&mut raised.suppressed);
        raised.until = until;
        raised.severity = finding.severity;
        Some(Alert {
            id: alert_id(detector, &finding.key, &finding.evidence_ids),
            detector: detector.to_owned(),
            severity: finding.severity,
            time: finding.time,
            principal: finding.principal,
            token_id: finding.token_id,
            source_ip: finding.source_ip,
            target_service: finding.target_service,
            key: finding.key,
            summary: finding.summary,
            evidence_ids: finding.evidence_ids,
            attack_technique: finding.attack_technique.to_owned(),
            suppressed_count,
        })
    }

    pub fn sweep(&mut self, now: Micros) {
        self.raised.sweep(now);
    }

    pub fn stats(&self) -> TableStats {
        self.raised.stats()
    }
}
