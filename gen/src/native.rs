//! Generated events written as the identity systems that would have logged them write
//! their own records, so an adapter (`model/src/adapt/`) has native input to map back
//! without anyone's real logs.
//!
//! - [`Format::Keycloak`]: Keycloak's user events, the `EventRepresentation` JSON that its
//!   event listeners write (`id`, epoch-ms `time`, `type`, `realmId`, `clientId`, `userId`,
//!   `sessionId`, `ipAddress`, `error` on `*_ERROR` types, string `details`). It expresses
//!   `authn` (`LOGIN`, `CLIENT_LOGIN` for services, `*_ERROR` on failure), `token_issue`
//!   (`CODE_TO_TOKEN`, `REFRESH_TOKEN`, `TOKEN_EXCHANGE`, `CLIENT_LOGIN` with a
//!   `details.token_id` for client credentials) and `token_revoke` (`REVOKE_GRANT` naming
//!   the token, `LOGOUT` revoking a user's tokens by principal). Not `authz`: Keycloak does
//!   not see the services' decisions.
//! - [`Format::K8sAudit`]: the Kubernetes API server's `audit.k8s.io/v1` `Event` at level
//!   `Metadata`, stage `ResponseComplete`. It expresses people's own `authz` only (not a
//!   call a service forwards for them, `source_service`, which an audit event cannot say): the decision
//!   and its reason in the `authorization.k8s.io/*` annotations, the token id as the
//!   `JTI=` credential id in `user.extra`, the object in the target service's namespace.
//!   A service's decisions stay in the contract: the generated services hold the identity
//!   provider's client tokens, and as Kubernetes service accounts they would be other
//!   principals than the clients those tokens were issued to.
//!
//! Each native record keeps the contract event's id as its own (`id`, `auditID`), so
//! the ground truth, keyed by event id, holds for the adapted events too. Names are chosen
//! so that one person or service is one principal in every source: a user `user:alice` is
//! Keycloak user `alice` (its `userId` too: the adapter reads `userId`, which real token
//! events carry) and Kubernetes user `alice` (the adapter makes both `user:alice`); a
//! service `svc:orders` is Keycloak client `orders`. SPIFFE-identified services present
//! their workload identity, not a client: their events stay in the contract.
//!
//! [`Format::render`] gives `None` for an event the format cannot express; writers count
//! those (`authtrail gen --format keycloak` leaves them out, `--native` sends them to the
//! contract topic).

mod k8s_audit;
mod keycloak;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use authtrail_model::adapt;
use authtrail_model::PrincipalType;
use sha2::{Digest, Sha256};

use crate::sim::Generated;

/// How generated events are written: the event contract, or a native log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The event contract (`events.md`): every event.
    Authtrail,
    /// Keycloak's user events (`authn`, `token_issue`, `token_revoke`).
    Keycloak,
    /// Kubernetes audit events (`authz`).
    K8sAudit,
}

impl Format {
    /// Every format, by its name.
    pub const ALL: [Format; 3] = [Format::Authtrail, Format::Keycloak, Format::K8sAudit];

    /// The format's name, as `--format` and the adapters spell it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Authtrail => "authtrail",
            Format::Keycloak => "keycloak",
            Format::K8sAudit => "k8s_audit",
        }
    }

    /// The Kafka topic a native format's records go to unless told otherwise, the one its
    /// adapter reads by default (`keycloak-events`, `k8s-audit`); `None` for the contract,
    /// whose topic is the configured one.
    pub fn default_topic(self) -> Option<String> {
        (self != Format::Authtrail).then(|| adapt::default_topic(self.name()))
    }

    /// `event` as one JSON object in this format (no newline), or `None` when the format
    /// cannot express it.
    pub fn render(self, event: &Generated) -> Option<Cow<'_, str>> {
        let native = match self {
            Format::Authtrail => return Some(Cow::Borrowed(&event.json)),
            Format::Keycloak => keycloak::render(&event.event)?,
            Format::K8sAudit => k8s_audit::render(&event.event)?,
        };
        Some(Cow::Owned(native))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or_else(|| {
                format!("unknown format `{name}` (known: authtrail, keycloak, k8s_audit)")
            })
    }
}

/// Whether the contract takes `principal` for a service (`svc:`, `spiffe://`).
fn is_service(principal: &str) -> bool {
    PrincipalType::infer(principal) == PrincipalType::Service
}

/// A user's name without the contract's `user:` prefix.
fn user_name(principal: &str) -> &str {
    principal.strip_prefix("user:").unwrap_or(principal)
}

/// A service's name: `svc:orders` is `orders`, a SPIFFE id its last path segment.
fn service_name(principal: &str) -> &str {
    match principal.strip_prefix("svc:") {
        Some(name) => name,
        None => principal
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(principal),
    }
}

/// A stable UUID for `principal`, the shape identity systems give their users' ids: the
/// first 128 bits of its SHA-256, marked as an RFC 9562 version 8 (custom) UUID.
fn stable_uuid(principal: &str) -> String {
    let digest = Sha256::digest(principal.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_from_their_names_and_nothing_else() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
        }
        let error = "okta".parse::<Format>().unwrap_err();
        assert!(error.contains("`okta`"), "{error}");
    }

    #[test]
    fn services_are_named_without_prefix_or_spiffe_path() {
        assert_eq!(service_name("svc:orders"), "orders");
        assert_eq!(
            service_name("spiffe://prod.example.com/ns/pay/sa/payments"),
            "payments"
        );
        assert_eq!(user_name("user:ada.lovelace3"), "ada.lovelace3");
        assert!(is_service("spiffe://prod.example.com/ns/pay/sa/payments"));
        assert!(!is_service("user:ada"));
    }

    #[test]
    fn a_principal_always_gets_the_same_version_8_uuid() {
        let id = stable_uuid("user:ada");
        assert_eq!(id, stable_uuid("user:ada"));
        assert_ne!(id, stable_uuid("user:bob"));
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "8");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
