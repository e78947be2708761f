//! `token_replay`: one token presented by a principal other than the one it was issued
//! to, or straight from clients at at least N distinct source IPs within W.
//!
//! Only presentations without `source_service` count towards the addresses: a token
//! relayed by internal services naturally arrives from their pod addresses.

use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use super::show;
use crate::config::default_suppression;
use crate::detector::{Context, Detector, Finding, Rule};
use crate::state::id::EventId;
use crate::state::window::{self, Entries, Span};
use crate::state::TableStats;
use crate::tracked::{is_presentation, Unissued};
use crate::Result;

/// `token_replay`: a token used by someone else or from many places.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenReplayConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Distinct client source IPs (N) one token is presented from.
    pub min_source_ips: usize,
    /// Window (W) the presentations fall in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub severity: Severity,
    /// Repeats for the same token within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for TokenReplayConfig {
    fn default() -> Self {
        TokenReplayConfig {
            enabled: true,
            min_source_ips: 3,
            window: Duration::from_secs(600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

/// The latest client presentation from one address. Kept in the token's entry of the
/// shared token table (`TokenEntry::replay`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Sighting {
    ip: u64,
    id: EventId,
}

pub(crate) struct TokenReplay {
    config: TokenReplayConfig,
    span: Span,
    /// Presentations (one per token and presenter) whose token's issue is not seen yet.
    unissued: Unissued,
}

impl TokenReplay {
    pub fn new(config: &TokenReplayConfig, span: Span, max_keys: usize) -> Self {
        TokenReplay {
            config: config.clone(),
            span,
            unissued: Unissued::new(max_keys),
        }
    }

    fn foreign_principal(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let facts = cx.facts;
        let Some(owner) = facts.token_facts.and_then(|token| token.issued_to) else {
            // Judged when the issue is read, if it still can be.
            let lateness = self.span.lateness;
            self.unissued.note(event, facts, facts.principal, lateness);
            return;
        };
        if owner == facts.principal {
            return;
        }
        let token_id = event.token_id.as_deref().unwrap_or_default();
        let (key, summary) = Self::describe(token_id, &event.principal);
        let evidence = vec![event.id.to_string()];
        cx.findings
            .push(cx.rule.finding(event, key, summary, evidence));
    }

    /// The key and summary of a presentation by `principal` other than the owner.
    fn describe(token_id: &str, principal: &str) -> (String, String) {
        let summary = format!(
            "token {token_id} presented by {principal}, not the principal it was issued to"
        );
        (format!("{token_id} by {principal}"), summary)
    }

    /// The token's issue: the presentations read before it by other principals (at or
    /// after its time) raise what they would have in time order.
    fn issued(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let owner = cx.facts.principal;
        self.unissued
            .judge_at_issue(event, cx, |token_id, presentation| {
                let foreign = presentation.key != owner;
                foreign.then(|| Self::describe(token_id, &presentation.principal))
            });
    }

    fn many_addresses(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let facts = cx.facts;
        let (Some(entry), Some(ip)) = (cx.shared.token.as_deref_mut(), facts.source_ip) else {
            return;
        };
        if event.source_service.is_some() || facts.late {
            return;
        }
        let time = event.time;
        // Per token: one entry per distinct client address, at its latest presentation.
        let sightings = entry.replay.touch(time + self.span.width);
        window::prune(sightings, self.span.horizon(facts.now));
        // One entry per address, at its latest use, keeps a busy client's token small.
        let seen = sightings.iter().position(|s| s.item.ip == ip);
        if seen.is_some_and(|seen| sightings[seen].time >= time) {
            return;
        }
        let sighting = Sighting {
            ip,
            id: EventId::new(&event.id),
        };
        let at = match seen {
            Some(seen) => window::replace(sightings, seen, time, sighting),
            None => window::insert(sightings, time, sighting),
        };
        let n = self.config.min_source_ips;
        let Some(range) = self
            .span
            .find_or_trim(sightings, at, n, |w| w.len() >= n, |_| ())
        else {
            return;
        };
        let evidence = sightings[range.clone()]
            .iter()
            .map(|s| s.item.id.to_string());
        let evidence = evidence.collect();
        sightings.drop_front(range.end);
        let token_id = event.token_id.as_deref().unwrap_or_default();
        let summary = format!(
            "token {token_id} presented from {} client addresses within {}",
            range.len(),
            show(self.config.window)
        );
        cx.findings.push(
            cx.rule
                .finding(event, token_id.to_owned(), summary, evidence),
        );
    }
}

impl Detector for TokenReplay {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if event.kind == Kind::TokenIssue {
            self.issued(event, cx);
        } else if is_presentation(event) {
            self.foreign_principal(event, cx);
            self.many_addresses(event, cx);
        }
    }

    fn sweep(&mut self, now: Micros, _: &Rule, _: &mut Vec<Finding>) {
        self.unissued.sweep(now);
    }

    fn stats(&self) -> TableStats {
        // The sightings are a part of the shared token table; the engine adds them here.
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

    fn issue(principal: &str) -> Event<'static> {
        let mut issue = event("i", 0.0, Kind::TokenIssue, principal);
        issue.token_id = text("jti-1");
        issue
    }

    fn present(id: &str, seconds: f64, principal: &str, ip: &str) -> Event<'static> {
        let mut event = authz(id, seconds, principal, "payments", true);
        event.token_id = text("jti-1");
        event.source_ip = Some(ip.parse().unwrap());
        event
    }

    #[test]
    fn fires_when_another_principal_presents_the_token() {
        let events = [
            issue("user:alice"),
            present("p1", 1.0, "user:alice", "203.0.113.7"),
            present("p2", 2.0, "user:mallory", "203.0.113.7"),
        ];
        let alerts = run(&only("token_replay"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].principal, "user:mallory");
        assert_eq!(alerts[0].token_id.as_deref(), Some("jti-1"));
        assert_eq!(alerts[0].evidence_ids, ["p2"]);
    }

    #[test]
    fn fires_on_three_client_addresses_within_ten_minutes() {
        let events = [
            present("p1", 0.0, "user:alice", "203.0.113.7"),
            present("p2", 100.0, "user:alice", "198.51.100.1"),
            present("p3", 600.0, "user:alice", "192.0.2.44"),
        ];
        let alerts = run(&only("token_replay"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["p1", "p2", "p3"]);
    }

    #[test]
    fn silent_on_two_addresses_or_three_spread_past_the_window() {
        let two = [
            present("p1", 0.0, "user:alice", "203.0.113.7"),
            present("p2", 1.0, "user:alice", "198.51.100.1"),
            present("p3", 2.0, "user:alice", "203.0.113.7"),
        ];
        assert!(run(&only("token_replay"), &two).is_empty());
        let spread = [
            present("p1", 0.0, "user:alice", "203.0.113.7"),
            present("p2", 100.0, "user:alice", "198.51.100.1"),
            present("p3", 601.0, "user:alice", "192.0.2.44"),
        ];
        assert!(run(&only("token_replay"), &spread).is_empty());
    }

    #[test]
    fn silent_for_a_token_relayed_by_internal_services_from_pod_addresses() {
        let mut events = vec![
            issue("user:alice"),
            present("c", 0.0, "user:alice", "203.0.113.7"),
        ];
        for (i, pod) in ["10.4.0.12", "10.4.0.13", "10.4.1.7", "10.4.2.9"]
            .iter()
            .enumerate()
        {
            let mut relayed = present(&format!("r{i}"), 1.0 + i as f64, "user:alice", pod);
            relayed.source_service = text("checkout");
            events.push(relayed);
        }
        assert!(run(&only("token_replay"), &events).is_empty());
    }

    #[test]
    fn silent_for_two_pods_behind_one_egress_address() {
        let events: Vec<_> = (0..10)
            .map(|i| present(&format!("p{i}"), i as f64, "svc:checkout", "192.0.2.1"))
            .collect();
        let mut with_issue = vec![issue("svc:checkout")];
        with_issue.extend(events);
        assert!(run(&only("token_replay"), &with_issue).is_empty());
    }
}
