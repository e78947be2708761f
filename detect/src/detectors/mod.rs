//! The built-in detectors of `detectors.md`, one file each, with their configs.

mod audience_mismatch;
mod authz_probing;
mod brute_force;
mod mfa_fatigue;
mod new_service_edge;
mod password_spray;
mod revoked_token_use;
mod service_fan_out;
mod service_interactive_login;
#[cfg(test)]
pub(crate) mod testkit;
mod token_replay;
mod validation_gap;

pub use audience_mismatch::AudienceMismatchConfig;
pub use authz_probing::AuthzProbingConfig;
pub use brute_force::BruteForceConfig;
pub use mfa_fatigue::MfaFatigueConfig;
pub use new_service_edge::NewServiceEdgeConfig;
pub use password_spray::PasswordSprayConfig;
pub use revoked_token_use::RevokedTokenUseConfig;
pub use service_fan_out::ServiceFanOutConfig;
pub use service_interactive_login::ServiceInteractiveLoginConfig;
pub use token_replay::TokenReplayConfig;
pub use validation_gap::ValidationGapConfig;

pub(crate) use authz_probing::Deny;
pub(crate) use brute_force::Account;
pub(crate) use service_fan_out::Reaches;
pub(crate) use token_replay::Sighting;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{micros, DetectConfig};
use crate::detector::{Detector, Rule};
use crate::state::window::Span;
use crate::tracked::PRESENTATIONS_AND_ISSUES;
use crate::Result;
use audience_mismatch::AudienceMismatch;
use authz_probing::AuthzProbing;
use brute_force::BruteForce;
use mfa_fatigue::MfaFatigue;
use new_service_edge::NewServiceEdge;
use password_spray::PasswordSpray;
use revoked_token_use::RevokedTokenUse;
use service_fan_out::ServiceFanOut;
use service_interactive_login::ServiceInteractiveLogin;
use token_replay::TokenReplay;
use validation_gap::ValidationGap;

/// One enabled detector: the rule its findings are raised under, and its state.
pub(crate) struct Enabled {
    pub rule: Rule,
    pub detector: Box<dyn Detector>,
}

impl Enabled {
    fn new(rule: Rule, detector: impl Detector + 'static) -> Self {
        Enabled {
            rule,
            detector: Box::new(detector),
        }
    }
}

/// A detector that holds nothing but its config and its window's span: its state is a
/// part of an entry in a shared table, which the engine keeps for it.
pub(crate) struct Windowed<C> {
    config: C,
    span: Span,
}

impl<C: Clone> Windowed<C> {
    fn new(config: &C, span: Span) -> Self {
        Windowed {
            config: config.clone(),
            span,
        }
    }
}

/// The detectors `config` enables, in the order of `detectors.md`, each with its rule:
/// name, kinds of event, ATT&CK technique, severity and suppression.
pub(crate) fn build(config: &DetectConfig) -> Vec<Enabled> {
    use authtrail_model::Kind::{Authn, Authz, TokenIssue, TokenRevoke};

    let lateness = micros(config.allowed_lateness);
    let span = |window| Span {
        width: micros(window),
        lateness,
    };
    let keys = config.max_keys;
    let mut enabled = Vec::new();

    let c = &config.new_service_edge;
    if c.enabled {
        // Its findings have the severity of their kind of edge, a service's or a user's.
        let severity = c.service_severity;
        let rule = Rule::new(
            "new_service_edge",
            &[Authz],
            "T1021",
            severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, NewServiceEdge::new(c)));
    }
    let c = &config.service_fan_out;
    if c.enabled {
        let rule = Rule::new(
            "service_fan_out",
            &[Authz],
            "T1021",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, ServiceFanOut::new(c, span(c.window))));
    }
    let c = &config.authz_probing;
    if c.enabled {
        let rule = Rule::new(
            "authz_probing",
            &[Authz],
            "T1069/T1580",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, AuthzProbing::new(c, span(c.window))));
    }
    let c = &config.brute_force;
    if c.enabled {
        let rule = Rule::new(
            "brute_force",
            &[Authn],
            "T1110.001",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, BruteForce::new(c, span(c.window))));
    }
    let c = &config.password_spray;
    if c.enabled {
        let rule = Rule::new(
            "password_spray",
            &[Authn],
            "T1110.003",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(
            rule,
            PasswordSpray::new(c, span(c.window), keys),
        ));
    }
    let c = &config.token_replay;
    if c.enabled {
        let kinds = PRESENTATIONS_AND_ISSUES;
        let rule = Rule::new(
            "token_replay",
            kinds,
            "T1550.001",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(
            rule,
            TokenReplay::new(c, span(c.window), keys),
        ));
    }
    let c = &config.revoked_token_use;
    if c.enabled {
        let kinds = &[TokenRevoke, Authz, Authn];
        let rule = Rule::new(
            "revoked_token_use",
            kinds,
            "T1550.001",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, RevokedTokenUse::new(c)));
    }
    let c = &config.audience_mismatch;
    if c.enabled {
        let kinds = PRESENTATIONS_AND_ISSUES;
        let rule = Rule::new(
            "audience_mismatch",
            kinds,
            "T1550.001",
            c.severity,
            c.suppression,
        );
        enabled.push(Enabled::new(rule, AudienceMismatch::new(lateness, keys)));
    }
    let c = &config.validation_gap;
    if c.enabled {
        // Findings are about the deciding service; the issues teach it the lifetimes and
        // issuers it judges tokens never issued against.
        let kinds = &[Authz, TokenIssue];
        let rule = Rule::new("validation_gap", kinds, "T1550", c.severity, c.suppression);
        enabled.push(Enabled::new(rule, ValidationGap::new(c, lateness, keys)));
    }
    let c = &config.mfa_fatigue;
    if c.enabled {
        let rule = Rule::new("mfa_fatigue", &[Authn], "T1621", c.severity, c.suppression);
        enabled.push(Enabled::new(rule, MfaFatigue::new(c, span(c.window))));
    }
    let c = &config.service_interactive_login;
    if c.enabled {
        let name = "service_interactive_login";
        let rule = Rule::new(name, &[Authn], "T1078.004", c.severity, c.suppression);
        enabled.push(Enabled::new(rule, ServiceInteractiveLogin));
    }
    enabled
}

/// A detector's state as checkpoint bytes.
fn encode<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_allocvec(state).expect("detector state always encodes")
}

/// A detector's state from checkpoint bytes.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(postcard::from_bytes(bytes)?)
}

/// A window's length for summaries (`5m`).
fn show(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}
