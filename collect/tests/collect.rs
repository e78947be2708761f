//! The collector against the embedded broker (a real Kafka-protocol broker on a TCP port,
//! stopped and restarted on the same data): what is answered 200 is in the topic, a
//! stopped broker gets 503, a retry after its return lands everything; and the refusals
//! (401, 404, 400, 413, 415, 429) that produce nothing.

use std::collections::BTreeMap;
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

/// Every message of `topic`, key → payloads, once it holds at least `expected_keys` keys.
fn messages(brokers: &str, topic: &str, expected_keys: usize) -> BTreeMap<String, Vec<Vec<u8>>> {
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
    let mut seen: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    wait_until(
        &format!("{expected_keys} keys in `{topic}`"),
        Duration::from_secs(20),
        || {
            while let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.map_err(|error| error.to_string())?;
                let key = String::from_utf8_lossy(message.key().unwrap_or(b"")).into_owned();
                seen.entry(key)
                    .or_default()
                    .push(message.payload().unwrap_or_default().to_vec());
            }
            if seen.len() >= expected_keys {
                Ok(())
            } else {
                Err(format!("{:?}", seen.keys().collect::<Vec<_>>()))
            }
        },
    );
    seen
}

fn okta_lines(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("{{\"uuid\":\"{id}\",\"eventType\":\"user.session.start\"}}\n"))
        .collect()
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
    assert_eq!(first.body["records"], 3);

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

    // Every acknowledged record is in the topic, unchanged, under its native id. (A
    // refused request's records may be there too, more than once: the lake keeps one.)
    let stored = messages(&brokers, "okta-events", 5);
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["a1", "a2", "a3", "b1", "b2"]
    );
    assert_eq!(
        stored["a1"],
        [br#"{"uuid":"a1","eventType":"user.session.start"}"#.to_vec()]
    );
    assert_eq!(
        stored["b2"][0],
        br#"{"uuid":"b2","eventType":"user.session.start"}"#.to_vec()
    );
}

#[test]
fn gzip_arrays_event_lists_and_json_lines_are_split_into_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let running = broker(dir.path(), 0);
    let brokers = running.bootstrap_servers();
    let collector = collector(config(), &brokers);

    // OPA's decision-log plugin: a gzipped JSON array.
    let decisions = br#"[{"decision_id":"d1","result":true},
        {"decision_id":"d2","result":{"allowed":false}}]"#;
    let answer = post(&collector, "opa", Some(KEY), true, decisions);
    assert_eq!(
        (answer.status, &answer.body["records"]),
        (StatusCode::OK, &2.into()),
        "{}",
        answer.body
    );

    // The Kubernetes audit webhook: an EventList.
    let events = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[
        {"kind":"Event","auditID":"k1","stage":"ResponseComplete"},
        {"kind":"Event","auditID":"k2","stage":"ResponseComplete"},
        {"kind":"Event","auditID":"k3","stage":"ResponseComplete"}]}"#;
    let answer = post(&collector, "k8s_audit", Some(KEY), false, events);
    assert_eq!(
        (answer.status, &answer.body["records"]),
        (StatusCode::OK, &3.into()),
        "{}",
        answer.body
    );

    // JSON lines, gzipped too.
    let answer = post(
        &collector,
        "okta",
        Some(KEY),
        true,
        okta_lines(&["o1", "o2"]).as_bytes(),
    );
    assert_eq!(
        (answer.status, &answer.body["records"]),
        (StatusCode::OK, &2.into()),
        "{}",
        answer.body
    );

    let opa = messages(&brokers, "opa-decisions", 2);
    assert_eq!(
        opa["d2"],
        [br#"{"decision_id":"d2","result":{"allowed":false}}"#.to_vec()]
    );
    let audit = messages(&brokers, "k8s-audit", 3);
    assert_eq!(audit.keys().collect::<Vec<_>>(), ["k1", "k2", "k3"]);
    assert_eq!(
        audit["k3"],
        [br#"{"kind":"Event","auditID":"k3","stage":"ResponseComplete"}"#.to_vec()]
    );
    assert_eq!(messages(&brokers, "okta-events", 2).len(), 2);
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
