//! The broker against librdkafka (the client authtrail and most producers use): produce
//! with acks=all, consume as a group member, commit, restart, and refusal when full.

use std::time::{Duration, Instant};

use authtrail_broker::{Broker, BrokerConfig};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Mutex;

const TOPIC: &str = "auth-events";

/// Delivery reports: how many were acknowledged, and the errors of the rest.
#[derive(Default)]
struct Deliveries {
    acknowledged: Mutex<usize>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => *self.acknowledged.lock().unwrap() += 1,
            Err((error, _)) => self.failed.lock().unwrap().push(error.to_string()),
        }
    }
}

fn producer(broker: &Broker, extra: &[(&str, &str)]) -> ThreadedProducer<Deliveries> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("acks", "all")
        .set("linger.ms", "5");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create_with_context(Deliveries::default()).unwrap()
}

/// Produces a message keyed `i` for each `i` of `range`, waits for every delivery report;
/// returns the number acknowledged and the errors of the rest.
fn produce(
    broker: &Broker,
    range: std::ops::Range<usize>,
    size: usize,
    extra: &[(&str, &str)],
) -> (usize, Vec<String>) {
    let producer = producer(broker, extra);
    let payload = vec![b'x'; size];
    for i in range {
        let key = i.to_string();
        let mut record = BaseRecord::to(TOPIC).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("{error}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let context = producer.context();
    let acknowledged = *context.acknowledged.lock().unwrap();
    let failed = context.failed.lock().unwrap().clone();
    (acknowledged, failed)
}

fn consumer(broker: &Broker, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

/// Reads until `count` messages arrived; returns their keys.
fn consume(consumer: &BaseConsumer, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut keys = Vec::new();
    while keys.len() < count {
        assert!(Instant::now() < deadline, "read {} of {count}", keys.len());
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            keys.push(String::from_utf8(message.key().unwrap().to_vec()).unwrap());
        }
    }
    keys
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir, TOPIC, 2);
    config.segment_bytes = 256 << 10;
    config
}

#[test]
fn a_group_reads_everything_and_resumes_from_its_commit_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).unwrap();
    assert_eq!(produce(&broker, 0..2_000, 100, &[]).0, 2_000);
    let group = consumer(&broker, "g");
    let mut keys = consume(&group, 2_000);
    group.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(group);
    drop(broker);

    let broker = Broker::start(config(dir.path())).unwrap();
    assert_eq!(produce(&broker, 2_000..2_500, 100, &[]).0, 500);
    let group = consumer(&broker, "g");
    keys.extend(consume(&group, 500));
    keys.sort_by_key(|key| key.parse::<usize>().unwrap());
    let expected: Vec<String> = (0..2_500).map(|i| i.to_string()).collect();
    assert_eq!(keys, expected, "every message once, across the restart");
    let (low, high) = group
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
        .unwrap();
    assert!(low == 0 && high > 0);
}

#[test]
fn a_full_broker_refuses_producers_until_a_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.max_bytes = 2 << 20;
    config.segment_bytes = 128 << 10;
    let broker = Broker::start(config).unwrap();
    // Short timeouts so the refused deliveries fail within the test.
    let quick = [("message.timeout.ms", "3000"), ("retry.backoff.ms", "100")];
    let (acknowledged, failed) = produce(&broker, 0..4_000, 1_000, &quick);
    assert!(
        acknowledged > 1_000 && !failed.is_empty(),
        "{acknowledged} acknowledged"
    );
    assert_eq!(acknowledged + failed.len(), 4_000);
    eprintln!("a refused delivery reports: {}", failed[0]);
    assert!(
        failed
            .iter()
            .all(|error| error.contains("timed out") || error.contains("storage")),
        "refused as retriable, then timed out: {:?}",
        &failed[..1]
    );
    // Nothing committed: the broker kept everything it took and took no more than its bound.
    let group = consumer(&broker, "g");
    let mut stored = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored < acknowledged && Instant::now() < deadline {
        match group.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => stored += 1,
            Some(Err(error)) => panic!("{error}"),
            None => {}
        }
    }
    // Anything beyond what was acknowledged would show up here.
    assert!(group.poll(Duration::from_millis(500)).is_none());
    assert_eq!(stored, acknowledged, "every acknowledged message kept");
    let (low, _) = group
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!(low, 0, "nothing unread deleted");
    // Once the group commits, new messages fit again.
    let mut positions = TopicPartitionList::new();
    for partition in 0..2 {
        let (_, high) = group
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(5))
            .unwrap();
        positions
            .add_partition_offset(TOPIC, partition, Offset::Offset(high))
            .unwrap();
    }
    group.commit(&positions, CommitMode::Sync).unwrap();
    let (acknowledged, failed) = produce(&broker, 0..1_000, 1_000, &quick);
    assert_eq!((acknowledged, failed.len()), (1_000, 0));
}
