//! The collector against the embedded broker (a real Kafka-protocol broker on a TCP port,
//! stopped and restarted on the same data): what is answered 200 is in the topic, a
//! stopped broker gets 503, a retry after its return lands everything; and the refusals
//! (401, 404, 400, 413, 415, 429) that produce nothing.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use authtrail_broker::{Broker, BrokerConfig};
use authtrail_collect::{router, CollectConfig, Collector};
use authtrail_testkit::wait_until;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use flate2::write::GzEncoder;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "collector-key-0000000001";
const TOPICS: [&str; 4] = ["okta-events", "k8s-audit", "opa-decisions", "auth-events"];

fn broker(dir: &std::path::Path, port: u16) -> Broker {
    let mut config = BrokerConfig::new(dir, TOPICS[0], 1);
    config.topics = TOPICS.iter().map(|topic| (topic.to_string(), 1)).collect();
    config.port = port;
    Broker::start(config).expect("start the embedded broker")
}

fn config() -> CollectConfig {
    CollectConfig {
        delivery_timeout: Duration::from_secs(2),
        linger: Duration::from_millis(1),
        ..CollectConfig::default()
    }
}

fn collector(config: CollectConfig, brokers: &str) -> Arc<Collector> {
    Arc::new(Collector::new(config, brokers, &[KEY.to_owned()]).unwrap())
}

/// The status, `Retry-After` and JSON body of posting `body` to `format`.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

fn post(
    collector: &Arc<Collector>,
    format: &str,
    key: Option<&str>,
    gzip: bool,
    body: &[u8],
) -> Answer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut request = Request::post(format!("/api/v1/collect/{format}"));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = if gzip {
        request = request.header(header::CONTENT_ENCODING, "gzip");
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    } else {
        body.to_vec()
    };
    runtime.block_on(async {
        let response = router(collector.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
        }
    })
}

/// The (key, payload) of every message of `topic`, once it holds at least `expected`.
fn messages(brokers: &str, topic: &str, expected: usize) -> Vec<(String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "collect-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&partitions).unwrap();
    let mut seen = Vec::new();
    wait_until(
        &format!("{expected} messages in `{topic}`"),
        Duration::from_secs(20),
        || {
            while let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.map_err(|error| error.to_string())?;
                let key = String::from_utf8_lossy(message.key().unwrap_or(b"")).into_owned();
                seen.push((key, message.payload().unwrap_or_default().to_vec()));
            }
            if seen.len() >= expected {
                Ok(())
            } else {
                Err(format!("{} messages", seen.len()))
            }
        },
    );
    seen
}

/// Okta `user.session.start` records with these native ids (`uuid`), one per line.
fn okta_lines(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("{}\n", okta_record(id)))
        .collect()
}

fn okta_record(id: &str) -> String {
    format!(
        r#"{{"uuid":"{id}","published":"2026-01-05T10:00:00.000Z","eventType":"user.session.start","actor":{{"alternateId":"alice@example.com"}},"outcome":{{"result":"SUCCESS"}}}}"#
    )
}

/// A file of real records (`../shared/samples/real`), one record per line.
fn real_sample(file: &str) -> Vec<String> {
    let path = format!(
        "{}/../../shared/samples/real/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The payloads of `messages`, sorted, as text.
fn payloads(messages: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut payloads: Vec<String> = messages
        .iter()
        .map(|(_, payload)| String::from_utf8(payload.clone()).unwrap())
        .collect();
    payloads.sort();
    payloads
}

/// Every count of a 200 body adds up to its records.
fn assert_counts_add_up(body: &Value, records: usize) {
    assert_eq!(body["records"], records, "{body}");
    let parts: u64 = ["mapped", "unmapped", "rejected", "skipped"]
        .iter()
        .map(|part| body[part].as_u64().unwrap())
        .sum();
    assert_eq!(parts, records as u64, "{body}");
}

#[test]
fn a_stopped_broker_gets_503_and_a_retry_after_its_return_lands_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), 0);
    let brokers = running.bootstrap_servers();
    let port = running.address().port();
    let collector = collector(config(), &brokers);

    let first = post(
        &collector,
        "okta",
        Some(KEY),
        false,
        okta_lines(&["a1", "a2", "a3"]).as_bytes(),
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_counts_add_up(&first.body, 3);
    assert_eq!(first.body["mapped"], 3, "{}", first.body);

    drop(running);
    let retried = okta_lines(&["b1", "b2"]);
    for _ in 0..2 {
        // The first finds out by its deliveries failing, the second by the quick check.
        let refused = post(&collector, "okta", Some(KEY), false, retried.as_bytes());
        assert_eq!(
            refused.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            refused.body
        );
        assert!(refused.retry_after.is_some(), "503 says when to retry");
    }

    let _running = broker(dir.path(), port);
    wait_until(
        "the retry to be acknowledged",
        Duration::from_secs(30),
        || {
            let answer = post(&collector, "okta", Some(KEY), false, retried.as_bytes());
            match answer.status {
                StatusCode::OK => Ok(()),
                status => Err(format!("{status}: {}", answer.body)),
            }
        },
    );

    // Every acknowledged record is in the topic, unchanged, keyed by its native id. (A
    // refused request's records may be there too, more than once: the lake keeps one.)
    let stored = messages(&brokers, "okta-events", 5);
    let keys: BTreeSet<&str> = stored.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["a1", "a2", "a3", "b1", "b2"]));
    for (key, payload) in &stored {
        assert_eq!(payload, okta_record(key).as_bytes());
    }
    assert_eq!(
        stored.iter().filter(|(key, _)| key == "a1").count(),
        1,
        "acknowledged once"
    );
}

#[test]
fn gzip_arrays_event_lists_and_json_lines_of_real_records_land_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), 0);
    let brokers = running.bootstrap_servers();
    let collector = collector(config(), &brokers);

    // OPA's decision-log plugin: a gzipped JSON array.
    let decisions = real_sample("opa_decisions.jsonl");
    let array = format!("[{}]", decisions.join(",\n"));
    let answer = post(&collector, "opa", Some(KEY), true, array.as_bytes());
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_counts_add_up(&answer.body, decisions.len());

    // The Kubernetes audit webhook: an EventList.
    let audit = real_sample("k8s_audit.jsonl");
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        audit.join(",")
    );
    let answer = post(&collector, "k8s_audit", Some(KEY), false, list.as_bytes());
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_counts_add_up(&answer.body, audit.len());
    assert!(
        answer.body["mapped"].as_u64().unwrap() > 0,
        "{}",
        answer.body
    );

    // An IdP's log stream: gzipped JSON lines.
    let okta = real_sample("okta.jsonl");
    let lines = okta.join("\n");
    let answer = post(&collector, "okta", Some(KEY), true, lines.as_bytes());
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_counts_add_up(&answer.body, okta.len());

    for (topic, records) in [
        ("opa-decisions", decisions),
        ("k8s-audit", audit),
        ("okta-events", okta),
    ] {
        let mut expected = records;
        expected.sort();
        let stored = messages(&brokers, topic, expected.len());
        assert_eq!(
            payloads(&stored),
            expected,
            "`{topic}` holds each record unchanged"
        );
    }
}

#[test]
fn a_key_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), 0);
    let config = CollectConfig {
        rate_per_key: 1,
        rate_burst: 5,
        max_records: 5,
        ..config()
    };
    let collector = collector(config, &running.bootstrap_servers());
    let answer = post(
        &collector,
        "okta",
        Some(KEY),
        false,
        okta_lines(&["r1", "r2", "r3", "r4"]).as_bytes(),
    );
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = post(
        &collector,
        "okta",
        Some(KEY),
        false,
        okta_lines(&["r5", "r6", "r7"]).as_bytes(),
    );
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    // 1 token left at 1 record/s: 2 more seconds for 3 records.
    assert_eq!(answer.retry_after.as_deref(), Some("2"));
}

/// Refusals that never reach the broker: the collector points at a port nothing
/// listens on, so anything that tried to produce would answer 503 instead.
#[test]
fn refusals_produce_nothing_and_say_why() {
    let config = CollectConfig {
        max_body_bytes: 1024,
        max_records: 3,
        rate_burst: 3,
        ..config()
    };
    let collector = collector(config, "127.0.0.1:1");
    let lines = okta_lines(&["x1"]);

    let answer = post(&collector, "okta", None, false, lines.as_bytes());
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = post(
        &collector,
        "okta",
        Some("a-query-key-not-a-collector-key"),
        false,
        lines.as_bytes(),
    );
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = post(&collector, "no_such_format", None, false, lines.as_bytes());
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "keys are checked before anything else"
    );

    let answer = post(
        &collector,
        "no_such_format",
        Some(KEY),
        false,
        lines.as_bytes(),
    );
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("okta") && message.contains("k8s_audit"),
        "{message}"
    );

    let answer = post(
        &collector,
        "okta",
        Some(KEY),
        false,
        b"{\"uuid\":\"1\"}\n{\"uuid\": }\n",
    );
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");

    let oversize = okta_lines(&["y"; 40]);
    assert!(oversize.len() > 1024);
    let answer = post(&collector, "okta", Some(KEY), false, oversize.as_bytes());
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );

    let bomb = vec![b' '; 1 << 20];
    let answer = post(&collector, "okta", Some(KEY), true, &bomb);
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a small gzip body inflating past the limit"
    );

    let answer = post(
        &collector,
        "okta",
        Some(KEY),
        false,
        okta_lines(&["1", "2", "3", "4"]).as_bytes(),
    );
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over max_records"
    );
}
