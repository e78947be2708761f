//! `brute_force`: at least N `authn` failures for one principal within W; critical when
//! an `authn` success for the principal follows within W2 of the last failure.

use std::time::Duration;

use authtrail_model::{Event, Micros, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::show;
use crate::config::{default_suppression, micros};
use crate::detector::{Context, Detector, Finding, Rule};
use crate::state::id::EventId;
use crate::state::part::Part;
use crate::state::window::{self, Entries, Span};
use crate::tracked::{PrincipalEntry, Windows};

/// `brute_force`: many failed logins for one principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Failures (N) that make a brute force.
    pub min_failures: usize,
    /// Window (W) the failures fall in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A success this soon (W2) after the last failure makes the alert critical.
    #[serde(with = "humantime_serde")]
    pub success_window: Duration,
    /// Severity of the failures alone.
    pub severity: Severity,
    /// Severity when a success follows.
    pub success_severity: Severity,
    /// Repeats for the same principal within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            enabled: true,
            min_failures: 10,
            window: Duration::from_secs(300),
            success_window: Duration::from_secs(600),
            severity: Severity::High,
            success_severity: Severity::Critical,
            suppression: default_suppression(),
        }
    }
}

/// The brute force already raised, waiting for a success.
#[derive(Debug, Serialize, Deserialize)]
struct Armed {
    last_failure: Micros,
    evidence: Vec<EventId>,
}

/// A principal's part for this detector in its entry of the shared principal table;
/// the failure ids by time are in the entry's `windows` (packed with its other windows).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    /// Boxed: few accounts are armed, and the rest should not pay for the room.
    armed: Option<Box<Armed>>,
}

pub(crate) struct BruteForce {
    config: BruteForceConfig,
    span: Span,
    success_window: Micros,
}

impl BruteForce {
    pub fn new(config: &BruteForceConfig, span: Span) -> Self {
        BruteForce {
            config: config.clone(),
            span,
            success_window: micros(config.success_window),
        }
    }

    /// A failure at `now` on the clock: the finding when it completes N within W.
    fn failure(
        &self,
        event: &Event<'_>,
        now: Micros,
        rule: &Rule,
        part: &mut Part<Account>,
        windows: &mut Windows,
    ) -> Option<Finding> {
        let time = event.time;
        let keep = time + self.span.width.max(self.success_window);
        let Account { armed } = part.touch(keep);
        let (evidence, last_failure) = windows.failures(|failures| {
            if failures.iter().any(|f| f.item.is(&event.id)) {
                return None; // the same event again (a redelivery): already counted
            }
            if let Some(armed) = armed.as_deref_mut() {
                armed.last_failure = armed.last_failure.max(time);
            }
            window::prune(failures, self.span.horizon(now));
            let at = window::insert(failures, time, EventId::new(&event.id));
            let n = self.config.min_failures;
            let range = self
                .span
                .find_or_trim(failures, at, n, |w| w.len() >= n, |_| ())?;
            let evidence: Vec<EventId> = failures[range.clone()]
                .iter()
                .map(|f| f.item.clone())
                .collect();
            let last_failure = failures[range.end - 1].time.max(time);
            failures.drop_front(range.end);
            Some((evidence, last_failure))
        })?;
        let summary = format!(
            "{} authn failures for {} within {}",
            evidence.len(),
            event.principal,
            show(self.config.window)
        );
        let evidence_ids = evidence.iter().map(|id| id.to_string()).collect();
        let principal = event.principal.to_string();
        let finding = rule.finding(event, principal, summary, evidence_ids);
        *armed = Some(Box::new(Armed {
            last_failure,
            evidence,
        }));
        part.touch(last_failure + self.success_window);
        Some(finding)
    }

    /// A success: the critical finding when it follows a raised brute force within W2.
    fn success(&self, event: &Event<'_>, rule: &Rule, part: &mut Part<Account>) -> Option<Finding> {
        let account = part.get_mut()?;
        let armed = account.armed.as_ref()?;
        let after = event.time - armed.last_failure;
        if !(0..=self.success_window).contains(&after) {
            return None;
        }
        let mut evidence: Vec<String> = armed.evidence.iter().map(|id| id.to_string()).collect();
        evidence.push(event.id.to_string());
        let summary = format!(
            "authn success for {} {} after {} failures",
            event.principal,
            show(Duration::from_secs((after / 1_000_000) as u64)),
            armed.evidence.len()
        );
        let finding = Finding {
            severity: self.config.success_severity,
            ..rule.finding(event, event.principal.to_string(), summary, evidence)
        };
        account.armed = None;
        Some(finding)
    }
}

impl Detector for BruteForce {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let Some(entry) = cx.shared.principal.as_deref_mut() else {
            return;
        };
        let PrincipalEntry {
            brute_force: part,
            windows,
            ..
        } = entry;
        let finding = match event.outcome {
            Some(Outcome::Failure) if !cx.facts.late => {
                self.failure(event, cx.facts.now, cx.rule, part, windows)
            }
            Some(Outcome::Success) => self.success(event, cx.rule, part),
            _ => None,
        };
        cx.findings.extend(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{authn, feed, only, run};
    use crate::Detectors;

    fn failures(principal: &str, count: usize, every: f64) -> Vec<Event<'static>> {
        (0..count)
            .map(|i| {
                authn(
                    &format!("f{i}"),
                    i as f64 * every,
                    principal,
                    false,
                    "password",
                )
            })
            .collect()
    }

    #[test]
    fn fires_on_ten_failures_within_five_minutes() {
        let alerts = run(&only("brute_force"), &failures("user:alice", 10, 10.0));
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.detector, "brute_force");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.principal, "user:alice");
        assert_eq!(alert.evidence_ids.len(), 10);
        assert_eq!(alert.evidence_ids[9], "f9");
        assert_eq!(alert.attack_technique, "T1110.001");
    }

    #[test]
    fn silent_at_nine_failures() {
        assert!(run(&only("brute_force"), &failures("user:alice", 9, 10.0)).is_empty());
    }

    #[test]
    fn silent_when_ten_failures_span_more_than_the_window() {
        // 10 failures 33.4 s apart span 300.6 s: one step outside W = 5 min.
        assert!(run(&only("brute_force"), &failures("user:alice", 10, 33.4)).is_empty());
        assert_eq!(
            run(&only("brute_force"), &failures("user:alice", 10, 33.3)).len(),
            1
        );
    }

    #[test]
    fn critical_when_a_success_follows_within_ten_minutes() {
        let mut events = failures("user:alice", 10, 1.0);
        events.push(authn("ok", 9.0 + 600.0, "user:alice", true, "password"));
        let alerts = run(&only("brute_force"), &events);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1].severity, Severity::Critical);
        assert_eq!(alerts[1].evidence_ids.last().unwrap(), "ok");
        assert_eq!(alerts[1].evidence_ids.len(), 11);
    }

    #[test]
    fn no_critical_when_the_success_comes_after_ten_minutes() {
        let mut events = failures("user:alice", 10, 1.0);
        events.push(authn("ok", 9.0 + 601.0, "user:alice", true, "password"));
        let alerts = run(&only("brute_force"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::High);
    }

    #[test]
    fn silent_for_a_user_who_mistypes_twice() {
        let events = [
            authn("a", 0.0, "user:bob", false, "password"),
            authn("b", 5.0, "user:bob", false, "password"),
            authn("c", 9.0, "user:bob", true, "password"),
        ];
        assert!(run(&only("brute_force"), &events).is_empty());
    }

    #[test]
    fn failures_of_different_principals_do_not_add_up() {
        let mut events = failures("user:alice", 5, 1.0);
        events.extend(failures("user:bob", 5, 1.0).into_iter().map(|mut e| {
            e.id = format!("b{}", e.id).into();
            e
        }));
        assert!(run(&only("brute_force"), &events).is_empty());
    }

    #[test]
    fn fires_on_out_of_order_failures_within_lateness() {
        let mut events = failures("user:alice", 10, 10.0);
        // The failure of 70 s arrives after the one of 90 s: 20 s late, within 30 s.
        let late = events.remove(7);
        events.push(late);
        let alerts = run(&only("brute_force"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids.len(), 10);
    }

    #[test]
    fn ignores_failures_later_than_the_allowed_lateness() {
        let mut events = failures("user:alice", 10, 10.0);
        let late = events.remove(0); // time 0 s, arrives at 90 s: 90 s late
        events.push(late);
        let mut detectors = Detectors::new(&only("brute_force")).unwrap();
        assert!(feed(&mut detectors, &events).is_empty());
        assert_eq!(detectors.stats().late_events, 1);
    }

    #[test]
    fn a_flood_raises_one_alert_and_counts_the_repeats() {
        let mut events = failures("user:alice", 30, 1.0);
        events.push(authn("late-f", 700.0, "user:alice", false, "password"));
        events.extend((0..10).map(|i| {
            authn(
                &format!("g{i}"),
                701.0 + i as f64,
                "user:alice",
                false,
                "password",
            )
        }));
        let alerts = run(&only("brute_force"), &events);
        assert_eq!(alerts.len(), 2, "{alerts:#?}");
        assert_eq!(alerts[0].suppressed_count, 0);
        assert_eq!(alerts[1].suppressed_count, 2);
    }
}
