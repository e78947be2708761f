//! Presentations of tokens whose issue has not been seen yet, kept until the issue
//! arrives or can no longer arrive in time (`token_replay`'s other-principal check and
//! `audience_mismatch` judge a presentation against its token's issue; `validation_gap`
//! judges an allowed one "never issued" once no issue can come).
//!
//! The issue is on the owner's partition and a presentation by another principal on
//! that principal's, and catching up on a backlog one partition can be read long before
//! the other; within one partition an issue may arrive after a presentation within the
//! allowed lateness. Without these records such a presentation found no issue and was
//! never judged. Each detector keeps its own (disabled, it keeps nothing) and judges
//! them when the token's `token_issue` is read, raising what it would have raised had
//! the events been read in time order: the finding carries the presentation's fields,
//! key and evidence, so the alert and its id are the same.
//!
//! A record is kept while an issue earlier than it could still arrive without being
//! late: an issue is late when it is more than the lateness behind its own source's
//! watermark, and every active source's watermark is at least the clock, so once the
//! clock is more than the lateness past a presentation no issue before it can come
//! (bar a source that idled or is new, which expiry ignores everywhere). In a single
//! stream read in time order a record thus lives the allowed lateness (30 s) of event
//! time; on a backlog it lives until the slowest partition has caught up.
//!
//! Bounded: one record per token and presenter (or target), at most `PER_TOKEN` per
//! token (the earliest goes first, counted as evicted) and at most `max_keys /
//! PER_TOKEN` tokens (at the cap the soonest-expiring tokens' records are evicted and
//! counted), so at most `max_keys` records.

use std::net::IpAddr;

use authtrail_model::{Event, Kind, Micros};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::detector::{Context, Facts, Finding, Rule};
use crate::state::id::EventId;
use crate::state::part::PartCounts;
use crate::state::{Parts, PartsState, TableStats};
use crate::Result;

/// The kinds a detector that judges presentations against their token's issue takes:
/// the presentations and the issue.
pub(crate) const PRESENTATIONS_AND_ISSUES: &[Kind] = &[Kind::Authz, Kind::Authn, Kind::TokenIssue];

/// Records kept per token: presenters (or targets) of one token before its issue.
pub(crate) const PER_TOKEN: usize = 8;

/// What a detector keeps of a presentation whose token it has not seen issued.
pub(crate) trait Held {
    /// Whether a record no issue can come for any more is judged (taken out by
    /// [`Unissued::due`] at a sweep) rather than forgotten wherever it is found (a sweep,
    /// the lazy one when its token gets a record, making room at the cap).
    const JUDGED_WHEN_DUE: bool = false;
    /// The presentation's event time.
    fn time(&self) -> Micros;
    /// What one record per token is kept for besides the token (a hash): the presenter,
    /// the target, the deciding service.
    fn key(&self) -> u64;
    /// The finding the presentation completes, under the detector's `key` and `summary`.
    fn finding(&self, rule: &Rule, token_id: &str, key: String, summary: String) -> Finding;
}

/// One presentation of a token not yet seen issued: what its finding needs
/// (`token_replay`, `audience_mismatch`; `validation_gap` keeps one in each decision it
/// holds, so every held record makes its finding here).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Presentation {
    pub time: Micros,
    /// Hash of what the detector keys on besides the token: the presenter
    /// (`token_replay`) or the target (`audience_mismatch`).
    pub key: u64,
    pub id: EventId,
    pub principal: Box<str>,
    pub target: Option<Box<str>>,
    pub source_ip: Option<IpAddr>,
}

impl Presentation {
    pub fn new(event: &Event<'_>, key: u64) -> Self {
        Presentation {
            time: event.time,
            key,
            id: EventId::new(&event.id),
            principal: (*event.principal).into(),
            target: event.target_service.as_deref().map(Into::into),
            source_ip: event.source_ip,
        }
    }
}

impl Held for Presentation {
    fn time(&self) -> Micros {
        self.time
    }

    fn key(&self) -> u64 {
        self.key
    }

    /// The finding the presentation would have completed in time order.
    fn finding(&self, rule: &Rule, token_id: &str, key: String, summary: String) -> Finding {
        Finding {
            key,
            severity: rule.severity,
            time: self.time,
            principal: self.principal.to_string(),
            token_id: Some(token_id.to_owned()),
            source_ip: self.source_ip,
            target_service: self.target.as_deref().map(str::to_owned),
            summary,
            evidence_ids: vec![self.id.to_string()],
            attack_technique: rule.attack_technique,
        }
    }
}

/// The records of one token.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pending<R> {
    presentations: SmallVec<[R; 1]>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Pending {
            presentations: SmallVec::new(),
        }
    }
}

impl<R: Held> Parts for Pending<R> {
    type Counts = PartCounts;

    /// Its earliest record goes when the clock passes it by the lateness (sweeps are
    /// given the clock less the lateness).
    fn next_expiry(&self) -> Micros {
        let times = self.presentations.iter().map(Held::time);
        times.min().unwrap_or(Micros::MIN)
    }

    fn sweep(&mut self, now: Micros, counts: &mut PartCounts) -> bool {
        let presentations = &mut self.presentations;
        // Records to be judged leave through `due` (or are evicted at the cap, counted),
        // never dropped unjudged here (a sweep to make room at the cap, a new record).
        if R::JUDGED_WHEN_DUE {
            return !presentations.is_empty();
        }
        let before = presentations.len();
        presentations.retain(|p| p.time() >= now);
        let gone = before - presentations.len();
        counts.live -= gone;
        counts.expired += gone as u64;
        !presentations.is_empty()
    }

    fn latest(&self) -> Micros {
        let times = self.presentations.iter().map(Held::time);
        times.max().unwrap_or(Micros::MIN)
    }

    fn evicted(&self, counts: &mut PartCounts) {
        counts.live -= self.presentations.len();
        counts.evicted += self.presentations.len() as u64;
    }
}

/// One detector's presentations of tokens whose issue it has not seen.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Unissued<R = Presentation> {
    pending: PartsState<Pending<R>>,
    counts: PartCounts,
}

impl Unissued<Presentation> {
    /// Keeps `event`, a presentation keyed on `key` besides its token, when its token's
    /// issue has not been seen and one before it can still arrive without being late.
    // Inlined: called on every presentation, and almost every token's issue was seen.
    #[inline]
    pub fn note(&mut self, event: &Event<'_>, facts: &Facts, key: u64, lateness: Micros) {
        self.keep(event.time, facts, key, lateness, || {
            Presentation::new(event, key)
        });
    }
}

impl<R: Held + Serialize + DeserializeOwned> Unissued<R> {
    /// Keeps at most `max_keys` records (see the module doc).
    pub fn new(max_keys: usize) -> Self {
        Unissued {
            pending: PartsState::new(Self::tokens(max_keys)),
            counts: PartCounts::default(),
        }
    }

    fn tokens(max_keys: usize) -> usize {
        (max_keys / PER_TOKEN).max(1)
    }

    /// Keeps the record `make` gives of a presentation at `time`, keyed on `key` besides
    /// its token, when its token's issue has not been seen and one before it can still
    /// arrive without being late.
    #[inline]
    pub fn keep(
        &mut self,
        time: Micros,
        facts: &Facts,
        key: u64,
        lateness: Micros,
        make: impl FnOnce() -> R,
    ) {
        let issued = facts.token_facts.is_some_and(|t| t.issued_to.is_some());
        let horizon = facts.now - lateness;
        let Some(token) = facts.token else {
            return;
        };
        if issued || time < horizon {
            return;
        }
        self.record(time, token, key, horizon, make);
    }

    fn record(
        &mut self,
        time: Micros,
        token: u64,
        key: u64,
        horizon: Micros,
        make: impl FnOnce() -> R,
    ) {
        let counts = &mut self.counts;
        let pending = self
            .pending
            .upsert(token, horizon, Pending::default, counts);
        // Drop what can no longer be judged first (lazily, between sweeps).
        if pending.next_expiry() < horizon {
            pending.sweep(horizon, counts);
        }
        let presentations = &mut pending.presentations;
        match presentations.iter_mut().find(|p| p.key() == key) {
            // The earliest is the one a time-ordered run raises on (later ones are its
            // suppressed repeats, bar one past the suppression period: see README).
            Some(kept) if kept.time() <= time => {}
            Some(kept) => *kept = make(),
            None => {
                if presentations.len() >= PER_TOKEN {
                    let first = (0..presentations.len()).min_by_key(|&i| presentations[i].time());
                    presentations.swap_remove(first.expect("full"));
                    counts.live -= 1;
                    counts.evicted += 1;
                }
                presentations.push(make());
                counts.live += 1;
            }
        }
    }

    /// The records of `token`, whose issue is being read, oldest first: forgotten here,
    /// judged by the caller. Those older than the issue are left out: in time order they
    /// saw no issue.
    fn issued(&mut self, token: u64, issued_at: Micros) -> Vec<R> {
        let Some(pending) = self.pending.take(token) else {
            return Vec::new();
        };
        self.counts.live -= pending.presentations.len();
        let mut presentations = pending.presentations.into_vec();
        presentations.retain(|p| p.time() >= issued_at);
        presentations.sort_by_key(Held::time);
        presentations
    }

    /// `event`, the issue of a token: the records of the token, read before it, raise
    /// what they would have raised in time order, each the finding whose key and summary
    /// `judge` gives it (none when it gives none). A late issue raises nothing, as for a
    /// presentation read after it (the presentation would not have been late for its own
    /// source, but windows and facts skip the late issue's time).
    // Inlined for its first test: on every issue, and nearly always nothing is kept.
    #[inline]
    pub fn judge_at_issue(
        &mut self,
        event: &Event<'_>,
        cx: &mut Context<'_>,
        judge: impl Fn(&str, &R) -> Option<(String, String)>,
    ) {
        if self.counts.live == 0 {
            return;
        }
        self.judge_records_at_issue(event, cx, judge);
    }

    fn judge_records_at_issue(
        &mut self,
        event: &Event<'_>,
        cx: &mut Context<'_>,
        judge: impl Fn(&str, &R) -> Option<(String, String)>,
    ) {
        let Some(token) = cx.facts.token else {
            return;
        };
        let presentations = self.issued(token, event.time);
        if cx.facts.late {
            return;
        }
        let token_id = event.token_id.as_deref().unwrap_or_default();
        for presentation in presentations {
            if let Some((key, summary)) = judge(token_id, &presentation) {
                let finding = presentation.finding(cx.rule, token_id, key, summary);
                cx.findings.push(finding);
            }
        }
    }

    /// Forgets the records no issue can come for any more (`horizon`: the clock less
    /// the lateness).
    pub fn sweep(&mut self, horizon: Micros) {
        self.pending.sweep(horizon, &mut self.counts);
    }

    /// Takes out the records no issue can come for any more (`horizon`: the clock less
    /// the lateness), oldest first, for the caller to judge; counted as expired.
    pub fn due(&mut self, horizon: Micros) -> Vec<R> {
        let mut due = Vec::new();
        if self.counts.live == 0 {
            return due;
        }
        for pending in self.pending.values_mut() {
            if pending.next_expiry() >= horizon {
                continue;
            }
            let presentations = &mut pending.presentations;
            let mut at = 0;
            while at < presentations.len() {
                if presentations[at].time() < horizon {
                    due.push(presentations.swap_remove(at));
                } else {
                    at += 1;
                }
            }
        }
        self.counts.live -= due.len();
        self.counts.expired += due.len() as u64;
        // The tokens left without records go (nothing left in them to count).
        self.pending.sweep(horizon, &mut self.counts);
        due.sort_by_key(Held::time);
        due
    }

    /// Live records and their removals.
    pub fn stats(&self) -> TableStats {
        self.counts.stats()
    }

    pub fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("detector state always encodes")
    }

    /// Empty bytes (a checkpoint written before these records existed) hold none. The
    /// cap stays this one's, from the config.
    pub fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let cap = self.pending.cap();
        if bytes.is_empty() {
            *self = Unissued {
                pending: PartsState::new(cap),
                counts: PartCounts::default(),
            };
            return Ok(());
        }
        let saved: Unissued<R> = postcard::from_bytes(bytes)?;
        let mut counts = saved.counts;
        // Counted from what was restored, so bytes that disagree cannot make the count
        // underflow later.
        let records = saved.pending.values().map(|p| p.presentations.len());
        counts.live = records.sum();
        *self = Unissued {
            pending: saved.pending.with_cap(cap),
            counts,
        };
        Ok(())
    }
}

#[cfg(test)]
#[path = "unissued_tests.rs"]
mod tests;
