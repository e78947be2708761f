//! One lake event as one OCSF 1.1.0 event: the class, activity and status it maps to and
//! every attribute it fills. docs/ocsf.md is this mapping in tables; keep the two together.
//!
//! Class and enum values are those of the OCSF schema (github.com/ocsf/ocsf-schema,
//! `events/iam/authentication.json`, `events/iam/authorize_session.json`,
//! `events/application/api_activity.json`; schema.ocsf.io/1.1.0).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::row::Row;

/// The OCSF version the export writes (`metadata.version`).
pub const OCSF_VERSION: &str = "1.1.0";

/// An OCSF event class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
}

/// Authentication (3002), category Identity & Access Management (3).
pub const AUTHENTICATION: Class = Class {
    uid: 3002,
    name: "Authentication",
    category_uid: 3,
    category_name: "Identity & Access Management",
};

/// Authorize Session (3003), category Identity & Access Management (3).
pub const AUTHORIZE_SESSION: Class = Class {
    uid: 3003,
    name: "Authorize Session",
    category_uid: 3,
    category_name: "Identity & Access Management",
};

/// API Activity (6003), category Application Activity (6).
pub const API_ACTIVITY: Class = Class {
    uid: 6003,
    name: "API Activity",
    category_uid: 6,
    category_name: "Application Activity",
};

/// Every class the export writes.
pub const CLASSES: [Class; 3] = [AUTHENTICATION, AUTHORIZE_SESSION, API_ACTIVITY];

/// An activity of a class: its id, its caption and the caption of its `type_uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Activity {
    id: u32,
    name: &'static str,
    type_name: &'static str,
}

const LOGON: Activity = Activity {
    id: 1,
    name: "Logon",
    type_name: "Authentication: Logon",
};
const LOGOFF: Activity = Activity {
    id: 2,
    name: "Logoff",
    type_name: "Authentication: Logoff",
};
const SERVICE_TICKET_REQUEST: Activity = Activity {
    id: 4,
    name: "Service Ticket Request",
    type_name: "Authentication: Service Ticket Request",
};
const SERVICE_TICKET_RENEW: Activity = Activity {
    id: 5,
    name: "Service Ticket Renew",
    type_name: "Authentication: Service Ticket Renew",
};
const ASSIGN_PRIVILEGES: Activity = Activity {
    id: 1,
    name: "Assign Privileges",
    type_name: "Authorize Session: Assign Privileges",
};
const API_UNKNOWN: Activity = Activity {
    id: 0,
    name: "Unknown",
    type_name: "API Activity: Unknown",
};
const API_CREATE: Activity = Activity {
    id: 1,
    name: "Create",
    type_name: "API Activity: Create",
};
const API_READ: Activity = Activity {
    id: 2,
    name: "Read",
    type_name: "API Activity: Read",
};
const API_UPDATE: Activity = Activity {
    id: 3,
    name: "Update",
    type_name: "API Activity: Update",
};
const API_DELETE: Activity = Activity {
    id: 4,
    name: "Delete",
    type_name: "API Activity: Delete",
};
const API_OTHER: Activity = Activity {
    id: 99,
    name: "Other",
    type_name: "API Activity: Other",
};

/// The product name in `metadata.product`.
const PRODUCT: &str = "authtrail";

/// One OCSF event. Attributes a class does not have stay `None` and are not written; the
/// Parquet schema (`schema.rs`) declares the union of the three classes' attributes.
#[derive(Debug, Serialize)]
pub struct OcsfEvent<'a> {
    pub class_uid: u32,
    pub class_name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
    pub activity_id: u32,
    /// The activity's caption; for API Activity's Other, the event's action.
    pub activity_name: &'a str,
    pub type_uid: u32,
    pub type_name: &'static str,
    pub severity_id: u32,
    pub severity: &'static str,
    pub status_id: u32,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<&'a str>,
    /// Event time, epoch milliseconds.
    pub time: i64,
    pub metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Resource<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_protocol_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_mfa: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Unmapped::is_empty")]
    pub unmapped: Unmapped<'a>,
}

/// `metadata`.
#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    pub version: &'static str,
    pub uid: &'a str,
    pub product: Product,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_uid: Option<&'a str>,
}

/// `metadata.product`.
#[derive(Debug, Serialize)]
pub struct Product {
    pub name: &'static str,
    pub vendor_name: &'static str,
    pub version: &'static str,
}

/// The `user` object (and `actor.user`).
#[derive(Debug, Serialize)]
pub struct User<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    pub type_id: u32,
    #[serde(rename = "type")]
    pub type_name: &'static str,
}

/// `actor`.
#[derive(Debug, Serialize)]
pub struct Actor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_uid: Option<&'a str>,
}

/// `api`.
#[derive(Debug, Serialize)]
pub struct Api<'a> {
    pub operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Named<'a>>,
}

/// An object of which authtrail knows only the name (`service`, `api.service`).
#[derive(Debug, Serialize)]
pub struct Named<'a> {
    pub name: &'a str,
}

/// An entry of `resources`.
#[derive(Debug, Serialize)]
pub struct Resource<'a> {
    pub name: &'a str,
}

/// `src_endpoint`, `dst_endpoint`.
#[derive(Debug, Default, Serialize)]
pub struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svc_name: Option<&'a str>,
}

/// `session` (and `actor.session`).
#[derive(Debug, Serialize)]
pub struct Session<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    /// Epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<i64>,
}

/// `http_request`.
#[derive(Debug, Serialize)]
pub struct HttpRequest<'a> {
    pub user_agent: &'a str,
}

/// `unmapped`: what the contract carries and these classes have no attribute for.
#[derive(Debug, Serialize)]
pub struct Unmapped<'a> {
    /// The event's `attributes`, as they are.
    #[serde(
        skip_serializing_if = "<[_]>::is_empty",
        serialize_with = "serialize_pairs"
    )]
    pub attributes: Vec<(&'a str, Option<&'a str>)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_audience: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_scopes: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<Vec<&'a str>>,
}

impl Unmapped<'_> {
    fn is_empty(&self) -> bool {
        self.attributes.is_empty()
            && self.auth_method.is_none()
            && self.token_audience.is_none()
            && self.token_scopes.is_none()
            && self.required_scopes.is_none()
    }
}

fn serialize_pairs<S: Serializer>(
    pairs: &[(&str, Option<&str>)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

fn millis(micros: i64) -> i64 {
    micros.div_euclid(1_000)
}

/// `user` from the principal: `principal_type` `user` is a User (1); a `service` has no
/// type of its own in OCSF 1.1.0, so it is Other (99) with type `Service`.
fn user<'a>(row: &Row<'a>) -> User<'a> {
    let (type_id, type_name) = match row.principal_type {
        Some("user") => (1, "User"),
        Some("service") => (99, "Service"),
        _ => (0, "Unknown"),
    };
    User {
        name: row.principal,
        uid: row.principal,
        type_id,
        type_name,
    }
}

/// The token and session the event names, if any.
fn session<'a>(row: &Row<'a>) -> Option<Session<'a>> {
    let session = Session {
        uid: row.session_id,
        credential_uid: row.token_id,
        issuer: row.token_issuer,
        expiration_time: row.token_expires.map(millis),
    };
    let empty = session.uid.is_none()
        && session.credential_uid.is_none()
        && session.issuer.is_none()
        && session.expiration_time.is_none();
    (!empty).then_some(session)
}

fn endpoint<'a>(ip: Option<&'a str>, svc_name: Option<&'a str>) -> Option<Endpoint<'a>> {
    (ip.is_some() || svc_name.is_some()).then_some(Endpoint { ip, svc_name })
}

/// `status_id` and `status`: success and allow are Success (1), failure and deny Failure
/// (2). A token issue or revoke reported without an outcome happened: Success.
fn status<'a>(kind: &str, outcome: Option<&'a str>) -> (u32, &'a str) {
    match (outcome, kind) {
        (Some("success" | "allow"), _) => (1, "Success"),
        (Some("failure" | "deny"), _) => (2, "Failure"),
        (None, "token_issue" | "token_revoke") => (1, "Success"),
        (None, _) => (0, "Unknown"),
        (Some(other), _) => (99, other),
    }
}

/// `auth_protocol_id` and `auth_protocol` (OCSF 1.1.0's enum captions) for the contract's
/// `auth_method`: OAuth 2.0 grant types are OAuth 2.0 (6); names of the enum's other
/// protocols are those; anything else (`password`, `mfa_push`, `mtls`) is Other (99) with
/// the method as its caption.
fn auth_protocol(method: &str) -> (u32, &str) {
    match method.to_ascii_lowercase().as_str() {
        "authorization_code" | "client_credentials" | "refresh_token" | "token_exchange"
        | "implicit" | "device_code" | "jwt_bearer" | "oauth2" | "oauth" => (6, "OAUTH 2.0"),
        "oidc" | "openid" => (4, "OpenID"),
        "saml" => (5, "SAML"),
        "kerberos" => (2, "Kerberos"),
        "ntlm" => (1, "NTLM"),
        "digest" => (3, "Digest"),
        "pap" => (7, "PAP"),
        "chap" => (8, "CHAP"),
        "eap" => (9, "EAP"),
        "radius" => (10, "RADIUS"),
        _ => (99, method),
    }
}

/// API Activity's activity for an action: the CRUD verb of its first word (an HTTP method
/// or a verb), Other (99) for any other action, Unknown (0) without one.
fn api_activity(action: Option<&str>) -> Activity {
    let Some(action) = action else {
        return API_UNKNOWN;
    };
    let verb = action.split_whitespace().next().unwrap_or_default();
    match verb.to_ascii_lowercase().as_str() {
        "post" | "create" | "add" | "insert" => API_CREATE,
        "get" | "head" | "read" | "list" | "view" | "describe" | "query" | "search" => API_READ,
        "put" | "patch" | "update" | "write" | "modify" | "set" => API_UPDATE,
        "delete" | "remove" => API_DELETE,
        _ => API_OTHER,
    }
}

/// The class and activity of an event; see docs/ocsf.md for the rules.
fn class_and_activity(row: &Row<'_>) -> anyhow::Result<(Class, Activity)> {
    Ok(match row.kind {
        "authn" => (AUTHENTICATION, LOGON),
        "token_revoke" => (AUTHENTICATION, LOGOFF),
        "token_issue" if row.auth_method == Some("refresh_token") => {
            (AUTHENTICATION, SERVICE_TICKET_RENEW)
        }
        "token_issue" => (AUTHENTICATION, SERVICE_TICKET_REQUEST),
        "authz" if is_session_grant(row) => (AUTHORIZE_SESSION, ASSIGN_PRIVILEGES),
        "authz" => (API_ACTIVITY, api_activity(row.action)),
        other => anyhow::bail!(
            "event `{}` has kind `{other}`, which has no OCSF mapping",
            row.id
        ),
    })
}

/// An authz event that names no request (no resource, no action) but the scopes granted:
/// a decision about a session, not about one call.
fn is_session_grant(row: &Row<'_>) -> bool {
    row.resource.is_none()
        && row.action.is_none()
        && row
            .token_scopes
            .as_ref()
            .is_some_and(|scopes| !scopes.is_empty())
}

/// The OCSF event of a lake event.
pub fn map<'a>(row: &Row<'a>) -> anyhow::Result<OcsfEvent<'a>> {
    let (class, activity) = class_and_activity(row)?;
    let (status_id, status) = status(row.kind, row.outcome);
    let activity_name = match (class, activity) {
        (API_ACTIVITY, API_OTHER) => row.action.unwrap_or(activity.name),
        _ => activity.name,
    };
    let (auth_protocol_id, auth_protocol) = match (class, row.auth_method) {
        (AUTHENTICATION, Some(method)) => {
            let (id, caption) = auth_protocol(method);
            (Some(id), Some(caption))
        }
        (AUTHENTICATION, None) => (Some(0), None),
        _ => (None, None),
    };
    let metadata = Metadata {
        version: OCSF_VERSION,
        uid: row.id,
        product: Product {
            name: PRODUCT,
            vendor_name: PRODUCT,
            version: env!("CARGO_PKG_VERSION"),
        },
        log_name: row.ingest_topic,
        log_provider: row.service,
        logged_time: row.ingest_time.map(millis),
        correlation_uid: row.trace_id,
    };
    let privileges = (class == AUTHORIZE_SESSION).then(|| row.token_scopes.clone());
    let mut event = OcsfEvent {
        class_uid: class.uid,
        class_name: class.name,
        category_uid: class.category_uid,
        category_name: class.category_name,
        activity_id: activity.id,
        activity_name,
        type_uid: class.uid * 100 + activity.id,
        type_name: activity.type_name,
        // The lake records what happened, not how bad it is: alerts are authtrail's
        // verdicts, and they are not exported here.
        severity_id: 1,
        severity: "Informational",
        status_id,
        status,
        status_detail: row.reason,
        time: millis(row.time),
        metadata,
        user: None,
        actor: None,
        api: None,
        resources: None,
        src_endpoint: endpoint(row.source_ip, row.source_service),
        dst_endpoint: endpoint(None, row.target_service),
        service: None,
        session: None,
        auth_protocol,
        auth_protocol_id,
        is_mfa: None,
        http_request: row.user_agent.map(|user_agent| HttpRequest { user_agent }),
        privileges: privileges.flatten(),
        unmapped: Unmapped {
            attributes: row.attributes.clone(),
            auth_method: row.auth_method,
            token_audience: row.token_audience.clone(),
            token_scopes: match class {
                AUTHORIZE_SESSION => None,
                _ => row.token_scopes.clone(),
            },
            required_scopes: row.required_scopes.clone(),
        },
    };
    match class {
        AUTHENTICATION => {
            event.user = Some(user(row));
            event.actor = row.client_id.map(|client_id| Actor {
                user: None,
                session: None,
                app_uid: Some(client_id),
            });
            event.service = row.service.map(|name| Named { name });
            event.session = session(row);
            event.is_mfa = row.mfa;
        }
        AUTHORIZE_SESSION => {
            event.user = Some(user(row));
            event.session = session(row);
        }
        _ => {
            event.actor = Some(Actor {
                user: Some(user(row)),
                session: session(row),
                app_uid: row.client_id,
            });
            event.api = Some(Api {
                operation: row.action.unwrap_or("unknown"),
                service: row.target_service.map(|name| Named { name }),
            });
            event.resources = row.resource.map(|name| vec![Resource { name }]);
            // API Activity requires `src_endpoint`, even when the event names no source.
            event.src_endpoint = Some(event.src_endpoint.unwrap_or_default());
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &'static str) -> Row<'static> {
        Row {
            id: "e-1",
            time: 1_795_456_800_123_456,
            kind,
            principal: "user:alice",
            principal_type: Some("user"),
            service: Some("idp"),
            ..Row::default()
        }
    }

    fn json(row: &Row<'_>) -> serde_json::Value {
        serde_json::to_value(map(row).unwrap()).unwrap()
    }

    #[test]
    fn a_failed_logon_is_authentication_logon_failure() {
        let mut event = row("authn");
        event.outcome = Some("failure");
        event.reason = Some("bad_password");
        event.auth_method = Some("password");
        event.source_ip = Some("203.0.113.7");
        event.mfa = Some(false);
        event.session_id = Some("s-1");
        let value = json(&event);
        assert_eq!(value["class_uid"], 3002);
        assert_eq!(value["category_uid"], 3);
        assert_eq!(value["activity_id"], 1);
        assert_eq!(value["type_uid"], 300201);
        assert_eq!(value["status_id"], 2);
        assert_eq!(value["status_detail"], "bad_password");
        assert_eq!(value["time"], 1_795_456_800_123i64);
        assert_eq!(value["user"]["name"], "user:alice");
        assert_eq!(value["user"]["type_id"], 1);
        assert_eq!(value["src_endpoint"]["ip"], "203.0.113.7");
        assert_eq!(value["session"]["uid"], "s-1");
        assert_eq!(value["auth_protocol_id"], 99);
        assert_eq!(value["auth_protocol"], "password");
        assert_eq!(value["is_mfa"], false);
        assert_eq!(value["service"]["name"], "idp");
        assert_eq!(value["metadata"]["uid"], "e-1");
        assert_eq!(value["metadata"]["version"], "1.1.0");
        assert_eq!(value["metadata"]["product"]["name"], "authtrail");
    }

    #[test]
    fn token_issue_is_a_service_ticket_request_and_a_refresh_renews() {
        let mut issue = row("token_issue");
        issue.principal = "svc:checkout";
        issue.principal_type = Some("service");
        issue.auth_method = Some("client_credentials");
        issue.client_id = Some("checkout");
        issue.token_id = Some("jti-9f2");
        issue.token_scopes = Some(vec!["payments:charge"]);
        let value = json(&issue);
        assert_eq!(value["type_uid"], 300204);
        assert_eq!(value["status_id"], 1, "issued without an outcome: Success");
        assert_eq!(value["auth_protocol_id"], 6);
        assert_eq!(value["unmapped"]["auth_method"], "client_credentials");
        assert_eq!(value["unmapped"]["token_scopes"][0], "payments:charge");
        assert_eq!(value["session"]["credential_uid"], "jti-9f2");
        assert_eq!(value["actor"]["app_uid"], "checkout");
        assert_eq!(value["user"]["type_id"], 99);
        issue.auth_method = Some("refresh_token");
        assert_eq!(json(&issue)["type_uid"], 300205);
    }

    #[test]
    fn token_revoke_is_a_logoff() {
        let value = json(&row("token_revoke"));
        assert_eq!(
            (value["type_uid"].clone(), value["status_id"].clone()),
            (300202.into(), 1.into())
        );
    }

    #[test]
    fn authz_of_a_request_is_api_activity_by_its_verb() {
        let mut check = row("authz");
        check.outcome = Some("deny");
        check.action = Some("POST /refunds");
        check.resource = Some("/refunds");
        check.target_service = Some("payments");
        check.source_service = Some("checkout");
        let value = json(&check);
        assert_eq!(value["class_uid"], 6003);
        assert_eq!(value["category_uid"], 6);
        assert_eq!(value["type_uid"], 600301);
        assert_eq!(value["status_id"], 2);
        assert_eq!(value["api"]["operation"], "POST /refunds");
        assert_eq!(value["resources"][0]["name"], "/refunds");
        assert_eq!(value["dst_endpoint"]["svc_name"], "payments");
        assert_eq!(value["src_endpoint"]["svc_name"], "checkout");
        assert_eq!(value["actor"]["user"]["uid"], "user:alice");
        check.action = Some("approve");
        let value = json(&check);
        assert_eq!(
            (value["activity_id"].clone(), value["activity_name"].clone()),
            (99.into(), "approve".into())
        );
        check.action = None;
        assert_eq!(json(&check)["type_uid"], 600300);
    }

    #[test]
    fn authz_without_a_request_but_with_scopes_is_authorize_session() {
        let mut grant = row("authz");
        grant.outcome = Some("allow");
        grant.token_scopes = Some(vec!["orders:read", "orders:write"]);
        let value = json(&grant);
        assert_eq!(value["class_uid"], 3003);
        assert_eq!(value["type_uid"], 300301);
        assert_eq!(value["privileges"][1], "orders:write");
        assert!(value["unmapped"].get("token_scopes").is_none());
        assert_eq!(value["user"]["name"], "user:alice");
    }

    #[test]
    fn attributes_are_kept_in_unmapped() {
        let mut event = row("authn");
        event.outcome = Some("success");
        event.attributes = vec![("tenant", Some("acme")), ("note", None)];
        let value = json(&event);
        assert_eq!(value["unmapped"]["attributes"]["tenant"], "acme");
        assert!(value["unmapped"]["attributes"]["note"].is_null());
    }

    #[test]
    fn an_unknown_kind_is_an_error_naming_the_event() {
        let error = map(&row("telepathy")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "event `e-1` has kind `telepathy`, which has no OCSF mapping"
        );
    }
}
