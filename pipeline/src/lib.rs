//! authtrail's stages assembled once, for `authtrail ingest`, `authtrail run` and the demo.
//!
//! [`Stages::open`] takes the sections of the configuration file it needs
//! ([`StagesConfig`]) and opens, in order, the manifest signing key, the lake, the webhook
//! responder (its deliveries are tasks on the process's one tokio runtime), the detectors
//! and the alert sinks they feed (the responder, plus the caller's, like `run`'s live
//! feed). [`Stages::broker`] picks the configured Kafka cluster or starts the embedded
//! broker beside the lake; [`Stages::serve`] adds a service (the HTTP server) on the same
//! runtime. [`Stages::consume_kafka`] and [`Stages::consume_lines`] ingest until the input
//! ends or the cancellation token is cancelled, then run the one shutdown sequence: stop
//! consuming, flush, checkpoint and commit, stop lake maintenance, drain webhook deliveries
//! for `respond.drain_timeout`, and only then stop the services.

mod config;
mod error;
mod key;
mod maintenance;
mod sinks;
mod stages;

pub use config::{LakeConfig, StagesConfig};
pub use error::Error;
pub use key::{manifest_key, SIGNING_KEY_ENV};
pub use maintenance::spawn_maintenance;
pub use sinks::ResponderSink;
pub use stages::{runtime, Broker, Stages, Stopped};

/// The pipeline crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
