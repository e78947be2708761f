//! `mfa_fatigue`: at least N `authn` failures with an MFA method (`mfa_*`) for one
//! principal within W, then a success: the user gave in to a push storm.

use std::time::Duration;

use authtrail_model::{Event, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::{show, Windowed};
use crate::config::default_suppression;
use crate::detector::{Context, Detector};
use crate::state::id::EventId;
use crate::state::window;

/// `mfa_fatigue`: a storm of MFA prompts ending in a success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaFatigueConfig {
    /// Run this detector.
    pub enabled: bool,
    /// MFA failures (N) before the success.
    pub min_failures: usize,
    /// Window (W) holding the failures and the success.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub severity: Severity,
    /// Repeats for the same principal within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for MfaFatigueConfig {
    fn default() -> Self {
        MfaFatigueConfig {
            enabled: true,
            min_failures: 5,
            window: Duration::from_secs(600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

fn is_mfa(event: &Event<'_>) -> bool {
    event
        .auth_method
        .as_deref()
        .is_some_and(|method| method.starts_with("mfa_"))
}

/// Its state is a part of each principal's entry in the shared principal table.
pub(crate) type MfaFatigue = Windowed<MfaFatigueConfig>;

impl Detector for MfaFatigue {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        // MFA failure ids by time, in the principal's entry of the principal table.
        let Some(entry) = cx.shared.principal.as_deref_mut() else {
            return;
        };
        let (time, width) = (event.time, self.span.width);
        match event.outcome {
            Some(Outcome::Failure) if is_mfa(event) && !cx.facts.late => {
                entry.mfa_fatigue.touch(time + width);
                let horizon = self.span.horizon(cx.facts.now);
                let keep = 2 * self.config.min_failures + 8;
                entry.windows.prompts(|prompts| {
                    if prompts.iter().any(|p| p.item.is(&event.id)) {
                        return;
                    }
                    window::prune(prompts, horizon);
                    window::insert(prompts, time, EventId::new(&event.id));
                    // Only the newest N matter for "at least N before the success".
                    window::trim(prompts, keep, |_| ());
                });
            }
            Some(Outcome::Success) => {
                if !entry.mfa_fatigue.is_live() {
                    return;
                }
                // Most successes complete nothing: read the prompts without packing the
                // principal's windows again, and edit them only for a finding.
                let prompts = entry.windows.prompts_now();
                let start = prompts.partition_point(|p| p.time < time - width);
                let end = prompts.partition_point(|p| p.time <= time);
                if end - start < self.config.min_failures {
                    return;
                }
                let mut evidence: Vec<String> = prompts[start..end]
                    .iter()
                    .map(|p| p.item.to_string())
                    .collect();
                entry.windows.prompts(|prompts| {
                    prompts.drain(..end);
                });
                let failures = evidence.len();
                evidence.push(event.id.to_string());
                let summary = format!(
                    "authn success for {} after {} MFA failures within {}",
                    event.principal,
                    failures,
                    show(self.config.window)
                );
                let principal = event.principal.to_string();
                cx.findings
                    .push(cx.rule.finding(event, principal, summary, evidence));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{authn, only, run};

    fn storm(count: usize, every: f64, then_ok_at: f64) -> Vec<Event<'static>> {
        let mut events: Vec<_> = (0..count)
            .map(|i| {
                authn(
                    &format!("p{i}"),
                    i as f64 * every,
                    "user:carol",
                    false,
                    "mfa_push",
                )
            })
            .collect();
        events.push(authn("ok", then_ok_at, "user:carol", true, "mfa_push"));
        events
    }

    #[test]
    fn fires_on_five_push_failures_then_a_success() {
        let alerts = run(&only("mfa_fatigue"), &storm(5, 30.0, 130.0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["p0", "p1", "p2", "p3", "p4", "ok"]);
        assert_eq!(alerts[0].attack_technique, "T1621");
    }

    #[test]
    fn silent_at_four_failures() {
        assert!(run(&only("mfa_fatigue"), &storm(4, 30.0, 130.0)).is_empty());
    }

    #[test]
    fn silent_without_the_success() {
        let mut events = storm(8, 10.0, 100.0);
        events.pop();
        assert!(run(&only("mfa_fatigue"), &events).is_empty());
    }

    #[test]
    fn silent_when_the_failures_are_spread_past_the_window() {
        // The success comes 600.5 s after the first failure: only 4 are within 10 min.
        assert!(run(&only("mfa_fatigue"), &storm(5, 100.0, 600.5)).is_empty());
        assert_eq!(run(&only("mfa_fatigue"), &storm(5, 100.0, 600.0)).len(), 1);
    }

    #[test]
    fn password_failures_are_not_mfa_prompts() {
        let mut events: Vec<_> = (0..6)
            .map(|i| authn(&format!("p{i}"), i as f64, "user:carol", false, "password"))
            .collect();
        events.push(authn("ok", 10.0, "user:carol", true, "mfa_push"));
        assert!(run(&only("mfa_fatigue"), &events).is_empty());
    }
}
