//! A time-bounded property test of the event contract parser (cargo-fuzz needs nightly;
//! this runs on stable in CI). For `AUTHTRAIL_FUZZ_SECS` seconds (default 60, split over
//! three generators running in parallel) it feeds the parser arbitrary bytes, random JSON
//! objects built from the contract's fields, and random edits of a valid event. Every input
//! must either parse into an event that keeps the contract's promises (time in range, no
//! credential stored in `token_id`, `session_id` or an attribute, the Arrow builder takes
//! it) or be rejected with a reason; nothing may panic.

use std::time::{Duration, Instant};

use authtrail_model::{
    parse_event, token_fingerprint, ContractLimits, Event, EventBatchBuilder, IngestMeta,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

/// 2026-11-23T18:30Z.
const NOW: i64 = 1_795_458_600_000_000;
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln";
/// `{"alg":"dir","enc":"A128GCM"}` with an empty key segment.
const JWE: &str = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn";

/// The contract's fields, and one it does not know.
fn fields() -> Vec<&'static str> {
    let mut fields = authtrail_model::CONTRACT_FIELDS.to_vec();
    fields.extend(["extra", "Authorization"]);
    fields
}

fn budget() -> Duration {
    let seconds = std::env::var("AUTHTRAIL_FUZZ_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(60.0_f64);
    Duration::from_secs_f64(seconds / 3.0)
}

/// Checks the promises of one parse, and `more` of an accepted event.
fn check_with(
    message: &[u8],
    more: impl Fn(&Event<'_>) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let limits = ContractLimits::default();
    match parse_event(message, NOW, &limits) {
        Ok(event) => {
            prop_assert!(event.time >= 0, "time before 1970 accepted");
            prop_assert!(
                event.time <= NOW + limits.max_future_skew,
                "future time accepted"
            );
            for value in redactable(&event) {
                prop_assert!(
                    token_fingerprint(value).is_none(),
                    "credential kept: {value}"
                );
            }
            for (key, value) in &event.attributes {
                if key.to_ascii_lowercase().ends_with("authorization") {
                    prop_assert!(
                        value.is_empty() || value.starts_with("sha256:"),
                        "{key} kept: {value}"
                    );
                }
            }
            more(&event)?;
            let mut builder = EventBatchBuilder::new();
            let meta = IngestMeta {
                topic: "t",
                partition: 0,
                offset: 0,
                ingest_time: NOW,
            };
            builder.append(&event, &meta);
            prop_assert!(builder.finish().is_ok());
        }
        Err(error) => prop_assert!(!error.message.is_empty(), "{error:?} has no reason"),
    }
    Ok(())
}

fn no_more(_: &Event<'_>) -> Result<(), TestCaseError> {
    Ok(())
}

/// Random events put the test's tokens only whole into values (an edit can cut one into
/// a shape that is no longer a token), so none may survive even inside a value.
fn no_token_inside(event: &Event<'_>) -> Result<(), TestCaseError> {
    for value in redactable(event) {
        prop_assert!(
            !value.contains(JWT) && !value.contains(JWE) && !value.contains("opaque-token"),
            "token kept inside: {value}"
        );
    }
    Ok(())
}

/// The values that must never hold a credential: `token_id`, `session_id`, attributes.
fn redactable<'e>(event: &'e Event<'_>) -> impl Iterator<Item = &'e str> {
    [event.token_id.as_deref(), event.session_id.as_deref()]
        .into_iter()
        .flatten()
        .chain(event.attributes.iter().map(|(_, value)| value.as_ref()))
}

/// Runs `strategy` against the parser until the time budget is spent, checking `more` of
/// each accepted event besides the contract's promises; returns the cases.
fn hammer<S: Strategy>(
    strategy: S,
    to_bytes: impl Fn(S::Value) -> Vec<u8>,
    more: impl Fn(&Event<'_>) -> Result<(), TestCaseError>,
) -> u64
where
    S::Value: std::fmt::Debug,
{
    const CASES: u32 = 1_000;
    let deadline = Instant::now() + budget();
    let mut cases = 0;
    while Instant::now() < deadline {
        // A fresh runner (freshly seeded) per round: a runner that passed once passes
        // every later `run` without generating anything.
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |value| check_with(&to_bytes(value), &more))
            .unwrap();
        cases += u64::from(CASES);
    }
    cases
}

fn json_value() -> impl Strategy<Value = Value> {
    let named = prop_oneof![
        Just("authn"),
        Just("authz"),
        Just("token_issue"),
        Just("token_revoke"),
        Just("success"),
        Just("failure"),
        Just("allow"),
        Just("deny"),
        Just("2026-11-23T18:00:00Z"),
        Just("1969-12-31T23:59:59Z"),
        Just("9999-01-01T00:00:00Z"),
        Just("10.0.0.1"),
        Just("::1"),
        Just("300.1.1.1"),
        Just(JWT),
        Just(JWE),
        Just("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln"),
        Just(" eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln"),
        Just("bearer opaque-token"),
        Just("user:alice"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        named.prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[test]
fn parser_survives_arbitrary_bytes() {
    let cases = hammer(
        proptest::collection::vec(any::<u8>(), 0..2048),
        |bytes| bytes,
        no_more,
    );
    eprintln!("{cases} byte strings parsed");
}

#[test]
fn parser_keeps_its_promises_on_random_events() {
    let names = fields();
    let fields = proptest::collection::vec((0..names.len(), json_value()), 0..16);
    let cases = hammer(
        fields,
        |fields| {
            let mut object = Map::new();
            // Most objects carry the required fields, so the checks past them are reached.
            object.insert("id".into(), "e-1".into());
            object.insert("time".into(), "2026-11-23T18:00:00Z".into());
            object.insert("kind".into(), "authz".into());
            object.insert("principal".into(), "user:alice".into());
            object.insert("outcome".into(), "allow".into());
            for (field, value) in fields {
                object.insert(names[field].to_owned(), value);
            }
            serde_json::to_vec(&object).unwrap()
        },
        no_token_inside,
    );
    eprintln!("{cases} random events parsed");
}

#[test]
fn parser_keeps_its_promises_on_edited_events() {
    let valid = format!(
        r#"{{"id":"e-1","time":"2026-11-23T18:00:00Z","kind":"authz","principal":"user:alice","outcome":"allow","source_ip":"10.0.0.1","token_id":"{JWT}","token_audience":["a","b"],"mfa":true,"attributes":{{"k":"v"}}}}"#
    );
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..8);
    let cases = hammer(
        edits,
        |edits| {
            let mut bytes = valid.clone().into_bytes();
            for (position, byte, operation) in edits {
                let at = position % (bytes.len() + 1);
                match operation {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.truncate(at),
                }
            }
            bytes
        },
        no_more,
    );
    eprintln!("{cases} edited events parsed");
}
