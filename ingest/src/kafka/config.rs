//! `[kafka]` in authtrail.toml.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::{Error, Result};

/// Which cluster, topics and group to consume, and any librdkafka setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`. Absent: start an embedded broker.
    pub brokers: Option<String>,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id; processes with the same id split the partitions.
    pub group_id: String,
    /// Partitions of the topic the embedded broker creates.
    pub embedded_partitions: i32,
    /// Any librdkafka consumer property, e.g. `"security.protocol" = "SASL_SSL"`,
    /// `"ssl.ca.location"`, `"sasl.mechanisms" = "SCRAM-SHA-512"`, `"sasl.username"`.
    pub settings: BTreeMap<String, String>,
    /// librdkafka properties whose values come from environment variables (for secrets,
    /// which never belong in the file): `"sasl.password" = "AUTHTRAIL_KAFKA_PASSWORD"`.
    pub settings_from_env: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            topics: vec!["auth-events".to_owned()],
            group_id: "authtrail".to_owned(),
            embedded_partitions: 4,
            settings: BTreeMap::new(),
            settings_from_env: BTreeMap::new(),
        }
    }
}

/// Properties authtrail sets itself because the delivery promise depends on them.
const MANAGED_SETTINGS: [&str; 3] = ["enable.auto.commit", "enable.auto.offset.store", "group.id"];

impl KafkaConfig {
    /// The librdkafka configuration of the consumer, for `brokers`.
    pub fn client_config(&self, brokers: &str) -> Result<ClientConfig> {
        if self.topics.is_empty() {
            return Err(Error::Config("`kafka.topics` is empty".into()));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", &self.group_id)
            .set("auto.offset.reset", "earliest")
            // Bounds what librdkafka prefetches for the whole consumer, not per partition.
            .set("queued.max.messages.kbytes", "16384")
            .set("client.id", "authtrail")
            // Per-partition consumer lag for the metrics endpoint (settings may override).
            .set("statistics.interval.ms", "5000");
        for (key, value) in &self.settings {
            reject_managed(key)?;
            config.set(key, value);
        }
        for (key, variable) in &self.settings_from_env {
            reject_managed(key)?;
            let value = std::env::var(variable).map_err(|_| {
                Error::Config(format!(
                    "`kafka.settings_from_env.{key}` names `{variable}`, which is not set"
                ))
            })?;
            config.set(key, value);
        }
        // Offsets are committed by hand, only once the lake holds the data.
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        Ok(config)
    }
}

fn reject_managed(key: &str) -> Result<()> {
    if MANAGED_SETTINGS.contains(&key) {
        return Err(Error::Config(format!(
            "`{key}` is managed by authtrail (offsets are committed only once durable); remove it from `kafka.settings`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment() {
        std::env::set_var("AUTHTRAIL_TEST_KAFKA_PASSWORD", "hunter2");
        let config = KafkaConfig {
            settings_from_env: [(
                "sasl.password".to_owned(),
                "AUTHTRAIL_TEST_KAFKA_PASSWORD".to_owned(),
            )]
            .into(),
            ..KafkaConfig::default()
        };
        let client = config.client_config("localhost:9092").unwrap();
        assert_eq!(client.get("sasl.password"), Some("hunter2"));
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn refuses_to_let_settings_enable_auto_commit() {
        let config = KafkaConfig {
            settings: [("enable.auto.commit".to_owned(), "true".to_owned())].into(),
            ..KafkaConfig::default()
        };
        assert!(config.client_config("localhost:9092").is_err());
    }

    #[test]
    fn missing_secret_variable_is_a_clear_error() {
        let config = KafkaConfig {
            settings_from_env: [("sasl.password".to_owned(), "AUTHTRAIL_UNSET_VAR".to_owned())]
                .into(),
            ..KafkaConfig::default()
        };
        let error = config
            .client_config("localhost:9092")
            .unwrap_err()
            .to_string();
        assert!(error.contains("AUTHTRAIL_UNSET_VAR"), "{error}");
        assert!(!error.contains("hunter2"));
    }
}
