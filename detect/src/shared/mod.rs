//! State that several detectors read or keep: the service-edge baseline, the token
//! table and the principal table.
//! The engine updates each once per event and hands detectors a copy of the facts.

mod audiences;
mod baseline;
mod principals;
mod tokens;

pub(crate) use baseline::Baseline;
pub use baseline::EdgeFact;
pub(crate) use principals::{PrincipalDetectors, PrincipalEntry, PrincipalTable};
pub(crate) use tokens::{is_presentation, TokenEntry, TokenTable};
pub use tokens::{Audience, TokenFacts};

#[cfg(test)]
mod tests;
