//! The bad-input corpus (`tests/corpus/`, one malformed message per file, named
//! `<expected error_kind>--<what>.json`) sent through the real Kafka path (librdkafka's mock
//! cluster) between good events: every bad message ends in `rejects` with its reason and
//! raw bytes (up to the cap), every good one in `events`, and a raw JWT sent as `token_id` is stored
//! only as its fingerprint.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::{ingest_kafka, IngestStats, PipelineConfig};
use authtrail_store::{EncodeOptions, Lake};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use support::read_table;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auth-events";
/// How much of a rejected message is kept (the rest is counted in `raw_bytes`).
const RAW_CAP: usize = 16 * 1024;
/// A JWT (header `{"alg":"HS256","typ":"JWT"}`): a bearer secret that must never be stored.
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyOmFsaWNlIiwianRpIjoiajEifQ.c2lnbmF0dXJlLWJ5dGVz";

/// `(file name, bytes)` of every corpus message.
fn corpus() -> Vec<(String, Vec<u8>)> {
    // Read at run time (see `query/tests/access.rs`).
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/corpus");
    let mut messages: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    messages.sort();
    messages
}

fn good_event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"good-{i}","time":"2026-11-23T18:{:02}:00Z","kind":"authz","principal":"svc:s{}","outcome":"allow","source_ip":"10.0.0.{}"}}"#,
        i % 60,
        i % 5,
        i % 250
    )
    .into_bytes()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|value| value.map(str::to_owned))
        .collect()
}

#[test]
fn every_corpus_message_is_rejected_with_its_reason_and_the_pipeline_goes_on() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 30,
        "the corpus has {} messages",
        corpus.len()
    );
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut sent = 0;
    let mut send = |key: &str, payload: &[u8]| {
        producer
            .send(BaseRecord::to(TOPIC).key(key).payload(payload))
            .map_err(|(error, _)| error)
            .unwrap();
        sent += 1;
    };
    // Each bad message sits between good ones on the same partition.
    for (index, (_, payload)) in corpus.iter().enumerate() {
        send("k", &good_event(2 * index));
        send("k", payload);
        send("k", &good_event(2 * index + 1));
    }
    let jwt_event = format!(
        r#"{{"id":"jwt-1","time":"2026-11-23T18:00:00Z","kind":"authz","principal":"user:alice","outcome":"allow","token_id":"{JWT}"}}"#
    );
    send("k", jwt_event.as_bytes());
    producer.flush(Duration::from_secs(10)).unwrap();
    drop(producer);

    let lake_dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig {
        flush_rows: 40,
        flush_age: Duration::from_millis(200),
        // Small enough that the corpus's `too_large` message (80 KiB) crosses it.
        max_message_bytes: 64 * 1024,
        max_reject_raw_bytes: RAW_CAP,
        ..PipelineConfig::default()
    };
    let kafka = KafkaConfig {
        brokers: Some(brokers.clone()),
        group_id: "corpus".to_owned(),
        ..KafkaConfig::default()
    };
    let stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let lake = Lake::open(lake_dir.path(), EncodeOptions::default()).unwrap();
    let worker = {
        let (stats, stop) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            ingest_kafka(lake, &config, &kafka, &brokers, None, stats, &stop)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.snapshot().received < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.cancel();
    worker.join().unwrap().unwrap();
    assert_eq!(
        stats.snapshot().received,
        sent,
        "every message was consumed"
    );

    // Every corpus message is a reject with the reason its file name states and its bytes.
    let mut rejected: BTreeMap<Vec<u8>, (String, String, i64)> = BTreeMap::new();
    for batch in read_table(lake_dir.path(), "rejects") {
        let kinds = strings(&batch, "error_kind");
        let errors = strings(&batch, "error");
        let raw = batch.column_by_name("raw").unwrap().as_binary::<i32>();
        let raw_bytes = batch
            .column_by_name("raw_bytes")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        for row in 0..batch.num_rows() {
            rejected.insert(
                raw.value(row).to_vec(),
                (
                    kinds[row].clone().unwrap(),
                    errors[row].clone().unwrap(),
                    raw_bytes.value(row),
                ),
            );
        }
    }
    assert_eq!(rejected.len(), corpus.len());
    for (name, payload) in &corpus {
        let expected_kind = name.split("--").next().unwrap();
        let kept = &payload[..payload.len().min(RAW_CAP)];
        let (kind, error, raw_bytes) = rejected
            .get(kept)
            .unwrap_or_else(|| panic!("`{name}` is not in rejects (up to the cap)"));
        assert_eq!(kind, expected_kind, "`{name}`: {error}");
        assert_eq!(*raw_bytes, payload.len() as i64, "`{name}`");
        assert!(!error.is_empty(), "`{name}` has a reason");
    }

    // The good events around them all arrived, and the JWT only as its fingerprint.
    let mut ids = Vec::new();
    let mut token_ids = Vec::new();
    for batch in read_table(lake_dir.path(), "events") {
        ids.extend(strings(&batch, "id").into_iter().flatten());
        token_ids.extend(strings(&batch, "token_id").into_iter().flatten());
    }
    assert_eq!(ids.len(), 2 * corpus.len() + 1);
    assert!(ids.iter().any(|id| id == "jwt-1"));
    assert_eq!(token_ids, [authtrail_model::jwt_fingerprint(JWT).unwrap()]);
    assert!(token_ids[0].starts_with("sha256:"));
    assert!(
        !lake_files_contain(lake_dir.path(), JWT.as_bytes()),
        "the raw token reached the lake"
    );
}

/// Whether any lake file holds `needle` verbatim (files are zstd-compressed, so decoded
/// columns are checked above; this catches an uncompressed copy, e.g. in a manifest).
fn lake_files_contain(root: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    return true;
                }
            }
        }
    }
    false
}
