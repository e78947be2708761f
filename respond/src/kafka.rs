//! Optional publishing of alerts as JSON to a Kafka topic (`[respond.kafka]`), through the
//! same outbox and delivery tasks as the webhooks: recorded before the offsets are
//! committed, retried until `retry_max_age`, deduplicated by alert id (also the message
//! key, so a compacted topic keeps one message per alert).

use std::collections::BTreeMap;
use std::time::Duration;

use authtrail_model::Severity;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde::Deserialize;

use crate::error::Error;
use crate::webhook::{Action, WebhookConfig};

/// Where and which alerts to publish.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaPublishConfig {
    /// The sink's name in the outbox and in `authtrail alerts`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Bootstrap servers, `host:port,...`.
    pub brokers: String,
    /// The topic alerts are produced to, keyed by alert id.
    pub topic: String,
    /// Only alerts of these detectors (empty: every detector).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Time limit for the broker to acknowledge one alert.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long an alert is retried before it becomes a dead letter.
    #[serde(default = "default_retry_max_age", with = "humantime_serde")]
    pub retry_max_age: Duration,
    /// Any librdkafka producer property (TLS, SASL, compression, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Properties whose values are read from these environment variables (secrets).
    #[serde(default)]
    pub settings_from_env: BTreeMap<String, String>,
}

fn default_name() -> String {
    "kafka".into()
}
fn default_min_severity() -> Severity {
    Severity::Low
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retry_max_age() -> Duration {
    Duration::from_secs(24 * 3_600)
}

impl std::fmt::Debug for KafkaPublishConfig {
    // Settings may hold credentials: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublishConfig")
            .field("name", &self.name)
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KafkaPublishConfig {
    /// The delivery settings of this sink, in the form the delivery tasks use.
    pub(crate) fn delivery_config(&self) -> WebhookConfig {
        let mut config = WebhookConfig::new(&self.name, &self.brokers, Action::Notify);
        config.detectors = self.detectors.clone();
        config.min_severity = self.min_severity;
        config.timeout = self.timeout;
        config.retry_max_age = self.retry_max_age;
        config
    }

    /// The producer; idempotent, acknowledged by all in-sync replicas.
    pub(crate) fn producer(&self) -> Result<FutureProducer, Error> {
        if self.topic.is_empty() || self.brokers.is_empty() {
            return Err(Error::config(
                &self.name,
                "`brokers` and `topic` must be set",
            ));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0");
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        for (key, variable) in &self.settings_from_env {
            let value = std::env::var(variable).map_err(|_| {
                Error::config(
                    &self.name,
                    format!("`settings_from_env.{key}` names `{variable}`, which is not set"),
                )
            })?;
            config.set(key, value);
        }
        config
            .create()
            .map_err(|error| Error::config(&self.name, format!("kafka producer: {error}")))
    }
}
