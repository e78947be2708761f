//! Alerts produced to a Kafka topic (librdkafka's mock cluster, in process) through the
//! outbox: every alert once, keyed by its id, the body the same JSON as the webhooks'.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use authtrail_respond::{KafkaPublishConfig, Responder, State};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use support::*;

#[test]
fn alerts_are_published_once_keyed_by_their_id() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("authtrail-alerts", 2, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kafka: KafkaPublishConfig = toml::from_str(&format!(
        "brokers = \"{}\"\ntopic = \"authtrail-alerts\"\nmin_severity = \"high\"\n",
        cluster.bootstrap_servers()
    ))
    .unwrap();
    let mut config = respond_config(Vec::new());
    config.kafka = Some(kafka);
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    let mut low = alert("low");
    low.severity = authtrail_model::Severity::Low;
    for alert in [alert("a1"), alert("a2"), low, alert("a1")] {
        responder.record(&alert).unwrap();
    }
    wait_until("published", || count(dir.path(), State::Delivered) == 2);
    responder.shutdown().unwrap();
    assert_eq!(
        entries(dir.path()).len(),
        2,
        "the low alert is filtered out"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["authtrail-alerts"]).unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let body: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert_eq!(body["alert"]["id"], key.as_str());
        assert_eq!(body["action"], "notify");
        let header = message.headers().unwrap().get(0);
        assert_eq!(header.key, "webhook-id");
        assert_eq!(header.value, Some(key.as_bytes()));
        *seen.entry(key).or_insert(0) += 1;
    }
    assert_eq!(seen, BTreeMap::from([("a1".into(), 1), ("a2".into(), 1)]));
    // Nothing more arrives (the duplicate `a1` was recognised by the outbox).
    assert!(consumer.poll(Duration::from_millis(500)).is_none());
}
