use super::*;
use crate::parse::{parse_event, ContractLimits};
use crate::Event;

/// `{"alg":"HS256","typ":"JWT"}` . `{"sub":"alice"}` . signature
const JWS: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
/// `{"alg":"RSA-OAEP","enc":"A256GCM"}` . key . iv . ciphertext . tag
const JWE: &str = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";

fn digest(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token)))
}

fn parse(message: &str) -> Event<'_> {
    parse_event(message.as_bytes(), 10_000_000, &ContractLimits::default()).unwrap()
}

fn event_with(fields: &str) -> String {
    format!(r#"{{"id":"a","time":1,"kind":"authz","principal":"p","outcome":"allow",{fields}}}"#)
}

#[test]
fn every_presentation_of_one_token_has_the_same_digest() {
    let expected = digest(JWS);
    for presented in [
        JWS.to_owned(),
        format!("Bearer {JWS}"),
        format!("bearer {JWS}"),
        format!("BEARER\t{JWS}"),
        format!(" {JWS}"),
        format!("{JWS}\n"),
        format!("  Bearer   {JWS}  "),
        format!("\u{a0}{JWS}"),
        format!("\u{b}{JWS}\u{3000}"),
    ] {
        assert_eq!(
            token_fingerprint(&presented).as_deref(),
            Some(expected.as_str()),
            "{presented:?}"
        );
    }
}

#[test]
fn five_segment_jwe_is_recognised() {
    assert_eq!(token_fingerprint(JWE), Some(digest(JWE)));
    // `dir` key management leaves the encrypted key empty.
    let direct = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn";
    assert_eq!(token_fingerprint(direct), Some(digest(direct)));
}

#[test]
fn headers_with_whitespace_or_no_members_are_objects_too() {
    // `{ "alg":"none"}`, `{\n"alg":"none"}` and `{}`, each with payload `{}`.
    for token in [
        "eyAiYWxnIjoibm9uZSJ9.e30.",
        "ewoiYWxnIjoibm9uZSJ9.e30.",
        "e30.e30.",
    ] {
        assert_eq!(jwt_fingerprint(token), Some(digest(token)), "{token}");
    }
}

#[test]
fn bearer_values_are_hashed_whatever_the_token() {
    assert_eq!(
        token_fingerprint("Bearer 2YotnFZFEjr1zCsicMWpAA"),
        Some(digest("2YotnFZFEjr1zCsicMWpAA"))
    );
    assert_eq!(
        token_fingerprint("Bearer"),
        None,
        "a scheme alone is no secret"
    );
    assert_eq!(token_fingerprint("Bearer   "), None);
    assert_eq!(token_fingerprint("bearerless-session"), None);
}

#[test]
fn ordinary_values_are_kept() {
    for value in [
        "jti-9f2",
        "",
        " ",
        "a.b.c",
        "v1.2.3.4",
        "eu-west-1",
        "api.example.com",
        "example.eyJhbGciOiJIUzI1NiJ9.x",
        "550e8400-e29b-41d4-a716-446655440000",
        // Base64url segments, but the header is not a JSON object.
        "ey.ey.ey",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln.extra",
        // A JSON array header, and a JWE without ciphertext.
        "WzFd.eyJzdWIiOiJhIn0.c2ln",
        "eyJhbGciOiJkaXIifQ.a.b..c",
        "bob@example.com",
    ] {
        assert_eq!(token_fingerprint(value), None, "{value:?}");
    }
}

#[test]
fn unsigned_jws_is_still_a_token() {
    let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.";
    assert_eq!(jwt_fingerprint(token), Some(digest(token)));
}

#[test]
fn token_id_and_session_id_are_redacted_and_marked() {
    let message = event_with(&format!(
        r#""token_id":"Bearer {JWS}","session_id":" {JWE}""#
    ));
    let event = parse(&message);
    assert_eq!(event.token_id.as_deref(), Some(digest(JWS).as_str()));
    assert_eq!(event.session_id.as_deref(), Some(digest(JWE).as_str()));
    assert_eq!(event.attribute(TOKEN_ID_REDACTED_ATTRIBUTE), Some("true"));
    assert_eq!(event.attribute(SESSION_ID_REDACTED_ATTRIBUTE), Some("true"));
}

#[test]
fn authorization_attributes_are_hashed_whatever_their_shape() {
    let message = event_with(
        r#""attributes":{"Authorization":"Basic dXNlcjpwdw==","region":"eu"},"http.request.header.proxy-authorization":" Bearer opaque ","x_authorization":"""#,
    );
    let event = parse(&message);
    assert_eq!(
        event.attribute("Authorization"),
        Some(digest("Basic dXNlcjpwdw==").as_str())
    );
    assert_eq!(event.attribute("Authorization_redacted"), Some("true"));
    assert_eq!(
        event.attribute("http.request.header.proxy-authorization"),
        Some(digest("opaque").as_str())
    );
    assert_eq!(event.attribute("region"), Some("eu"));
    assert_eq!(event.attribute("region_redacted"), None);
    // Empty: nothing to hide, so nothing is marked.
    assert_eq!(event.attribute("x_authorization"), Some(""));
    assert_eq!(event.attribute("x_authorization_redacted"), None);
}

#[test]
fn tokens_in_any_attribute_are_redacted() {
    let message = event_with(&format!(
        r#""attributes":{{"auth":"bearer {JWS}","jwe":"{JWE}"}},"callback":"https://app/cb#access_token={JWS}&state=1","headers":{{"X-Token":"{JWS}","Authorization":"Basic dXNlcjpwdw=="}}"#
    ));
    let event = parse(&message);
    let debug = format!("{event:?}");
    for secret in [JWS, JWE, "dXNlcjpwdw"] {
        assert!(!debug.contains(secret), "{secret} kept: {debug}");
    }
    assert_eq!(event.attribute("auth"), Some(digest(JWS).as_str()));
    assert_eq!(event.attribute("jwe"), Some(digest(JWE).as_str()));
    assert_eq!(
        event.attribute("callback"),
        Some(format!("https://app/cb#access_token={}&state=1", digest(JWS)).as_str())
    );
    let headers = event.attribute("headers").unwrap();
    let headers: serde_json::Value = serde_json::from_str(headers).unwrap();
    assert_eq!(headers["X-Token"], digest(JWS));
    assert_eq!(headers["Authorization"], digest("Basic dXNlcjpwdw=="));
    for name in ["auth", "jwe", "callback", "headers"] {
        assert_eq!(
            event.attribute(&format!("{name}_redacted")),
            Some("true"),
            "{name}"
        );
    }
}

#[test]
fn a_reporters_own_marker_is_replaced_not_duplicated() {
    let message = event_with(&format!(
        r#""token_id":"{JWS}","attributes":{{"token_id_redacted":"no"}}"#
    ));
    let event = parse(&message);
    let markers: Vec<_> = event
        .attributes
        .iter()
        .filter(|(key, _)| key == TOKEN_ID_REDACTED_ATTRIBUTE)
        .collect();
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].1, "true");
}

#[test]
fn a_field_and_an_attribute_of_one_name_share_one_marker() {
    let message = event_with(&format!(
        r#""token_id":"{JWS}","attributes":{{"token_id":"Bearer x"}}"#
    ));
    let event = parse(&message);
    assert_eq!(event.attribute("token_id"), Some(digest("x").as_str()));
    let markers = event
        .attributes
        .iter()
        .filter(|(key, _)| key == TOKEN_ID_REDACTED_ATTRIBUTE)
        .count();
    assert_eq!(markers, 1, "{:?}", event.attributes);
}

#[test]
fn ordinary_events_are_borrowed_and_unmarked() {
    let message = event_with(
        r#""token_id":"jti-9f2","session_id":"s-1","attributes":{"region":"eu-west-1","note":"{json-ish}"}"#,
    );
    let event = parse(&message);
    assert_eq!(event.token_id.as_deref(), Some("jti-9f2"));
    assert!(matches!(event.token_id, Some(Cow::Borrowed(_))));
    assert!(event
        .attributes
        .iter()
        .all(|(key, value)| !key.ends_with(REDACTED_SUFFIX) && matches!(value, Cow::Borrowed(_))));
}

#[test]
fn credentials_inside_text_are_replaced_in_place() {
    let text = format!(
        r#"{{"token_id":"Bearer abc.def~+/==","a":"{JWS}.","proxy-Authorization" : "Basic x y","b":"x{JWS}"}}"#
    );
    let redacted = redact_credentials_in_text(&text);
    assert_eq!(
        redacted,
        format!(
            r#"{{"token_id":"Bearer {}","a":"{}.","proxy-Authorization" : "{}","b":"x{JWS}"}}"#,
            digest("abc.def~+/=="),
            digest(JWS),
            digest("Basic x y"),
        ),
        "a JWS glued to other base64url text is not delimited, so it is left"
    );
    assert!(matches!(
        redact_credentials_in_text("nothing to see: bearer, eyJ, authorization"),
        Cow::Borrowed(_)
    ));
}

#[test]
fn credentials_in_truncated_or_invalid_text_are_still_found() {
    let mut bytes = b"\xff\xfe garbage Bearer secret-token".to_vec();
    bytes.extend_from_slice(b" {\"authorization\":\"Basic cut-off");
    let redacted = redact_credentials_in(&bytes);
    let expected = [
        &b"\xff\xfe garbage Bearer "[..],
        digest("secret-token").as_bytes(),
        b" {\"authorization\":\"",
        digest("Basic cut-off").as_bytes(),
    ]
    .concat();
    assert_eq!(redacted.as_ref(), expected.as_slice());
}

#[test]
fn authorization_names_match_any_case_as_a_suffix() {
    for name in [
        "authorization",
        "Authorization",
        "AUTHORIZATION",
        "Proxy-Authorization",
        "http.request.header.authorization",
    ] {
        assert!(is_authorization_name(name), "{name}");
    }
    for name in ["authorization_kind", "auth", "authorized", "é"] {
        assert!(!is_authorization_name(name), "{name}");
    }
}
