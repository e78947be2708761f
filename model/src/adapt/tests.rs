use std::path::PathBuf;

use super::*;
use crate::event::{Outcome, PrincipalType};

const NOW: Micros = 1_800_000_000_000_000;

fn context(envelope_time: Option<Micros>) -> DecodeContext {
    DecodeContext {
        now: NOW,
        limits: ContractLimits::default(),
        envelope_time,
    }
}

fn format(name: &str) -> Format {
    Format::builtin(name).unwrap()
}

fn decode<'a>(format: &'a Format, record: &'a str) -> Decoded<'a> {
    format.decode(record.as_bytes(), &context(None))
}

fn event<'a>(format: &'a Format, record: &'a str) -> Event<'a> {
    match decode(format, record) {
        Decoded::Event(event) => event,
        other => panic!("{record}: {other:?}"),
    }
}

fn rejected(format: &Format, record: &str) -> ContractError {
    match decode(format, record) {
        Decoded::Rejected(error) => error,
        other => panic!("{record}: expected a reject, got {other:?}"),
    }
}

fn attribute<'e>(event: &'e Event<'_>, name: &str) -> Option<&'e str> {
    event
        .attributes
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_ref())
}

#[test]
fn every_builtin_mapping_parses_and_names_itself() {
    for name in BUILTIN_FORMATS {
        let format = Format::builtin(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(format.name(), name);
        assert_eq!(format.is_contract(), name == CONTRACT_FORMAT);
    }
    assert!(Format::builtin("splunk").is_none());
    let error = Format::load("splunk").unwrap_err();
    assert!(error.message.contains("not a built-in format"), "{error}");
}

#[test]
fn lenient_times_are_the_forms_real_logs_use() {
    let utc = parse_rfc3339("2024-04-02T19:17:37.621Z").unwrap();
    for text in [
        "2024-04-02T19:17:37.621Z",
        "2024-04-02 19:17:37.621",
        "2024-04-02 19:17:37.621000000",
        "2024-04-02T19:17:37.621",
        "2024-04-02T19:17:37.621+0000",
        "2024-04-02T21:17:37.621+02:00",
        "1712085457621",
    ] {
        assert_eq!(lenient_time_text(text), Some(utc), "{text}");
    }
    for text in [
        "redacted",
        "",
        "2024-04-02",
        "2024-04-02 25:17:37",
        "1712085457621000000000",
        "2024-04-02 19:17:37.621 PST",
    ] {
        assert_eq!(lenient_time_text(text), None, "{text}");
    }
}

// ---- Each format: a mapped type, an unmapped one, a record missing what its mapping
// ---- needs, a secret.

#[test]
fn okta_sign_ins_tokens_and_the_unmapped() {
    let okta = format("okta");
    let login = r#"{"uuid":"u-1","published":"2024-04-02 19:17:37.621","eventType":"user.session.start","actor":{"alternateId":"ann@example.com","id":"00u1","type":"User"},"client":{"ipAddress":"203.0.113.9","userAgent":{"rawUserAgent":"Mozilla/5.0"}},"authenticationContext":{"credentialType":"PASSWORD","externalSessionId":"idx1"},"outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"},"debugContext":{"debugData":{"requestId":"r-9"}}}"#;
    let event = event(&okta, login);
    assert_eq!(event.id, "u-1");
    assert_eq!(event.kind, Kind::Authn);
    assert_eq!(event.principal, "user:ann@example.com");
    assert_eq!(event.outcome, Some(Outcome::Failure));
    assert_eq!(event.reason.as_deref(), Some("INVALID_CREDENTIALS"));
    assert_eq!(event.source_ip.unwrap().to_string(), "203.0.113.9");
    assert_eq!(event.auth_method.as_deref(), Some("password"));
    assert_eq!(event.session_id.as_deref(), Some("idx1"));
    assert_eq!(
        event.time,
        lenient_time_text("2024-04-02T19:17:37.621Z").unwrap()
    );
    // Native fields without a column stay, under their native path; mapped ones do not
    // appear twice.
    assert_eq!(
        attribute(&event, "debugContext.debugData.requestId"),
        Some("r-9")
    );
    assert_eq!(attribute(&event, "actor.id"), Some("00u1"));
    assert_eq!(attribute(&event, "actor.alternateId"), None);
    assert_eq!(attribute(&event, "source_format"), Some("okta"));
    assert_eq!(attribute(&event, "source_type"), Some("user.session.start"));

    let push = r#"{"uuid":"u-2","published":"2024-04-02T19:17:37Z","eventType":"user.mfa.okta_verify.deny_push","actor":{"alternateId":"ann@example.com"}}"#;
    let event = self::event(&okta, push);
    assert_eq!(
        (event.outcome, event.auth_method.as_deref()),
        (Some(Outcome::Failure), Some("mfa_push"))
    );

    let unmapped = rejected(
        &okta,
        r#"{"uuid":"u-3","published":"2024-04-02T19:17:37Z","eventType":"user.account.update_profile","actor":{"alternateId":"ann@example.com"}}"#,
    );
    assert_eq!(unmapped.kind, RejectKind::Unmapped);
    assert_eq!(
        unmapped.message,
        "okta type `user.account.update_profile` has no mapping"
    );

    let no_actor = rejected(
        &okta,
        r#"{"uuid":"u-4","published":"2024-04-02T19:17:37Z","eventType":"user.session.start","outcome":{"result":"SUCCESS"}}"#,
    );
    assert_eq!(no_actor.kind, RejectKind::MissingField);
    assert!(
        no_actor.message.contains("`actor.alternateId`, `actor.id`"),
        "{}",
        no_actor.message
    );

    let redacted_time = rejected(
        &okta,
        r#"{"uuid":"u-5","published":"redacted","eventType":"user.session.start","actor":{"alternateId":"a"},"outcome":{"result":"SUCCESS"}}"#,
    );
    assert_eq!(redacted_time.kind, RejectKind::InvalidTime);
    assert!(
        redacted_time
            .message
            .contains("okta `published` is `redacted`"),
        "{}",
        redacted_time.message
    );

    // A bearer token in a native field never reaches the event.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    let secret = format!(
        r#"{{"uuid":"u-6","published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{{"alternateId":"a"}},"outcome":{{"result":"SUCCESS"}},"debugContext":{{"debugData":{{"url":"/callback#access_token={jwt}"}}}}}}"#
    );
    let event = self::event(&okta, &secret);
    assert!(
        event.attributes.iter().all(|(_, v)| !v.contains(jwt)),
        "{:?}",
        event.attributes
    );
}

#[test]
fn okta_api_tokens_are_issued_and_revoked_by_id() {
    let okta = format("okta");
    let create = r#"{"uuid":"t-1","published":"2021-01-08 21:28:34.875","eventType":"system.api_token.create","actor":{"alternateId":"user@example.com"},"outcome":{"result":"SUCCESS"},"target":[{"id":"00Tpki","type":"Token"}]}"#;
    let event = event(&okta, create);
    assert_eq!(
        (event.kind, event.token_id.as_deref()),
        (Kind::TokenIssue, Some("00Tpki"))
    );
    let revoke = create.replace("t-1", "t-2").replace("create", "revoke");
    let event = self::event(&okta, &revoke);
    assert_eq!(
        (event.kind, event.token_id.as_deref()),
        (Kind::TokenRevoke, Some("00Tpki"))
    );
    // No token in the target: a token_issue cannot be built.
    let error = rejected(
        &okta,
        &create.replace(r#""type":"Token""#, r#""type":"User""#),
    );
    assert!(
        error.message.contains("`token_id` is required"),
        "{}",
        error.message
    );
}

#[test]
fn auth0_logins_grants_envelopes_and_placeholders() {
    let auth0 = format("auth0");
    let failure = r#"{"_id":"a-1","date":"2016-11-14T21:50:33.473Z","type":"fp","description":"Wrong password","ip":"198.0.217.157","user_id":"auth0|123","user_name":"no-one@example.com","client_id":"cl1","strategy_type":"database"}"#;
    let event = event(&auth0, failure);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authn, Some(Outcome::Failure))
    );
    assert_eq!(event.principal, "user:auth0|123");
    assert_eq!(event.client_id.as_deref(), Some("cl1"));
    assert_eq!(event.reason.as_deref(), Some("Wrong password"));

    // A log-stream envelope: the event is inside `data`, the id outside.
    let envelope = r#"{"log_id":"900201","data":{"date":"2026-06-08T17:51:02.279Z","type":"s","ip":"fd64:3716::2273","user_id":"auth0|3"}}"#;
    let event = self::event(&auth0, envelope);
    assert_eq!(
        (event.id.as_ref(), event.principal.as_ref()),
        ("900201", "user:auth0|3")
    );
    assert_eq!(event.source_ip.unwrap().to_string(), "fd64:3716::2273");

    // Client credentials: the client authenticates; the upstream placeholder `IP` is not
    // an address and stays only in the attributes.
    let grant = r#"{"log_id":"a-3","date":"2022-04-18T12:27:37.775Z","type":"seccft","ip":"IP","client_id":"CLIENT_ID","audience":"https://api","scope":"read:a read:b"}"#;
    let event = self::event(&auth0, grant);
    assert_eq!(event.principal, "svc:CLIENT_ID");
    assert_eq!(event.principal_type, PrincipalType::Service);
    assert_eq!(event.auth_method.as_deref(), Some("client_credentials"));
    assert_eq!(event.source_ip, None);
    assert_eq!(attribute(&event, "ip"), Some("IP"));
    assert_eq!(event.token_scopes.as_ref().map(Vec::len), Some(2));

    let unmapped = rejected(
        &auth0,
        r#"{"log_id":"a-4","date":"2022-04-18T12:27:37Z","type":"sapi"}"#,
    );
    assert_eq!(
        (unmapped.kind, unmapped.message.as_str()),
        (RejectKind::Unmapped, "auth0 type `sapi` has no mapping")
    );
    let no_client = rejected(
        &auth0,
        r#"{"log_id":"a-5","date":"2022-04-18T12:27:37Z","type":"seccft"}"#,
    );
    assert!(
        no_client.message.contains("auth0 `client_id` absent"),
        "{}",
        no_client.message
    );
}

#[test]
fn keycloak_logins_tokens_and_the_missing_time() {
    let keycloak = format("keycloak");
    let login_error = r#"{"id":"k-1","time":1712085457621,"type":"LOGIN_ERROR","realmId":"prod","clientId":"web","userId":null,"ipAddress":"203.0.113.7","error":"user_not_found","details":{"username":"mallory","auth_method":"openid-connect"}}"#;
    let event = event(&keycloak, login_error);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authn, Some(Outcome::Failure))
    );
    assert_eq!(event.principal, "user:mallory");
    assert_eq!(event.reason.as_deref(), Some("user_not_found"));
    assert_eq!(event.time, 1_712_085_457_621_000);

    let token = r#"{"id":"k-2","time":1712085457621,"type":"CODE_TO_TOKEN","clientId":"web","userId":"u-1","details":{"token_id":"jti-1","grant_type":"authorization_code","scope":"openid email","refresh_token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"}}"#;
    let event = self::event(&keycloak, token);
    assert_eq!(
        (event.kind, event.token_id.as_deref()),
        (Kind::TokenIssue, Some("jti-1"))
    );
    assert_eq!(event.auth_method.as_deref(), Some("authorization_code"));
    let stored = attribute(&event, "details.refresh_token").unwrap();
    assert!(
        stored.starts_with("sha256:"),
        "a raw refresh token is kept only as its digest: {stored}"
    );

    let client = r#"{"id":"k-3","time":1712085457621,"type":"CLIENT_LOGIN","clientId":"orders","details":{"token_id":"jti-2","grant_type":"client_credentials"}}"#;
    let event = self::event(&keycloak, client);
    assert_eq!(
        (event.kind, event.principal.as_ref()),
        (Kind::TokenIssue, "svc:orders")
    );

    let logout = rejected(
        &keycloak,
        r#"{"id":"k-4","time":1712085457621,"type":"LOGOUT","userId":"u-1"}"#,
    );
    assert_eq!(logout.kind, RejectKind::Unmapped);

    // The JSON listeners that write no time: rejected, unless the envelope gives one.
    let no_time = r#"{"type":"LOGIN","realmId":"myrealm","clientId":"test.client","userId":"10b2","ipAddress":"192.168.3.3","username":"sam"}"#;
    let error = rejected(&keycloak, no_time);
    assert_eq!(error.kind, RejectKind::MissingField);
    assert!(
        error.message.contains("keycloak `time` absent"),
        "{}",
        error.message
    );
    match keycloak.decode(no_time.as_bytes(), &context(Some(NOW - 1))) {
        Decoded::Event(event) => {
            assert_eq!(event.time, NOW - 1);
            assert_eq!(attribute(&event, "time_source"), Some("envelope"));
            assert!(
                event.id.starts_with("sha256:"),
                "no native id: a digest of the record"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn k8s_audit_decisions_stages_credential_ids_and_failed_authentication() {
    let k8s = format("k8s_audit");
    let allowed = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/pay/secrets/db","verb":"get","user":{"username":"system:serviceaccount:pay:ledger","extra":{"authentication.kubernetes.io/credential-id":["JTI=jti-7"]}},"sourceIPs":["10.1.2.3"],"userAgent":"kubectl","objectRef":{"resource":"secrets"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-11-23T18:00:00.100000Z","stageTimestamp":"2026-11-23T18:00:00.200000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed"}}"#;
    let event = event(&k8s, allowed);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authz, Some(Outcome::Allow))
    );
    assert_eq!(event.principal, "system:serviceaccount:pay:ledger");
    assert_eq!(event.principal_type, PrincipalType::Service);
    assert_eq!(event.token_id.as_deref(), Some("jti-7"));
    assert_eq!(event.action.as_deref(), Some("get"));
    assert_eq!(
        event.resource.as_deref(),
        Some("/api/v1/namespaces/pay/secrets/db")
    );
    assert_eq!(event.reason.as_deref(), Some("RBAC: allowed"));
    assert_eq!(event.time, parse_rfc3339("2026-11-23T18:00:00.1Z").unwrap());
    assert_eq!(
        attribute(&event, "source_type"),
        Some("ResponseComplete/get")
    );

    let forbidden = allowed
        .replace(r#"decision":"allow""#, r#"decision":"forbid""#)
        .replace(
            r#""username":"system:serviceaccount:pay:ledger""#,
            r#""username":"alice""#,
        );
    let event = self::event(&k8s, &forbidden);
    assert_eq!(
        (event.outcome, event.principal_type),
        (Some(Outcome::Deny), PrincipalType::User)
    );
    assert_eq!(event.principal, "user:alice");

    let received = allowed.replace("ResponseComplete", "RequestReceived");
    assert!(
        matches!(decode(&k8s, &received), Decoded::Skipped(reason) if reason.contains("RequestReceived"))
    );

    let unauthenticated = r#"{"kind":"Event","auditID":"a-2","stage":"ResponseComplete","verb":"list","requestURI":"/api","user":{},"sourceIPs":["198.51.100.4"],"responseStatus":{"code":401,"message":"Unauthorized"},"requestReceivedTimestamp":"2026-11-23T18:00:00Z"}"#;
    let event = self::event(&k8s, unauthenticated);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authn, Some(Outcome::Failure))
    );
    assert_eq!(event.principal, "system:anonymous");

    let undecided = rejected(&k8s, &allowed.replace(r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed"}"#, r#""annotations":{}"#));
    assert_eq!(undecided.kind, RejectKind::Unmapped);
    assert!(
        undecided.message.contains("`ResponseComplete/get`"),
        "{}",
        undecided.message
    );
}

#[test]
fn opa_decisions_keep_no_credentials() {
    let opa = format("opa");
    let envoy = r#"{"decision_id":"d-1","timestamp":"2021-05-04T02:01:35.813125Z","path":"envoy/authz/allow","input":{"attributes":{"source":{"address":{"socketAddress":{"address":"10.244.2.10","portValue":4242}},"principal":"spiffe://cluster.local/ns/shop/sa/web"},"destination":{"principal":"spiffe://cluster.local/ns/shop/sa/orders"},"request":{"http":{"method":"POST","path":"/orders","host":"orders","headers":{"authorization":"Bearer abc.def-ghi","cookie":"session=s3cr3t","x-request-id":"r-1"},"body":"password=hunter2"}}}},"result":{"allowed":false}}"#;
    let event = event(&opa, envoy);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authz, Some(Outcome::Deny))
    );
    assert_eq!(event.principal, "spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(
        event.target_service.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/orders")
    );
    assert_eq!(
        (event.action.as_deref(), event.resource.as_deref()),
        (Some("POST"), Some("/orders"))
    );
    assert_eq!(event.source_ip.unwrap().to_string(), "10.244.2.10");
    let everything = format!("{:?}", event);
    for secret in ["abc.def-ghi", "s3cr3t", "hunter2"] {
        assert!(
            !everything.contains(secret),
            "{secret} reached the event: {everything}"
        );
    }
    assert_eq!(
        attribute(&event, "input.attributes.request.http.headers.x-request-id"),
        Some("r-1")
    );

    let string_result = r#"{"decision_id":"d-2","timestamp":"2018-01-01T00:00:00Z","input":{"method":"GET","path":"/salary/bob","user":"bob"},"result":"true"}"#;
    assert_eq!(event_outcome(&opa, string_result), Some(Outcome::Allow));
    let no_principal = rejected(&opa, &string_result.replace(r#","user":"bob""#, ""));
    assert!(
        no_principal
            .message
            .contains("`input.attributes.source.principal`"),
        "{}",
        no_principal.message
    );
    let unmapped = rejected(
        &opa,
        r#"{"decision_id":"d-3","timestamp":"2018-01-01T00:00:00Z","msg":"no input"}"#,
    );
    assert_eq!(unmapped.kind, RejectKind::Unmapped);
}

fn event_outcome(format: &Format, record: &str) -> Option<Outcome> {
    event(format, record).outcome
}

#[test]
fn ocsf_authentication_and_api_activity() {
    let ocsf = format("ocsf");
    let logon = r#"{"class_uid":3002,"activity_id":1,"type_uid":300201,"status_id":2,"time":1712085457621,"metadata":{"uid":"o-1","product":{"name":"idp"},"version":"1.1.0"},"user":{"name":"ann"},"src_endpoint":{"ip":"203.0.113.8"},"is_mfa":true,"auth_protocol":"SAML"}"#;
    let event = event(&ocsf, logon);
    assert_eq!(
        (event.kind, event.outcome, event.mfa),
        (Kind::Authn, Some(Outcome::Failure), Some(true))
    );
    assert_eq!(
        (event.principal.as_ref(), event.auth_method.as_deref()),
        ("ann", Some("saml"))
    );
    let api = r#"{"class_uid":6003,"activity_id":2,"type_uid":600302,"status_id":1,"time":1712085457621,"metadata":{"uid":"o-2","product":{"name":"gw"}},"actor":{"user":{"uid":"svc:orders"}},"api":{"operation":"GetObject"},"resources":[{"name":"bucket/x"}],"dst_endpoint":{"svc_name":"s3"}}"#;
    let event = self::event(&ocsf, api);
    assert_eq!(
        (event.kind, event.outcome),
        (Kind::Authz, Some(Outcome::Allow))
    );
    assert_eq!(
        (
            event.action.as_deref(),
            event.resource.as_deref(),
            event.target_service.as_deref()
        ),
        (Some("GetObject"), Some("bucket/x"), Some("s3"))
    );
    let file_activity = rejected(
        &ocsf,
        r#"{"class_uid":1001,"activity_id":1,"type_uid":100101,"time":1712085457621}"#,
    );
    assert_eq!(
        (file_activity.kind, file_activity.message.as_str()),
        (RejectKind::Unmapped, "ocsf type `100101` has no mapping")
    );
}

#[test]
fn custom_mapping_files_use_the_same_engine() {
    let mapping = r#"
format = "gateway"
id = "request.id"
time = "ts"
type = "event"
drop = ["request.headers.*"]
[set]
principal = { template = "{tenant}/{user}", prefix = "user:" }
[[rule]]
when.event = "auth.*"
when.status = { not = ["pending"] }
kind = "authn"
set.outcome = { path = "status", map = { ok = "success", "fail*" = "failure" } }
"#;
    let gateway = Format::from_mapping(mapping, "gateway.toml").unwrap();
    let record = r#"{"request":{"id":"g-1","headers":{"x-api-key":"k"}},"ts":"2026-11-23T18:00:00Z","event":"auth.password","tenant":"acme","user":"ann","status":"failed"}"#;
    let event = event(&gateway, record);
    assert_eq!(
        (event.principal.as_ref(), event.outcome),
        ("user:acme/ann", Some(Outcome::Failure))
    );
    assert!(
        attribute(&event, "request.headers.x-api-key").is_none(),
        "dropped"
    );
    let pending = rejected(&gateway, &record.replace("failed", "pending"));
    assert_eq!(pending.kind, RejectKind::Unmapped);
}

#[test]
fn hostile_records_are_rejected_with_reasons() {
    let okta = format("okta");
    for (record, kind) in [
        ("[1,2]", RejectKind::InvalidJson),
        ("{", RejectKind::InvalidJson),
        ("\"text\"", RejectKind::InvalidJson),
        (
            "{\"eventType\":\"user.session.start\"}\u{0}",
            RejectKind::InvalidJson,
        ),
    ] {
        assert_eq!(rejected(&okta, record).kind, kind, "{record}");
    }
    let deep = format!(
        "{}{}",
        "{\"a\":".repeat(200),
        "1".to_owned() + &"}".repeat(200)
    );
    assert_eq!(
        rejected(&okta, &deep).kind,
        RejectKind::InvalidJson,
        "nesting beyond serde's limit"
    );
    let huge = format!(
        r#"{{"eventType":"x","pad":"{}"}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    assert_eq!(rejected(&okta, &huge).kind, RejectKind::TooLarge);
    let bad_utf8 = okta.decode(b"{\"a\":\"\xff\"}", &context(None));
    assert!(matches!(bad_utf8, Decoded::Rejected(e) if e.kind == RejectKind::InvalidUtf8));
}

// ---- The real records of ../shared/samples/real, against expected.jsonl.

fn samples() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples/real");
    assert!(
        dir.join("expected.jsonl").exists(),
        "the real samples are read from {} (shared/ beside the repository)",
        dir.display()
    );
    dir
}

fn format_of(file: &str) -> &'static str {
    match file {
        "okta.jsonl" => "okta",
        "auth0.jsonl" => "auth0",
        "keycloak.jsonl" => "keycloak",
        "k8s_audit.jsonl" => "k8s_audit",
        "opa_decisions.jsonl" => "opa",
        other => panic!("no format for {other}"),
    }
}

/// The record without its time fields, so the mapping can be checked on a record whose
/// own time is unusable (`redacted`, absent): the envelope time stands in.
fn without_time(record: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(record).unwrap();
    for key in [
        "published",
        "date",
        "time",
        "timestamp",
        "requestReceivedTimestamp",
        "stageTimestamp",
    ] {
        value.as_object_mut().unwrap().remove(key);
        if let Some(data) = value.get_mut("data").and_then(|d| d.as_object_mut()) {
            data.remove(key);
        }
    }
    value.to_string()
}

fn bare_principal(principal: &str) -> &str {
    principal
        .strip_prefix("user:")
        .or_else(|| principal.strip_prefix("svc:"))
        .unwrap_or(principal)
}

#[test]
fn real_records_map_as_expected_and_the_rest_are_rejected_with_reasons() {
    let dir = samples();
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    let mut files = std::collections::HashMap::new();
    let (mut mapped, mut unmapped, mut unusable) = (0, 0, 0);
    for line in expected.lines() {
        let want: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = want["file"].as_str().unwrap();
        let number = want["line"].as_u64().unwrap() as usize;
        let text = files
            .entry(file.to_owned())
            .or_insert_with(|| std::fs::read_to_string(dir.join(file)).unwrap());
        let record = text.lines().nth(number - 1).unwrap();
        let format = format(format_of(file));
        let place = format!("{file}:{number}");

        // expected.jsonl leaves `kind` null on records that "would map to <kind>" but have
        // no time: those must be rejected for the time, and map with an envelope time.
        let would_map = want["note"]
            .as_str()
            .and_then(|note| note.strip_prefix("would map to "))
            .and_then(|rest| rest.split(',').next());
        let mut decoded = format.decode(record.as_bytes(), &context(None));
        // A record whose own time is unusable: check its mapping with the envelope's.
        let retimed;
        let mut time_rejected = false;
        if let Decoded::Rejected(error) = &decoded {
            if matches!(
                error.kind,
                RejectKind::InvalidTime | RejectKind::MissingField
            ) && error.message.contains("time")
            {
                time_rejected = true;
                retimed = without_time(record);
                decoded = format.decode(retimed.as_bytes(), &context(Some(NOW - 1)));
            }
        }
        assert!(
            would_map.is_none() || time_rejected,
            "{place}: expected a reject for its time"
        );
        let kind = want["kind"].as_str().or(would_map);
        match decoded {
            Decoded::Event(event) => {
                mapped += 1;
                assert_eq!(Some(event.kind.as_str()), kind, "{place}");
                assert_eq!(
                    Some(bare_principal(&event.principal)),
                    want["principal"].as_str(),
                    "{place}"
                );
                assert_eq!(
                    event.outcome.map(Outcome::as_str),
                    want["outcome"].as_str(),
                    "{place}"
                );
                assert_eq!(
                    event.source_ip.map(|ip| ip.to_string()).as_deref(),
                    want["source_ip"].as_str(),
                    "{place}"
                );
                assert_eq!(
                    event.token_id.as_deref(),
                    want["token_id"].as_str(),
                    "{place}"
                );
                assert_eq!(
                    attribute(&event, "source_format"),
                    Some(format.name()),
                    "{place}"
                );
            }
            Decoded::Rejected(error) if kind.is_none() => {
                unmapped += 1;
                assert_eq!(error.kind, RejectKind::Unmapped, "{place}: {error}");
            }
            Decoded::Rejected(error) => {
                // Of a mapped kind, but a field the contract requires is not in the record:
                // rejected naming the native path, never invented.
                unusable += 1;
                assert_eq!(error.kind, RejectKind::MissingField, "{place}: {error}");
                let field = ["principal", "outcome", "token_id"]
                    .into_iter()
                    .find(|field| error.message.starts_with(&format!("`{field}`")))
                    .unwrap_or_else(|| panic!("{place}: {error}"));
                assert!(
                    want[field].is_null(),
                    "{place}: {field} is in expected.jsonl: {error}"
                );
                assert!(
                    error.message.contains(&format!("{} `", format.name())),
                    "{place}: names the native path: {error}"
                );
            }
            Decoded::Skipped(reason) => panic!("{place}: skipped ({reason})"),
        }
    }
    assert_eq!(mapped + unmapped + unusable, expected.lines().count());
    // Counted when the corpus was first mapped; a change here is a change of mapping.
    assert_eq!((mapped, unmapped, unusable), (39, 28, 11));
}

/// One mapped record of each native format with a credential in a field the mapping does
/// not read: none reaches the event, whatever the format.
#[test]
fn no_format_lets_a_credential_through() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    let records = [
        (
            "okta",
            r#"{"uuid":"s-1","published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{"alternateId":"a"},"outcome":{"result":"SUCCESS"},"SECRET"}"#,
        ),
        (
            "auth0",
            r#"{"log_id":"s-2","date":"2024-04-02T19:17:37Z","type":"s","user_id":"auth0|1","SECRET"}"#,
        ),
        (
            "keycloak",
            r#"{"id":"s-3","time":1712085457621,"type":"LOGIN","userId":"u","SECRET"}"#,
        ),
        (
            "k8s_audit",
            r#"{"auditID":"s-4","stage":"ResponseComplete","verb":"get","user":{"username":"alice"},"requestReceivedTimestamp":"2024-04-02T19:17:37Z","annotations":{"authorization.k8s.io/decision":"allow"},"SECRET"}"#,
        ),
        (
            "opa",
            r#"{"decision_id":"s-5","timestamp":"2024-04-02T19:17:37Z","input":{"user":"bob"},"result":true,"SECRET"}"#,
        ),
        (
            "ocsf",
            r#"{"class_uid":3002,"activity_id":1,"status_id":1,"time":1712085457621,"metadata":{"uid":"s-6"},"user":{"name":"ann"},"SECRET"}"#,
        ),
    ];
    for (name, template) in records {
        let format = format(name);
        for secret in [
            format!(r#""note":"Bearer {jwt}""#),
            format!(r#""headers":{{"Authorization":"Basic dXNlcjpwYXNz"}},"raw":"{jwt}""#),
        ] {
            let record = template.replace(r#""SECRET""#, &secret);
            let event = event(&format, &record);
            let everything = format!("{event:?}");
            for credential in [jwt, "dXNlcjpwYXNz"] {
                assert!(!everything.contains(credential), "{name}: {everything}");
            }
        }
    }
}
