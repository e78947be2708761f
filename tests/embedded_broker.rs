//! The embedded broker keeps what it acknowledged (issue 19): librdkafka's mock cluster,
//! the old default, deleted everything past ~5 MB per partition, so a burst produced
//! faster than authtrail read it was acknowledged and then lost.
//!
//! Producers here are librdkafka (rdkafka's `ThreadedProducer`, acks=all, no compression
//! so the bytes stored are the bytes sent); each test counts the deliveries the broker
//! acknowledged and checks that exactly those ids are in the lake, once.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use support::{assert_exactly_once, authtrail_env, wait_for_rows, Process, WorkDir};

const TOPIC: &str = "auth-events";
const PARTITIONS: i32 = 2;
const SIGTERM: i32 = 15;
const SIGINT: i32 = 2;

/// The ids the broker acknowledged, and how many it refused.
#[derive(Default)]
struct Deliveries {
    acknowledged: Mutex<Vec<String>>,
    refused: Mutex<usize>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<String>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<String>) {
        match result {
            Ok(_) => self.acknowledged.lock().unwrap().push(*id),
            Err(_) => *self.refused.lock().unwrap() += 1,
        }
    }
}

fn producer(address: &str, extra: &[(&str, &str)]) -> ThreadedProducer<Deliveries> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", address)
        .set("acks", "all")
        .set("compression.type", "none")
        .set("linger.ms", "20")
        .set("batch.size", "1000000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create_with_context(Deliveries::default()).unwrap()
}

/// An authentication event whose user agent pads it to about `bytes`, with
/// high-entropy padding so nothing along the way shrinks it.
fn event(i: usize, bytes: usize) -> String {
    let mut agent = String::with_capacity(bytes);
    let mut state = i as u64 ^ 0x9e37_79b9_7f4a_7c15;
    while agent.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        agent.push_str(&format!("{state:016x}"));
    }
    format!(
        r#"{{"id":"e-{i}","time":"2026-11-23T17:{:02}:00Z","kind":"authn","principal":"user:u{}","service":"idp","outcome":"success","auth_method":"password","source_ip":"203.0.113.{}","user_agent":"{agent}"}}"#,
        i % 60,
        i % 97,
        i % 250
    )
}

fn send(producer: &ThreadedProducer<Deliveries>, i: usize, bytes: usize) {
    let (id, payload) = (format!("e-{i}"), event(i, bytes));
    let mut record = BaseRecord::with_opaque_to(TOPIC, Box::new(id.clone()))
        .key(&id)
        .payload(&payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((error, _)) => panic!("produce: {error}"),
        }
    }
}

/// Waits for every delivery report; returns the acknowledged ids and the refused count.
fn finish(producer: ThreadedProducer<Deliveries>) -> (Vec<String>, usize) {
    producer.flush(Duration::from_secs(120)).unwrap();
    let context = producer.context();
    let acknowledged = context.acknowledged.lock().unwrap().clone();
    let refused = *context.refused.lock().unwrap();
    (acknowledged, refused)
}

fn write_config(work: &Path, broker_dir: &Path, max_bytes: u64) -> PathBuf {
    let path = work.join("authtrail.toml");
    let text = format!(
        "[kafka]\nembedded_partitions = {PARTITIONS}\nembedded_dir = {}\nembedded_max_bytes = {max_bytes}\n",
        toml_string(broker_dir)
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_string(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

fn ingest(work: &Path, name: &'static str, config: &Path, env: &[(&str, &str)]) -> Process {
    let lake = work.join("lake");
    authtrail_env(
        work,
        name,
        &[
            "--lake",
            lake.to_str().unwrap(),
            "ingest",
            "--config",
            config.to_str().unwrap(),
            "--flush-age",
            "200ms",
        ],
        env,
    )
}

/// The embedded broker's address, once `authtrail` printed it.
fn embedded_address(work: &Path, name: &str) -> String {
    let out = work.join(format!("{name}.out"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(start) = text.find("listening on 127.0.0.1:") {
            let rest = &text[start + "listening on ".len()..];
            let end = rest.find(';').unwrap();
            return rest[..end].to_owned();
        }
        assert!(Instant::now() < deadline, "no broker address in {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dir_bytes(&entry.path())
            } else {
                entry.metadata().unwrap().len()
            }
        })
        .sum()
}

fn stop(mut process: Process, signal: i32) {
    process.signal(signal);
    assert!(
        process.wait(Duration::from_secs(60)).success(),
        "{} exits cleanly",
        process.name
    );
}

#[test]
fn a_burst_of_ten_times_the_old_limit_before_the_group_joins_lands_exactly_once() {
    let work = WorkDir::new();
    let broker_dir = work.path().join("broker");
    // 2 partitions x 52 MB: ten times what the mock cluster kept per partition.
    let (count, bytes) = (26_000, 4_000);
    let broker = authtrail_broker::Broker::start(authtrail_broker::BrokerConfig::new(
        &broker_dir,
        TOPIC,
        PARTITIONS,
    ))
    .unwrap();
    let producer = producer(&broker.bootstrap_servers(), &[]);
    for i in 0..count {
        send(&producer, i, bytes);
    }
    let (acknowledged, refused) = finish(producer);
    drop(broker);
    assert_eq!((acknowledged.len(), refused), (count, 0));
    let stored = dir_bytes(&broker_dir.join("logs"));
    assert!(stored > 100_000_000, "{stored} bytes stored");

    let config = write_config(work.path(), &broker_dir, 1 << 30);
    let ingest = ingest(work.path(), "ingest", &config, &[]);
    embedded_address(work.path(), "ingest");
    wait_for_rows(&work.path().join("lake"), count, Duration::from_secs(300));
    stop(ingest, SIGINT);
    assert_exactly_once(&work.path().join("lake"), &acknowledged);
}

#[test]
fn messages_produced_around_a_restart_land_exactly_once() {
    let work = WorkDir::new();
    let broker_dir = work.path().join("broker");
    let config = write_config(work.path(), &broker_dir, 1 << 30);
    let first = ingest(work.path(), "first", &config, &[]);
    let address = embedded_address(work.path(), "first");
    // One producer throughout: it keeps sending while authtrail (and its broker) stops
    // and starts again on the same port, and redelivers what was in flight.
    let producing = Arc::new(AtomicBool::new(true));
    let sender = std::thread::spawn({
        let producing = producing.clone();
        move || {
            // Idempotent, so a batch the broker stored just before it stopped, whose
            // acknowledgement was lost, is not stored twice when retried.
            let settings = [
                ("message.timeout.ms", "120000"),
                ("enable.idempotence", "true"),
            ];
            let producer = producer(&address, &settings);
            let mut i = 0;
            while producing.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    send(&producer, i, 200);
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            finish(producer)
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    stop(first, SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    let second = ingest(work.path(), "second", &config, &[]);
    embedded_address(work.path(), "second");
    std::thread::sleep(Duration::from_secs(2));
    producing.store(false, Ordering::Relaxed);
    let (acknowledged, refused) = sender.join().unwrap();
    assert_eq!(refused, 0);
    assert!(
        acknowledged.len() > 1_000,
        "{} acknowledged",
        acknowledged.len()
    );
    wait_for_rows(
        &work.path().join("lake"),
        acknowledged.len(),
        Duration::from_secs(120),
    );
    stop(second, SIGINT);
    assert_exactly_once(&work.path().join("lake"), &acknowledged);

    // The broker's directory is lost, the lake stays: new messages get offsets past the
    // lake's, not ones it holds (which would be skipped as already stored).
    std::fs::remove_dir_all(&broker_dir).unwrap();
    let third = ingest(work.path(), "third", &config, &[]);
    let producer = producer(&embedded_address(work.path(), "third"), &[]);
    let start = acknowledged.len() * 2;
    for i in start..start + 300 {
        send(&producer, i, 200);
    }
    let (more, refused) = finish(producer);
    assert_eq!((more.len(), refused), (300, 0));
    let mut all = acknowledged;
    all.extend(more);
    wait_for_rows(
        &work.path().join("lake"),
        all.len(),
        Duration::from_secs(60),
    );
    stop(third, SIGINT);
    assert_exactly_once(&work.path().join("lake"), &all);
}

#[test]
fn with_the_writer_stalled_a_full_broker_refuses_and_loses_nothing_it_acknowledged() {
    let work = WorkDir::new();
    let broker_dir = work.path().join("broker");
    let flag = work.path().join("disk-full");
    std::fs::write(&flag, b"").unwrap();
    // 8 MiB bound, 20 MB offered while nothing can be written to the lake.
    let config = write_config(work.path(), &broker_dir, 8 << 20);
    let env = [(authtrail_store::FAULT_LAKE_FULL_ENV, flag.to_str().unwrap())];
    let ingest = ingest(work.path(), "ingest", &config, &env);
    let address = embedded_address(work.path(), "ingest");
    let quick = [("message.timeout.ms", "5000"), ("retry.backoff.ms", "200")];
    let producer = producer(&address, &quick);
    for i in 0..5_000 {
        send(&producer, i, 4_000);
    }
    let (acknowledged, refused) = finish(producer);
    assert!(refused > 0, "the bound was reached");
    assert!(!acknowledged.is_empty());
    std::fs::remove_file(&flag).unwrap();
    wait_for_rows(
        &work.path().join("lake"),
        acknowledged.len(),
        Duration::from_secs(120),
    );
    stop(ingest, SIGINT);
    assert_exactly_once(&work.path().join("lake"), &acknowledged);
    let log = std::fs::read_to_string(work.path().join("ingest.log")).unwrap();
    assert_eq!(
        log.matches("refusing produce requests").count(),
        1,
        "one loud log line when it starts refusing"
    );
}
