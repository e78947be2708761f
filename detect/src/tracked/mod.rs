//! What is tracked on tokens, principals and service edges for several detectors at
//! once: the service-edge baseline, the token table and the principal table (one entry
//! per key, each detector's state a part of it, so an event probes each key once), the
//! revocations (looked up once per presentation for `revoked_token_use` and
//! `validation_gap`); and the records of presentations before their token's issue,
//! which `token_replay`, `audience_mismatch` and `validation_gap` each keep. The engine
//! updates each once per event and hands detectors a copy of the facts, and the entries
//! themselves through `Shared`.

mod audiences;
mod baseline;
mod principals;
mod revocations;
mod tokens;
mod unissued;

pub(crate) use baseline::Baseline;
pub use baseline::EdgeFact;
pub(crate) use principals::{PrincipalDetectors, PrincipalEntry, PrincipalTable, Windows};
pub(crate) use revocations::Revocations;
pub use revocations::{Revoked, RevokedBy};
pub(crate) use tokens::{is_presentation, TokenEntry, TokenTable};
pub use tokens::{Audience, TokenFacts};
pub(crate) use unissued::{Held, Presentation, Unissued, PRESENTATIONS_AND_ISSUES};

#[cfg(test)]
mod tests;
