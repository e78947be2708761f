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

mod config;
mod detector;
mod detectors;
mod engine;
mod error;
mod hash;
mod id;
mod part;
mod shared;
mod state;
mod suppress;
mod table;
mod window;

pub use config::DetectConfig;
pub use detector::{Detector, Facts, Finding, Shared};
pub use detectors::{
    AudienceMismatchConfig, AuthzProbingConfig, BruteForceConfig, MfaFatigueConfig,
    NewServiceEdgeConfig, PasswordSprayConfig, RevokedTokenUseConfig, ServiceFanOutConfig,
    ServiceInteractiveLoginConfig, TokenReplayConfig,
};
pub use engine::{DetectStats, DetectorStats, Detectors, SourceId};
pub use error::Error;
pub use shared::{Audience, EdgeFact, TokenFacts};
pub use state::TableStats;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
