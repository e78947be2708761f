//! `revoked_token_use`: a token presented after a `token_revoke` of it, after a revoke
//! of every token its principal was issued before that revoke, or after its expiry plus
//! a skew.

use std::time::Duration;

use authtrail_model::time::format_micros;
use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use crate::config::{default_suppression, micros};
use crate::detector::{Context, Detector, Facts};
use crate::tracked::{is_presentation, RevokedBy};

/// `revoked_token_use`: a revoked or expired token still in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevokedTokenUseConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Clock skew allowed past a token's expiry.
    #[serde(with = "humantime_serde")]
    pub skew: Duration,
    /// How long a revoke is remembered (by this detector and `validation_gap`, which
    /// read the same records).
    #[serde(with = "humantime_serde")]
    pub revocation_ttl: Duration,
    pub severity: Severity,
    /// Repeats for the same token within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for RevokedTokenUseConfig {
    fn default() -> Self {
        RevokedTokenUseConfig {
            enabled: true,
            skew: Duration::from_secs(60),
            revocation_ttl: Duration::from_secs(24 * 3_600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

/// Holds no state of its own: the engine looks up the revocations (`Facts::revoked`).
pub(crate) struct RevokedTokenUse {
    skew: Micros,
}

impl RevokedTokenUse {
    pub fn new(config: &RevokedTokenUseConfig) -> Self {
        RevokedTokenUse {
            skew: micros(config.skew),
        }
    }

    /// A revoke that arrives after a presentation it should have stopped (out of order,
    /// within the allowed lateness): the presentation is no longer at hand, so the
    /// revoke completes the pattern and the summary says when the token was last used.
    fn late_revoke(&self, event: &Event<'_>, cx: &mut Context<'_>) {
        let used = cx.facts.token_facts.and_then(|token| token.last_presented);
        let Some(used) = used.filter(|&used| used > event.time) else {
            return;
        };
        let token_id = event.token_id.as_deref().unwrap_or_default();
        let summary = format!(
            "token {token_id} was presented at {}, after its revoke (which arrived late)",
            format_micros(used)
        );
        let evidence = vec![event.id.to_string()];
        cx.findings.push(
            cx.rule
                .finding(event, token_id.to_owned(), summary, evidence),
        );
    }

    /// Why the presentation should not have happened: the revoke's id and a reason.
    /// Formatted only for the rare presentation that has a reason.
    fn violation(&self, event: &Event<'_>, facts: &Facts) -> Option<(Option<String>, String)> {
        if let Some(revoked) = &facts.revoked {
            let when = format_micros(revoked.time);
            let reason = match revoked.by {
                RevokedBy::Token => format!("after its revoke at {when}"),
                RevokedBy::Principal => {
                    format!("after all tokens of its principal were revoked at {when}")
                }
            };
            return Some((Some(revoked.id.to_string()), reason));
        }
        let expires = event
            .token_expires
            .or(facts.token_facts.and_then(|t| t.expires))?;
        (event.time > expires + self.skew).then(|| {
            (
                None,
                format!("after it expired at {}", format_micros(expires)),
            )
        })
    }
}

impl Detector for RevokedTokenUse {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if event.kind == Kind::TokenRevoke {
            // The engine records the revoke itself once every detector has seen it.
            if cx.facts.token.is_some() {
                self.late_revoke(event, cx);
            }
            return;
        }
        if !is_presentation(event) {
            return;
        }
        let Some((revoke_id, reason)) = self.violation(event, cx.facts) else {
            return;
        };
        let token_id = event.token_id.as_deref().unwrap_or_default();
        let summary = format!("token {token_id} presented by {} {reason}", event.principal);
        let mut evidence: Vec<String> = revoke_id.into_iter().collect();
        evidence.push(event.id.to_string());
        cx.findings.push(
            cx.rule
                .finding(event, token_id.to_owned(), summary, evidence),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{at, authz, event, only, run, text};

    fn issue(id: &str, seconds: f64, token: &str) -> Event<'static> {
        let mut issue = event(id, seconds, Kind::TokenIssue, "user:alice");
        issue.token_id = text(token);
        issue.token_expires = Some(at(seconds + 900.0));
        issue
    }

    fn revoke(id: &str, seconds: f64, token: Option<&str>) -> Event<'static> {
        let mut revoke = event(id, seconds, Kind::TokenRevoke, "user:alice");
        revoke.token_id = token.and_then(text);
        revoke
    }

    fn present(id: &str, seconds: f64, token: &str) -> Event<'static> {
        let mut event = authz(id, seconds, "user:alice", "payments", true);
        event.token_id = text(token);
        event
    }

    #[test]
    fn fires_on_a_token_presented_after_its_revoke() {
        let events = [
            issue("i", 0.0, "t1"),
            present("p1", 10.0, "t1"),
            revoke("r", 20.0, Some("t1")),
            present("p2", 21.0, "t1"),
        ];
        let alerts = run(&only("revoked_token_use"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["r", "p2"]);
        assert_eq!(alerts[0].attack_technique, "T1550.001");
    }

    #[test]
    fn fires_on_a_token_issued_before_a_revoke_of_all_tokens_of_its_principal() {
        let events = [
            issue("i1", 0.0, "old"),
            revoke("r", 20.0, None),
            issue("i2", 30.0, "new"),
            present("p1", 40.0, "new"),
            present("p2", 41.0, "old"),
        ];
        let alerts = run(&only("revoked_token_use"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["r", "p2"]);
    }

    #[test]
    fn fires_after_expiry_plus_skew_only() {
        let events = [issue("i", 0.0, "t1"), present("p1", 960.0, "t1")];
        assert!(run(&only("revoked_token_use"), &events).is_empty());
        let events = [issue("i", 0.0, "t1"), present("p1", 960.5, "t1")];
        let alerts = run(&only("revoked_token_use"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["p1"]);
    }

    #[test]
    fn silent_before_the_revoke_and_for_other_tokens() {
        let events = [
            issue("i", 0.0, "t1"),
            issue("j", 0.0, "t2"),
            present("p1", 10.0, "t1"),
            revoke("r", 20.0, Some("t1")),
            present("p2", 21.0, "t2"),
        ];
        assert!(run(&only("revoked_token_use"), &events).is_empty());
    }

    #[test]
    fn a_revoke_arriving_late_still_covers_later_presentations() {
        let events = [
            issue("i", 0.0, "t1"),
            present("p1", 30.0, "t1"),
            revoke("r", 10.0, Some("t1")),
        ];
        // The revoke itself reports the use it missed; the next one is a repeat.
        let alerts = run(&only("revoked_token_use"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["r"]);
        let mut more = events.to_vec();
        more.push(present("p2", 31.0, "t1"));
        assert_eq!(run(&only("revoked_token_use"), &more).len(), 1);
    }
}
