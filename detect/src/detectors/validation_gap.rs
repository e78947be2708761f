//! `validation_gap`: a service allowed (`authz` allow) a token that at that moment was
//! revoked, expired beyond the skew, issued for another audience, or never issued by an
//! issuer authtrail sees. The finding is about the deciding service, whose validation is
//! broken: keyed on the service and the kind of gap, not on the caller.
//!
//! Issues, expiries and audiences come from the shared token table, and whether the
//! token was revoked from the engine's one lookup per presentation (`Facts::revoked`).
//! Its own state is what judging "never issued" needs: when it started, the longest
//! token lifetime seen, the issuers seen issuing, and the allowed presentations of
//! tokens not seen issued, held until no issue can arrive in time (see `Unissued`):
//! on a backlog the issue may lie on a partition read later. An issue read meanwhile
//! ends the hold (and judges the presentation's audience and expiry against it, as in
//! time order); past the allowed lateness behind every active source, the sweep judges
//! the presentation never issued.

use std::time::Duration;

use authtrail_model::time::format_micros;
use authtrail_model::{Event, Kind, Micros, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::show;
use crate::config::{default_suppression, micros};
use crate::detector::{Context, Detector, Facts, Finding, Rule};
use crate::state::TableStats;
use crate::tracked::{Audience, Held, Presentation, RevokedBy, Unissued};
use crate::Result;

/// Issuers remembered; past it no new issuer is added (a deployment has a handful), so a
/// flood of made-up issuers in `token_issue` events cannot grow the state.
const MAX_ISSUERS: usize = 64;

/// Names the service in keys and summaries when the decision names none.
const UNNAMED: &str = "(unnamed service)";

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

/// An allowed presentation of a token not seen issued, held until its issue is read or
/// can no longer come: what its finding needs.
#[derive(Debug, Serialize, Deserialize)]
struct Allowed {
    /// The decision, keyed on the deciding service (`target_service`, which a parsed
    /// `authz` names whenever it names a `service`): one record per token and service.
    /// Its finding is made as the other token detectors' are.
    decision: Presentation,
    token_id: Box<str>,
    /// The decision carried its own `token_expires` (not past the skew, or it would have
    /// been judged `expired` at once), which an issue's expiry does not override.
    expiry_known: bool,
    /// The warm-up was over at the decision: should no issue come, the token was never
    /// issued. (Held during the warm-up too, so an issue read later still judges its
    /// audience and expiry.)
    after_warm_up: bool,
}

impl Held for Allowed {
    const JUDGED_WHEN_DUE: bool = true;

    fn time(&self) -> Micros {
        self.decision.time
    }

    fn key(&self) -> u64 {
        self.decision.key
    }

    fn finding(&self, rule: &Rule, token_id: &str, key: String, summary: String) -> Finding {
        self.decision.finding(rule, token_id, key, summary)
    }
}

impl Allowed {
    fn new(event: &Event<'_>, token_id: &str, service_key: u64, after_warm_up: bool) -> Self {
        Allowed {
            decision: Presentation::new(event, service_key),
            token_id: token_id.into(),
            expiry_known: event.token_expires.is_some(),
            after_warm_up,
        }
    }

    fn service(&self) -> &str {
        self.decision.target.as_deref().unwrap_or(UNNAMED)
    }
}

pub(crate) struct ValidationGap {
    skew: Micros,
    warm_up: Micros,
    lateness: Micros,
    state: State,
    /// Allowed presentations of tokens not seen issued (one per token and service).
    held: Unissued<Allowed>,
}

impl ValidationGap {
    pub fn new(config: &ValidationGapConfig, lateness: Micros, max_keys: usize) -> Self {
        ValidationGap {
            skew: micros(config.skew),
            warm_up: micros(config.warm_up),
            lateness,
            state: State {
                started: None,
                longest_lifetime: 0,
                issuers: Vec::new(),
                issues_seen: false,
            },
            held: Unissued::new(max_keys),
        }
    }

    /// A `token_issue`: learns its lifetime and issuer, and judges the presentations
    /// held for the token (those at or after the issue's time) against it.
    fn issued(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
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
        // As the token table records it: no audience, or an empty one, covers anything.
        let audience = event.token_audience.as_deref().unwrap_or_default();
        let expires = event.token_expires;
        let skew = self.skew;
        self.held.judge_at_issue(event, cx, |token_id, allowed| {
            let service = allowed.service();
            let (gap, why) = if !audience.is_empty() && !audience.iter().any(|a| **a == *service) {
                (Gap::Audience, "was issued for another audience".to_owned())
            } else {
                let expires = expires
                    .filter(|&e| !allowed.expiry_known && allowed.decision.time > e + skew)?;
                (
                    Gap::Expired,
                    format!("expired at {}", format_micros(expires)),
                )
            };
            Some(describe(
                service,
                &allowed.decision.principal,
                token_id,
                gap,
                &why,
            ))
        });
    }

    /// Whether the token's issuer is one authtrail sees issuing (or it names none and
    /// some issuer reports issues): only then can it know the token was never issued.
    fn known_issuer(&self, event: &Event<'_>) -> bool {
        let state = &self.state;
        match event.token_issuer.as_deref() {
            Some(issuer) => state.issuers.iter().any(|seen| **seen == *issuer),
            None => state.issues_seen,
        }
    }

    /// Whether the warm-up is over at `event`: a token authtrail never saw issued cannot
    /// be one issued before it started.
    fn after_warm_up(&self, event: &Event<'_>, started: Micros) -> bool {
        let warm_up = self.warm_up.max(self.state.longest_lifetime + self.skew);
        event.time - started > warm_up
    }

    /// The gap the allowed presentation shows, if any. The checks a service can make on
    /// the token alone (audience, expiry) come first, then the revocation it must look
    /// up, then whether the token exists at all: the alert names the most basic check
    /// the service skipped. `Unissued` is provisional: no issue of the token has been
    /// seen from an issuer authtrail sees, and the presentation is held (below).
    // Inlined: on every allowed presentation, and nearly always `None`.
    #[inline]
    fn gap(&self, event: &Event<'_>, facts: &Facts) -> Option<Gap> {
        let token = facts.token_facts;
        if token.is_some_and(|t| t.audience == Audience::Excludes) {
            return Some(Gap::Audience);
        }
        if self.expires(event, facts).is_some() {
            return Some(Gap::Expired);
        }
        if facts.revoked.is_some() {
            return Some(Gap::Revoked);
        }
        let issued = token.is_some_and(|t| t.issued_to.is_some());
        (!issued && self.known_issuer(event)).then_some(Gap::Unissued)
    }

    /// The token's expiry, when the presentation is past it by more than the skew.
    #[inline]
    fn expires(&self, event: &Event<'_>, facts: &Facts) -> Option<Micros> {
        let expires = event
            .token_expires
            .or(facts.token_facts.and_then(|t| t.expires))?;
        (event.time > expires + self.skew).then_some(expires)
    }

    /// Raises `gap` (not `Unissued`) for the allowed presentation `event`.
    #[cold]
    fn raise(&self, gap: Gap, event: &Event<'_>, token_id: &str, cx: &mut Context<'_>) {
        let mut evidence = Vec::with_capacity(2);
        let why = match gap {
            Gap::Audience => "was issued for another audience".to_owned(),
            Gap::Expired => {
                let expires = self.expires(event, cx.facts).unwrap_or_default();
                format!("expired at {}", format_micros(expires))
            }
            Gap::Revoked => {
                let revoked = cx.facts.revoked.as_ref().expect("judged revoked");
                let when = format_micros(revoked.time);
                evidence.push(revoked.id.to_string());
                match revoked.by {
                    RevokedBy::Token => format!("was revoked at {when}"),
                    RevokedBy::Principal => format!(
                        "was issued before all tokens of its principal were revoked at {when}"
                    ),
                }
            }
            Gap::Unissued => unreachable!("held, judged at the sweep"),
        };
        let service = deciding_service(event);
        let (key, summary) = describe(service, &event.principal, token_id, gap, &why);
        evidence.push(event.id.to_string());
        cx.findings
            .push(cx.rule.finding(event, key, summary, evidence));
    }

    /// Holds an allowed presentation of a token not seen issued, until its issue is
    /// read or can no longer arrive in time.
    #[cold]
    fn hold(&mut self, event: &Event<'_>, token_id: &str, facts: &Facts, started: Micros) {
        // Keyed on the service: one alert per service and gap, whoever the caller.
        let service_key = facts.target.unwrap_or_default();
        let after_warm_up = self.after_warm_up(event, started);
        let make = || Allowed::new(event, token_id, service_key, after_warm_up);
        self.held
            .keep(event.time, facts, service_key, self.lateness, make);
    }
}

/// The service that decided: the target of the `authz`, else the service reporting it.
fn deciding_service<'e>(event: &'e Event<'_>) -> &'e str {
    let service = event.target_service.as_deref().or(event.service.as_deref());
    service.unwrap_or(UNNAMED)
}

/// The key (`<service> <gap>`) and summary of a finding.
fn describe(
    service: &str,
    principal: &str,
    token_id: &str,
    gap: Gap,
    why: &str,
) -> (String, String) {
    let key = format!("{service} {}", gap.as_str());
    let summary = format!("{service} allowed {principal} with token {token_id}, which {why}");
    (key, summary)
}

impl Detector for ValidationGap {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let started = *self.state.started.get_or_insert(event.time);
        if event.kind == Kind::TokenIssue {
            self.issued(event, cx);
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
        match self.gap(event, cx.facts) {
            None => {}
            Some(Gap::Unissued) => self.hold(event, token_id, cx.facts, started),
            Some(gap) => self.raise(gap, event, token_id, cx),
        }
    }

    /// Judges the held presentations no issue can arrive for any more: never issued.
    fn sweep(&mut self, now: Micros, rule: &Rule, findings: &mut Vec<Finding>) {
        let started = self.state.started.unwrap_or(Micros::MAX);
        let due = self.held.due(now).into_iter();
        for allowed in due.filter(|allowed| allowed.after_warm_up) {
            let since = Duration::from_micros((allowed.decision.time - started).max(0) as u64);
            let why = format!(
                "was never issued (judged {} after the first event seen)",
                show(since)
            );
            let (service, token_id) = (allowed.service(), &*allowed.token_id);
            let (key, summary) = describe(
                service,
                &allowed.decision.principal,
                token_id,
                Gap::Unissued,
                &why,
            );
            findings.push(allowed.finding(rule, token_id, key, summary));
        }
    }

    fn stats(&self) -> TableStats {
        // The held presentations; the token facts are the shared `tokens` table's.
        self.held.stats()
    }

    /// The state, then the held presentations (none in a checkpoint written before
    /// they were kept, which reads as such).
    fn save(&self) -> Vec<u8> {
        let mut bytes = postcard::to_allocvec(&self.state).expect("detector state always encodes");
        bytes.extend(self.held.save());
        bytes
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let (state, held) = postcard::take_from_bytes::<State>(bytes)?;
        self.state = state;
        self.held.load(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{
        at, authn, authz, event, feed, feed_from, only, run, table, text,
    };
    use crate::{DetectConfig, Detectors};
    use authtrail_model::Alert;

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

    /// An event of nobody involved, moving its source's watermark to `seconds`.
    fn filler(seconds: f64) -> Event<'static> {
        let id = format!("x{seconds}");
        authn(&id, seconds, "user:zed", true, "password")
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
        // Webhooks that revoke or disable take it only when asked for it by name.
        assert!(alerts[0].is_about_a_service());
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
    fn fires_on_a_token_never_issued_once_warmed_up_and_no_issue_can_come() {
        let mut events = vec![issue("i", 0.0, "t1", &["payments"])];
        // Within the warm-up (1 h by default): a token issued before authtrail started.
        events.push(call("early", 0.5 * HOUR, "forged", "payments", true));
        events.push(filler(0.5 * HOUR + 60.0));
        assert!(keys(&events, &config(30)).is_empty());
        // Held while an issue could still arrive without being late (30 s), judged at
        // the next sweep (every 5 s) after that.
        events.push(call("late", 2.0 * HOUR, "forged", "payments", true));
        events.push(filler(2.0 * HOUR + 30.0));
        assert!(keys(&events, &config(30)).is_empty());
        events.push(filler(2.0 * HOUR + 36.0));
        let alerts = run(&config(30), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "payments unissued");
        assert_eq!(alerts[0].evidence_ids, ["late"]);
        assert_eq!(alerts[0].time, at(2.0 * HOUR));
        assert_eq!(alerts[0].token_id.as_deref(), Some("forged"));
        assert_eq!(alerts[0].target_service.as_deref(), Some("payments"));
    }

    #[test]
    fn the_warm_up_is_longer_than_the_longest_lifetime_seen() {
        let mut long = issue("i", 0.0, "t1", &["payments"]);
        long.token_expires = Some(at(3.0 * HOUR));
        let forged = call("p", 2.0 * HOUR, "forged", "payments", true);
        let events = [long.clone(), forged.clone(), filler(2.0 * HOUR + 60.0)];
        assert!(keys(&events, &config(30)).is_empty());
        // The same decision after the longest lifetime and the skew: judged.
        let mut after = forged;
        after.time = at(3.0 * HOUR + 31.0);
        let events = [long, after, filler(3.0 * HOUR + 91.0)];
        assert_eq!(keys(&events, &config(30)), ["payments unissued"]);
    }

    #[test]
    fn silent_on_unissued_tokens_of_issuers_it_does_not_see() {
        let mut foreign = call("p", 2.0 * HOUR, "other", "payments", true);
        foreign.token_issuer = text("https://partner-idp");
        let mut known = foreign.clone();
        known.token_issuer = text("https://idp");
        let end = filler(2.0 * HOUR + 60.0);
        let seen = issue("i", 0.0, "t1", &["payments"]);
        let events = [seen.clone(), foreign, end.clone()];
        assert!(keys(&events, &config(30)).is_empty());
        let events = [seen, known, end.clone()];
        assert_eq!(keys(&events, &config(30)), ["payments unissued"]);
        // With no issue seen at all, no token can be known never to have been issued.
        let events = [
            call("a", 0.0, "t0", "payments", true),
            call("b", 2.0 * HOUR, "t9", "payments", true),
            end,
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
    fn state_and_held_decisions_survive_a_checkpoint() {
        let config = config(30);
        let mut detectors = Detectors::new(&config).unwrap();
        let first = [
            issue("i", 0.0, "t1", &["payments"]),
            call("p", 2.0 * HOUR, "forged", "payments", true),
        ];
        assert!(feed(&mut detectors, &first).is_empty());
        assert_eq!(table(&detectors, "validation_gap").live_keys, 1);
        let mut restored = Detectors::restore(&config, &detectors.checkpoint()).unwrap();
        assert_eq!(table(&restored, "validation_gap").live_keys, 1);
        let alerts = feed(&mut restored, &[filler(2.0 * HOUR + 60.0)]);
        let mut in_order = first.to_vec();
        in_order.push(filler(2.0 * HOUR + 60.0));
        assert_eq!(alerts, run(&config, &in_order));
        assert_eq!(alerts[0].key, "payments unissued");
    }

    #[test]
    fn detector_bytes_of_a_checkpoint_before_held_decisions_restore_with_none() {
        // What the detector saved before it held decisions: its state alone.
        let mut detector = ValidationGap::new(&ValidationGapConfig::default(), 0, 1_000);
        detector.state.started = Some(at(0.0));
        let earlier = postcard::to_allocvec(&detector.state).unwrap();
        let mut restored = ValidationGap::new(&ValidationGapConfig::default(), 0, 1_000);
        restored.load(&earlier).unwrap();
        assert_eq!(restored.state.started, Some(at(0.0)));
        assert_eq!(restored.stats(), TableStats::default());
        assert!(restored.load(&[]).is_err());
        // And a build that read the state alone reads it from today's bytes.
        let forged = call("p", 10.0, "forged", "payments", true);
        let facts = Facts {
            now: forged.time,
            token: Some(1),
            ..Facts::default()
        };
        let make = || Allowed::new(&forged, "forged", 7, true);
        detector.held.keep(forged.time, &facts, 7, 0, make);
        assert_eq!(detector.stats().live_keys, 1);
        let bytes = detector.save();
        let state: State = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(state.started, Some(at(0.0)));
        restored.load(&bytes).unwrap();
        assert_eq!(restored.stats().live_keys, 1);
    }

    /// The token's issue (and its owner's other events) on partition 0, the decision on
    /// partition 1, read an hour ahead: the backlog case.
    fn backlog(decision: Event<'static>, issue_: Option<Event<'static>>) -> Vec<Alert> {
        let mut detectors = Detectors::new(&config(30)).unwrap();
        let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
        let end = decision.time as f64 / 1e6 - at(0.0) as f64 / 1e6 + HOUR;
        let mut alerts = feed_from(&mut detectors, p0, &[issue("i0", 0.0, "t0", &["x"])]);
        alerts.extend(feed_from(&mut detectors, p1, &[decision, filler(end)]));
        // Partition 0 still holds the clock at 0 s: nothing judged yet.
        assert!(alerts.is_empty());
        let mut rest: Vec<_> = issue_.into_iter().collect();
        rest.push(filler(end));
        alerts.extend(feed_from(&mut detectors, p0, &rest));
        assert_eq!(table(&detectors, "validation_gap").live_keys, 0);
        alerts
    }

    #[test]
    fn silent_when_the_issue_is_read_after_the_decision_on_another_partition() {
        let decision = call("p", 2.0 * HOUR, "t1", "payments", true);
        let issued = issue("i1", 2.0 * HOUR - 10.0, "t1", &["payments"]);
        assert!(backlog(decision.clone(), Some(issued.clone())).is_empty());
        // As in time order.
        let in_order = [issue("i0", 0.0, "t0", &["x"]), issued, decision];
        assert!(keys(&in_order, &config(30)).is_empty());
    }

    #[test]
    fn fires_on_a_token_never_issued_once_every_partition_passed_the_decision() {
        let decision = call("p", 2.0 * HOUR, "forged", "payments", true);
        let alerts = backlog(decision.clone(), None);
        let end = filler(3.0 * HOUR);
        let in_order = run(
            &config(30),
            &[issue("i0", 0.0, "t0", &["x"]), decision, end],
        );
        assert_eq!(in_order.len(), 1);
        assert_eq!(alerts, in_order);
        assert_eq!(alerts[0].key, "payments unissued");
    }

    #[test]
    fn an_issue_read_after_the_decision_judges_its_audience_and_expiry_as_in_time_order() {
        // Within the warm-up too: the decision is held until its issue is read.
        for at_seconds in [600.0, 2.0 * HOUR] {
            let outside = call("p", at_seconds, "t1", "ledger", true);
            let issued = issue("i1", at_seconds - 10.0, "t1", &["payments"]);
            let alerts = backlog(outside.clone(), Some(issued.clone()));
            let in_order = [issue("i0", 0.0, "t0", &["x"]), issued, outside];
            assert_eq!(alerts, run(&config(30), &in_order));
            assert_eq!(alerts.len(), 1);
            assert_eq!(alerts[0].key, "ledger audience");
        }
        // Expires 900 s after its issue; presented 1,000 s after, past the 30 s skew.
        let late = call("p", 2.0 * HOUR, "t1", "payments", true);
        let issued = issue("i1", 2.0 * HOUR - 1_000.0, "t1", &["payments"]);
        let alerts = backlog(late.clone(), Some(issued.clone()));
        let in_order = [issue("i0", 0.0, "t0", &["x"]), issued, late];
        assert_eq!(alerts, run(&config(30), &in_order));
        assert_eq!(alerts[0].key, "payments expired");
    }

    #[test]
    fn held_decisions_are_bounded_and_at_the_cap_evicted_and_counted_not_dropped() {
        // Room for one token's held decisions (`max_keys / 8`).
        let mut config = config(30);
        config.max_keys = 8;
        let mut detectors = Detectors::new(&config).unwrap();
        let events = [
            issue("i", 0.0, "t1", &["payments"]),
            call("p", 2.0 * HOUR, "forged-1", "payments", true),
            // Past due, not yet judged (no sweep since): its token makes room.
            call("q", 2.0 * HOUR + 31.0, "forged-2", "ledger", true),
            filler(2.0 * HOUR + 90.0),
        ];
        let alerts = feed(&mut detectors, &events);
        let keys: Vec<_> = alerts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["ledger unissued"]);
        let stats = table(&detectors, "validation_gap");
        assert_eq!((stats.live_keys, stats.expired, stats.evicted), (0, 1, 1));
    }

    #[test]
    fn held_decisions_are_one_per_token_and_service_and_counted_when_judged() {
        let mut detectors = Detectors::new(&config(30)).unwrap();
        let mut events = vec![issue("i", 0.0, "t1", &["payments"])];
        for (n, caller) in ["svc:a", "svc:b"].into_iter().enumerate() {
            let mut call = call(
                &format!("p{n}"),
                2.0 * HOUR + n as f64,
                "forged",
                "payments",
                true,
            );
            call.principal = caller.to_owned().into();
            events.push(call);
        }
        events.push(call("q", 2.0 * HOUR, "forged", "ledger", true));
        feed(&mut detectors, &events);
        assert_eq!(table(&detectors, "validation_gap").live_keys, 2);
        let alerts = feed(&mut detectors, &[filler(2.0 * HOUR + 60.0)]);
        let keys: Vec<_> = alerts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["payments unissued", "ledger unissued"]);
        assert_eq!(alerts[0].evidence_ids, ["p0"]);
        let stats = table(&detectors, "validation_gap");
        assert_eq!((stats.live_keys, stats.expired, stats.evicted), (0, 2, 0));
    }
}
