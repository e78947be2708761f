//! The `[respond]` section of `authtrail.toml`: the webhook sinks and the outbox's limits.

use std::time::Duration;

use serde::Deserialize;

use crate::kafka::KafkaPublishConfig;
use crate::webhook::WebhookConfig;

/// Settings of the response stage. With no webhook configured nothing is recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// The webhook sinks (`[[respond.webhooks]]`); each alert goes to every sink whose
    /// filter it passes.
    pub webhooks: Vec<WebhookConfig>,
    /// Also produce every alert as JSON to a Kafka topic (`[respond.kafka]`).
    pub kafka: Option<KafkaPublishConfig>,
    /// On a clean stop, how long deliveries in flight may take to finish; what is left
    /// stays in the outbox and resumes at the next start.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long delivered entries are remembered, so an alert raised again by a replay
    /// after a crash is recognised and not sent twice.
    #[serde(with = "humantime_serde")]
    pub keep_delivered: Duration,
    /// Rewrite the outbox log without superseded records once it is this large (bytes)
    /// and more than half of it is superseded.
    pub compact_bytes: u64,
    /// Requests in flight at once per webhook.
    pub max_in_flight: usize,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            webhooks: Vec::new(),
            kafka: None,
            drain_timeout: Duration::from_secs(5),
            keep_delivered: Duration::from_secs(7 * 24 * 3_600),
            compact_bytes: 16 * 1024 * 1024,
            max_in_flight: 16,
        }
    }
}

impl RespondConfig {
    /// Whether any sink is configured (otherwise the outbox is not used at all).
    pub fn enabled(&self) -> bool {
        !self.webhooks.is_empty() || self.kafka.is_some()
    }
}
