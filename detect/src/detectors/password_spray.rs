//! `password_spray`: one source IP fails `authn` against at least N distinct principals
//! within W: few guesses each, many accounts.

use std::time::Duration;

use authtrail_model::{Event, Micros, Outcome, Severity};
use serde::{Deserialize, Serialize};

use super::{decode, encode, show};
use crate::config::default_suppression;
use crate::detector::{Context, Detector, Finding, Rule};
use crate::state::id::EventId;
use crate::state::packed::{self, Bytes, Pack, Packed};
use crate::state::window::{self, Entries, Span, Timed};
use crate::state::{KeyedState, TableStats};
use crate::Result;

/// `password_spray`: one address failing against many principals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSprayConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Distinct principals (N) one address fails against.
    pub min_principals: usize,
    /// Window (W) the failures fall in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub severity: Severity,
    /// Repeats for the same source IP within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for PasswordSprayConfig {
    fn default() -> Self {
        PasswordSprayConfig {
            enabled: true,
            min_principals: 10,
            window: Duration::from_secs(600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Attempt {
    principal: u64,
    id: EventId,
}

impl Pack for Attempt {
    fn pack(&self, before: &[Timed<Attempt>], out: &mut Bytes) {
        packed::pack_keyed(self.principal, &self.id, before, |a| a.principal, out);
    }

    fn unpack(input: &mut &[u8], before: &[Timed<Attempt>]) -> Self {
        let (principal, id) = packed::unpack_keyed(input, before, |a: &Attempt| a.principal);
        Attempt { principal, id }
    }
}

pub(crate) struct PasswordSpray {
    config: PasswordSprayConfig,
    span: Span,
    /// Failures per source IP (most failing addresses hold several: see `Packed`).
    sources: KeyedState<Packed<Attempt>>,
}

impl PasswordSpray {
    pub fn new(config: &PasswordSprayConfig, span: Span, max_keys: usize) -> Self {
        PasswordSpray {
            config: config.clone(),
            span,
            sources: KeyedState::new(max_keys),
        }
    }
}

impl Detector for PasswordSpray {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        if event.outcome != Some(Outcome::Failure) || cx.facts.late {
            return;
        }
        let (Some(source), Some(ip)) = (cx.facts.source_ip, event.source_ip) else {
            return;
        };
        let time = event.time;
        let keep = time + self.span.width;
        let slot = self.sources.upsert(source, cx.facts.now, keep, Packed::new);
        let horizon = self.span.horizon(cx.facts.now);
        let n = self.config.min_principals;
        let evidence = slot.value.edit(|attempts| {
            if attempts.iter().any(|a| a.item.id.is(&event.id)) {
                return None;
            }
            window::prune(attempts, horizon);
            let attempt = Attempt {
                principal: cx.facts.principal,
                id: EventId::new(&event.id),
            };
            let at = window::insert(attempts, time, attempt);
            let hit = |w: &[Timed<Attempt>]| window::distinct(w, |a| a.principal) >= n;
            // A user retrying from a shared address must not push other principals out.
            let range = self
                .span
                .find_or_trim(attempts, at, n, hit, |a| a.principal)?;
            let evidence = attempts[range.clone()]
                .iter()
                .map(|a| a.item.id.to_string());
            let evidence: Vec<String> = evidence.collect();
            attempts.drop_front(range.end);
            Some(evidence)
        });
        let Some(evidence) = evidence else {
            return;
        };
        let summary = format!(
            "{ip} failed authn against {n} principals within {}",
            show(self.config.window)
        );
        cx.findings
            .push(cx.rule.finding(event, ip.to_string(), summary, evidence));
    }

    fn sweep(&mut self, now: Micros, _: &Rule, _: &mut Vec<Finding>) {
        self.sources.sweep(now);
    }

    fn stats(&self) -> TableStats {
        self.sources.stats()
    }

    fn save(&self) -> Vec<u8> {
        encode(&self.sources)
    }

    fn load(&mut self, state: &[u8]) -> Result<()> {
        let saved: KeyedState<Packed<Attempt>> = decode(state)?;
        self.sources = saved.with_cap(self.sources.cap());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::detectors::testkit::{authn, only, run};
    use authtrail_model::Event;

    fn spray(principals: usize, every: f64, ip: &str) -> Vec<Event<'static>> {
        (0..principals)
            .map(|i| {
                let mut event = authn(
                    &format!("s{i}"),
                    i as f64 * every,
                    &format!("user:u{i}"),
                    false,
                    "password",
                );
                event.source_ip = Some(ip.parse().unwrap());
                event
            })
            .collect()
    }

    #[test]
    fn fires_on_one_address_failing_against_ten_principals() {
        let alerts = run(&only("password_spray"), &spray(10, 5.0, "198.51.100.9"));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].source_ip, Some("198.51.100.9".parse().unwrap()));
        assert_eq!(alerts[0].key, "198.51.100.9");
        assert_eq!(alerts[0].evidence_ids.len(), 10);
        assert_eq!(alerts[0].attack_technique, "T1110.003");
    }

    #[test]
    fn silent_at_nine_principals() {
        assert!(run(&only("password_spray"), &spray(9, 5.0, "198.51.100.9")).is_empty());
    }

    #[test]
    fn silent_when_spread_past_ten_minutes() {
        assert!(run(&only("password_spray"), &spray(10, 66.7, "198.51.100.9")).is_empty());
        assert_eq!(
            run(&only("password_spray"), &spray(10, 66.6, "198.51.100.9")).len(),
            1
        );
    }

    #[test]
    fn one_principal_failing_often_is_not_a_spray() {
        let events: Vec<_> = spray(20, 1.0, "198.51.100.9")
            .into_iter()
            .map(|mut e| {
                e.principal = "user:alice".into();
                e
            })
            .collect();
        assert!(run(&only("password_spray"), &events).is_empty());
    }

    #[test]
    fn failures_from_different_addresses_do_not_add_up() {
        let mut events = spray(5, 1.0, "198.51.100.9");
        events.extend(spray(10, 1.0, "198.51.100.10").into_iter().skip(5));
        assert!(run(&only("password_spray"), &events).is_empty());
    }
}
