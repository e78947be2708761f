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

pub(crate) use authz_probing::Deny;
pub(crate) use brute_force::Account;
pub(crate) use service_fan_out::Reaches;
pub(crate) use token_replay::Sighting;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{micros, DetectConfig};
use crate::detector::Detector;
use crate::Result;

/// The detectors `config` enables, in the order of `detectors.md`.
pub(crate) fn build(config: &DetectConfig) -> Vec<Box<dyn Detector>> {
    let lateness = micros(config.allowed_lateness);
    let keys = config.max_keys;
    let mut detectors: Vec<Box<dyn Detector>> = Vec::new();
    if config.new_service_edge.enabled {
        detectors.push(Box::new(new_service_edge::NewServiceEdge::new(
            &config.new_service_edge,
        )));
    }
    if config.service_fan_out.enabled {
        detectors.push(Box::new(service_fan_out::ServiceFanOut::new(
            &config.service_fan_out,
            lateness,
        )));
    }
    if config.authz_probing.enabled {
        detectors.push(Box::new(authz_probing::AuthzProbing::new(
            &config.authz_probing,
            lateness,
        )));
    }
    if config.brute_force.enabled {
        detectors.push(Box::new(brute_force::BruteForce::new(
            &config.brute_force,
            lateness,
        )));
    }
    if config.password_spray.enabled {
        detectors.push(Box::new(password_spray::PasswordSpray::new(
            &config.password_spray,
            lateness,
            keys,
        )));
    }
    if config.token_replay.enabled {
        detectors.push(Box::new(token_replay::TokenReplay::new(
            &config.token_replay,
            lateness,
            keys,
        )));
    }
    if config.revoked_token_use.enabled {
        detectors.push(Box::new(revoked_token_use::RevokedTokenUse::new(
            &config.revoked_token_use,
            keys,
        )));
    }
    if config.audience_mismatch.enabled {
        detectors.push(Box::new(audience_mismatch::AudienceMismatch::new(
            &config.audience_mismatch,
            lateness,
            keys,
        )));
    }
    if config.mfa_fatigue.enabled {
        detectors.push(Box::new(mfa_fatigue::MfaFatigue::new(
            &config.mfa_fatigue,
            lateness,
        )));
    }
    if config.service_interactive_login.enabled {
        detectors.push(Box::new(
            service_interactive_login::ServiceInteractiveLogin::new(
                &config.service_interactive_login,
            ),
        ));
    }
    detectors
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
