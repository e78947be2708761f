//! Authorization decisions as the Kubernetes API server audits them: `audit.k8s.io/v1`
//! `Event`s at level `Metadata`, stage `ResponseComplete`, one per request.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::user_name;
use crate::event::Ev;

/// The key under which the API server names the credential a request presented.
const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: &'static str,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: String,
    user: User,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    source_ips: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    /// Absent for a non-resource request (`/`, `db:customers`), as for the API server's
    /// `/healthz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef<'a>>,
    response_status: ResponseStatus,
    request_received_timestamp: String,
    stage_timestamp: String,
    annotations: Annotations<'a>,
}

#[derive(Serialize)]
struct User {
    username: String,
    groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<&'static str, Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    resource: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subresource: Option<&'a str>,
    api_version: &'static str,
}

/// The status's list metadata, always empty in audit events.
#[derive(Serialize)]
struct NoMetadata {}

#[derive(Serialize)]
struct ResponseStatus {
    metadata: NoMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    code: u16,
}

#[derive(Serialize)]
struct Annotations<'a> {
    #[serde(rename = "authorization.k8s.io/decision")]
    decision: &'static str,
    #[serde(rename = "authorization.k8s.io/reason")]
    reason: &'a str,
}

/// `ev` as an audit event, or `None` for what the API server does not audit as a
/// decision: every kind but `authz`, and an `authz` without the outcome, resource or
/// action a request has.
pub(super) fn render(ev: &Ev) -> Option<String> {
    // People's own requests only: the generated services authenticate with the identity
    // provider's client tokens, and as Kubernetes service accounts they would be other
    // principals than the clients those tokens were issued to; and a call a service
    // forwards on a person's behalf (`source_service`) has no place in an audit event, so
    // it would read as the person calling from the service's address. A call without any
    // credential (principal `anonymous`) is no person's either: the API server would name
    // it `system:anonymous`, another principal than the contract's.
    let person = ev.principal.starts_with("user:");
    if ev.kind != "authz" || !person || ev.source_service.is_some() {
        return None;
    }
    let allowed = match ev.outcome? {
        "allow" => true,
        "deny" => false,
        _ => return None,
    };
    let path = ev.resource?;
    let action = ev.action?;
    // The model has no latency of its own: both stamps are the event's time, so either
    // gives the adapter the contract's time.
    let time = DateTime::<Utc>::from_timestamp_micros(ev.time)?
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let target = ev.target_service.or(ev.service)?;
    let event = Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: "Metadata",
        audit_id: &ev.id,
        stage: "ResponseComplete",
        request_uri: path,
        verb: verb(action),
        user: user(ev),
        source_ips: ev.source_ip.into_iter().collect(),
        user_agent: ev.user_agent,
        object_ref: object_ref(path, target),
        response_status: if allowed {
            ResponseStatus {
                metadata: NoMetadata {},
                status: None,
                reason: None,
                code: 200,
            }
        } else {
            ResponseStatus {
                metadata: NoMetadata {},
                status: Some("Failure"),
                reason: Some("Forbidden"),
                code: 403,
            }
        },
        request_received_timestamp: time.clone(),
        stage_timestamp: time,
        annotations: Annotations {
            decision: if allowed { "allow" } else { "forbid" },
            reason: ev.reason.unwrap_or(""),
        },
    };
    Some(serde_json::to_string(&event).expect("audit events serialise"))
}

/// The API server's verb for an HTTP method; other actions (`read`) as they are, in
/// lower case.
fn verb(action: &str) -> String {
    match action {
        "GET" => "get".into(),
        "POST" => "create".into(),
        "PUT" => "update".into(),
        "DELETE" => "delete".into(),
        other => other.to_lowercase(),
    }
}

fn user(ev: &Ev) -> User {
    let mut extra = BTreeMap::new();
    if let Some(token) = &ev.token_id {
        extra.insert(CREDENTIAL_ID, vec![format!("JTI={token}")]);
    }
    User {
        username: user_name(&ev.principal).to_owned(),
        groups: vec!["system:authenticated".into()],
        extra,
    }
}

/// The object a request path names, read as a resource path: `/<resource>[/<name>
/// [/<subresource>]]` in the target service's namespace. A path of no resource (`/`) or
/// not a path at all (`db:customers`) names none.
fn object_ref<'a>(path: &'a str, namespace: &'a str) -> Option<ObjectRef<'a>> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let resource = segments.next().filter(|resource| !resource.is_empty())?;
    Some(ObjectRef {
        resource,
        namespace,
        name: segments.next().filter(|name| !name.is_empty()),
        subresource: segments.next().filter(|sub| !sub.is_empty()),
        api_version: "v1",
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const T: i64 = 1_795_456_802_000_000;

    fn authz(principal: &str, outcome: &'static str) -> Ev {
        let mut ev = Ev::new("ev-3".into(), T + 123_000, "authz", principal);
        ev.service = Some("payments");
        ev.target_service = Some("payments");
        ev.resource = Some("/charges");
        ev.action = Some("POST");
        ev.outcome = Some(outcome);
        ev.source_ip = Some(Ipv4Addr::new(10, 4, 0, 12));
        ev
    }

    fn rendered(ev: &Ev) -> Value {
        serde_json::from_str(&render(ev).expect("expressible")).unwrap()
    }

    #[test]
    fn only_peoples_own_requests_are_audit_events() {
        let mut forwarded = authz("user:ada", "allow");
        forwarded.source_service = Some("checkout");
        assert_eq!(render(&forwarded), None, "a call a service forwards");
        assert_eq!(render(&authz("svc:checkout", "deny")), None, "a service's");
        let denied = rendered(&authz("user:ada", "deny"));
        assert_eq!(
            denied["annotations"]["authorization.k8s.io/decision"],
            "forbid"
        );
        assert_eq!(denied["responseStatus"]["code"], 403);
    }

    #[test]
    fn an_allowed_call_is_a_metadata_event_at_response_complete() {
        let mut ev = authz("user:ada", "allow");
        ev.user_agent = Some("Mozilla/5.0");
        let event = rendered(&ev);
        assert_eq!(event["kind"], "Event");
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(event["level"], "Metadata");
        assert_eq!(event["stage"], "ResponseComplete");
        assert_eq!(event["auditID"], "ev-3");
        assert_eq!(event["requestURI"], "/charges");
        assert_eq!(event["verb"], "create");
        assert_eq!(event["user"]["username"], "ada");
        assert!(event["user"].get("extra").is_none());
        assert_eq!(event["sourceIPs"], json!(["10.4.0.12"]));
        assert_eq!(event["userAgent"], "Mozilla/5.0");
        assert_eq!(
            event["objectRef"],
            json!({"resource": "charges", "namespace": "payments", "apiVersion": "v1"})
        );
        assert_eq!(
            event["responseStatus"],
            json!({"metadata": {}, "code": 200})
        );
        assert_eq!(
            event["requestReceivedTimestamp"],
            "2026-11-23T18:00:02.123000Z"
        );
        assert_eq!(event["stageTimestamp"], event["requestReceivedTimestamp"]);
        assert_eq!(
            event["annotations"],
            json!({"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""})
        );
    }

    #[test]
    fn verbs_follow_the_method_and_paths_name_their_object() {
        assert_eq!(verb("GET"), "get");
        assert_eq!(verb("PUT"), "update");
        assert_eq!(verb("DELETE"), "delete");
        assert_eq!(verb("PATCH"), "patch");
        assert_eq!(verb("read"), "read");
        let mut ev = authz("user:ada", "allow");
        ev.resource = Some("/products/search");
        ev.action = Some("GET");
        ev.target_service = Some("catalog");
        let event = rendered(&ev);
        assert_eq!(event["objectRef"]["resource"], "products");
        assert_eq!(event["objectRef"]["name"], "search");
        assert_eq!(event["objectRef"]["namespace"], "catalog");
        for path in ["/", "db:customers"] {
            ev.resource = Some(path);
            let event = rendered(&ev);
            assert_eq!(event["requestURI"], path);
            assert!(event.get("objectRef").is_none(), "{path}");
        }
    }

    #[test]
    fn only_decisions_with_a_request_are_audit_events() {
        let mut login = Ev::new("ev-1".into(), T, "authn", "user:ada");
        login.outcome = Some("success");
        assert_eq!(render(&login), None);
        let mut no_resource = authz("user:ada", "allow");
        no_resource.resource = None;
        assert_eq!(render(&no_resource), None);
    }
}
