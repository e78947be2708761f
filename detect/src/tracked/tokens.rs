//! What is known of each token: who it was issued to, when, until when, and for which
//! audience (read by `token_replay`, `revoked_token_use` and `audience_mismatch`), and
//! in the same entry `token_replay`'s client addresses: one probe per presentation for
//! both. Each part expires and is counted on its own, as its own table would be.
//!
//! `revoked_token_use` keeps its revokes of single tokens in a table of its own: revokes
//! of tokens never seen (issued before detection started) would otherwise each take a
//! whole token entry, and its 40-byte slots in a table of a few MiB stay in cache.

use authtrail_model::{Event, Kind, Micros};
use serde::{Deserialize, Serialize};

use super::audiences::{AudienceId, Audiences, NONE};
use crate::detectors::Sighting;
use crate::error::Error;
use crate::state::hash::KeyHasher;
use crate::state::part::{Part, PartCounts};
use crate::state::window::Slim;
use crate::state::{Parts, PartsState, TableStats};

/// Whether the token's audience, as recorded at issue, covers the event's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audience {
    /// No audience recorded, or the event names no target.
    #[default]
    Unknown,
    Covers,
    Excludes,
}

/// What is known of a token before the current event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFacts {
    /// Hash of the principal it was issued to, when its `token_issue` was seen.
    pub issued_to: Option<u64>,
    /// Its issue time, or when it was first seen if the issue was not (it existed then).
    pub issued_at: Micros,
    pub expires: Option<Micros>,
    /// Time of its latest presentation, if any was seen.
    pub last_presented: Option<Micros>,
    pub audience: Audience,
}

/// Whether an event presents a token: an `authz` or `authn` carrying a `token_id`.
pub(crate) fn is_presentation(event: &Event<'_>) -> bool {
    matches!(event.kind, Kind::Authz | Kind::Authn) && event.token_id.is_some()
}

const UNKNOWN: u64 = 0;
/// Stands for "none" in the time fields of `TokenState` (an `Option` would add 8 bytes
/// to each of hundreds of thousands of tokens).
const NEVER: Micros = Micros::MIN;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenState {
    issued_to: u64,
    issued_at: Micros,
    /// `NEVER` when the issue carried no expiry (or was not seen).
    expires: Micros,
    /// `NEVER` until presented; lets a revoke that arrives late see it was used.
    last_presented: Micros,
    /// The audience as recorded at issue, interned in the table's `Audiences` (a
    /// token spent 32 bytes on three inline hashes; `NONE` when none was recorded).
    audience: AudienceId,
}

impl TokenState {
    fn first_seen(time: Micros) -> Self {
        TokenState {
            issued_to: UNKNOWN,
            issued_at: time,
            expires: NEVER,
            last_presented: NEVER,
            audience: NONE,
        }
    }
}

/// Everything kept on one token: two parts, each with its own expiry, from which the
/// table reads when a sweep has something to do with the token (see `Parts`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TokenEntry {
    facts: Part<TokenState>,
    /// `token_replay`: one entry per distinct client address, at its latest presentation.
    pub replay: Part<Slim<Sighting>>,
}

impl TokenEntry {
    fn live(&self) -> [bool; 2] {
        [self.facts.is_live(), self.replay.is_live()]
    }

    fn untils(&self) -> [Micros; 2] {
        [self.facts.until(), self.replay.until()]
    }
}

// One sighting in the size of one (a token is mostly presented by one client).
const _: () = assert!(std::mem::size_of::<Slim<Sighting>>() == 32);

/// Per-part counts: `tokens` (the facts) and `token_replay`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenCounts {
    pub facts: PartCounts,
    pub replay: PartCounts,
}

impl Parts for TokenEntry {
    type Counts = TokenCounts;

    fn next_expiry(&self) -> Micros {
        crate::state::part::next_expiry(self.untils())
    }

    fn sweep(&mut self, now: Micros, counts: &mut TokenCounts) -> bool {
        self.facts.sweep(now, &mut counts.facts);
        self.replay.sweep(now, &mut counts.replay);
        self.live() != [false; 2]
    }

    fn latest(&self) -> Micros {
        crate::state::part::latest_and_next(self.untils()).0
    }

    fn evicted(&self, counts: &mut TokenCounts) {
        self.facts.evicted(&mut counts.facts);
        self.replay.evicted(&mut counts.replay);
    }
}

/// Decoded from a checkpoint as is; [`check`](TokenTable::check) then validates what the
/// encoding cannot (postcard would report a failed `TryFrom` without its reason).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenTable {
    #[serde(skip)]
    ttl: Micros,
    tokens: PartsState<TokenEntry>,
    counts: TokenCounts,
    audiences: Audiences,
}

impl TokenTable {
    /// Checks a restored table: every token's audience id must name a saved set.
    pub fn check(&self) -> Result<(), Error> {
        for entry in self.tokens.values() {
            if let Some(facts) = entry.facts.get() {
                if !self.audiences.holds(facts.audience) {
                    return Err(Error::CheckpointCorrupt(format!(
                        "token audience {} is not saved",
                        facts.audience
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A token's entry, opened once for an event: facts before the event, the detectors'
/// parts, then [`close`](OpenToken::close) takes the event into the facts.
pub(crate) struct OpenToken<'a> {
    key: u64,
    ttl: Micros,
    entry: &'a mut TokenEntry,
    counts: &'a mut TokenCounts,
    audiences: &'a mut Audiences,
    was_live: [bool; 2],
}

impl TokenTable {
    /// A token is remembered for `ttl` after its expiry or its last use, whichever is later.
    pub fn new(ttl: Micros, max_keys: usize) -> Self {
        TokenTable {
            ttl,
            tokens: PartsState::new(max_keys),
            counts: TokenCounts::default(),
            audiences: Audiences::default(),
        }
    }

    /// Restores `saved` under this config; parts of detectors it does not enable are
    /// dropped (a token left with no part goes at the next sweep).
    pub fn restored(self, saved: TokenTable, max_keys: usize, replay: bool) -> Self {
        let mut table = TokenTable {
            tokens: saved.tokens.with_cap(max_keys),
            counts: saved.counts,
            audiences: saved.audiences,
            ..self
        };
        if !replay {
            let counts = &mut table.counts;
            for entry in table.tokens.values_mut() {
                entry.replay.clear(&mut counts.replay);
            }
        }
        table
    }

    /// The entry of `token`, created empty when absent (no part of it live yet).
    pub fn open(&mut self, token: u64, now: Micros) -> OpenToken<'_> {
        let entry = self
            .tokens
            .upsert(token, now, TokenEntry::default, &mut self.counts);
        OpenToken {
            key: token,
            ttl: self.ttl,
            was_live: entry.live(),
            entry,
            counts: &mut self.counts,
            audiences: &mut self.audiences,
        }
    }

    /// Forgets a token that an event opened but left with nothing in it.
    pub fn remove(&mut self, token: u64) {
        self.tokens.remove(token);
    }

    pub fn sweep(&mut self, now: Micros) {
        self.tokens.sweep(now, &mut self.counts);
        let tokens = self.counts.facts.live;
        if self.audiences.due(tokens) {
            let live = self.tokens.values();
            let ids = live.filter_map(|entry| Some(entry.facts.get()?.audience));
            self.audiences.collect(ids, tokens);
        }
    }

    /// Counts of the token facts (`tokens`) and of `token_replay`'s part.
    pub fn counts(&self) -> &TokenCounts {
        &self.counts
    }

    pub fn stats(&self) -> TableStats {
        self.counts.facts.stats()
    }

    /// Distinct audiences held (tests: unused ones are collected).
    #[cfg(test)]
    pub fn audiences(&self) -> usize {
        self.audiences.in_use()
    }

    /// The table encoded with no audience sets (tests: a corrupt checkpoint).
    #[cfg(test)]
    pub fn encoded_without_audiences(&self) -> Vec<u8> {
        let sets: Vec<Box<[u64]>> = Vec::new();
        postcard::to_allocvec(&(&self.tokens, &self.counts, sets)).unwrap()
    }
}

impl OpenToken<'_> {
    /// The detectors' view of the entry.
    pub fn entry(&mut self) -> &mut TokenEntry {
        self.entry
    }

    /// What is known of the token before the current event.
    pub fn facts(&self, target: Option<u64>) -> Option<TokenFacts> {
        let state = self.entry.facts.get()?;
        let members = self.audiences.set(state.audience);
        let audience = match target {
            Some(target) if !members.is_empty() => {
                if members.contains(&target) {
                    Audience::Covers
                } else {
                    Audience::Excludes
                }
            }
            _ => Audience::Unknown,
        };
        Some(TokenFacts {
            issued_to: (state.issued_to != UNKNOWN).then_some(state.issued_to),
            issued_at: state.issued_at,
            expires: (state.expires != NEVER).then_some(state.expires),
            last_presented: (state.last_presented != NEVER).then_some(state.last_presented),
            audience,
        })
    }

    /// Takes in the event after the detectors saw it and counts the parts it created.
    /// Returns the token's key when nothing is kept on it (the caller removes it).
    pub fn close(self, event: &Event<'_>, hasher: &KeyHasher, principal: u64) -> Option<u64> {
        let time = event.time;
        let entry = self.entry;
        let fresh = !entry.facts.is_live();
        if event.kind == Kind::TokenIssue {
            let keep_until = time.max(event.token_expires.unwrap_or(time)) + self.ttl;
            let state = entry.facts.touch(keep_until);
            if fresh {
                *state = TokenState::first_seen(time);
            }
            // A presentation seen before its (late) issue only lowers `issued_at`.
            state.issued_at = if state.issued_to == UNKNOWN {
                state.issued_at.min(time)
            } else {
                time
            };
            state.issued_to = principal;
            // An expiry at `NEVER` itself (year -292,277) reads as none; harmless.
            state.expires = event.token_expires.unwrap_or(NEVER);
            if let Some(audience) = &event.token_audience {
                let members = audience.iter().map(|aud| hasher.str(aud));
                state.audience = self.audiences.intern(members);
            }
        } else if is_presentation(event) {
            let state = entry.facts.touch(time + self.ttl);
            if fresh {
                *state = TokenState::first_seen(time);
            }
            state.issued_at = state.issued_at.min(time);
            state.last_presented = state.last_presented.max(time);
        }
        let live = entry.live();
        self.counts.facts.created(self.was_live[0], live[0]);
        self.counts.replay.created(self.was_live[1], live[1]);
        (live == [false; 2]).then_some(self.key)
    }
}
