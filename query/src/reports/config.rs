//! `[report]`: what the trust and privilege reports take as given (open routes, the
//! scopes an action needs, the fleet's tolerances).

use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// `[report]`: the settings of `authtrail report trust` and `authtrail report privilege`
/// (CLI, HTTP API and web UI alike).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// `[report.trust]`.
    pub trust: TrustConfig,
    /// `[report.privilege]`.
    pub privilege: PrivilegeConfig,
}

/// `[report.trust]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Clock skew a service may allow: a token used at most this long after its expiry is
    /// not reported. Not a setting of the report's own: the binary takes it from
    /// `detect.validation_gap.skew`, so the report and the live detector judge expiry by
    /// one tolerance. Default 60s, the detector's.
    #[serde(skip)]
    pub skew: Duration,
    /// How far before the report's window token issues and revocations are read, so a
    /// token issued or revoked before the window is still judged when used inside it. It
    /// should exceed the longest token lifetime. Default 24h.
    #[serde(with = "humantime_serde")]
    pub token_lookback: Duration,
    /// Routes meant to be open (health checks, public pages): calls allowed there without
    /// a token or service identity are not reported.
    pub open_routes: Vec<RoutePattern>,
    /// Deny reasons (compared case-insensitively) that say a service rejected the token
    /// itself rather than the request: only such denies make a peer's acceptance of the
    /// same token a finding. A deny for policy (`insufficient_scope`, `forbidden`) says
    /// nothing about the token's validity, nor does an audience mismatch at the peer (the
    /// token was not meant for it).
    pub token_rejection_reasons: Vec<String>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            skew: Duration::from_secs(60),
            token_lookback: Duration::from_secs(24 * 3600),
            open_routes: Vec::new(),
            token_rejection_reasons: [
                "invalid_token",
                "token_invalid",
                "expired",
                "token_expired",
                "revoked",
                "token_revoked",
                "invalid_signature",
                "bad_signature",
                "unknown_token",
                "unknown_issuer",
                "invalid_issuer",
                "malformed_token",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A set of calls by service, resource and action; `*` in `resource` and `action` matches
/// any text (`/health*`), an absent field matches everything.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePattern {
    /// The deciding service (`target_service`, else `service`); absent: every service.
    pub service: Option<String>,
    /// The resource, `*` as a wildcard.
    pub resource: Option<String>,
    /// The action, `*` as a wildcard.
    pub action: Option<String>,
}

/// `[report.privilege]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivilegeConfig {
    /// The scopes an allowed call exercised, for services that do not send
    /// `required_scopes`: the first entry matching the call's service, resource and action
    /// gives them. An event's own `required_scopes` always wins.
    pub scope_map: Vec<ScopeRule>,
    /// A token whose audience lists more services than this is over-broad. Default 5.
    pub max_audiences: usize,
    /// A client whose median token lifetime exceeds this many times the fleet's median for
    /// the same grant type holds long-lived tokens. Default 4.
    pub lifetime_factor: f64,
}

impl Default for PrivilegeConfig {
    fn default() -> Self {
        PrivilegeConfig {
            scope_map: Vec::new(),
            max_audiences: 5,
            lifetime_factor: 4.0,
        }
    }
}

/// One entry of `scope_map`: calls matching `route` exercise `scopes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// The deciding service; absent: every service.
    pub service: Option<String>,
    /// The resource, `*` as a wildcard.
    pub resource: Option<String>,
    /// The action, `*` as a wildcard.
    pub action: Option<String>,
    /// The scopes such a call needs.
    pub scopes: Vec<String>,
}

/// Most entries of `open_routes` and of `scope_map`: each becomes a term of the reports'
/// SQL.
pub const MAX_PATTERNS: usize = 500;

impl ReportConfig {
    /// Refuses settings the reports cannot use.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::Config(reason));
        if self.trust.open_routes.len() > MAX_PATTERNS {
            return invalid(format!(
                "`report.trust.open_routes` has more than {MAX_PATTERNS} entries"
            ));
        }
        if self.privilege.scope_map.len() > MAX_PATTERNS {
            return invalid(format!(
                "`report.privilege.scope_map` has more than {MAX_PATTERNS} entries"
            ));
        }
        for (index, route) in self.trust.open_routes.iter().enumerate() {
            if route.service.is_none() && route.resource.is_none() && route.action.is_none() {
                return invalid(format!(
                    "`report.trust.open_routes[{index}]` names no service, resource or action: it would open everything"
                ));
            }
        }
        for (index, rule) in self.privilege.scope_map.iter().enumerate() {
            if rule.scopes.is_empty() {
                return invalid(format!(
                    "`report.privilege.scope_map[{index}]` lists no scopes"
                ));
            }
        }
        if !(self.privilege.lifetime_factor.is_finite() && self.privilege.lifetime_factor >= 1.0) {
            return invalid("`report.privilege.lifetime_factor` must be at least 1".into());
        }
        Ok(())
    }
}

/// A `*` glob as a SQL `LIKE` pattern with `\` as the escape character: `%` and `_` match
/// themselves, `*` matches any text.
pub(crate) fn like_pattern(glob: &str) -> String {
    let mut pattern = String::with_capacity(glob.len() + 2);
    for c in glob.chars() {
        match c {
            '*' => pattern.push('%'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c => pattern.push(c),
        }
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_like_patterns_with_sql_wildcards_escaped() {
        assert_eq!(like_pattern("/health*"), "/health%");
        assert_eq!(like_pattern("/a_b%c"), "/a\\_b\\%c");
        assert_eq!(like_pattern("x\\y"), "x\\\\y");
    }

    #[test]
    fn a_route_naming_nothing_is_refused() {
        let mut config = ReportConfig::default();
        config.trust.open_routes.push(RoutePattern {
            service: None,
            resource: None,
            action: None,
        });
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("open everything"), "{error}");
    }

    #[test]
    fn the_config_reads_from_toml() {
        let config: ReportConfig = toml_like(
            r#"{"trust": {"token_lookback": "12h", "open_routes": [{"service": "orders", "resource": "/healthz"}]},
                "privilege": {"scope_map": [{"service": "orders", "action": "POST", "scopes": ["orders:write"]}]}}"#,
        );
        assert_eq!(config.trust.token_lookback, Duration::from_secs(12 * 3600));
        assert_eq!(
            config.trust.open_routes[0].resource.as_deref(),
            Some("/healthz")
        );
        assert_eq!(config.privilege.scope_map[0].scopes, ["orders:write"]);
        config.validate().unwrap();
    }

    #[test]
    fn the_skew_is_not_a_report_setting() {
        let error = serde_json::from_str::<ReportConfig>(r#"{"trust": {"skew": "30s"}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `skew`"), "{error}");
    }

    /// The query crate has no TOML parser; serde's JSON reads the same structure.
    fn toml_like(json: &str) -> ReportConfig {
        serde_json::from_str(json).unwrap()
    }
}
