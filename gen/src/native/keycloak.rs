//! Keycloak's user events as its JSON event listeners write them: Keycloak's
//! `EventRepresentation` (`org.keycloak.representations.idm`) with the event's `id`, and
//! the detail keys of `org.keycloak.events.Details`.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::{is_service, service_name, stable_uuid, user_name};
use crate::event::Ev;

/// The realm every generated event happens in.
const REALM: &str = "prod";

/// Keycloak's `details.auth_method` is the login protocol, not the credential.
const PROTOCOL: &str = "openid-connect";

/// The grant type Keycloak writes for token exchange (RFC 8693's URN, as requested).
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    id: &'a str,
    /// Epoch milliseconds.
    time: i64,
    #[serde(rename = "type")]
    event_type: &'static str,
    realm_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    details: Details<'a>,
}

/// Keycloak's details are a string map; these are the keys it uses for what the
/// contract event says. The token's expiry, issuer and the caller's user agent have no
/// detail key in Keycloak and are left out.
#[derive(Serialize)]
struct Details<'a> {
    username: String,
    auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_type: Option<&'static str>,
    /// How a client proved itself: Keycloak's client authenticator id.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_auth_method: Option<&'static str>,
    /// `otp` for a second factor: Keycloak has no event of its own for one (it is a step
    /// of the login flow), and this is its name for the credential kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    /// Granted scopes, space-separated, as on Keycloak's token events.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    /// The token's audience, space-separated. Stock Keycloak writes this key on
    /// `TOKEN_EXCHANGE` only; it is on every issue here so the adapted stream keeps what
    /// the audience detectors need.
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    /// Why a token was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// A Keycloak event type and its `_ERROR` twin.
type EventType = (&'static str, &'static str);
const LOGIN: EventType = ("LOGIN", "LOGIN_ERROR");
const CLIENT_LOGIN: EventType = ("CLIENT_LOGIN", "CLIENT_LOGIN_ERROR");
const CODE_TO_TOKEN: EventType = ("CODE_TO_TOKEN", "CODE_TO_TOKEN_ERROR");
const REFRESH_TOKEN: EventType = ("REFRESH_TOKEN", "REFRESH_TOKEN_ERROR");
const TOKEN_EXCHANGE: EventType = ("TOKEN_EXCHANGE", "TOKEN_EXCHANGE_ERROR");

/// `ev` as Keycloak's JSON, or `None` for what Keycloak does not log: `authz`, and a
/// service's tokens revoked by principal (Keycloak logs clients out of nothing).
pub(super) fn render(ev: &Ev) -> Option<String> {
    // A SPIFFE-identified service presents its workload identity, not a Keycloak client:
    // its events stay in the contract, where its principal is that identity.
    if ev.principal.starts_with("spiffe://") {
        return None;
    }
    let service = is_service(&ev.principal);
    let failed = matches!(ev.outcome, Some("failure"));
    let mut event = Event {
        id: &ev.id,
        time: ev.time.div_euclid(1_000),
        event_type: "",
        realm_id: REALM,
        client_id: ev.client_id,
        // The generated realm's user ids are the usernames, so that a person is one
        // principal in every source: the services' own (contract) events name people by
        // username, and the Keycloak adapter takes `userId` (real token events carry no
        // username).
        user_id: if service {
            stable_uuid(&ev.principal)
        } else {
            user_name(&ev.principal).to_owned()
        },
        session_id: ev.session_id.as_deref(),
        ip_address: ev.source_ip,
        error: None,
        details: Details {
            username: if service {
                // Keycloak's user behind a client's own logins.
                format!("service-account-{}", service_name(&ev.principal))
            } else {
                user_name(&ev.principal).to_owned()
            },
            auth_method: PROTOCOL,
            grant_type: None,
            client_auth_method: None,
            credential_type: None,
            token_id: None,
            scope: None,
            audience: None,
            reason: None,
        },
    };
    if service {
        event.client_id = Some(service_name(&ev.principal));
    }
    let event_type = match ev.kind {
        "authn" if service => {
            let (grant, client_auth) = client_login(ev.auth_method);
            event.details.grant_type = grant;
            event.details.client_auth_method = client_auth;
            event.details.credential_type = second_factor(ev.auth_method);
            CLIENT_LOGIN
        }
        "authn" => {
            event.details.credential_type = second_factor(ev.auth_method);
            LOGIN
        }
        "token_issue" => {
            event.details.token_id = ev.token_id.as_deref();
            event.details.scope = ev.token_scopes;
            event.details.audience = ev.token_audience.as_ref().map(|aud| aud.join(" "));
            match ev.auth_method {
                Some("refresh_token") => {
                    event.details.grant_type = Some("refresh_token");
                    REFRESH_TOKEN
                }
                Some("token_exchange") => {
                    event.details.grant_type = Some(TOKEN_EXCHANGE_GRANT);
                    TOKEN_EXCHANGE
                }
                Some("authorization_code") => {
                    event.details.grant_type = Some("authorization_code");
                    CODE_TO_TOKEN
                }
                Some("client_credentials") => {
                    event.details.grant_type = Some("client_credentials");
                    event.details.client_auth_method = Some("client-secret");
                    CLIENT_LOGIN
                }
                // Another grant, or none named: a user's token comes from a code, a
                // service's from its own credentials.
                _ if service => {
                    event.details.grant_type = Some("client_credentials");
                    CLIENT_LOGIN
                }
                _ => {
                    event.details.grant_type = Some("authorization_code");
                    CODE_TO_TOKEN
                }
            }
        }
        "token_revoke" => {
            event.details.reason = ev.reason;
            return match &ev.token_id {
                Some(token) => {
                    event.details.token_id = Some(token);
                    event.event_type = "REVOKE_GRANT";
                    Some(to_json(&event))
                }
                None if service => None,
                None => {
                    event.event_type = "LOGOUT";
                    Some(to_json(&event))
                }
            };
        }
        _ => return None,
    };
    if failed {
        event.event_type = event_type.1;
        event.error = Some(error(ev.reason, service));
    } else {
        event.event_type = event_type.0;
    }
    Some(to_json(&event))
}

fn to_json(event: &Event<'_>) -> String {
    serde_json::to_string(event).expect("keycloak events serialise")
}

/// The grant and client authenticator of a service's own login.
fn client_login(method: Option<&str>) -> (Option<&'static str>, Option<&'static str>) {
    match method {
        Some("client_credentials") => (Some("client_credentials"), Some("client-secret")),
        Some("mtls") => (Some("client_credentials"), Some("client-x509")),
        // The service account's password through the direct grant.
        Some("password") => (Some("password"), None),
        _ => (None, None),
    }
}

fn second_factor(method: Option<&str>) -> Option<&'static str> {
    method
        .filter(|method| method.starts_with("mfa"))
        .map(|_| "otp")
}

/// Keycloak's error (`org.keycloak.events.Errors`) for the contract's failure reason;
/// other reasons pass through, as a custom authenticator's would.
fn error(reason: Option<&'static str>, service: bool) -> &'static str {
    match reason {
        Some("bad_password") => "invalid_user_credentials",
        Some("user_not_found" | "unknown_user") => "user_not_found",
        Some("invalid_client" | "bad_secret") => "invalid_client_credentials",
        Some("mfa_denied") => "rejected_by_user",
        Some("mfa_timeout") => "expired_code",
        Some("locked" | "account_locked") => "user_temporarily_disabled",
        Some(other) => other,
        None if service => "invalid_client_credentials",
        None => "invalid_user_credentials",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const T: i64 = 1_795_456_800_120_000;

    fn ev(kind: &'static str, principal: &str) -> Ev {
        Ev::new("ev-1".into(), T, kind, principal)
    }

    fn rendered(ev: &Ev) -> Value {
        serde_json::from_str(&render(ev).expect("expressible")).unwrap()
    }

    fn login(principal: &str, method: &'static str, reason: Option<&'static str>) -> Ev {
        let mut login = ev("authn", principal);
        login.outcome = Some(if reason.is_some() {
            "failure"
        } else {
            "success"
        });
        login.reason = reason;
        login.auth_method = Some(method);
        login.source_ip = Some(Ipv4Addr::new(203, 0, 113, 7));
        login
    }

    fn issue(principal: &str, grant: &'static str) -> Ev {
        let mut issue = ev("token_issue", principal);
        issue.outcome = Some("success");
        issue.token_id = Some("jti-9f2".into());
        issue.client_id = Some("web");
        issue.auth_method = Some(grant);
        issue.token_audience = Some(vec!["gateway", "orders"]);
        issue.token_scopes = Some("openid orders:read");
        issue.token_expires = Some(T + 900_000_000);
        issue.session_id = Some("s-1".into());
        issue
    }

    #[test]
    fn a_user_login_is_login_with_the_user_name_and_no_error() {
        let mut success = login("user:ada.lovelace3", "password", None);
        success.session_id = Some("s-1".into());
        let event = rendered(&success);
        assert_eq!(event["id"], "ev-1");
        assert_eq!(event["time"], T / 1_000);
        assert_eq!(event["type"], "LOGIN");
        assert_eq!(event["realmId"], "prod");
        assert_eq!(event["userId"], "ada.lovelace3");
        assert_eq!(event["sessionId"], "s-1");
        assert_eq!(event["ipAddress"], "203.0.113.7");
        assert_eq!(event["details"]["username"], "ada.lovelace3");
        assert_eq!(event["details"]["auth_method"], "openid-connect");
        assert!(event.get("error").is_none());
        assert!(event["details"].get("credential_type").is_none());
    }

    #[test]
    fn a_failed_login_is_login_error_with_keycloaks_error() {
        let failure = rendered(&login("user:ada", "password", Some("bad_password")));
        assert_eq!(failure["type"], "LOGIN_ERROR");
        assert_eq!(failure["error"], "invalid_user_credentials");
        let unknown = rendered(&login("user:nobody", "password", Some("user_not_found")));
        assert_eq!(unknown["error"], "user_not_found");
        let push = rendered(&login("user:ada", "mfa_push", Some("mfa_denied")));
        assert_eq!(push["type"], "LOGIN_ERROR");
        assert_eq!(push["error"], "rejected_by_user");
        assert_eq!(push["details"]["credential_type"], "otp");
    }

    #[test]
    fn a_service_login_is_client_login_named_by_the_client() {
        let event = rendered(&login("svc:orders", "client_credentials", None));
        assert_eq!(event["type"], "CLIENT_LOGIN");
        assert_eq!(event["clientId"], "orders");
        assert_eq!(event["details"]["username"], "service-account-orders");
        assert_eq!(event["details"]["grant_type"], "client_credentials");
        assert!(event["details"].get("token_id").is_none());

        let failure = rendered(&login(
            "svc:payments",
            "client_credentials",
            Some("invalid_client"),
        ));
        assert_eq!(failure["type"], "CLIENT_LOGIN_ERROR");
        assert_eq!(failure["clientId"], "payments");
        assert_eq!(failure["error"], "invalid_client_credentials");

        // A SPIFFE-identified service is no Keycloak client: it stays in the contract.
        let spiffe = login("spiffe://prod.example.com/ns/pay/sa/payments", "mtls", None);
        assert_eq!(super::render(&spiffe), None);

        let password = rendered(&login("svc:payments", "password", None));
        assert_eq!(password["type"], "CLIENT_LOGIN");
        assert_eq!(password["details"]["grant_type"], "password");
    }

    #[test]
    fn token_issues_follow_the_grant_with_token_id_scope_and_audience() {
        for (grant, event_type, grant_type) in [
            ("authorization_code", "CODE_TO_TOKEN", "authorization_code"),
            ("refresh_token", "REFRESH_TOKEN", "refresh_token"),
            ("token_exchange", "TOKEN_EXCHANGE", TOKEN_EXCHANGE_GRANT),
        ] {
            let event = rendered(&issue("user:ada", grant));
            assert_eq!(event["type"], event_type, "{grant}");
            assert_eq!(event["clientId"], "web");
            assert_eq!(event["sessionId"], "s-1");
            assert_eq!(
                event["details"],
                json!({
                    "username": "ada",
                    "auth_method": "openid-connect",
                    "grant_type": grant_type,
                    "token_id": "jti-9f2",
                    "scope": "openid orders:read",
                    "audience": "gateway orders",
                }),
                "{grant}: no expiry, Keycloak has no place for it"
            );
        }
        let client = rendered(&issue("svc:checkout", "client_credentials"));
        assert_eq!(client["type"], "CLIENT_LOGIN");
        assert_eq!(client["clientId"], "checkout");
        assert_eq!(client["details"]["token_id"], "jti-9f2");
        assert_eq!(client["details"]["grant_type"], "client_credentials");
    }

    #[test]
    fn a_revoke_names_its_token_or_logs_the_user_out() {
        let mut by_token = ev("token_revoke", "user:ada");
        by_token.token_id = Some("jti-9f2".into());
        by_token.reason = Some("logout");
        let event = rendered(&by_token);
        assert_eq!(event["type"], "REVOKE_GRANT");
        assert_eq!(event["details"]["token_id"], "jti-9f2");
        assert_eq!(event["details"]["reason"], "logout");
        assert!(event.get("error").is_none());

        let mut by_principal = ev("token_revoke", "user:ada");
        by_principal.session_id = Some("s-1".into());
        let event = rendered(&by_principal);
        assert_eq!(event["type"], "LOGOUT");
        assert_eq!(event["sessionId"], "s-1");
        assert_eq!(event["details"]["username"], "ada");
        assert!(event["details"].get("token_id").is_none());
    }

    #[test]
    fn decisions_and_a_services_logout_are_not_keycloak_events() {
        let mut decision = ev("authz", "user:ada");
        decision.outcome = Some("allow");
        assert_eq!(render(&decision), None);
        assert_eq!(render(&ev("token_revoke", "svc:orders")), None);
    }
}
