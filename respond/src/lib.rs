//! authtrail's response stage: alerts raised by the detectors go to webhooks that revoke
//! tokens, disable principals or notify people — signed, durable, retried, never dropped.
//!
//! Flow: the pipeline hands each new alert to [`Responder::record`], which appends it to
//! the outbox log under `<lake>/_outbox/` (once per matching webhook, deduplicated by alert
//! id, so a replay after a crash does not send twice) and starts a delivery task on the
//! runtime [`Responder::start`] was given. [`Responder::sync`] fsyncs the log before the pipeline
//! commits the source offsets. A task signs the request (Standard Webhooks), sends it, and
//! records each outcome: `delivered`, `retrying` (5xx, 408, 429, timeouts, connection
//! errors; exponential backoff with full jitter, until the max age), `dead` (other 4xx),
//! or `held` (over the revocation rate limit). Operators list, retry and release entries
//! with `authtrail alerts`, through [`outbox::requests`] while a process runs.
//!
//! Optionally, alerts are also produced as JSON to a Kafka topic (`[respond.kafka]`),
//! through the same outbox.
//!
//! The crate depends on `authtrail-model` only (of authtrail's crates); the binary wires it to the pipeline.

mod config;
mod deliver;
mod error;
mod kafka;
mod metrics;
pub mod outbox;
mod responder;
pub mod webhook;

pub use config::RespondConfig;
pub use error::Error;
pub use kafka::KafkaPublishConfig;
pub use outbox::{outbox_dir, Entry, Outbox, State};
pub use responder::Responder;
pub use webhook::{Action, Secret, WebhookConfig};

/// The respond crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
