//! `audience_mismatch`: a token is presented to a target service that is not in the
//! audience recorded when it was issued.

use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use crate::config::default_suppression;
use crate::detector::{Context, Detector, Finding, Rule};
use crate::state::TableStats;
use crate::tracked::{is_presentation, Audience, Unissued};
use crate::Result;

/// `audience_mismatch`: a token used outside its audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudienceMismatchConfig {
    /// Run this detector.
    pub enabled: bool,
    pub severity: Severity,
    /// Repeats for the same token and target within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for AudienceMismatchConfig {
    fn default() -> Self {
        AudienceMismatchConfig {
            enabled: true,
            severity: Severity::Medium,
            suppression: default_suppression(),
        }
    }
}

pub(crate) struct AudienceMismatch {
    lateness: Micros,
    /// Presentations (one per token and target) whose token's issue is not seen yet.
    unissued: Unissued,
}

impl AudienceMismatch {
    pub fn new(lateness: Micros, max_keys: usize) -> Self {
        AudienceMismatch {
            lateness,
            unissued: Unissued::new(max_keys),
        }
    }

    fn describe(token_id: &str, principal: &str, target: &str) -> (String, String) {
        let summary =
            format!("token {token_id} presented by {principal} to {target}, outside its audience");
        (format!("{token_id} -> {target}"), summary)
    }

    /// The token's issue: the presentations read before it (at or after its time, to a
    /// target outside the audience it names) raise what they would have in time order.
    fn issued(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        // As the token table records it: no audience, or an empty one, covers anything.
        let audience = event.token_audience.as_deref().unwrap_or_default();
        let outside = |target: &str| {
            !audience.is_empty() && !audience.iter().any(|member| **member == *target)
        };
        self.unissued
            .judge_at_issue(event, cx, |token_id, presentation| {
                let target = presentation.target.as_deref().filter(|t| outside(t))?;
                Some(Self::describe(token_id, &presentation.principal, target))
            });
    }
}

impl Detector for AudienceMismatch {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if event.kind == Kind::TokenIssue {
            self.issued(event, cx);
            return;
        }
        if !is_presentation(event) {
            return;
        }
        let (Some(token_id), Some(target), Some(target_hash)) =
            (&event.token_id, &event.target_service, cx.facts.target)
        else {
            return;
        };
        let audience = cx.facts.token_facts.map(|token| token.audience);
        if audience != Some(Audience::Excludes) {
            // Judged when the issue is read, if it has not been and still can be.
            self.unissued
                .note(event, cx.facts, target_hash, self.lateness);
            return;
        }
        let (key, summary) = Self::describe(token_id, &event.principal, target);
        let evidence = vec![event.id.to_string()];
        cx.findings
            .push(cx.rule.finding(event, key, summary, evidence));
    }

    fn sweep(&mut self, now: Micros, _: &Rule, _: &mut Vec<Finding>) {
        self.unissued.sweep(now);
    }

    fn stats(&self) -> TableStats {
        // The token facts are the shared `tokens` table, reported on its own.
        self.unissued.stats()
    }

    fn save(&self) -> Vec<u8> {
        self.unissued.save()
    }

    fn load(&mut self, state: &[u8]) -> Result<()> {
        self.unissued.load(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{authz, event, only, run, text};
    use authtrail_model::Kind;

    fn issue(audience: &[&str]) -> Event<'static> {
        let mut issue = event("i", 0.0, Kind::TokenIssue, "svc:checkout");
        issue.token_id = text("jti-1");
        issue.token_audience = Some(audience.iter().map(|a| (*a).to_owned().into()).collect());
        issue
    }

    fn present(id: &str, target: &str) -> Event<'static> {
        let mut event = authz(id, 5.0, "svc:checkout", target, true);
        event.token_id = text("jti-1");
        event
    }

    #[test]
    fn fires_when_a_token_reaches_a_service_outside_its_audience() {
        let events = [issue(&["payments", "orders"]), present("p", "ledger")];
        let alerts = run(&only("audience_mismatch"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].token_id.as_deref(), Some("jti-1"));
        assert_eq!(alerts[0].evidence_ids, ["p"]);
    }

    #[test]
    fn silent_inside_the_audience() {
        let events = [
            issue(&["payments", "orders"]),
            present("p", "payments"),
            present("q", "orders"),
        ];
        assert!(run(&only("audience_mismatch"), &events).is_empty());
    }

    #[test]
    fn silent_without_a_recorded_audience_or_issue() {
        let mut bare = issue(&[]);
        bare.token_audience = None;
        assert!(run(&only("audience_mismatch"), &[bare, present("p", "ledger")]).is_empty());
        assert!(run(&only("audience_mismatch"), &[present("p", "ledger")]).is_empty());
    }
}
