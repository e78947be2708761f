//! The `[detect]` section of `authtrail.toml`: engine-wide settings and one table per
//! detector. Every field has a default, so an empty section runs every detector as
//! `detectors.md` ships them.

use std::time::Duration;

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::detectors::{
    AudienceMismatchConfig, AuthzProbingConfig, BruteForceConfig, MfaFatigueConfig,
    NewServiceEdgeConfig, PasswordSprayConfig, RevokedTokenUseConfig, ServiceFanOutConfig,
    ServiceInteractiveLoginConfig, TokenReplayConfig, ValidationGapConfig,
};
use crate::error::Error;

/// Settings of the detection stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// How far behind the newest event time seen from its source (Kafka partition) an
    /// event may arrive and still enter windowed state; older events are counted as late
    /// and only checked by the detectors that need no window.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Lateness is judged per source (Kafka partition), and state expires on the oldest
    /// watermark of the sources; a source that delivers nothing for this long (wall-clock
    /// time while the pipeline runs: a gap between two of its ticks counts at most 1 s)
    /// stops holding expiry back until its next event.
    #[serde(with = "humantime_serde")]
    pub source_idle_after: Duration,
    /// Most keys one state table holds (per detector, and for the shared baseline,
    /// token and suppression tables); past it the soonest-expiring keys are evicted.
    /// At most 2^32 - 2 (a table numbers its entries in 32 bits).
    pub max_keys: usize,
    /// How long a token is remembered after its expiry or last use, whichever is later.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long a service's edge baseline is kept without any event of that service.
    #[serde(with = "humantime_serde")]
    pub baseline_ttl: Duration,
    pub new_service_edge: NewServiceEdgeConfig,
    pub service_fan_out: ServiceFanOutConfig,
    pub authz_probing: AuthzProbingConfig,
    pub brute_force: BruteForceConfig,
    pub password_spray: PasswordSprayConfig,
    pub token_replay: TokenReplayConfig,
    pub revoked_token_use: RevokedTokenUseConfig,
    pub audience_mismatch: AudienceMismatchConfig,
    pub validation_gap: ValidationGapConfig,
    pub mfa_fatigue: MfaFatigueConfig,
    pub service_interactive_login: ServiceInteractiveLoginConfig,
    /// Sigma rule files or directories (`authtrail-rules`), run by the detection stage
    /// next to the detectors, with this section's `allowed_lateness` and `max_keys`;
    /// none by default.
    pub rules: Vec<std::path::PathBuf>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            allowed_lateness: Duration::from_secs(30),
            source_idle_after: Duration::from_secs(30),
            max_keys: 1_000_000,
            token_ttl: Duration::from_secs(3_600),
            baseline_ttl: Duration::from_secs(30 * 24 * 3_600),
            new_service_edge: Default::default(),
            service_fan_out: Default::default(),
            authz_probing: Default::default(),
            brute_force: Default::default(),
            password_spray: Default::default(),
            token_replay: Default::default(),
            revoked_token_use: Default::default(),
            audience_mismatch: Default::default(),
            validation_gap: Default::default(),
            mfa_fatigue: Default::default(),
            service_interactive_login: Default::default(),
            rules: Vec::new(),
        }
    }
}

impl DetectConfig {
    /// Checks values no detector can work with.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_keys == 0 {
            return Err(Error::Config("`max_keys` must be at least 1".into()));
        }
        if self.max_keys > crate::state::table::MAX_ENTRIES {
            return Err(Error::Config(format!(
                "`max_keys` must be at most {}",
                crate::state::table::MAX_ENTRIES
            )));
        }
        // The windowed detectors' thresholds (zero would fire on nothing at all) and
        // windows (zero holds nothing), in the order of `detectors.md`.
        let (fan_out, probing) = (&self.service_fan_out, &self.authz_probing);
        let (brute, spray) = (&self.brute_force, &self.password_spray);
        let (replay, mfa) = (&self.token_replay, &self.mfa_fatigue);
        let thresholds = [
            ("service_fan_out", "min_targets", fan_out.min_targets),
            ("authz_probing", "min_denies", probing.min_denies),
            ("authz_probing", "min_targets", probing.min_targets),
            ("brute_force", "min_failures", brute.min_failures),
            ("password_spray", "min_principals", spray.min_principals),
            ("token_replay", "min_source_ips", replay.min_source_ips),
            ("mfa_fatigue", "min_failures", mfa.min_failures),
        ];
        if let Some((detector, field, _)) = thresholds.iter().find(|(.., value)| *value == 0) {
            return Err(Error::Config(format!(
                "`{detector}.{field}` must be at least 1"
            )));
        }
        let windows = [
            ("service_fan_out", fan_out.window),
            ("authz_probing", probing.window),
            ("brute_force", brute.window),
            ("password_spray", spray.window),
            ("token_replay", replay.window),
            ("mfa_fatigue", mfa.window),
        ];
        if let Some((detector, _)) = windows.iter().find(|(_, window)| window.is_zero()) {
            return Err(Error::Config(format!(
                "`{detector}.window` must be longer than zero"
            )));
        }
        Ok(())
    }
}

/// Suppression period that ships with every detector.
pub(crate) fn default_suppression() -> Duration {
    Duration::from_secs(600)
}

/// A config duration as event-time microseconds.
pub(crate) fn micros(duration: Duration) -> Micros {
    Micros::try_from(duration.as_micros()).unwrap_or(Micros::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_the_shipped_defaults() {
        let config: DetectConfig = toml::from_str("").unwrap();
        assert_eq!(config, DetectConfig::default());
        assert_eq!(config.brute_force.min_failures, 10);
        assert_eq!(config.brute_force.window, Duration::from_secs(300));
        assert_eq!(config.allowed_lateness, Duration::from_secs(30));
    }

    #[test]
    fn parses_durations_and_overrides() {
        let config: DetectConfig = toml::from_str(
            r#"
            allowed_lateness = "1m"
            [brute_force]
            min_failures = 5
            window = "2m"
            severity = "medium"
            suppression = "30s"
            [token_replay]
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(config.allowed_lateness, Duration::from_secs(60));
        assert_eq!(config.brute_force.min_failures, 5);
        assert_eq!(config.brute_force.window, Duration::from_secs(120));
        assert_eq!(config.brute_force.suppression, Duration::from_secs(30));
        assert!(!config.token_replay.enabled);
        config.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_fields() {
        let error = toml::from_str::<DetectConfig>("[brute_force]\nthreshold = 3\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn rejects_more_keys_than_a_table_holds() {
        let config = DetectConfig {
            max_keys: crate::state::table::MAX_ENTRIES + 1,
            ..DetectConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("`max_keys` must be at most"), "{error}");
        let config = DetectConfig {
            max_keys: crate::state::table::MAX_ENTRIES,
            ..DetectConfig::default()
        };
        config.validate().unwrap();
    }

    #[test]
    fn rejects_zero_thresholds() {
        let mut config = DetectConfig::default();
        config.password_spray.min_principals = 0;
        assert!(config.validate().is_err());
    }
}
