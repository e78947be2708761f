//! `send_kafka` against librdkafka's mock cluster: every event once, as generated, keyed
//! by its principal.

mod support;

use std::sync::atomic::AtomicBool;

use authtrail_gen::{send_kafka, Generator, KafkaOutput, Pace};
use rdkafka::mocking::MockCluster;

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
        &mut Generator::new(support::config()).unwrap(),
        &output,
        &AtomicBool::new(false),
    )
    .unwrap();
    let mut expected: Vec<(String, String)> = Generator::new(support::config())
        .unwrap()
        .map(|e| (e.key, e.json))
        .collect();
    assert_eq!(sent, expected.len() as u64);

    let mut got: Vec<(String, String)> =
        support::consume(&brokers, &["auth-events"], expected.len())
            .into_iter()
            .map(|(_, key, json)| {
                let event: serde_json::Value = serde_json::from_str(&json).unwrap();
                assert_eq!(event["principal"].as_str(), Some(key.as_str()));
                (key, json)
            })
            .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}
