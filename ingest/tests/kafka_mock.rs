//! The Kafka path in-process against librdkafka's mock cluster: consume, land in the lake,
//! commit only what is durable, and never write an offset twice.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use authtrail_detect::DetectConfig;
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::{ingest_kafka, Detection, IngestStats, PipelineConfig};
use authtrail_store::{EncodeOptions, Lake};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset};
use support::read_table;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auth-events";
const PARTITIONS: i32 = 3;

fn produce(brokers: &str, messages: &[(String, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (key, payload) in messages {
        producer
            .send(BaseRecord::to(TOPIC).key(key).payload(payload))
            .map_err(|(error, _)| error)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// `count` good events keyed by principal, every fifth message broken in a different way.
/// Keyed messages to produce.
type Messages = Vec<(String, Vec<u8>)>;

fn mixed_messages(start: usize, count: usize) -> (Messages, Vec<String>, usize) {
    let mut messages = Vec::new();
    let mut good_ids = Vec::new();
    let mut bad = 0;
    for i in start..start + count {
        let principal = format!("user:u{}", i % 17);
        let payload = match i % 5 {
            0 => {
                bad += 1;
                match i % 3 {
                    0 => b"{not json".to_vec(),
                    1 => {
                        format!(r#"{{"id":"bad-{i}","time":1,"kind":"teleport","principal":"p"}}"#)
                            .into_bytes()
                    }
                    _ => vec![0xff, 0xfe, b'{'],
                }
            }
            _ => {
                good_ids.push(format!("e-{i}"));
                format!(
                    r#"{{"id":"e-{i}","time":"2026-11-23T18:{:02}:00Z","kind":"authn","principal":"{principal}","outcome":"failure","source_ip":"203.0.113.{}"}}"#,
                    i % 60,
                    i % 200
                )
                .into_bytes()
            }
        };
        messages.push((principal, payload));
    }
    (messages, good_ids, bad)
}

/// Short group timeouts: the mock cluster's coordinator waits for them when members come
/// and go, and the tests start and stop members often.
fn fast_group_settings() -> std::collections::BTreeMap<String, String> {
    [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

fn test_config() -> PipelineConfig {
    PipelineConfig {
        flush_rows: 50,
        flush_age: Duration::from_millis(200),
        ..PipelineConfig::default()
    }
}

/// Runs the Kafka ingest until `expected` messages were received (or `deadline`).
fn ingest_until(lake_dir: &Path, brokers: &str, group: &str, expected: u64) -> Arc<IngestStats> {
    run_ingest(lake_dir, brokers, group, expected, false)
}

fn run_ingest(
    lake_dir: &Path,
    brokers: &str,
    group: &str,
    expected: u64,
    detect: bool,
) -> Arc<IngestStats> {
    let lake = Lake::open(lake_dir, EncodeOptions::default()).unwrap();
    let kafka = KafkaConfig {
        brokers: Some(brokers.to_owned()),
        group_id: group.to_owned(),
        settings: fast_group_settings(),
        ..KafkaConfig::default()
    };
    let stats = Arc::new(IngestStats::default());
    let detection =
        detect.then(|| Detection::open(&lake, &DetectConfig::default(), stats.clone()).unwrap());
    let stop = CancellationToken::new();
    let worker = {
        let (stats, stop, brokers) = (stats.clone(), stop.clone(), brokers.to_owned());
        std::thread::spawn(move || {
            ingest_kafka(
                lake,
                &test_config(),
                &kafka,
                &brokers,
                detection,
                stats,
                &stop,
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let seen = stats.snapshot();
        if seen.received >= expected
            && (expected > 0 || Instant::now() + Duration::from_secs(55) > deadline)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let a few idle polls pass so nothing more is in flight, then stop.
    std::thread::sleep(Duration::from_millis(300));
    stop.cancel();
    worker.join().unwrap().unwrap();
    stats
}

fn lake_column(root: &Path, table: &str, column: &str) -> Vec<String> {
    let mut values: Vec<String> = read_table(root, table)
        .iter()
        .flat_map(|batch| {
            let array = batch.column_by_name(column).unwrap().as_string::<i32>();
            array
                .iter()
                .map(|v| v.unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    values.sort();
    values
}

fn committed_offsets_of(brokers: &str, group: &str) -> i64 {
    committed_offsets(brokers, group)
}

fn committed_offsets(brokers: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(TOPIC, partition);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .sum()
}

#[test]
fn kafka_messages_land_exactly_once_and_offsets_follow_the_lake() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();

    let (messages, mut good_ids, bad) = mixed_messages(0, 500);
    produce(&brokers, &messages);
    let stats = ingest_until(lake.path(), &brokers, "authtrail", 500).snapshot();
    assert_eq!(stats.received, 500);
    assert_eq!(stats.accepted as usize, good_ids.len());
    assert_eq!(stats.rejected as usize, bad);

    good_ids.sort();
    assert_eq!(lake_column(lake.path(), "events", "id"), good_ids);
    let reject_kinds = lake_column(lake.path(), "rejects", "error_kind");
    assert_eq!(reject_kinds.len(), bad);
    for kind in ["invalid_json", "unknown_kind", "invalid_utf8"] {
        assert!(reject_kinds.iter().any(|k| k == kind), "no {kind} reject");
    }
    assert_eq!(
        committed_offsets(&brokers, "authtrail"),
        500,
        "every offset committed"
    );

    // A restart of the same group reads nothing again; new messages are appended.
    let (more, more_ids, _) = mixed_messages(500, 100);
    produce(&brokers, &more);
    let stats = ingest_until(lake.path(), &brokers, "authtrail", 100).snapshot();
    assert_eq!(stats.received, 100);
    good_ids.extend(more_ids);
    good_ids.sort();
    assert_eq!(lake_column(lake.path(), "events", "id"), good_ids);
}

#[test]
fn offsets_the_lake_holds_are_skipped_even_when_kafka_never_saw_their_commit() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();
    let (messages, mut good_ids, _) = mixed_messages(0, 200);
    produce(&brokers, &messages);
    ingest_until(lake.path(), &brokers, "first", 200);

    // A fresh group has no committed offsets: exactly the state after a crash between the
    // lake commit and the offset commit. Everything is re-delivered and must be skipped.
    let stats = ingest_until(lake.path(), &brokers, "second", 200).snapshot();
    assert_eq!(stats.received, 200);
    assert_eq!(stats.already_in_lake, 200);
    assert_eq!(stats.files, 0);
    // The re-read still moves the group's offsets to where the lake ends, so the next
    // restart does not read it all again.
    assert_eq!(committed_offsets(&brokers, "second"), 200);
    good_ids.sort();
    assert_eq!(lake_column(lake.path(), "events", "id"), good_ids);
}

fn authn(i: usize, outcome: &str) -> (String, Vec<u8>) {
    let payload = format!(
        r#"{{"id":"a-{i}","time":"2026-11-23T18:00:{i:02}Z","kind":"authn","principal":"user:bob","outcome":"{outcome}","auth_method":"password","source_ip":"198.51.100.9"}}"#
    );
    ("user:bob".to_owned(), payload.into_bytes())
}

#[test]
fn brute_force_straddling_a_restart_is_caught_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();

    produce(
        &brokers,
        &(0..6).map(|i| authn(i, "failure")).collect::<Vec<_>>(),
    );
    let first = run_ingest(lake.path(), &brokers, "authtrail", 6, true).snapshot();
    assert_eq!(first.alerts, 0, "6 failures are under the threshold");

    let mut rest: Vec<_> = (6..12).map(|i| authn(i, "failure")).collect();
    rest.push(authn(40, "success"));
    produce(&brokers, &rest);
    let second = run_ingest(lake.path(), &brokers, "authtrail", 7, true).snapshot();
    assert_eq!(
        second.alerts, 2,
        "brute force, then critical on the success"
    );

    let detectors = lake_column(lake.path(), "alerts", "detector");
    assert_eq!(detectors, ["brute_force", "brute_force"]);
    let severities = lake_column(lake.path(), "alerts", "severity");
    assert_eq!(severities, ["critical", "high"]);
}

/// Starts an ingest thread (no detection) that runs until `stop` is cancelled.
fn spawn_member(
    lake_dir: &Path,
    brokers: &str,
    stop: CancellationToken,
) -> (
    Arc<IngestStats>,
    std::thread::JoinHandle<authtrail_ingest::Result<()>>,
) {
    let lake = Lake::open(lake_dir, EncodeOptions::default()).unwrap();
    let kafka = KafkaConfig {
        brokers: Some(brokers.to_owned()),
        group_id: "shared".to_owned(),
        settings: fast_group_settings(),
        ..KafkaConfig::default()
    };
    let stats = Arc::new(IngestStats::default());
    let handle = {
        let (stats, brokers) = (stats.clone(), brokers.to_owned());
        std::thread::spawn(move || {
            ingest_kafka(lake, &test_config(), &kafka, &brokers, None, stats, &stop)
        })
    };
    (stats, handle)
}

#[test]
fn a_rebalance_hands_partitions_over_without_loss_or_duplicates() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();

    let (first_batch, mut ids, _) = mixed_messages(0, 300);
    produce(&brokers, &first_batch);
    let stop_a = CancellationToken::new();
    let (stats_a, member_a) = spawn_member(lake.path(), &brokers, stop_a.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats_a.snapshot().received < 100 {
        assert!(Instant::now() < deadline, "member A consumed nothing");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A second member joins mid-stream: A's partitions are revoked (flushed, committed)
    // and split between the two.
    let stop_b = CancellationToken::new();
    let (stats_b, member_b) = spawn_member(lake.path(), &brokers, stop_b.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats_b.snapshot().assigned_partitions == 0 {
        assert!(
            Instant::now() < deadline,
            "member B was never assigned a partition"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (second_batch, more_ids, _) = mixed_messages(300, 300);
    produce(&brokers, &second_batch);
    ids.extend(more_ids);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let received = stats_a.snapshot().accepted
            + stats_a.snapshot().rejected
            + stats_b.snapshot().accepted
            + stats_b.snapshot().rejected;
        if received >= 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {received} of 600 messages landed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop_a.cancel();
    stop_b.cancel();
    member_a.join().unwrap().unwrap();
    member_b.join().unwrap().unwrap();

    assert!(
        stats_b.snapshot().received > 0,
        "member B took over some partitions"
    );
    ids.sort();
    let stored = lake_column(lake.path(), "events", "id");
    assert_eq!(stored, ids, "every event exactly once");
    assert_eq!(committed_offsets_of(&brokers, "shared"), 600);
}
