//! What is known of each token: who it was issued to, when, until when, and for which
//! audience. Read by `token_replay`, `revoked_token_use` and `audience_mismatch`.

use authtrail_model::{Event, Kind, Micros};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::hash::KeyHasher;
use crate::state::{KeyedState, TableStats};

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

#[derive(Debug, Serialize, Deserialize)]
struct TokenState {
    issued_to: u64,
    issued_at: Micros,
    /// `NEVER` when the issue carried no expiry (or was not seen).
    expires: Micros,
    /// `NEVER` until presented; lets a revoke that arrives late see it was used.
    last_presented: Micros,
    /// Hashes of the audience; empty when none was recorded. Audiences name a few
    /// services, so they fit inline and checking one costs no extra cache miss.
    audience: SmallVec<[u64; 3]>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenTable {
    #[serde(skip)]
    ttl: Micros,
    tokens: KeyedState<TokenState>,
}

impl TokenTable {
    /// A token is remembered for `ttl` after its expiry or its last use, whichever is later.
    pub fn new(ttl: Micros, max_keys: usize) -> Self {
        TokenTable {
            ttl,
            tokens: KeyedState::new(max_keys),
        }
    }

    pub fn restored(self, saved: TokenTable, max_keys: usize) -> Self {
        TokenTable {
            tokens: saved.tokens.with_cap(max_keys),
            ..self
        }
    }

    pub fn lookup(&self, token: u64, target: Option<u64>) -> Option<TokenFacts> {
        let state = self.tokens.get(token)?;
        let audience = match target {
            Some(target) if !state.audience.is_empty() => {
                if state.audience.contains(&target) {
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

    /// Takes in an event after the detectors saw it.
    pub fn update(
        &mut self,
        event: &Event<'_>,
        hasher: &KeyHasher,
        token: u64,
        principal: u64,
        now: Micros,
    ) {
        let time = event.time;
        let init = || TokenState {
            issued_to: UNKNOWN,
            issued_at: time,
            expires: NEVER,
            last_presented: NEVER,
            audience: SmallVec::new(),
        };
        if event.kind == Kind::TokenIssue {
            let keep_until = time.max(event.token_expires.unwrap_or(time)) + self.ttl;
            let state = &mut self.tokens.upsert(token, now, keep_until, init).value;
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
                state.audience = audience.iter().map(|aud| hasher.str(aud)).collect();
            }
        } else if is_presentation(event) {
            let state = &mut self.tokens.upsert(token, now, time + self.ttl, init).value;
            state.issued_at = state.issued_at.min(time);
            state.last_presented = state.last_presented.max(time);
        }
    }

    pub fn sweep(&mut self, now: Micros) {
        self.tokens.sweep(now);
    }

    pub fn stats(&self) -> TableStats {
        self.tokens.stats()
    }
}
