//! `[[respond.webhooks]]`: one webhook sink.

use std::path::PathBuf;
use std::time::Duration;

use authtrail_model::{Alert, Severity};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What the receiving endpoint is asked to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Revoke the alert's token (`token_id`); alerts without a token are not sent.
    RevokeToken,
    /// Disable the alert's principal.
    DisablePrincipal,
    /// Only tell someone; not rate limited.
    Notify,
}

impl Action {
    /// The name used in bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RevokeToken => "revoke_token",
            Action::DisablePrincipal => "disable_principal",
            Action::Notify => "notify",
        }
    }

    /// Whether the action changes credentials (and so counts against the rate limit).
    pub fn is_revocation(self) -> bool {
        self != Action::Notify
    }
}

/// One webhook sink: where to send, how to sign, which alerts, and how hard to retry.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name; outbox entries and `authtrail alerts` refer to the sink by it.
    pub name: String,
    /// `http://` or `https://` URL the alert is POSTed to.
    pub url: String,
    /// Environment variable holding the signing secret (`whsec_<base64>`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the signing secret (`whsec_<base64>`, surrounding whitespace ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// What the endpoint is asked to do.
    pub action: Action,
    /// Only alerts of these detectors (empty: every detector, except that a revocation
    /// takes alerts about a service, `validation_gap`'s, only when named here).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// A JSON document sent instead of the default body; string values may hold
    /// `{{alert.token_id}}`-style placeholders (see the README).
    #[serde(default)]
    pub body_template: Option<String>,
    /// Time limit of one request, connection included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// First retry delay; doubles per attempt (with full jitter).
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between two attempts.
    #[serde(default = "default_retry_max_interval", with = "humantime_serde")]
    pub retry_max_interval: Duration,
    /// How long an alert is retried before it becomes a dead letter.
    #[serde(default = "default_retry_max_age", with = "humantime_serde")]
    pub retry_max_age: Duration,
    /// Most revocations (`revoke_token`, `disable_principal`) sent per `rate_window`;
    /// alerts over it are held until an operator releases them. 0: no limit.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// The window of `rate_limit`.
    #[serde(default = "default_rate_window", with = "humantime_serde")]
    pub rate_window: Duration,
    /// Consecutive failed attempts that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe request.
    #[serde(default = "default_breaker_cooldown", with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    /// Build and sign every request, but do not send it.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_min_severity() -> Severity {
    Severity::Low
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_retry_max_age() -> Duration {
    Duration::from_secs(24 * 3_600)
}
fn default_rate_limit() -> u32 {
    60
}
fn default_rate_window() -> Duration {
    Duration::from_secs(60)
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(30)
}

impl std::fmt::Debug for WebhookConfig {
    // The URL may carry credentials in its query; only the scheme and host are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("action", &self.action)
            .field("detectors", &self.detectors)
            .field("min_severity", &self.min_severity)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]/…` with path, query and userinfo left out.
pub(crate) fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}/…",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid url>".into(),
    }
}

impl WebhookConfig {
    /// A sink with every optional setting at its default.
    pub fn new(name: &str, url: &str, action: Action) -> Self {
        WebhookConfig {
            name: name.to_owned(),
            url: url.to_owned(),
            secret_env: None,
            secret_file: None,
            action,
            detectors: Vec::new(),
            min_severity: default_min_severity(),
            body_template: None,
            timeout: default_timeout(),
            retry_initial: default_retry_initial(),
            retry_max_interval: default_retry_max_interval(),
            retry_max_age: default_retry_max_age(),
            rate_limit: default_rate_limit(),
            rate_window: default_rate_window(),
            breaker_failures: default_breaker_failures(),
            breaker_cooldown: default_breaker_cooldown(),
            dry_run: false,
        }
    }

    /// Whether `alert` goes to this sink.
    pub fn accepts(&self, alert: &Alert) -> bool {
        alert.severity >= self.min_severity
            && self.takes_detector(alert)
            && (self.action != Action::RevokeToken || alert.token_id.is_some())
    }

    /// Whether the `detectors` filter lets `alert` through. An alert about a service
    /// (its key is the service, its `principal` and `token_id` a caller who did nothing
    /// wrong) reaches a revocation only when the filter names its detector: revoking or
    /// disabling that caller does not fix the service, so it must be asked for.
    fn takes_detector(&self, alert: &Alert) -> bool {
        if self.detectors.contains(&alert.detector) {
            return true;
        }
        let about_the_caller = !(self.action.is_revocation() && alert.is_about_a_service());
        self.detectors.is_empty() && about_the_caller
    }

    /// Checks what can be checked without the secret.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::config(&self.name, message));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return fail("`name` must be non-empty ASCII letters, digits, `-` or `_`");
        }
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return fail("`url` must be an http:// or https:// URL"),
        }
        if self.secret_env.is_some() == self.secret_file.is_some() {
            return fail("set exactly one of `secret_env` and `secret_file`");
        }
        if self.timeout.is_zero() || self.retry_initial.is_zero() {
            return fail("`timeout` and `retry_initial` must be positive");
        }
        if self.breaker_failures == 0 {
            return fail("`breaker_failures` must be at least 1");
        }
        if self.rate_limit > 0 && self.rate_window.is_zero() {
            return fail("`rate_window` must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(detector: &str) -> Alert {
        Alert {
            id: "a".into(),
            detector: detector.into(),
            severity: Severity::High,
            time: 0,
            principal: "svc:checkout".into(),
            token_id: Some("jti-1".into()),
            source_ip: None,
            target_service: Some("ledger".into()),
            key: "ledger expired".into(),
            summary: String::new(),
            evidence_ids: vec!["e".into()],
            attack_technique: "T1550".into(),
            suppressed_count: 0,
        }
    }

    fn sink(action: Action, detectors: &[&str]) -> WebhookConfig {
        let mut config = WebhookConfig::new("hook", "https://hooks.example", action);
        config.detectors = detectors.iter().map(|d| (*d).to_owned()).collect();
        config
    }

    #[test]
    fn revocations_take_alerts_about_a_service_only_when_they_name_its_detector() {
        let gap = alert("validation_gap");
        for action in [Action::RevokeToken, Action::DisablePrincipal] {
            assert!(!sink(action, &[]).accepts(&gap), "{action:?}");
            assert!(!sink(action, &["token_replay"]).accepts(&gap), "{action:?}");
            assert!(
                sink(action, &["validation_gap"]).accepts(&gap),
                "{action:?}"
            );
            // Alerts about the caller are unchanged.
            assert!(
                sink(action, &[]).accepts(&alert("token_replay")),
                "{action:?}"
            );
        }
        assert!(sink(Action::Notify, &[]).accepts(&gap));
        assert!(!sink(Action::Notify, &["token_replay"]).accepts(&gap));
    }
}
