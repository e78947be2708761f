//! `revoked_token_use`: a token presented after a `token_revoke` of it, after a revoke
//! of every token its principal was issued before that revoke, or after its expiry plus
//! a skew.

use std::time::Duration;

use authtrail_model::time::format_micros;
use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use super::{decode, encode};
use crate::config::{default_suppression, micros};
use crate::detector::{Context, Detector, Facts};
use crate::state::id::EventId;
use crate::state::{KeyedState, TableStats};
use crate::tracked::is_presentation;
use crate::Result;

/// Revoke-all events kept per principal; older ones are covered by newer ones for every
/// presentation after the newest.
const REVOKES_PER_PRINCIPAL: usize = 4;

/// `revoked_token_use`: a revoked or expired token still in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevokedTokenUseConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Clock skew allowed past a token's expiry.
    #[serde(with = "humantime_serde")]
    pub skew: Duration,
    /// How long a revoke is remembered.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revoke {
    time: Micros,
    id: EventId,
}

pub(crate) struct RevokedTokenUse {
    skew: Micros,
    ttl: Micros,
    state: State,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// Revokes of one token, by token.
    tokens: KeyedState<Revoke>,
    /// Revokes of all tokens of a principal, by principal, oldest first.
    principals: KeyedState<Vec<Revoke>>,
}

impl RevokedTokenUse {
    pub fn new(config: &RevokedTokenUseConfig, max_keys: usize) -> Self {
        RevokedTokenUse {
            skew: micros(config.skew),
            ttl: micros(config.revocation_ttl),
            state: State {
                tokens: KeyedState::new(max_keys),
                principals: KeyedState::new(max_keys),
            },
        }
    }

    fn revoke(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let facts = cx.facts;
        let revoke = Revoke {
            time: event.time,
            id: EventId::new(&event.id),
        };
        let keep = event.time + self.ttl;
        match facts.token {
            Some(token) => {
                self.late_revoke(event, cx);
                let init = || revoke.clone();
                let slot = self.state.tokens.upsert(token, facts.now, keep, init);
                // The first revoke is the one that ended the token.
                if revoke.time < slot.value.time {
                    slot.value = revoke;
                }
            }
            None => {
                let slot = self
                    .state
                    .principals
                    .upsert(facts.principal, facts.now, keep, Vec::new);
                let revokes = &mut slot.value;
                let at = revokes.partition_point(|r| r.time <= revoke.time);
                revokes.insert(at, revoke);
                if revokes.len() > REVOKES_PER_PRINCIPAL {
                    revokes.remove(0);
                }
            }
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
    fn violation(&self, event: &Event<'_>, facts: &Facts) -> Option<(Option<String>, String)> {
        let time = event.time;
        let token = facts.token?;
        if let Some(revoke) = self.state.tokens.get(token).filter(|r| r.time < time) {
            let when = format_micros(revoke.time);
            return Some((
                Some(revoke.id.to_string()),
                format!("after its revoke at {when}"),
            ));
        }
        if let Some(token_facts) = facts.token_facts {
            let owner = token_facts.issued_to.unwrap_or(facts.principal);
            let revokes = self.state.principals.get(owner).map(Vec::as_slice);
            let covering = revokes
                .unwrap_or_default()
                .iter()
                .find(|r| r.time < time && token_facts.issued_at < r.time);
            if let Some(revoke) = covering {
                let when = format_micros(revoke.time);
                let reason = format!("after all tokens of its principal were revoked at {when}");
                return Some((Some(revoke.id.to_string()), reason));
            }
        }
        let expires = event
            .token_expires
            .or(facts.token_facts.and_then(|t| t.expires))?;
        (time > expires + self.skew).then(|| {
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
            self.revoke(event, cx);
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

    fn sweep(&mut self, now: Micros) {
        self.state.tokens.sweep(now);
        self.state.principals.sweep(now);
    }

    fn stats(&self) -> TableStats {
        let (tokens, principals) = (self.state.tokens.stats(), self.state.principals.stats());
        TableStats {
            live_keys: tokens.live_keys + principals.live_keys,
            expired: tokens.expired + principals.expired,
            evicted: tokens.evicted + principals.evicted,
        }
    }

    fn save(&self) -> Vec<u8> {
        encode(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<()> {
        let saved: State = decode(state)?;
        self.state = State {
            tokens: saved.tokens.with_cap(self.state.tokens.cap()),
            principals: saved.principals.with_cap(self.state.principals.cap()),
        };
        Ok(())
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
