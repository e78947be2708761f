//! `audience_mismatch`: a token is presented to a target service that is not in the
//! audience recorded when it was issued.

use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use crate::config::{default_suppression, micros};
use crate::detector::{Detector, Facts, Finding, Shared};
use crate::shared::{is_presentation, Audience};
use crate::state::TableStats;
use crate::Result;

const TECHNIQUE: &str = "T1550.001";

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
    config: AudienceMismatchConfig,
    suppression: Micros,
}

impl AudienceMismatch {
    pub fn new(config: &AudienceMismatchConfig) -> Self {
        AudienceMismatch {
            config: config.clone(),
            suppression: micros(config.suppression),
        }
    }
}

impl Detector for AudienceMismatch {
    fn name(&self) -> &'static str {
        "audience_mismatch"
    }

    fn kinds(&self) -> &'static [Kind] {
        &[Kind::Authz, Kind::Authn]
    }

    fn suppression(&self) -> Micros {
        self.suppression
    }

    fn observe(
        &mut self,
        event: &Event<'_>,
        facts: &Facts,
        _shared: &mut Shared<'_>,
        findings: &mut Vec<Finding>,
    ) {
        if !is_presentation(event) {
            return;
        }
        let Some(token) = &facts.token_facts else {
            return;
        };
        if token.audience != Audience::Excludes {
            return;
        }
        let (Some(token_id), Some(target)) = (&event.token_id, &event.target_service) else {
            return;
        };
        let summary = format!(
            "token {token_id} presented by {} to {target}, outside its audience",
            event.principal
        );
        findings.push(Finding::completed_by(
            event,
            format!("{token_id} -> {target}"),
            self.config.severity,
            TECHNIQUE,
            summary,
            vec![event.id.to_string()],
        ));
    }

    fn sweep(&mut self, _now: Micros) {}

    fn stats(&self) -> TableStats {
        // Its state is the shared `tokens` table, reported on its own.
        TableStats::default()
    }

    fn save(&self) -> Vec<u8> {
        Vec::new()
    }

    fn load(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
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
