//! `validation_gap`: a service allowed (`authz` allow) a token that at that moment was
//! revoked, expired beyond the skew, issued for another audience, or never issued by an
//! issuer authtrail sees. The finding is about the deciding service, whose validation is
//! broken: keyed on the service and the kind of gap, not on the caller.
//!
//! It keeps no token state of its own: issues, expiries and audiences come from the
//! shared token table, revokes from the shared revocations. Its own state is what judging
//! "never issued" needs: when it started, the longest token lifetime seen, and the
//! issuers seen issuing.

use std::time::Duration;

use authtrail_model::time::format_micros;
use authtrail_model::{Event, Kind, Micros, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::{decode, encode, show};
use crate::config::{default_suppression, micros};
use crate::detector::{Context, Detector};
use crate::tracked::{Audience, RevokedBy};
use crate::Result;

/// Issuers remembered; past it no new issuer is added (a deployment has a handful), so a
/// flood of made-up issuers in `token_issue` events cannot grow the state.
const MAX_ISSUERS: usize = 64;

/// `validation_gap`: a service accepted a token it should have rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationGapConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Clock skew a service may allow past a token's expiry.
    #[serde(with = "humantime_serde")]
    pub skew: Duration,
    /// Tokens never seen issued are judged only this long after the detector's first
    /// event, or longer: at least the longest token lifetime seen in an issue plus the
    /// skew, so a token issued before authtrail started has expired by then.
    #[serde(with = "humantime_serde")]
    pub warm_up: Duration,
    pub severity: Severity,
    /// Repeats for the same service and kind of gap within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for ValidationGapConfig {
    fn default() -> Self {
        ValidationGapConfig {
            enabled: true,
            skew: Duration::from_secs(60),
            warm_up: Duration::from_secs(3_600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

/// What the service should have rejected the token for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    Revoked,
    Expired,
    Audience,
    Unissued,
}

impl Gap {
    /// The name in alert keys (`payments expired`).
    fn as_str(self) -> &'static str {
        match self {
            Gap::Revoked => "revoked",
            Gap::Expired => "expired",
            Gap::Audience => "audience",
            Gap::Unissued => "unissued",
        }
    }
}

/// What judging "never issued" needs; checkpointed.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// Event time of the first event the detector took; `None` before it.
    started: Option<Micros>,
    /// The longest `token_expires - time` of the issues seen.
    longest_lifetime: Micros,
    /// `token_issuer` of the issues seen (issues without one leave it out).
    issuers: Vec<Box<str>>,
    /// Whether any issue was seen: a deployment whose IdP reports no issues has no
    /// token authtrail could know was never issued.
    issues_seen: bool,
}

pub(crate) struct ValidationGap {
    skew: Micros,
    warm_up: Micros,
    state: State,
}

impl ValidationGap {
    pub fn new(config: &ValidationGapConfig) -> Self {
        ValidationGap {
            skew: micros(config.skew),
            warm_up: micros(config.warm_up),
            state: State {
                started: None,
                longest_lifetime: 0,
                issuers: Vec::new(),
                issues_seen: false,
            },
        }
    }

    fn issued(&mut self, event: &Event<'_>) {
        let state = &mut self.state;
        state.issues_seen = true;
        if let Some(expires) = event.token_expires {
            state.longest_lifetime = state.longest_lifetime.max(expires - event.time);
        }
        if let Some(issuer) = event.token_issuer.as_deref() {
            let known = state.issuers.iter().any(|seen| **seen == *issuer);
            if !known && state.issuers.len() < MAX_ISSUERS {
                state.issuers.push(issuer.into());
            }
        }
    }

    /// Whether a token authtrail never saw issued can be judged at `time`: its issuer is
    /// one authtrail sees issuing (or it names none and some issuer reports issues), and
    /// the warm-up is over, so it cannot be a token issued before authtrail started.
    fn judges_unissued(&self, event: &Event<'_>) -> bool {
        let state = &self.state;
        let Some(started) = state.started else {
            return false;
        };
        let known_issuer = match event.token_issuer.as_deref() {
            Some(issuer) => state.issuers.iter().any(|seen| **seen == *issuer),
            None => state.issues_seen,
        };
        let warm_up = self.warm_up.max(state.longest_lifetime + self.skew);
        known_issuer && event.time - started > warm_up
    }

    /// The gap the allowed presentation shows, why, and the revoke's id when one
    /// ended the token. The checks a service can make on the token alone (audience,
    /// expiry) come first, then the revocation it must look up, then whether the token
    /// exists at all: the alert names the most basic check the service skipped.
    fn gap(&self, event: &Event<'_>, cx: &Context<'_>) -> Option<(Gap, String, Option<String>)> {
        let (time, facts) = (event.time, cx.facts);
        let token = facts.token_facts;
        if token.map(|t| t.audience) == Some(Audience::Excludes) {
            return Some((
                Gap::Audience,
                "was issued for another audience".into(),
                None,
            ));
        }
        let expires = event.token_expires.or(token.and_then(|t| t.expires));
        if let Some(expires) = expires.filter(|&expires| time > expires + self.skew) {
            let why = format!("expired at {}", format_micros(expires));
            return Some((Gap::Expired, why, None));
        }
        if let Some((revoke, by)) = cx.shared.revocations.and_then(|r| r.covering(time, facts)) {
            let when = format_micros(revoke.time);
            let why = match by {
                RevokedBy::Token => format!("was revoked at {when}"),
                RevokedBy::Principal => {
                    format!("was issued before all tokens of its principal were revoked at {when}")
                }
            };
            return Some((Gap::Revoked, why, Some(revoke.id.to_string())));
        }
        let issued = token.is_some_and(|t| t.issued_to.is_some());
        if !issued && self.judges_unissued(event) {
            let why = format!(
                "was never issued (judged {} after the first event seen)",
                show(Duration::from_micros((time - self.state.started?) as u64))
            );
            return Some((Gap::Unissued, why, None));
        }
        None
    }
}

impl Detector for ValidationGap {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if self.state.started.is_none() {
            self.state.started = Some(event.time);
        }
        if event.kind == Kind::TokenIssue {
            self.issued(event);
            return;
        }
        // A service that denied the token validated it; tokenless calls are not this
        // detector's to judge (no token, nothing to validate).
        let Some(token_id) = event.token_id.as_deref() else {
            return;
        };
        if event.outcome != Some(Outcome::Allow) {
            return;
        }
        let Some((gap, why, revoke_id)) = self.gap(event, cx) else {
            return;
        };
        let service = event
            .target_service
            .as_deref()
            .or(event.service.as_deref())
            .unwrap_or("(unnamed service)");
        let key = format!("{service} {}", gap.as_str());
        let summary = format!(
            "{service} allowed {} with token {token_id}, which {why}",
            event.principal
        );
        let mut evidence: Vec<String> = revoke_id.into_iter().collect();
        evidence.push(event.id.to_string());
        cx.findings
            .push(cx.rule.finding(event, key, summary, evidence));
    }

    fn save(&self) -> Vec<u8> {
        encode(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<()> {
        self.state = decode(state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{at, authz, event, only, run, text};
    use crate::DetectConfig;

    const HOUR: f64 = 3_600.0;

    fn config(skew: u64) -> DetectConfig {
        let mut config = only("validation_gap");
        config.validation_gap.skew = Duration::from_secs(skew);
        config
    }

    fn issue(id: &str, seconds: f64, token: &str, audience: &[&str]) -> Event<'static> {
        let mut issue = event(id, seconds, Kind::TokenIssue, "svc:checkout");
        issue.token_id = text(token);
        issue.token_issuer = text("https://idp");
        issue.token_expires = Some(at(seconds + 900.0));
        issue.token_audience = Some(audience.iter().map(|a| (*a).to_owned().into()).collect());
        issue
    }

    fn call(id: &str, seconds: f64, token: &str, target: &str, allow: bool) -> Event<'static> {
        let mut event = authz(id, seconds, "svc:checkout", target, allow);
        event.token_id = text(token);
        event
    }

    fn revoke(id: &str, seconds: f64, token: &str) -> Event<'static> {
        let mut revoke = event(id, seconds, Kind::TokenRevoke, "svc:checkout");
        revoke.token_id = text(token);
        revoke
    }

    fn keys(events: &[Event<'static>], config: &DetectConfig) -> Vec<String> {
        run(config, events).into_iter().map(|a| a.key).collect()
    }

    #[test]
    fn fires_on_a_revoked_token_allowed_and_names_the_service() {
        let events = [
            issue("i", 0.0, "t1", &["payments"]),
            revoke("r", 10.0, "t1"),
            call("p", 20.0, "t1", "payments", true),
        ];
        let alerts = run(&config(30), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "payments revoked");
        assert_eq!(alerts[0].evidence_ids, ["r", "p"]);
        assert_eq!(alerts[0].attack_technique, "T1550");
        assert!(alerts[0]
            .summary
            .starts_with("payments allowed svc:checkout"));
    }

    #[test]
    fn fires_on_an_expired_token_past_the_skew_only() {
        // Expires at 900 s; skew 30 s.
        let inside = [
            issue("i", 0.0, "t1", &["payments"]),
            call("p", 910.0, "t1", "payments", true),
        ];
        assert!(keys(&inside, &config(30)).is_empty());
        let past = [
            issue("i", 0.0, "t1", &["payments"]),
            call("p", 931.0, "t1", "payments", true),
        ];
        assert_eq!(keys(&past, &config(30)), ["payments expired"]);
    }

    #[test]
    fn fires_on_a_token_for_another_audience() {
        let events = [
            issue("i", 0.0, "t1", &["payments"]),
            call("p", 5.0, "t1", "ledger", true),
        ];
        assert_eq!(keys(&events, &config(30)), ["ledger audience"]);
    }

    #[test]
    fn fires_on_a_token_never_issued_once_warmed_up() {
        let mut events = vec![issue("i", 0.0, "t1", &["payments"])];
        // Within the warm-up (1 h by default): a token issued before authtrail started.
        events.push(call("early", 0.5 * HOUR, "forged", "payments", true));
        assert!(keys(&events, &config(30)).is_empty());
        events.push(call("late", 2.0 * HOUR, "forged", "payments", true));
        let alerts = run(&config(30), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "payments unissued");
        assert_eq!(alerts[0].evidence_ids, ["late"]);
    }

    #[test]
    fn the_warm_up_is_longer_than_the_longest_lifetime_seen() {
        let mut long = issue("i", 0.0, "t1", &["payments"]);
        long.token_expires = Some(at(3.0 * HOUR));
        let events = [long, call("p", 2.0 * HOUR, "forged", "payments", true)];
        assert!(keys(&events, &config(30)).is_empty());
    }

    #[test]
    fn silent_on_unissued_tokens_of_issuers_it_does_not_see() {
        let mut foreign = call("p", 2.0 * HOUR, "other", "payments", true);
        foreign.token_issuer = text("https://partner-idp");
        let events = [issue("i", 0.0, "t1", &["payments"]), foreign];
        assert!(keys(&events, &config(30)).is_empty());
        // With no issue seen at all, no token can be known never to have been issued.
        let events = [
            call("a", 0.0, "t0", "payments", true),
            call("b", 2.0 * HOUR, "t9", "payments", true),
        ];
        assert!(keys(&events, &config(30)).is_empty());
    }

    #[test]
    fn silent_when_the_service_denied_the_token() {
        let events = [
            issue("i", 0.0, "t1", &["payments"]),
            revoke("r", 10.0, "t1"),
            call("revoked", 20.0, "t1", "payments", false),
            call("audience", 30.0, "t1", "ledger", false),
            call("expired", 2_000.0, "t1", "payments", false),
            call("forged", 2.0 * HOUR, "forged", "payments", false),
        ];
        assert!(keys(&events, &config(30)).is_empty());
    }

    #[test]
    fn one_alert_per_service_and_gap_whoever_the_callers() {
        let mut events = vec![issue("i", 0.0, "t1", &["payments"])];
        for (n, caller) in ["svc:a", "svc:b", "svc:c"].into_iter().enumerate() {
            let mut call = call(&format!("p{n}"), 10.0 + n as f64, "t1", "ledger", true);
            call.principal = caller.to_owned().into();
            events.push(call);
        }
        assert_eq!(keys(&events, &config(30)), ["ledger audience"]);
    }

    #[test]
    fn state_survives_a_checkpoint() {
        let mut detectors = crate::Detectors::new(&config(30)).unwrap();
        let first = [issue("i", 0.0, "t1", &["payments"])];
        crate::detectors::testkit::feed(&mut detectors, &first);
        let restored = crate::Detectors::restore(&config(30), &detectors.checkpoint());
        let mut restored = restored.unwrap();
        let later = [call("p", 2.0 * HOUR, "forged", "payments", true)];
        let alerts = crate::detectors::testkit::feed(&mut restored, &later);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "payments unissued");
    }
}
