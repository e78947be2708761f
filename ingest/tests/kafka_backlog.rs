//! Draining a backlog over several partitions (librdkafka's mock cluster): the consumer
//! reads the partitions unevenly, hours of event time apart, and the detectors must raise
//! what they raise on the same events as one stream in time order.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use authtrail_detect::{DetectConfig, Detectors};
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::{ingest_kafka, Detection, IngestStats, PipelineConfig};
use authtrail_model::{parse_event, ContractLimits};
use authtrail_store::{EncodeOptions, Lake};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use support::read_table;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auth-events";
const PARTITIONS: i32 = 4;

/// One event to produce: its partition, event time (seconds after 08:00 UTC) and JSON.
struct Produced {
    partition: i32,
    seconds: u32,
    json: String,
}

fn authn(partition: i32, seconds: u32, id: &str, principal: &str, ok: bool, ip: &str) -> Produced {
    let time = format!(
        "2026-11-23T{:02}:{:02}:{:02}Z",
        8 + seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    );
    let outcome = if ok { "success" } else { "failure" };
    let json = format!(
        r#"{{"id":"{id}","time":"{time}","kind":"authn","principal":"{principal}","outcome":"{outcome}","auth_method":"password","source_ip":"{ip}"}}"#
    );
    Produced {
        partition,
        seconds,
        json,
    }
}

/// Partition `p` holds two hours of logins starting `p` × 40 min, so the partitions
/// overlap but lie far apart: read one after another (or interleaved by offset), every
/// partition but one is far behind another. Each holds a brute force turning critical
/// early in its range; a spray from one address hits principals on all four.
fn backlog() -> Vec<Produced> {
    let mut events = Vec::new();
    for p in 0..PARTITIONS {
        let start = p as u32 * 2_400;
        // Background: a login every 20 s (times ≡ p + 1 mod 20, so none coincide).
        for k in 0..360u32 {
            let principal = format!("user:bg{p}-{}", k % 5);
            let ip = format!("10.0.{p}.{}", k % 5);
            let id = format!("bg-{p}-{k}");
            events.push(authn(
                p,
                start + k * 20 + p as u32 + 1,
                &id,
                &principal,
                true,
                &ip,
            ));
        }
        // Twelve failures 10 s apart 10 min into the range, then the success.
        let victim = format!("user:victim{p}");
        let ip = format!("203.0.113.{}", p + 1);
        for i in 0..12u32 {
            let id = format!("bf-{p}-{i}");
            events.push(authn(p, start + 605 + i * 10, &id, &victim, false, &ip));
        }
        let id = format!("bf-{p}-ok");
        events.push(authn(p, start + 735, &id, &victim, true, &ip));
    }
    // The spray: ten principals, one attempt each, on partition i % 4, 20 s apart.
    for i in 0..10u32 {
        let p = (i % 4) as i32;
        let principal = format!("user:s{i}");
        let id = format!("spray-{i}");
        events.push(authn(
            p,
            4_207 + i * 20,
            &id,
            &principal,
            false,
            "198.51.100.7",
        ));
    }
    // Producers write in event-time order: each partition is in order.
    events.sort_by_key(|event| event.seconds);
    events
}

fn produce(brokers: &str, events: &[Produced]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for event in events {
        let record = BaseRecord::<(), _>::to(TOPIC)
            .partition(event.partition)
            .payload(&event.json);
        producer.send(record).map_err(|(error, _)| error).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Alerts as `(id, detector, severity, suppressed_count)`, sorted. The id is derived from
/// the detector, key and evidence ids, so equal ids mean equal evidence.
type AlertRow = (String, String, String, u64);

/// What the detectors raise on `events` as one stream in event-time order.
fn one_stream(events: &[Produced]) -> Vec<AlertRow> {
    let mut ordered: Vec<&Produced> = events.iter().collect();
    ordered.sort_by_key(|event| event.seconds);
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    let mut alerts = Vec::new();
    let limits = ContractLimits::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    for event in ordered {
        let parsed = parse_event(event.json.as_bytes(), now, &limits).unwrap();
        detectors.observe(&parsed, &mut alerts);
    }
    let mut rows: Vec<AlertRow> = alerts
        .into_iter()
        .map(|a| {
            let severity = a.severity.as_str().to_owned();
            (a.id, a.detector, severity, a.suppressed_count)
        })
        .collect();
    rows.sort();
    rows
}

fn lake_alerts(root: &Path) -> Vec<AlertRow> {
    let mut rows = Vec::new();
    for batch in read_table(root, "alerts") {
        let text = |name: &str| batch.column_by_name(name).unwrap().as_string::<i32>();
        let (id, detector, severity) = (text("id"), text("detector"), text("severity"));
        let count = batch.column_by_name("suppressed_count").unwrap();
        let count = count.as_primitive::<UInt64Type>();
        for row in 0..batch.num_rows() {
            rows.push((
                id.value(row).to_owned(),
                detector.value(row).to_owned(),
                severity.value(row).to_owned(),
                count.value(row),
            ));
        }
    }
    rows.sort();
    rows
}

/// Consumes everything with detection on (one member, fresh group), then stops.
fn drain(lake_dir: &Path, brokers: &str, expected: u64) -> Arc<IngestStats> {
    let lake = Lake::open(lake_dir, EncodeOptions::default()).unwrap();
    let settings = [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ];
    let kafka = KafkaConfig {
        brokers: Some(brokers.to_owned()),
        group_id: "authtrail".to_owned(),
        settings: settings
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
        ..KafkaConfig::default()
    };
    let config = PipelineConfig {
        flush_rows: 500,
        flush_age: Duration::from_millis(200),
        ..PipelineConfig::default()
    };
    let stats = Arc::new(IngestStats::default());
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone()).unwrap();
    let stop = CancellationToken::new();
    let worker = {
        let (stats, stop, brokers) = (stats.clone(), stop.clone(), brokers.to_owned());
        std::thread::spawn(move || {
            let detection = Some(detection);
            ingest_kafka(lake, &config, &kafka, &brokers, detection, stats, &stop)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.snapshot().received < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.cancel();
    worker.join().unwrap().unwrap();
    stats
}

#[test]
fn a_backlog_over_four_partitions_raises_what_one_stream_raises() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let lake = tempfile::tempdir().unwrap();
    let events = backlog();
    produce(&brokers, &events);

    let expected = one_stream(&events);
    let count = |detector: &str| expected.iter().filter(|a| a.1 == detector).count();
    // The reference itself: per partition a brute force and its critical success; the
    // spray across all four.
    assert_eq!(count("brute_force"), 8, "{expected:?}");
    assert_eq!(count("password_spray"), 1, "{expected:?}");

    let stats = drain(lake.path(), &brokers, events.len() as u64);
    let seen = stats.snapshot();
    assert_eq!(seen.received, events.len() as u64);
    assert_eq!(seen.accepted, events.len() as u64);
    assert_eq!(lake_alerts(lake.path()), expected);
    let detect = stats.detect_stats();
    let detect = detect.expect("detection ran");
    assert_eq!(detect.events, events.len() as u64);
    assert_eq!(detect.late_events, 0, "no partition's events counted late");
}
