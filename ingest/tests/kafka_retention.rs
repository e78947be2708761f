//! Messages deleted before they were read are reported, counted and recorded, never lost
//! silently.
//!
//! Stand-in for broker retention: librdkafka's mock cluster keeps about 5 MB per
//! partition and deletes the oldest messages as new ones arrive, exactly what retention
//! does to a consumer that is away or behind. (The same loss against a real broker process,
//! tansu with time-based retention, is `tests/e2e_loss.rs` of the root package.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::{ingest_kafka, IngestStats, PipelineConfig, StatsSnapshot};
use authtrail_store::{verify, EncodeOptions, Finding, Lake, VerifyOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auth-events";

/// Produces events `ids`, each padded to about `size` bytes.
fn produce(brokers: &str, ids: std::ops::Range<usize>, size: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in ids {
        let payload = format!(
            r#"{{"id":"e-{i}","time":"2026-11-23T18:00:00Z","kind":"token_revoke","principal":"user:a","reason":"{}"}}"#,
            "x".repeat(size.saturating_sub(100))
        );
        loop {
            match producer.send(BaseRecord::to(TOPIC).key("user:a").payload(&payload)) {
                Ok(()) => break,
                Err((error, _)) if error.to_string().contains("Queue full") => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => panic!("{error}"),
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The partition's log start offset on the mock cluster.
fn log_start(brokers: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .unwrap()
        .0
}

/// Runs the Kafka ingest until `expected` messages were received or skipped as lost.
fn ingest(lake: &Path, brokers: &str, group: &str, expected: u64) -> StatsSnapshot {
    let kafka = KafkaConfig {
        brokers: Some(brokers.to_owned()),
        group_id: group.to_owned(),
        settings: [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        ..KafkaConfig::default()
    };
    let config = PipelineConfig {
        flush_rows: 1_000,
        flush_age: Duration::from_millis(200),
        ..PipelineConfig::default()
    };
    let stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let lake = Lake::open(lake, EncodeOptions::default()).unwrap();
    let worker = {
        let (stats, stop, brokers) = (stats.clone(), stop.clone(), brokers.to_owned());
        std::thread::spawn(move || {
            ingest_kafka(lake, &config, &kafka, &brokers, None, stats, &stop)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.snapshot().received < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The loss is judged at the flush after the gap: let it happen, then stop.
    std::thread::sleep(Duration::from_millis(600));
    stop.cancel();
    worker.join().unwrap().unwrap();
    stats.snapshot()
}

fn lost_findings(lake: &Path) -> Vec<(i64, i64)> {
    let report = verify(lake, &VerifyOptions::default()).unwrap();
    report
        .findings
        .iter()
        .map(|finding| match finding {
            Finding::Lost {
                source,
                partition,
                first_offset,
                last_offset,
                ..
            } => {
                assert_eq!((source.as_str(), *partition), (TOPIC, 0));
                (*first_offset, *last_offset)
            }
            other => panic!("unexpected finding: {other}"),
        })
        .collect()
}

#[test]
fn messages_deleted_before_they_were_read_are_reported_counted_and_recorded() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();

    // The group reads the first 100 messages and stops: its committed offset is 100.
    produce(&brokers, 0..100, 200);
    let first = ingest(lake.path(), &brokers, "authtrail", 100);
    assert_eq!((first.accepted, first.events_lost), (100, 0));

    // While it is away, 8 MB arrive: the broker deletes the oldest, the group's committed
    // offset included.
    produce(&brokers, 100..8_100, 1_000);
    let start = log_start(&brokers);
    assert!(
        start > 100,
        "the mock cluster kept everything (log start {start})"
    );
    eprintln!("the mock cluster deleted offsets 0..{start} of 0..8100");

    // It resumes at 100, finds the log starting at `start`: those offsets are lost.
    let resumed = ingest(lake.path(), &brokers, "authtrail", (8_100 - start) as u64);
    assert_eq!(resumed.events_lost, (start - 100) as u64);
    assert_eq!(resumed.accepted, (8_100 - start) as u64);
    assert_eq!(lost_findings(lake.path()), [(100, start - 1)]);

    // A fresh group on a fresh lake starts at the beginning, offset 0, which is gone.
    let fresh = tempfile::tempdir().unwrap();
    let stats = ingest(fresh.path(), &brokers, "fresh", (8_100 - start) as u64);
    assert_eq!(stats.events_lost, start as u64);
    assert_eq!(stats.accepted, (8_100 - start) as u64);
    assert_eq!(lost_findings(fresh.path()), [(0, start - 1)]);

    // Restarted, the same group resumes at the lake's end: nothing lost twice.
    produce(&brokers, 8_100..8_110, 200);
    let again = ingest(fresh.path(), &brokers, "fresh", 10);
    assert_eq!(
        (again.accepted, again.events_lost, again.offset_gaps),
        (10, 0, 0)
    );
    assert_eq!(lost_findings(fresh.path()).len(), 1);
}
