//! `[kafka]` in authtrail.toml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::{Error, Result};

/// Which cluster, topics and group to consume, and any librdkafka setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`. Absent: start an embedded broker.
    pub brokers: Option<String>,
    /// Topics to consume whose messages follow the event contract.
    pub topics: Vec<String>,
    /// Topics in another format (`[[kafka.sources]] topic = "okta-events", format =
    /// "okta"`): a built-in adapter's name or a mapping file (`*.toml`).
    pub sources: Vec<TopicSource>,
    /// Consumer group id; processes with the same id split the partitions.
    pub group_id: String,
    /// Partitions of the topic the embedded broker creates.
    pub embedded_partitions: i32,
    /// The embedded broker's data directory. Default: beside the lake,
    /// `<lake>.broker` (not inside it: the lake holds only what `verify` checks).
    pub embedded_dir: Option<PathBuf>,
    /// The embedded broker's port on 127.0.0.1. 0: the port it had last time in the same
    /// directory if free, else any free port.
    pub embedded_port: u16,
    /// Bytes the embedded broker may hold over all partitions. Past it, messages every
    /// consumer group has committed are deleted, and if that is not enough producers are
    /// refused (they retry) until authtrail catches up. Unread messages are never deleted.
    pub embedded_max_bytes: u64,
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
            sources: Vec::new(),
            group_id: "authtrail".to_owned(),
            embedded_partitions: 4,
            embedded_dir: None,
            embedded_port: 0,
            embedded_max_bytes: 1 << 30,
            settings: BTreeMap::new(),
            settings_from_env: BTreeMap::new(),
        }
    }
}

/// The consumer's `fetch.wait.max.ms` unless `kafka.settings` says otherwise: how long a
/// broker may hold a fetch that finds fewer than `fetch.min.bytes` (1) new bytes. A broker
/// that answers as soon as a message arrives never waits that long while events flow, but
/// one that does not (tansu 0.6 waits out the whole time) delays every alert by up to this
/// much; librdkafka's 500 ms put the median produce → webhook time at about 420 ms there
/// (docs/benchmarks.md, "End to end"). In return an idle consumer sends each broker up to
/// 1000 / 10 = 100 fetches a second, each a few hundred bytes.
pub const DEFAULT_FETCH_WAIT_MAX_MS: u32 = 10;

/// Properties authtrail sets itself because the delivery promise depends on them.
const MANAGED_SETTINGS: [&str; 3] = ["enable.auto.commit", "enable.auto.offset.store", "group.id"];

/// One `[[kafka.sources]]` entry: a topic and the format of its records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSource {
    pub topic: String,
    /// A built-in format (`okta`, `auth0`, `keycloak`, `k8s_audit`, `opa`, `ocsf`,
    /// `authtrail`) or the path of a mapping file.
    pub format: String,
    /// Count records of a type the format does not map, and keep nothing of them
    /// (default: keep each in `rejects` as `unmapped`).
    #[serde(default)]
    pub skip_unmapped: bool,
}

impl KafkaConfig {
    /// Every topic to consume: the contract's, then those of `[[kafka.sources]]`.
    pub fn all_topics(&self) -> Vec<String> {
        let mut topics = self.topics.clone();
        for source in &self.sources {
            if !topics.contains(&source.topic) {
                topics.push(source.topic.clone());
            }
        }
        topics
    }

    /// The embedded broker's data directory for the lake at `lake_root`.
    pub fn embedded_dir(&self, lake_root: &Path) -> PathBuf {
        if let Some(dir) = &self.embedded_dir {
            return dir.clone();
        }
        let mut name = lake_root
            .file_name()
            .map_or_else(|| "authtrail".into(), |name| name.to_os_string());
        name.push(".broker");
        lake_root.with_file_name(name)
    }

    /// The librdkafka configuration of the consumer, for `brokers`.
    pub fn client_config(&self, brokers: &str) -> Result<ClientConfig> {
        self.client_config_with(brokers, |name| std::env::var(name).ok())
    }

    /// [`KafkaConfig::client_config`] with the environment read through `env`.
    fn client_config_with(
        &self,
        brokers: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig> {
        if self.topics.is_empty() && self.sources.is_empty() {
            return Err(Error::Config(
                "no topic to consume: `kafka.topics` and `kafka.sources` are empty".into(),
            ));
        }
        if let Some(both) = self
            .sources
            .iter()
            .find(|source| self.topics.contains(&source.topic))
        {
            return Err(Error::Config(format!(
                "topic `{}` is in `kafka.topics` (the contract) and in `kafka.sources`: one format per topic",
                both.topic
            )));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", &self.group_id)
            .set("auto.offset.reset", "earliest")
            // Bounds what librdkafka prefetches for the whole consumer, not per partition.
            .set("queued.max.messages.kbytes", "16384")
            .set("client.id", "authtrail")
            // Alert latency: see the constant (settings may override).
            .set("fetch.wait.max.ms", DEFAULT_FETCH_WAIT_MAX_MS.to_string())
            // Per-partition consumer lag for the metrics endpoint (settings may override).
            .set("statistics.interval.ms", "5000");
        for (key, value) in &self.settings {
            reject_managed(key)?;
            config.set(key, value);
        }
        for (key, variable) in &self.settings_from_env {
            reject_managed(key)?;
            let value = env(variable).ok_or_else(|| {
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
        let config = KafkaConfig {
            settings_from_env: [(
                "sasl.password".to_owned(),
                "AUTHTRAIL_TEST_KAFKA_PASSWORD".to_owned(),
            )]
            .into(),
            ..KafkaConfig::default()
        };
        let env = |name: &str| (name == "AUTHTRAIL_TEST_KAFKA_PASSWORD").then(|| "hunter2".into());
        let client = config.client_config_with("localhost:9092", env).unwrap();
        assert_eq!(client.get("sasl.password"), Some("hunter2"));
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn the_embedded_broker_lives_beside_the_lake() {
        let config = KafkaConfig::default();
        assert_eq!(
            config.embedded_dir(Path::new("/var/lib/authtrail")),
            Path::new("/var/lib/authtrail.broker")
        );
        assert_eq!(
            config.embedded_dir(Path::new("./authtrail-data")),
            Path::new("./authtrail-data.broker")
        );
    }

    #[test]
    fn fetches_wait_briefly_for_alert_latency_unless_settings_say_otherwise() {
        let config = KafkaConfig::default();
        let client = config.client_config("localhost:9092").unwrap();
        assert_eq!(client.get("fetch.wait.max.ms"), Some("10"));
        let config = KafkaConfig {
            settings: [("fetch.wait.max.ms".to_owned(), "500".to_owned())].into(),
            ..KafkaConfig::default()
        };
        let client = config.client_config("localhost:9092").unwrap();
        assert_eq!(client.get("fetch.wait.max.ms"), Some("500"));
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
