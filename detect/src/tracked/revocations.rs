//! The revocations seen: of single tokens, and of every token of a principal issued
//! before a time. `revoked_token_use` (a revoked token presented) and `validation_gap`
//! (a revoked token allowed) both need to know whether a presentation's token was
//! revoked, so the engine looks it up once per presentation and hands both the verdict
//! (`Facts::revoked`); it records each `token_revoke` once, after the detectors saw it,
//! and keeps the table while either runs.
//!
//! Revokes of single tokens are keyed by token in a table of their own rather than in
//! the token table: revokes of tokens never seen (issued before detection started) would
//! otherwise each take a whole token entry.

use authtrail_model::{Event, Micros};
use serde::{Deserialize, Serialize};

use super::TokenFacts;
use crate::detector::Facts;
use crate::state::id::EventId;
use crate::state::{KeyedState, TableStats};

/// Revoke-all events kept per principal; older ones are covered by newer ones for every
/// presentation after the newest.
const REVOKES_PER_PRINCIPAL: usize = 4;

/// One `token_revoke`: when, and its event id (the alert's evidence).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Revoke {
    pub time: Micros,
    pub id: EventId,
}

/// Which revocation covers a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    /// A `token_revoke` naming the token.
    Token,
    /// A `token_revoke` of every token its principal was issued before it.
    Principal,
}

/// The revoke that had ended a presentation's token by the time it was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Event time of the revoke.
    pub time: Micros,
    /// The revoke's event id (the alerts' evidence).
    pub id: EventId,
    pub by: RevokedBy,
}

impl Revoked {
    fn new(revoke: &Revoke, by: RevokedBy) -> Self {
        Revoked {
            time: revoke.time,
            id: revoke.id.clone(),
            by,
        }
    }
}

/// The revocations, by token and by principal, each kept `ttl` after the revoke.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Revocations {
    #[serde(skip)]
    ttl: Micros,
    /// Revokes of one token, by token: the earliest, which ended it.
    tokens: KeyedState<Revoke>,
    /// Revokes of all tokens of a principal, by principal, oldest first.
    principals: KeyedState<Vec<Revoke>>,
}

impl Revocations {
    pub fn new(ttl: Micros, max_keys: usize) -> Self {
        Revocations {
            ttl,
            tokens: KeyedState::new(max_keys),
            principals: KeyedState::new(max_keys),
        }
    }

    /// Restores `saved` under this config's `ttl` and cap.
    pub fn restored(self, saved: Revocations, max_keys: usize) -> Self {
        Revocations {
            ttl: self.ttl,
            tokens: saved.tokens.with_cap(max_keys),
            principals: saved.principals.with_cap(max_keys),
        }
    }

    /// Takes in a `token_revoke`.
    pub fn record(&mut self, event: &Event<'_>, facts: &Facts) {
        let revoke = Revoke {
            time: event.time,
            id: EventId::new(&event.id),
        };
        let keep = event.time + self.ttl;
        match facts.token {
            Some(token) => {
                let init = || revoke.clone();
                let slot = self.tokens.upsert(token, facts.now, keep, init);
                // The first revoke is the one that ended the token.
                if revoke.time < slot.value.time {
                    slot.value = revoke;
                }
            }
            None => {
                let slot = self
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

    /// The revoke that ended `token` before `time`, if one did: a revoke of the token,
    /// or of every token of its owner (its issue's principal, else `presenter`) issued
    /// before the revoke. `facts` is what is known of the token; without any, it cannot
    /// be known to have existed before a revoke of all its owner's tokens.
    pub fn covering(
        &self,
        time: Micros,
        token: u64,
        facts: Option<&TokenFacts>,
        presenter: u64,
    ) -> Option<Revoked> {
        if let Some(revoke) = self.tokens.get(token).filter(|r| r.time < time) {
            return Some(Revoked::new(revoke, RevokedBy::Token));
        }
        let facts = facts?;
        let revokes = self.principals.get(facts.issued_to.unwrap_or(presenter))?;
        let covering = revokes
            .iter()
            .find(|r| r.time < time && facts.issued_at < r.time)?;
        Some(Revoked::new(covering, RevokedBy::Principal))
    }

    pub fn sweep(&mut self, now: Micros) {
        self.tokens.sweep(now);
        self.principals.sweep(now);
    }

    pub fn stats(&self) -> TableStats {
        let (tokens, principals) = (self.tokens.stats(), self.principals.stats());
        TableStats {
            live_keys: tokens.live_keys + principals.live_keys,
            expired: tokens.expired + principals.expired,
            evicted: tokens.evicted + principals.evicted,
        }
    }
}
