//! `send_kafka` against librdkafka's mock cluster: every event once, as generated, keyed
//! by its principal.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use authtrail_gen::{send_kafka, GenConfig, Generator, KafkaOutput, Pace};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message};

fn config() -> GenConfig {
    GenConfig {
        seed: 3,
        users: 60,
        learning: Duration::from_secs(3_600),
        duration: Duration::from_secs(2 * 3_600 + 600),
        service_calls_per_second: 0.02,
        ..GenConfig::default()
    }
}

#[test]
fn produces_every_event_keyed_by_principal() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("auth-events", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let output = KafkaOutput {
        brokers: brokers.clone(),
        topic: "auth-events".into(),
        pace: Pace::FlatOut,
        settings: Vec::new(),
    };
    let sent = send_kafka(
        &mut Generator::new(config()).unwrap(),
        &output,
        &AtomicBool::new(false),
    )
    .unwrap();
    let mut expected: Vec<(String, String)> = Generator::new(config())
        .unwrap()
        .map(|e| (e.key, e.json))
        .collect();
    assert_eq!(sent, expected.len() as u64);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["auth-events"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "got {} of {}",
            got.len(),
            expected.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let json = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            let event: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(event["principal"].as_str(), Some(key.as_str()));
            got.push((key, json));
        }
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}
