//! `[collect]` in authtrail.toml.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::formats;
use crate::Error;

/// The collector: its keys, its limits, where each format's records go, the producer.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Where `authtrail collect` listens (`authtrail run` serves the collector on
    /// `api.listen`). Default `127.0.0.1:8081`.
    pub listen: String,
    /// Environment variable holding the collector keys, comma-separated. Default
    /// `AUTHTRAIL_COLLECT_KEYS`. Collector keys only write: they open no query route,
    /// and query keys do not open the collector.
    pub keys_env: String,
    /// File holding collector keys, one per line (blank lines and `#` comments ignored).
    pub keys_file: Option<PathBuf>,
    /// Largest request body, in bytes, after gzip decompression. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Most records in one request. Default 10,000.
    pub max_records: usize,
    /// Records per second one key may send, on average. Default 10,000.
    pub rate_per_key: u32,
    /// Records one key may send at once above its rate (the bucket's size); at least
    /// `max_records`. Default 20,000.
    pub rate_burst: u32,
    /// Kafka topic per format, replacing the default (`okta` → `okta-events`, …; see
    /// the README).
    pub topics: BTreeMap<String, String>,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`). Default 5ms.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long a request waits for the broker to acknowledge its records before it is
    /// answered 503 (librdkafka `message.timeout.ms`). Default 5s.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Any librdkafka producer property, e.g. `"security.protocol" = "SASL_SSL"`.
    pub settings: BTreeMap<String, String>,
    /// librdkafka producer properties whose values come from environment variables:
    /// `"sasl.password" = "AUTHTRAIL_COLLECT_KAFKA_PASSWORD"`.
    pub settings_from_env: BTreeMap<String, String>,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            listen: "127.0.0.1:8081".into(),
            keys_env: "AUTHTRAIL_COLLECT_KEYS".into(),
            keys_file: None,
            max_body_bytes: 8 << 20,
            max_records: 10_000,
            rate_per_key: 10_000,
            rate_burst: 20_000,
            topics: BTreeMap::new(),
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(5),
            settings: BTreeMap::new(),
            settings_from_env: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for CollectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where keys and secrets come from, never their values (`settings` may hold some).
        f.debug_struct("CollectConfig")
            .field("listen", &self.listen)
            .field("keys_env", &self.keys_env)
            .field("keys_file", &self.keys_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_records", &self.max_records)
            .field("rate_per_key", &self.rate_per_key)
            .field("rate_burst", &self.rate_burst)
            .field("topics", &self.topics)
            .field("linger", &self.linger)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .field("settings_from_env", &self.settings_from_env)
            .finish()
    }
}

/// Keys shorter than this are refused (as the query API's are).
pub const MIN_KEY_LEN: usize = 16;

impl CollectConfig {
    /// The topic `format`'s records are produced to.
    pub fn topic(&self, format: &str) -> Option<String> {
        formats::topic(&self.topics, format)
    }

    /// Every format with its topic, in the order of the known formats: what the ingest
    /// side must consume (each topic with its format) for collected records to reach the
    /// lake.
    pub fn topics_by_format(&self) -> Vec<(String, String)> {
        formats::known()
            .filter_map(|format| Some((self.topic(format)?, format.to_owned())))
            .collect()
    }

    /// Checks what serde cannot: limits in range, topics only for known formats.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_body_bytes == 0 || self.max_records == 0 || self.rate_per_key == 0 {
            return Err(Error::Config(
                "`max_body_bytes`, `max_records` and `rate_per_key` must be positive".into(),
            ));
        }
        if (self.rate_burst as usize) < self.max_records {
            return Err(Error::Config(format!(
                "`rate_burst` ({}) is below `max_records` ({}): a full request could never pass",
                self.rate_burst, self.max_records
            )));
        }
        if self.delivery_timeout.is_zero() {
            return Err(Error::Config("`delivery_timeout` must be positive".into()));
        }
        if self.linger >= self.delivery_timeout {
            return Err(Error::Config(
                "`linger` must be shorter than `delivery_timeout`".into(),
            ));
        }
        for (format, topic) in &self.topics {
            if formats::topic(&self.topics, format).is_none() {
                return Err(Error::Config(format!(
                    "`collect.topics` names format `{format}`; known formats: {}",
                    formats::known().collect::<Vec<_>>().join(", ")
                )));
            }
            if topic.is_empty() {
                return Err(Error::Config(format!("`collect.topics.{format}` is empty")));
            }
        }
        Ok(())
    }

    /// Collects the keys from `keys_file` and the `keys_env` variable (possibly none:
    /// then nothing can post).
    pub fn load_keys(&self) -> Result<Vec<String>, Error> {
        self.load_keys_with(|name| std::env::var(name).ok())
    }

    /// [`CollectConfig::load_keys`] with the environment read through `env`.
    pub fn load_keys_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        if let Some(path) = &self.keys_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                Error::Config(format!("reading `keys_file` `{}`: {error}", path.display()))
            })?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        if let Some(value) = env(&self.keys_env) {
            keys.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(str::to_owned),
            );
        }
        if keys.iter().any(|key| key.len() < MIN_KEY_LEN) {
            return Err(Error::Config(format!(
                "a collector key is shorter than {MIN_KEY_LEN} characters"
            )));
        }
        Ok(keys)
    }
}

/// Refuses a key that is both a collector key and a query key: collector keys write and
/// never read, which holds only if no key is both.
pub fn check_keys_are_separate(collect: &[String], query: &[String]) -> Result<(), Error> {
    if collect.iter().any(|key| query.contains(key)) {
        return Err(Error::Config(
            "a collector key is also a query API key; collector keys must be separate".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_have_default_topics_and_overrides_replace_them() {
        let mut config = CollectConfig::default();
        assert_eq!(config.topic("okta").as_deref(), Some("okta-events"));
        assert_eq!(config.topic("authtrail").as_deref(), Some("auth-events"));
        assert_eq!(config.topic("nope"), None);
        config.topics.insert("okta".into(), "idp-log".into());
        assert_eq!(config.topic("okta").as_deref(), Some("idp-log"));
        assert!(config
            .topics_by_format()
            .contains(&("idp-log".into(), "okta".into())));
    }

    #[test]
    fn a_topic_for_an_unknown_format_is_refused() {
        let config: CollectConfig = serde_json::from_str(r#"{"topics": {"oktaa": "x"}}"#)
            .expect("parses; validate refuses");
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("oktaa") && error.contains("okta"), "{error}");
    }

    #[test]
    fn a_burst_below_a_full_request_is_refused() {
        let config = CollectConfig {
            rate_burst: 10,
            ..CollectConfig::default()
        };
        assert!(config.validate().is_err());
        assert!(CollectConfig::default().validate().is_ok());
    }

    #[test]
    fn keys_come_from_the_environment_and_short_ones_are_refused() {
        let config = CollectConfig::default();
        let keys = config
            .load_keys_with(|name| {
                (name == "AUTHTRAIL_COLLECT_KEYS").then(|| "collector-key-000001, ".into())
            })
            .unwrap();
        assert_eq!(keys, ["collector-key-000001"]);
        let error = config
            .load_keys_with(|_| Some("tinykey".into()))
            .unwrap_err();
        assert!(!error.to_string().contains("tinykey"), "never echo a key");
    }

    #[test]
    fn a_key_cannot_be_both_collector_and_query_key() {
        let shared = vec!["the-same-key-0001".to_owned()];
        assert!(check_keys_are_separate(&shared, &shared).is_err());
        assert!(check_keys_are_separate(&shared, &["other-key-00000001".into()]).is_ok());
    }
}
