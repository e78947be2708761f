//! The `Detector` trait and what flows through it: per-event facts in, findings out.

use std::net::IpAddr;
use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Severity};

use crate::config::micros;
use crate::state::TableStats;
use crate::tracked::{EdgeFact, PrincipalEntry, Revoked, TokenEntry, TokenFacts};
use crate::Result;

/// What the engine works out once per event and hands to every detector, so each does
/// not hash the same strings or look up the same shared tables again.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The clock state lives on: the oldest watermark (newest event time) of the active
    /// sources, this event's included, so never ahead of this event's source. Windows
    /// forget and tables expire by it; it can step back when a lagging source resumes.
    pub now: Micros,
    /// Older than the allowed lateness behind its source's watermark: windowed state
    /// must not take it in any more.
    pub late: bool,
    /// Hash of `principal`.
    pub principal: u64,
    /// Hash of `token_id`.
    pub token: Option<u64>,
    /// Hash of `source_ip`.
    pub source_ip: Option<u64>,
    /// Hash of `target_service`.
    pub target: Option<u64>,
    /// For an `authz` event with a target: whether the edge is new (the baseline shared
    /// by `new_service_edge` and `service_fan_out`), as it was before this event.
    pub edge: Option<EdgeFact>,
    /// For an event with a `token_id`: what is known of the token before this event.
    pub token_facts: Option<TokenFacts>,
    /// For a presentation (`authz` or `authn` with a `token_id`), when the revocations
    /// are kept: the revoke that had ended its token, looked up once for
    /// `revoked_token_use` and `validation_gap`.
    pub revoked: Option<Revoked>,
}

/// State that several detectors keep on the event's keys, looked up once by the engine
/// for all of them (one hash probe per key and event instead of one per detector).
#[derive(Default)]
pub struct Shared<'a> {
    /// The entry of the event's token, when it carries one and a token detector runs.
    pub(crate) token: Option<&'a mut TokenEntry>,
    /// The entry of the event's principal, for an `authn` or `authz` event.
    pub(crate) principal: Option<&'a mut PrincipalEntry>,
}

/// A pattern a detector saw complete; the engine turns it into an alert (id,
/// suppression).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What state and suppression are keyed on, readable (`user:alice`, a token id).
    pub key: String,
    pub severity: Severity,
    /// Event time of the completing event.
    pub time: Micros,
    pub principal: String,
    pub token_id: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub target_service: Option<String>,
    pub summary: String,
    /// Ids of the evidence events, oldest first.
    pub evidence_ids: Vec<String>,
    pub attack_technique: &'static str,
}

/// What every detector declares the same way: the name alerts and config use, the kinds
/// of event it takes, how long repeats of its alerts are suppressed, and the severity and
/// ATT&CK technique its findings carry. The engine keeps it beside the detector (see
/// `detectors::build`) and hands it over in the [`Context`].
#[derive(Debug, Clone)]
pub struct Rule {
    /// The name alerts and config use (`brute_force`).
    pub name: &'static str,
    /// The kinds of event the detector takes; the engine calls it for these only (ten
    /// virtual calls per event cost more than some detectors' whole work), so `observe`
    /// need not check the kind when it takes one.
    pub kinds: &'static [Kind],
    /// How long repeats of an alert for one key are suppressed, in microseconds.
    pub suppression: Micros,
    /// The severity of its findings, unless a finding says otherwise.
    pub severity: Severity,
    pub attack_technique: &'static str,
}

impl Rule {
    pub fn new(
        name: &'static str,
        kinds: &'static [Kind],
        attack_technique: &'static str,
        severity: Severity,
        suppression: Duration,
    ) -> Self {
        Rule {
            name,
            kinds,
            suppression: micros(suppression),
            severity,
            attack_technique,
        }
    }

    /// A finding completed by `event`, carrying its principal, token, IP and target.
    pub fn finding(
        &self,
        event: &Event<'_>,
        key: String,
        summary: String,
        evidence_ids: Vec<String>,
    ) -> Finding {
        Finding {
            key,
            severity: self.severity,
            time: event.time,
            principal: event.principal.to_string(),
            token_id: event.token_id.as_deref().map(str::to_owned),
            source_ip: event.source_ip,
            target_service: event.target_service.as_deref().map(str::to_owned),
            summary,
            evidence_ids,
            attack_technique: self.attack_technique,
        }
    }
}

/// What the engine hands a detector with each event besides the event itself.
pub struct Context<'a> {
    /// The detector's rule, which its findings carry the technique and severity of.
    pub rule: &'a Rule,
    /// What the engine worked out for the event once for every detector.
    pub facts: &'a Facts,
    /// The entries of the event's token and principal in the shared tables.
    pub shared: Shared<'a>,
    /// Where the detector pushes the findings the event completes.
    pub findings: &'a mut Vec<Finding>,
}

/// One detector: keyed, bounded state on event time that turns events into findings.
///
/// Object safe, so the engine holds `Box<dyn Detector>`; state crosses restarts as
/// opaque bytes from [`save`](Detector::save).
pub trait Detector: Send {
    /// Takes in one event; pushes the findings it completes to `cx.findings`.
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>);
    // The four below default to a detector with no state of its own: most keep theirs
    // in the tables the engine shares among detectors (the edge baseline, a part of a
    // token's or principal's entry), which the engine sweeps, counts and checkpoints.

    /// Forgets state that expired before `now`. A detector that holds events until
    /// nothing read later could change its verdict on them (`validation_gap`'s tokens
    /// never seen issued) judges those that `now` passed, pushing the findings with its
    /// `rule` to `findings`.
    fn sweep(&mut self, _now: Micros, _rule: &Rule, _findings: &mut Vec<Finding>) {}
    /// Live keys and removals of the detector's own state (the engine adds its part of
    /// a shared table).
    fn stats(&self) -> TableStats {
        TableStats::default()
    }
    /// The detector's state, for a checkpoint; empty bytes when it has none of its own.
    fn save(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Replaces the state with one from [`save`](Detector::save).
    fn load(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }
}
