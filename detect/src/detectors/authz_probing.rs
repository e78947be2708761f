//! `authz_probing`: one principal gets at least N `deny` outcomes across at least M
//! distinct target services within W: it is mapping what it may reach.

use std::time::Duration;

use authtrail_model::{Event, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::{show, Windowed};
use crate::config::default_suppression;
use crate::detector::{Context, Detector};
use crate::state::id::EventId;
use crate::state::packed::{self, Bytes, Pack};
use crate::state::window::{self, Entries, Timed};

/// `authz_probing`: many denies across several services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzProbingConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Denies (N) that make probing.
    pub min_denies: usize,
    /// Distinct target services (M) the denies must span.
    pub min_targets: usize,
    /// Window (W) the denies fall in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub severity: Severity,
    /// Repeats for the same principal within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for AuthzProbingConfig {
    fn default() -> Self {
        AuthzProbingConfig {
            enabled: true,
            min_denies: 10,
            min_targets: 3,
            window: Duration::from_secs(300),
            severity: Severity::Medium,
            suppression: default_suppression(),
        }
    }
}

/// One deny; a principal's denies are kept in its entry of the shared principal table.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Deny {
    target: u64,
    id: EventId,
}

impl Pack for Deny {
    fn pack(&self, before: &[Timed<Deny>], out: &mut Bytes) {
        packed::pack_keyed(self.target, &self.id, before, |d| d.target, out);
    }

    fn unpack(input: &mut &[u8], before: &[Timed<Deny>]) -> Self {
        let (target, id) = packed::unpack_keyed(input, before, |d: &Deny| d.target);
        Deny { target, id }
    }
}

/// Its state is a part of each principal's entry in the shared principal table.
pub(crate) type AuthzProbing = Windowed<AuthzProbingConfig>;

impl Detector for AuthzProbing {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if event.outcome != Some(Outcome::Deny) || cx.facts.late {
            return;
        }
        let Some(entry) = cx.shared.principal.as_deref_mut() else {
            return;
        };
        let time = event.time;
        entry.authz_probing.touch(time + self.span.width);
        let horizon = self.span.horizon(cx.facts.now);
        let (n, m) = (self.config.min_denies, self.config.min_targets);
        let found = entry.windows.denies(|denies| {
            if denies.iter().any(|d| d.item.id.is(&event.id)) {
                return None;
            }
            window::prune(denies, horizon);
            let deny = Deny {
                target: cx.facts.target.unwrap_or(0),
                id: EventId::new(&event.id),
            };
            let at = window::insert(denies, time, deny);
            let hit = |w: &[Timed<Deny>]| w.len() >= n && window::distinct(w, |d| d.target) >= m;
            // No window of fewer than M entries holds M targets, so N.max(M) is the least
            // a hit needs. Repeats of one target go first, so the distinct targets survive
            // a flood.
            let range = self
                .span
                .find_or_trim(denies, at, n.max(m), hit, |d| d.target)?;
            let count = range.len();
            let targets = window::distinct(&denies[range.clone()], |d| d.target);
            let evidence = denies[range.clone()].iter().map(|d| d.item.id.to_string());
            let evidence: Vec<String> = evidence.collect();
            denies.drop_front(range.end);
            Some((count, targets, evidence))
        });
        let Some((count, targets, evidence)) = found else {
            return;
        };
        let summary = format!(
            "{} denied {count} times across {targets} services within {}",
            event.principal,
            show(self.config.window)
        );
        let principal = event.principal.to_string();
        cx.findings
            .push(cx.rule.finding(event, principal, summary, evidence));
    }
}

#[cfg(test)]
mod tests {
    use crate::detectors::testkit::{authz, only, run};
    use authtrail_model::Event;

    /// `count` denies, 10 s apart, round-robin over `targets` services.
    fn denies(count: usize, targets: usize, every: f64) -> Vec<Event<'static>> {
        (0..count)
            .map(|i| {
                let target = format!("svc-{}", i % targets);
                authz(
                    &format!("d{i}"),
                    i as f64 * every,
                    "user:mallory",
                    &target,
                    false,
                )
            })
            .collect()
    }

    #[test]
    fn fires_on_ten_denies_across_three_services() {
        let alerts = run(&only("authz_probing"), &denies(10, 3, 10.0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids.len(), 10);
        assert_eq!(alerts[0].attack_technique, "T1069/T1580");
    }

    #[test]
    fn silent_at_nine_denies() {
        assert!(run(&only("authz_probing"), &denies(9, 3, 10.0)).is_empty());
    }

    #[test]
    fn silent_with_only_two_services() {
        assert!(run(&only("authz_probing"), &denies(30, 2, 1.0)).is_empty());
    }

    #[test]
    fn silent_when_the_denies_span_more_than_five_minutes() {
        assert!(run(&only("authz_probing"), &denies(10, 3, 33.4)).is_empty());
        assert_eq!(run(&only("authz_probing"), &denies(10, 3, 33.3)).len(), 1);
    }

    #[test]
    fn allows_do_not_count() {
        let mut events = denies(9, 3, 1.0);
        events.push(authz("a", 9.0, "user:mallory", "svc-9", true));
        assert!(run(&only("authz_probing"), &events).is_empty());
    }

    #[test]
    fn a_flood_on_one_service_keeps_the_other_services_in_the_window() {
        let mut events = vec![authz("b", 0.0, "user:mallory", "billing", false)];
        events.extend((0..200).map(|i| {
            authz(
                &format!("o{i}"),
                1.0 + i as f64 * 0.5,
                "user:mallory",
                "orders",
                false,
            )
        }));
        events.push(authz("c", 120.0, "user:mallory", "crm", false));
        assert_eq!(run(&only("authz_probing"), &events).len(), 1);
    }
}
