//! authtrail's labelled synthetic traffic, and the evaluation of the detectors on it.
//!
//! [`Generator`] simulates a microservice system on an event-time clock: services on a
//! stable call graph with their own client-credential tokens, people logging in through
//! a gateway (with typos and missed MFA pushes), tokens issued, relayed, refreshed,
//! expiring and revoked at logout, occasional benign denies, all shaped by a daily rate
//! curve. After the learning period it plays the attack scenarios of every detector in
//! `detectors.md` and their benign look-alikes, and records which events belong to which
//! in a [`Truth`] that is never part of the events. [`write_jsonl`] and [`send_kafka`]
//! take the events out, as contract events or, for the events it expresses, in a native
//! [`Format`] that an adapter reads (Keycloak events, Kubernetes audit); an
//! [`Evaluator`] replays them through the detectors and scores the alerts against the
//! truth.
//!
//! The same [`GenConfig`] (seed included) gives the same bytes.

mod attacks;
mod config;
mod error;
pub mod eval;
mod event;
mod lookalikes;
mod native;
mod output;
mod scenario;
mod services;
mod sim;
mod situations;
mod topology;
mod traffic;
mod truth;

pub use config::GenConfig;
pub use error::Error;
pub use eval::{Evaluator, Report};
pub use native::Format;
pub use output::{
    send_kafka, send_kafka_routed, write_jsonl, write_jsonl_as, Delivered, KafkaOutput,
    NativeTopic, Pace, Written,
};
pub use scenario::ScenarioKind;
pub use sim::{Generated, Generator};
pub use truth::{Label, Truth, TruthMeta, TruthScenario};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        self.next_event()
    }
}
