use super::*;
use crate::time::parse_rfc3339;

/// The ingest clock of these tests: 2026-11-23T18:30:00Z.
const NOW: Micros = 1_795_458_600_000_000;

fn parse(message: &str) -> Result<Event<'_>, ContractError> {
    parse_event(message.as_bytes(), NOW, &ContractLimits::default())
}

fn rejected(message: &str) -> ContractError {
    match parse(message) {
        Ok(event) => panic!("accepted {}: {:?}", shorten(message), event.id),
        Err(error) => error,
    }
}

fn assert_rejected(message: &str, kind: RejectKind, needle: &str) {
    let error = rejected(message);
    let message = shorten(message);
    assert_eq!(error.kind, kind, "{message}: {error}");
    assert!(
        error.message.contains(needle),
        "{message}: `{}` does not mention `{needle}`",
        error.message
    );
}

#[test]
fn parses_every_field_of_the_contract() {
    let message = r#"{"id":"e-1","time":"2026-11-23T18:00:00.120Z","kind":"authz",
        "principal":"user:alice","principal_type":"user","service":"gateway",
        "outcome":"deny","reason":"no_role","source_ip":"203.0.113.7",
        "source_service":"web","target_service":"payments","resource":"/charges/1",
        "action":"POST","token_id":"jti-9f2","token_issuer":"https://idp",
        "token_audience":["payments","orders"],"token_scopes":["payments:charge"],
        "token_expires":1795457701000,"client_id":"web","auth_method":"authorization_code",
        "mfa":true,"user_agent":"Mozilla/5.0","session_id":"s-1","trace_id":"4bf92f35",
        "attributes":{"region":"eu-west-1"}}"#;
    let event = parse(message).unwrap();
    assert_eq!(event.id, "e-1");
    assert_eq!(
        event.time,
        parse_rfc3339("2026-11-23T18:00:00.120Z").unwrap()
    );
    assert_eq!(event.kind, Kind::Authz);
    assert_eq!(event.principal, "user:alice");
    assert_eq!(event.principal_type, PrincipalType::User);
    assert_eq!(event.service.as_deref(), Some("gateway"));
    assert_eq!(event.outcome, Some(Outcome::Deny));
    assert_eq!(event.reason.as_deref(), Some("no_role"));
    assert_eq!(event.source_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(event.source_service.as_deref(), Some("web"));
    assert_eq!(event.target_service.as_deref(), Some("payments"));
    assert_eq!(event.resource.as_deref(), Some("/charges/1"));
    assert_eq!(event.action.as_deref(), Some("POST"));
    assert_eq!(event.token_id.as_deref(), Some("jti-9f2"));
    assert_eq!(event.token_issuer.as_deref(), Some("https://idp"));
    assert_eq!(
        event.token_audience,
        Some(vec![Cow::Borrowed("payments"), Cow::Borrowed("orders")])
    );
    assert_eq!(
        event.token_scopes,
        Some(vec![Cow::Borrowed("payments:charge")])
    );
    assert_eq!(event.token_expires, Some(1_795_457_701_000_000));
    assert_eq!(event.client_id.as_deref(), Some("web"));
    assert_eq!(event.auth_method.as_deref(), Some("authorization_code"));
    assert_eq!(event.mfa, Some(true));
    assert_eq!(event.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(event.session_id.as_deref(), Some("s-1"));
    assert_eq!(event.trace_id.as_deref(), Some("4bf92f35"));
    assert_eq!(event.attribute("region"), Some("eu-west-1"));
}

#[test]
fn parses_the_examples_of_the_contract() {
    let examples = [
        r#"{"id":"e-1","time":"2026-11-23T18:00:00.120Z","kind":"authn","principal":"user:alice","service":"idp","outcome":"failure","reason":"bad_password","auth_method":"password","source_ip":"203.0.113.7","user_agent":"Mozilla/5.0"}"#,
        r#"{"id":"e-2","time":"2026-11-23T18:00:01Z","kind":"token_issue","principal":"svc:checkout","service":"idp","outcome":"success","token_id":"jti-9f2","client_id":"checkout","token_audience":["payments","orders"],"token_scopes":"payments:charge orders:read","token_expires":"2026-11-23T18:15:01Z","auth_method":"client_credentials"}"#,
        r#"{"id":"e-3","time":1795456802000,"kind":"authz","principal":"svc:checkout","source_service":"checkout","service":"payments","target_service":"payments","resource":"/charges","action":"POST","outcome":"allow","token_id":"jti-9f2","source_ip":"10.4.0.12"}"#,
        r#"{"id":"e-4","time":"2026-11-23T18:05:00Z","kind":"token_revoke","principal":"svc:checkout","service":"idp","token_id":"jti-9f2","reason":"rotated"}"#,
    ];
    let kinds: Vec<Kind> = examples.iter().map(|m| parse(m).unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Authn,
            Kind::TokenIssue,
            Kind::Authz,
            Kind::TokenRevoke
        ]
    );
    let issue = parse(examples[1]).unwrap();
    assert_eq!(issue.principal_type, PrincipalType::Service);
    assert_eq!(
        issue.token_scopes,
        Some(vec![
            Cow::Borrowed("payments:charge"),
            Cow::Borrowed("orders:read")
        ])
    );
}

#[test]
fn accepts_both_time_forms() {
    let rfc =
        parse(r#"{"id":"a","time":"2026-11-23T18:00:02Z","kind":"token_revoke","principal":"p"}"#)
            .unwrap();
    let millis =
        parse(r#"{"id":"a","time":1795456802000,"kind":"token_revoke","principal":"p"}"#).unwrap();
    assert_eq!(rfc.time, millis.time);
    let offset = parse(
        r#"{"id":"a","time":"2026-11-23T19:00:02+01:00","kind":"token_revoke","principal":"p"}"#,
    )
    .unwrap();
    assert_eq!(offset.time, rfc.time);
}

#[test]
fn audience_may_be_one_string_and_scopes_an_array() {
    let event = parse(r#"{"id":"a","time":1,"kind":"token_issue","principal":"p","token_id":"t","token_audience":"payments","token_scopes":["a","b c"]}"#).unwrap();
    assert_eq!(event.token_audience, Some(vec![Cow::Borrowed("payments")]));
    assert_eq!(
        event.token_scopes,
        Some(vec![Cow::Borrowed("a"), Cow::Borrowed("b c")])
    );
}

#[test]
fn required_scopes_of_a_decision_may_be_one_string_or_an_array() {
    let base = r#""id":"a","time":1,"kind":"authz","principal":"p","outcome":"allow""#;
    let spaced = format!(r#"{{{base},"required_scopes":"orders:read  orders:write"}}"#);
    assert_eq!(
        parse(&spaced).unwrap().required_scopes,
        Some(vec![
            Cow::Borrowed("orders:read"),
            Cow::Borrowed("orders:write")
        ])
    );
    let listed = format!(r#"{{{base},"required_scopes":["orders:read"]}}"#);
    assert_eq!(
        parse(&listed).unwrap().required_scopes,
        Some(vec![Cow::Borrowed("orders:read")])
    );
    let absent = format!("{{{base}}}");
    let absent = parse(&absent).unwrap();
    assert_eq!(absent.required_scopes, None);
    assert!(absent.attributes.is_empty());
}

#[test]
fn infers_principal_type_unless_given() {
    let base = r#""time":1,"kind":"token_revoke""#;
    let event = |rest: &str| {
        parse(&format!("{{\"id\":\"a\",{base},{rest}}}"))
            .unwrap()
            .principal_type
    };
    assert_eq!(event(r#""principal":"svc:pay""#), PrincipalType::Service);
    assert_eq!(
        event(r#""principal":"spiffe://cluster/ns/x""#),
        PrincipalType::Service
    );
    assert_eq!(event(r#""principal":"user:bob""#), PrincipalType::User);
    assert_eq!(
        event(r#""principal":"robot-7","principal_type":"service""#),
        PrincipalType::Service
    );
}

#[test]
fn authz_target_service_defaults_to_the_reporting_service() {
    let event = parse(r#"{"id":"a","time":1,"kind":"authz","principal":"p","service":"orders","outcome":"allow"}"#).unwrap();
    assert_eq!(event.target_service.as_deref(), Some("orders"));
    let authn = parse(
        r#"{"id":"a","time":1,"kind":"authn","principal":"p","service":"idp","outcome":"success"}"#,
    )
    .unwrap();
    assert_eq!(authn.target_service, None);
}

#[test]
fn unknown_fields_are_kept_in_attributes() {
    let event = parse(r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","attributes":{"x":"1"},"tenant":"acme","retries":3,"geo":{"cc":"NL"},"flag":null}"#).unwrap();
    assert_eq!(event.attribute("x"), Some("1"));
    assert_eq!(event.attribute("tenant"), Some("acme"));
    assert_eq!(event.attribute("retries"), Some("3"));
    assert_eq!(event.attribute("geo"), Some(r#"{"cc":"NL"}"#));
    assert_eq!(event.attribute("flag"), Some("null"));
}

#[test]
fn null_optional_fields_are_absent() {
    let event = parse(r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","reason":null,"mfa":null,"token_audience":null}"#).unwrap();
    assert_eq!(event.reason, None);
    assert_eq!(event.mfa, None);
    assert_eq!(event.token_audience, None);
}

#[test]
fn escaped_strings_are_unescaped() {
    let event =
        parse(r#"{"id":"a\"b","time":1,"kind":"token_revoke","principal":"user:\u00e9mile"}"#)
            .unwrap();
    assert_eq!(event.id, "a\"b");
    assert_eq!(event.principal, "user:émile");
}

#[test]
fn raw_jwt_token_id_is_replaced_by_its_fingerprint() {
    // {"alg":"HS256","typ":"JWT"} . {"sub":"alice"} . signature
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let message = format!(
        r#"{{"id":"a","time":1,"kind":"authz","principal":"p","outcome":"allow","token_id":"{jwt}"}}"#
    );
    let event = parse(&message).unwrap();
    let token_id = event.token_id.as_deref().unwrap();
    assert!(token_id.starts_with("sha256:"), "{token_id}");
    assert_eq!(token_id.len(), "sha256:".len() + 64);
    assert!(!format!("{event:?}").contains(jwt));
    assert_eq!(event.attribute(TOKEN_ID_REDACTED_ATTRIBUTE), Some("true"));
}

#[test]
fn dotted_identifiers_that_are_not_jwts_are_kept() {
    assert_eq!(jwt_fingerprint("jti-9f2"), None);
    assert_eq!(
        jwt_fingerprint("a.b.c"),
        None,
        "header does not decode to JSON"
    );
    assert_eq!(jwt_fingerprint("v1.2.3.4"), None);
    assert!(jwt_fingerprint("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.").is_some());
}

#[test]
fn rejects_oversized_message() {
    let limits = ContractLimits {
        max_message_bytes: 64,
        ..ContractLimits::default()
    };
    let message = format!(
        r#"{{"id":"a","time":1,"kind":"authn","principal":"{}"}}"#,
        "x".repeat(64)
    );
    let error = parse_event(message.as_bytes(), NOW, &limits).unwrap_err();
    assert_eq!(error.kind, RejectKind::TooLarge);
}

#[test]
fn rejects_invalid_utf8() {
    let message = b"{\"id\":\"a\xff\",\"time\":1,\"kind\":\"authn\",\"principal\":\"p\"}";
    let error = parse_event(message, NOW, &ContractLimits::default()).unwrap_err();
    assert_eq!(error.kind, RejectKind::InvalidUtf8);
}

#[test]
fn rejects_what_is_not_exactly_one_json_object() {
    for message in [
        "",
        "   ",
        "not json",
        r#"{"id":"a","time":1"#,
        r#"[{"id":"a"}]"#,
        "42",
        "null",
        r#""a string""#,
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p"} {"id":"b"}"#,
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p"},"#,
        r#"{"id":"a","time":NaN,"kind":"authn","principal":"p"}"#,
        r#"{'id':'a'}"#,
    ] {
        assert_eq!(
            rejected(message).kind,
            RejectKind::InvalidJson,
            "{message:?}"
        );
    }
}

#[test]
fn nesting_depth_ignores_brackets_inside_strings() {
    assert_eq!(nesting_depth(r#"[{"a":"[[[\"]]"}]"#), 2);
    assert_eq!(nesting_depth("3"), 0);
    let known = format!(
        r#"{{"id":"a","time":1,"kind":"token_revoke","principal":"p","attributes":{}"x"{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(rejected(&known).kind, RejectKind::InvalidJson);
    let shallow = format!(
        r#"{{"id":"a","time":1,"kind":"token_revoke","principal":"p","x":{}1{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    assert!(parse(&shallow).is_ok());
}

#[test]
fn rejects_deep_nesting_without_overflowing_the_stack() {
    let message = format!(
        r#"{{"id":"a","time":1,"kind":"token_revoke","principal":"p","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(rejected(&message).kind, RejectKind::InvalidJson);
}

#[test]
fn rejects_duplicate_keys() {
    assert_rejected(
        r#"{"id":"a","id":"b","time":1,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::DuplicateKey,
        "`id`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","x":"1","x":"2"}"#,
        RejectKind::DuplicateKey,
        "`x`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","x":"1","attributes":{"x":"2"}}"#,
        RejectKind::DuplicateKey,
        "`x`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","attributes":{"k":"1","k":"2"}}"#,
        RejectKind::DuplicateKey,
        "`k`",
    );
}

#[test]
fn rejects_missing_required_fields() {
    assert_rejected(
        r#"{"time":1,"kind":"authn","principal":"p","outcome":"success"}"#,
        RejectKind::MissingField,
        "`id`",
    );
    assert_rejected(
        r#"{"id":"a","kind":"authn","principal":"p","outcome":"success"}"#,
        RejectKind::MissingField,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"principal":"p"}"#,
        RejectKind::MissingField,
        "`kind`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke"}"#,
        RejectKind::MissingField,
        "`principal`",
    );
    assert_rejected(
        r#"{"id":null,"time":1,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::MissingField,
        "`id`",
    );
}

#[test]
fn rejects_missing_per_kind_fields() {
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authn","principal":"p"}"#,
        RejectKind::MissingField,
        "`outcome`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authz","principal":"p"}"#,
        RejectKind::MissingField,
        "`outcome`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_issue","principal":"p"}"#,
        RejectKind::MissingField,
        "`token_id`",
    );
}

#[test]
fn rejects_wrong_types() {
    let base = r#""id":"a","time":1,"kind":"authz","principal":"p","outcome":"allow""#;
    for (field, value) in [
        ("service", "1"),
        ("reason", "true"),
        ("source_service", "[]"),
        ("token_audience", "[1]"),
        ("token_audience", "{}"),
        ("token_scopes", "5"),
        ("required_scopes", "[true]"),
        ("mfa", r#""yes""#),
        ("attributes", r#"["a"]"#),
        ("attributes", r#"{"n":1}"#),
        ("token_expires", "true"),
        ("token_expires", "1.5"),
    ] {
        let message = format!("{{{base},\"{field}\":{value}}}");
        assert_rejected(&message, RejectKind::WrongType, field);
    }
    assert_rejected(
        r#"{"id":7,"time":1,"kind":"authn","principal":"p"}"#,
        RejectKind::WrongType,
        "`id`",
    );
    assert_rejected(
        r#"{"id":"a","time":1.5,"kind":"authn","principal":"p"}"#,
        RejectKind::WrongType,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":[1],"kind":"authn","principal":"p"}"#,
        RejectKind::WrongType,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authn","principal":{"name":"p"}}"#,
        RejectKind::WrongType,
        "`principal`",
    );
}

#[test]
fn rejects_unknown_kind() {
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"login","principal":"p"}"#,
        RejectKind::UnknownKind,
        "login",
    );
}

#[test]
fn rejects_values_the_contract_does_not_allow() {
    assert_rejected(
        r#"{"id":"","time":1,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::InvalidValue,
        "`id`",
    );
    let long_id = "i".repeat(129);
    assert_rejected(
        &format!(r#"{{"id":"{long_id}","time":1,"kind":"token_revoke","principal":"p"}}"#),
        RejectKind::InvalidValue,
        "`id`",
    );
    let long_principal = "p".repeat(257);
    assert_rejected(
        &format!(r#"{{"id":"a","time":1,"kind":"token_revoke","principal":"{long_principal}"}}"#),
        RejectKind::InvalidValue,
        "`principal`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authz","principal":"p","outcome":"success"}"#,
        RejectKind::InvalidValue,
        "allow or deny",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authn","principal":"p","outcome":"deny"}"#,
        RejectKind::InvalidValue,
        "success or failure",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"authn","principal":"p","outcome":"maybe"}"#,
        RejectKind::InvalidValue,
        "`outcome`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","principal_type":"robot"}"#,
        RejectKind::InvalidValue,
        "`principal_type`",
    );
}

#[test]
fn accepts_limit_lengths_exactly() {
    let id = "i".repeat(128);
    let principal = "p".repeat(256);
    let message =
        format!(r#"{{"id":"{id}","time":1,"kind":"token_revoke","principal":"{principal}"}}"#);
    assert!(parse(&message).is_ok());
}

#[test]
fn rejects_times_that_do_not_parse() {
    assert_rejected(
        r#"{"id":"a","time":"yesterday","kind":"token_revoke","principal":"p"}"#,
        RejectKind::InvalidTime,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":"2026-11-23T18:00:00","kind":"token_revoke","principal":"p"}"#,
        RejectKind::InvalidTime,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":"2026-13-01T00:00:00Z","kind":"token_revoke","principal":"p"}"#,
        RejectKind::InvalidTime,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","token_expires":"soon"}"#,
        RejectKind::InvalidTime,
        "`token_expires`",
    );
}

#[test]
fn rejects_times_before_1970_or_too_far_ahead() {
    assert_rejected(
        r#"{"id":"a","time":-1,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::TimeOutOfRange,
        "1970",
    );
    assert_rejected(
        r#"{"id":"a","time":"1969-12-31T23:59:59Z","kind":"token_revoke","principal":"p"}"#,
        RejectKind::TimeOutOfRange,
        "1970",
    );
    assert_rejected(
        r#"{"id":"a","time":"2026-11-23T19:30:01Z","kind":"token_revoke","principal":"p"}"#,
        RejectKind::TimeOutOfRange,
        "ahead",
    );
    assert_rejected(
        r#"{"id":"a","time":99999999999999999999,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::WrongType,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":18446744073709551615,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::TimeOutOfRange,
        "`time`",
    );
    assert_rejected(
        r#"{"id":"a","time":9223372036854775807,"kind":"token_revoke","principal":"p"}"#,
        RejectKind::TimeOutOfRange,
        "`time`",
    );
    // Exactly at the skew limit is still accepted.
    assert!(parse(
        r#"{"id":"a","time":"2026-11-23T19:30:00Z","kind":"token_revoke","principal":"p"}"#
    )
    .is_ok());
}

#[test]
fn rejects_source_ip_that_is_not_an_address() {
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","source_ip":"10.0.0.256"}"#,
        RejectKind::InvalidSourceIp,
        "10.0.0.256",
    );
    assert_rejected(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","source_ip":"example.com"}"#,
        RejectKind::InvalidSourceIp,
        "example.com",
    );
    let v6 = parse(
        r#"{"id":"a","time":1,"kind":"token_revoke","principal":"p","source_ip":"2001:db8::1"}"#,
    )
    .unwrap();
    assert_eq!(v6.source_ip, Some("2001:db8::1".parse().unwrap()));
}

#[test]
fn error_messages_quote_at_most_a_short_prefix_of_a_value() {
    let kind = "k".repeat(10_000);
    let error = rejected(&format!(
        r#"{{"id":"a","time":1,"kind":"{kind}","principal":"p"}}"#
    ));
    assert!(error.message.len() < 200, "{}", error.message.len());
}
