//! Generated traffic in the native formats: every record a renderer writes has the shape
//! its system writes and the contract event's id, no raw token is written, each native
//! topic gets exactly its format's records, and the contract output is what it was.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authtrail_gen::{
    send_kafka_routed, write_jsonl, write_jsonl_as, Format, GenConfig, Generated, Generator,
    KafkaOutput, NativeTopic, Pace, Written,
};
use rdkafka::mocking::MockCluster;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn generated() -> Vec<Generated> {
    Generator::new(support::config()).unwrap().collect()
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// `authtrail gen --seed 7 --start 2026-01-01T00:00:00Z --duration 3h --learning 2h
/// --users 50`, hashed before the native formats were added (again when issue 18's
/// situations joined the default scenarios).
#[test]
fn contract_output_is_byte_identical_to_before_native_formats() {
    let config = GenConfig {
        seed: 7,
        start: 1_767_225_600_000_000,
        duration: Duration::from_secs(3 * 3_600),
        learning: Duration::from_secs(2 * 3_600),
        users: 50,
        ..GenConfig::default()
    };
    let mut bytes = Vec::new();
    let lines = write_jsonl_as(
        &mut Generator::new(config.clone()).unwrap(),
        Format::Authtrail,
        &mut bytes,
        "memory",
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        lines,
        Written {
            written: 7_496,
            left_out: 0
        }
    );
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        "91e74b8efced8f6bbb29a69d028c5229db19c9dba94f6df0783dca3e8fe48f08"
    );
    let mut plain = Vec::new();
    write_jsonl(
        &mut Generator::new(config).unwrap(),
        &mut plain,
        "memory",
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(plain, bytes);
}

#[test]
fn keycloak_records_carry_the_contract_events_identity_and_token() {
    let mut types = BTreeSet::new();
    for event in generated() {
        let contract = parse(&event.json);
        let kind = text(&contract["kind"], "kind");
        let Some(line) = Format::Keycloak.render(&event) else {
            // Decisions are the services', and a SPIFFE-identified service is no
            // Keycloak client: those stay contract events.
            let principal = text(&contract["principal"], "principal");
            assert!(
                kind == "authz" || principal.starts_with("spiffe://"),
                "only decisions and workload identities are not Keycloak's: {contract}"
            );
            continue;
        };
        let record = parse(&line);
        assert_eq!(record["id"], contract["id"]);
        let millis = record["time"].as_i64().expect("epoch ms");
        assert_eq!(millis * 1_000, event.time);
        assert_eq!(record["realmId"], "prod");
        let principal = text(&contract["principal"], "principal");
        let username = text(&record["details"]["username"], "details.username");
        let user_id = text(&record["userId"], "userId");
        match principal.strip_prefix("user:") {
            // A person's user id is their username: one principal in every source.
            Some(user) => assert_eq!((username, user_id), (user, user)),
            None => {
                let client = text(&record["clientId"], "clientId");
                assert!(principal.ends_with(client), "{principal} as {client}");
                assert_eq!(username, format!("service-account-{client}"));
                assert_eq!(user_id.len(), 36, "a service account's user id is a uuid");
            }
        }
        assert_eq!(record["ipAddress"], contract["source_ip"]);
        assert_eq!(record["sessionId"], contract["session_id"]);
        let event_type = text(&record["type"], "type");
        let expected: &[&str] = match kind {
            "authn" => &["LOGIN", "LOGIN_ERROR", "CLIENT_LOGIN", "CLIENT_LOGIN_ERROR"],
            "token_issue" => &[
                "CODE_TO_TOKEN",
                "REFRESH_TOKEN",
                "TOKEN_EXCHANGE",
                "CLIENT_LOGIN",
            ],
            "token_revoke" => &["REVOKE_GRANT", "LOGOUT"],
            other => panic!("unexpected kind {other}"),
        };
        assert!(expected.contains(&event_type), "{kind} as {event_type}");
        assert_eq!(
            record.get("error").is_some(),
            event_type.ends_with("_ERROR"),
            "{line}"
        );
        assert_eq!(
            record["details"].get("token_id"),
            contract.get("token_id"),
            "{line}"
        );
        types.insert(event_type.to_owned());
    }
    for event_type in [
        "LOGIN",
        "LOGIN_ERROR",
        "CLIENT_LOGIN",
        "CODE_TO_TOKEN",
        "REFRESH_TOKEN",
        "REVOKE_GRANT",
        "LOGOUT",
    ] {
        assert!(types.contains(event_type), "no {event_type} in {types:?}");
    }
}

#[test]
fn audit_events_carry_the_contract_decision_and_credential() {
    let mut decisions = BTreeMap::new();
    for event in generated() {
        let contract = parse(&event.json);
        let Some(line) = Format::K8sAudit.render(&event) else {
            // People's own requests are audited; services' calls and calls a service
            // forwards for a person stay contract events.
            let own_request = contract["kind"] == "authz"
                && text(&contract["principal"], "principal").starts_with("user:")
                && contract["source_service"].is_null();
            assert!(
                !own_request,
                "a person's own request is audited: {contract}"
            );
            continue;
        };
        let record = parse(&line);
        assert_eq!(record["kind"], "Event");
        assert_eq!(record["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(record["level"], "Metadata");
        assert_eq!(record["stage"], "ResponseComplete");
        assert_eq!(record["auditID"], contract["id"]);
        assert_eq!(record["requestURI"], contract["resource"]);
        assert_eq!(record["sourceIPs"][0], contract["source_ip"]);
        assert_eq!(record["userAgent"], contract["user_agent"]);
        let principal = text(&contract["principal"], "principal");
        let username = text(&record["user"]["username"], "user.username");
        // People only: a service's decisions stay in the contract.
        assert_eq!(
            Some(username),
            principal.strip_prefix("user:"),
            "{principal}"
        );
        let credential = &record["user"]["extra"]["authentication.kubernetes.io/credential-id"];
        match contract["token_id"].as_str() {
            Some(token) => assert_eq!(credential[0], format!("JTI={token}")),
            None => assert!(credential.is_null()),
        }
        let decision = text(
            &record["annotations"]["authorization.k8s.io/decision"],
            "decision",
        );
        let code = record["responseStatus"]["code"].as_u64().unwrap();
        match text(&contract["outcome"], "outcome") {
            "allow" => assert_eq!((decision, code), ("allow", 200)),
            "deny" => assert_eq!((decision, code), ("forbid", 403)),
            other => panic!("unexpected outcome {other}"),
        }
        assert_eq!(
            record["annotations"]["authorization.k8s.io/reason"],
            contract.get("reason").cloned().unwrap_or("".into())
        );
        for stamp in ["requestReceivedTimestamp", "stageTimestamp"] {
            let stamp = text(&record[stamp], stamp);
            // Microseconds: `2026-11-23T18:00:02.123000Z`.
            assert_eq!(stamp.len(), 27, "{stamp}");
        }
        *decisions.entry(decision.to_owned()).or_insert(0) += 1;
    }
    // People's own requests in this small system are all allowed; a forbidden one is
    // rendered in the unit tests (`native::k8s_audit`).
    assert!(
        decisions.get("allow").is_some_and(|n| *n > 0),
        "{decisions:?}"
    );
}

/// Strings a raw bearer token would show up as: a JWT (`eyJ…`, three dot-separated
/// segments) or a field named for a token or a credential header.
#[test]
fn no_native_record_carries_a_raw_token() {
    fn check(value: &Value, line: &str) {
        match value {
            Value::String(text) => assert!(
                !(text.starts_with("eyJ") && text.matches('.').count() == 2),
                "a JWT in {line}"
            ),
            Value::Array(items) => items.iter().for_each(|item| check(item, line)),
            Value::Object(fields) => {
                for (key, value) in fields {
                    let key = key.to_lowercase();
                    assert!(
                        !["access_token", "refresh_token", "id_token", "authorization"]
                            .contains(&key.as_str()),
                        "field `{key}` in {line}"
                    );
                    check(value, line);
                }
            }
            _ => {}
        }
    }
    let mut records = 0;
    for event in generated() {
        for format in [Format::Keycloak, Format::K8sAudit] {
            if let Some(line) = format.render(&event) {
                check(&parse(&line), &line);
                records += 1;
            }
        }
    }
    assert!(records > 500, "{records}");
}

#[test]
fn a_native_format_writes_what_it_expresses_and_counts_the_rest() {
    let events = generated();
    let total = events.len() as u64;
    for format in [Format::Keycloak, Format::K8sAudit] {
        let expressed = events
            .iter()
            .filter(|event| format.render(event).is_some())
            .count() as u64;
        let left_out = total - expressed;
        assert!(expressed > 0 && left_out > 0, "{format}");
        let mut bytes = Vec::new();
        let lines = write_jsonl_as(
            &mut Generator::new(support::config()).unwrap(),
            format,
            &mut bytes,
            "memory",
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(
            lines,
            Written {
                written: total - left_out,
                left_out
            },
            "{format}"
        );
        let text = String::from_utf8(bytes).unwrap();
        let expected: Vec<String> = events
            .iter()
            .filter_map(|event| format.render(event).map(|line| line.into_owned()))
            .collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{format}");
    }
}

#[test]
fn native_topics_get_their_formats_records_and_the_contract_topic_the_rest() {
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["auth-events", "keycloak-events"] {
        cluster.create_topic(topic, 3, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let output = KafkaOutput {
        brokers: brokers.clone(),
        topic: "auth-events".into(),
        pace: Pace::FlatOut,
        settings: Vec::new(),
    };
    let keycloak = NativeTopic::default_for(Format::Keycloak).unwrap();
    let delivered = send_kafka_routed(
        &mut Generator::new(support::config()).unwrap(),
        &output,
        &[keycloak],
        &AtomicBool::new(false),
    )
    .unwrap();

    let mut expected: Vec<(String, String, String)> = generated()
        .iter()
        .map(|event| match Format::Keycloak.render(event) {
            Some(line) => ("keycloak-events".into(), event.key.clone(), line.into()),
            None => ("auth-events".into(), event.key.clone(), event.json.clone()),
        })
        .collect();
    let per_topic = |topic: &str| expected.iter().filter(|(to, ..)| to == topic).count() as u64;
    assert_eq!(delivered[0].topic, "auth-events");
    assert_eq!(delivered[0].events, per_topic("auth-events"));
    assert_eq!(delivered[1].topic, "keycloak-events");
    assert_eq!(delivered[1].events, per_topic("keycloak-events"));

    let mut got = support::consume(
        &brokers,
        &["auth-events", "keycloak-events"],
        expected.len(),
    );
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn routes_that_would_mix_formats_on_a_topic_are_refused() {
    let output = KafkaOutput {
        brokers: "127.0.0.1:1".into(),
        topic: "auth-events".into(),
        pace: Pace::FlatOut,
        settings: Vec::new(),
    };
    let route = |format, topic: &str| NativeTopic {
        format,
        topic: topic.into(),
    };
    for (routes, message) in [
        (
            vec![route(Format::Keycloak, "auth-events")],
            "would share topic `auth-events`",
        ),
        (
            vec![route(Format::Keycloak, "x"), route(Format::K8sAudit, "x")],
            "would share topic `x`",
        ),
        (
            vec![route(Format::Keycloak, "x"), route(Format::Keycloak, "y")],
            "listed twice",
        ),
        (vec![route(Format::Authtrail, "x")], "not a native format"),
        (vec![route(Format::K8sAudit, "")], "empty"),
    ] {
        let error = send_kafka_routed(
            &mut Generator::new(support::config()).unwrap(),
            &output,
            &routes,
            &AtomicBool::new(false),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(message), "{error}");
    }
}
