//! authtrail's streaming detectors: lateral movement and credential misuse, live.
//!
//! The pipeline hands every accepted [`Event`](authtrail_model::Event) to
//! [`Detectors::observe`]. The engine hashes the event's keys once, updates the state
//! several detectors share (the service-edge baseline, the token table), and runs each
//! enabled [`Detector`] on it. Detectors keep small per-key windows on event time,
//! bounded by expiry and a cap on keys, tolerate events up to the allowed lateness out of
//! order, and emit [`Finding`]s; the engine suppresses repeats per detector and key and
//! turns the rest into [`Alert`](authtrail_model::Alert)s with ids derived from the
//! evidence, so a replay raises the same ids. [`Detectors::checkpoint`] saves all state
//! as bytes to be stored with the Kafka offsets; [`Detectors::restore`] resumes from them.
//!
//! Where things are: `detector.rs` is the trait and what crosses it; `engine/` runs the
//! detectors (clocks, sweeps, suppression, checkpoints); `detectors/` holds one file per
//! detector with its config; `tracked/` the tables several detectors share (tokens,
//! principals, the edge baseline); `state/` the primitives all of those are built from
//! (hashed keys, compact tables, bounded keyed state, windows on event time).

mod config;
mod detector;
mod detectors;
mod engine;
mod error;
mod state;
mod tracked;

pub use config::DetectConfig;
pub use detector::{Context, Detector, Facts, Finding, Rule, Shared};
pub use detectors::{
    AudienceMismatchConfig, AuthzProbingConfig, BruteForceConfig, MfaFatigueConfig,
    NewServiceEdgeConfig, PasswordSprayConfig, RevokedTokenUseConfig, ServiceFanOutConfig,
    ServiceInteractiveLoginConfig, TokenReplayConfig, ValidationGapConfig,
};
pub use engine::{ClockReading, DetectStats, DetectorStats, Detectors, SourceId};
pub use error::Error;
pub use state::id::EventId;
pub use state::TableStats;
pub use tracked::{Audience, EdgeFact, Revoked, RevokedBy, TokenFacts};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
