//! State that several detectors read or keep: the service-edge baseline, the token
//! table and the principal table; and the records of presentations before their token's
//! issue, which `token_replay` and `audience_mismatch` each keep.
//! The engine updates each once per event and hands detectors a copy of the facts.

mod audiences;
mod baseline;
mod principals;
mod tokens;
mod unissued;

pub(crate) use baseline::Baseline;
pub use baseline::EdgeFact;
pub(crate) use principals::{PrincipalDetectors, PrincipalEntry, PrincipalTable};
pub(crate) use tokens::{is_presentation, TokenEntry, TokenTable};
pub use tokens::{Audience, TokenFacts};
pub(crate) use unissued::Unissued;

#[cfg(test)]
mod tests;
