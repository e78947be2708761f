//! State that several detectors read: the service-edge baseline and the token table.
//! The engine updates each once per event and hands detectors a copy of the facts.

mod baseline;
mod tokens;

pub(crate) use baseline::Baseline;
pub use baseline::EdgeFact;
pub(crate) use tokens::{is_presentation, TokenEntry, TokenTable};
pub use tokens::{Audience, TokenFacts};
