//! What the gen crate's integration tests share: a small generated system, and reading
//! back what was produced to Kafka.

#![allow(dead_code)] // each test file uses a part

use std::time::{Duration, Instant};

use authtrail_gen::GenConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

/// Two hours of a 60-user system (one of learning), few service calls: every scenario
/// fits, and a run takes a moment.
pub fn config() -> GenConfig {
    GenConfig {
        seed: 3,
        users: 60,
        learning: Duration::from_secs(3_600),
        duration: Duration::from_secs(2 * 3_600 + 600),
        service_calls_per_second: 0.02,
        ..GenConfig::default()
    }
}

/// `(topic, key, value)` of `count` messages of `topics`, read from the start; fails the
/// test if they do not all arrive within a minute.
pub fn consume(brokers: &str, topics: &[&str], count: usize) -> Vec<(String, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < count {
        assert!(Instant::now() < deadline, "got {} of {count}", got.len());
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            got.push((message.topic().to_owned(), key, payload));
        }
    }
    got
}
