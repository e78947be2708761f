//! authtrail.toml: one file composed of each component's section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use authtrail_collect::CollectConfig;
use authtrail_detect::DetectConfig;
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::PipelineConfig;
pub use authtrail_pipeline::LakeConfig;
use authtrail_pipeline::StagesConfig;
use authtrail_query::reports::ReportConfig;
use authtrail_query::{ApiConfig, QueryConfig};
use authtrail_respond::RespondConfig;
use authtrail_store::{EncodeOptions, LakeLocation};
use serde::Deserialize;

use crate::cli::Cli;

/// The lake's root when neither `--lake` nor `lake.path` names one.
const DEFAULT_LAKE: &str = "./authtrail-data";

/// The whole configuration file. Every section and field is optional; defaults are the
/// documented ones (see authtrail.example.toml).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the lake lives.
    pub lake: LakeConfig,
    /// Flush policy and contract limits.
    pub ingest: PipelineConfig,
    /// Brokers, topics, consumer group and librdkafka settings.
    pub kafka: KafkaConfig,
    /// Parquet encoding.
    pub store: EncodeOptions,
    /// The detectors: which run, their thresholds, windows, severities, suppression.
    pub detect: DetectConfig,
    /// Webhooks that receive the alerts (revoke, disable, notify), and the outbox.
    pub respond: RespondConfig,
    /// Limits of SQL queries (CLI and HTTP API).
    pub query: QueryConfig,
    /// The HTTP API's listener and keys.
    pub api: ApiConfig,
    /// `authtrail run`: shutdown deadline.
    pub run: RunConfig,
    /// The HTTP collector (`authtrail run` and `authtrail collect`): keys, limits, a
    /// topic per format, the producer.
    pub collect: CollectConfig,
    /// The trust and privilege reports: open routes, the scope map, tolerances.
    pub report: ReportConfig,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// After SIGINT/SIGTERM, the clean shutdown (stop consuming, flush, checkpoint, commit,
    /// drain webhooks) must finish within this, e.g. "30s"; past it the process exits with
    /// an error, and whatever was not committed is read again at the next start. It should
    /// exceed `respond.drain_timeout` plus one flush.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config `{}`", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config `{}`", path.display()))
    }

    /// The reports' settings, with the `validation_gap` detector's skew: one tolerance
    /// past a token's expiry for the live detector and the trust report.
    pub fn reports(&self) -> ReportConfig {
        let mut reports = self.report.clone();
        reports.trust.skew = self.detect.validation_gap.skew;
        reports
    }

    /// The sections the stages open from, on the lake at `lake`; `detect: false` runs
    /// no detectors.
    pub fn stages(&self, lake: &LakeLocation, detect: bool) -> StagesConfig {
        StagesConfig {
            lake_location: lake.clone(),
            lake: self.lake.clone(),
            store: self.store,
            ingest: self.ingest.clone(),
            kafka: self.kafka.clone(),
            detect: detect.then(|| self.detect.clone()),
            respond: self.respond.clone(),
        }
    }
}

/// Where the lake lives, for the commands that work on object storage too (ingest, run,
/// serve, query, verify, maintain): `--lake`, else `lake.path`, else `./authtrail-data`,
/// a directory or an `s3://`, `gs://`, `az://` or `file://` URL (with `[lake.storage]`).
pub fn lake_location(cli: &Cli, config: &Config) -> anyhow::Result<LakeLocation> {
    let text = lake_root(cli, config);
    let Some(text) = text.to_str() else {
        // Not UTF-8, so no URL: a directory.
        return Ok(LakeLocation::Local(text));
    };
    Ok(LakeLocation::parse(text, &config.lake.storage)?)
}

/// The lake's directory for every command that needs it local: `--lake`, else `lake.path`
/// from the config, else `./authtrail-data`.
pub fn lake_root(cli: &Cli, config: &Config) -> PathBuf {
    cli.lake
        .clone()
        .or_else(|| config.lake.path.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LAKE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_states_the_defaults() {
        let example: Config = toml::from_str(include_str!("../authtrail.example.toml")).unwrap();
        assert_eq!(example.ingest, PipelineConfig::default());
        assert_eq!(example.store, EncodeOptions::default());
        assert_eq!(example.kafka.topics, KafkaConfig::default().topics);
        assert_eq!(example.kafka.group_id, KafkaConfig::default().group_id);
        assert_eq!(example.kafka.brokers, None, "embedded broker by default");
        assert_eq!(example.detect, DetectConfig::default());
        assert_eq!(
            example.respond,
            RespondConfig::default(),
            "no webhook by default"
        );
        assert_eq!(example.query, QueryConfig::default());
        assert_eq!(example.api, ApiConfig::default());
        assert_eq!(example.lake, LakeConfig::default());
        assert_eq!(example.run, RunConfig::default());
        assert_eq!(example.collect, CollectConfig::default());
        assert_eq!(example.report, ReportConfig::default());
    }

    #[test]
    fn the_reports_judge_expiry_with_the_detectors_skew() {
        assert_eq!(
            Config::default().reports().trust.skew,
            DetectConfig::default().validation_gap.skew
        );
        let config: Config = toml::from_str("[detect.validation_gap]\nskew = \"5m\"").unwrap();
        assert_eq!(config.reports().trust.skew, Duration::from_secs(300));
        assert!(
            toml::from_str::<Config>("[report.trust]\nskew = \"5m\"").is_err(),
            "one setting: the report has no skew of its own"
        );
    }

    #[test]
    fn webhook_example_parses_with_its_defaults() {
        // The commented `[[respond.webhooks]]` example of authtrail.example.toml.
        let example = include_str!("../authtrail.example.toml");
        let start = example
            .find("# [[respond.webhooks]]")
            .expect("webhook example");
        let uncommented: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        let config: Config = toml::from_str(&uncommented).unwrap();
        let hook = &config.respond.webhooks[0];
        let defaults = authtrail_respond::WebhookConfig::new("x", "http://x", hook.action);
        assert_eq!(hook.name, "idp-revoke");
        assert_eq!(hook.rate_limit, 60);
        assert_eq!(hook.rate_limit, defaults.rate_limit);
        assert_eq!(hook.retry_max_age, defaults.retry_max_age);
        assert_eq!(hook.timeout, defaults.timeout);
        hook.validate().unwrap();
    }

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let error = toml::from_str::<Config>("[ingest]\nflush_rowz = 5\n").unwrap_err();
        assert!(error.to_string().contains("flush_rowz"), "{error}");
    }
}
