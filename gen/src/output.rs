//! Where generated events go: JSON lines (a file or stdout) or a Kafka topic, keyed by
//! principal, flat out or at a given rate.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::error::Error;
use crate::sim::Generator;
use crate::Result;

/// Writes every event as one JSON line to `out`; returns how many. Stops early (with
/// what was written so far) when `stop` is set.
pub fn write_jsonl(
    generator: &mut Generator,
    mut out: impl Write,
    what: &str,
    stop: &AtomicBool,
) -> Result<u64> {
    let error = |source| Error::Write {
        what: what.to_owned(),
        source,
    };
    let mut written = 0;
    while let Some(event) = generator.next_event() {
        out.write_all(event.json.as_bytes()).map_err(error)?;
        out.write_all(b"\n").map_err(error)?;
        written += 1;
        if written % 4096 == 0 && stop.load(Ordering::Relaxed) {
            break;
        }
    }
    out.flush().map_err(error)?;
    Ok(written)
}

/// Where and how fast to produce.
#[derive(Debug, Clone)]
pub struct KafkaOutput {
    /// Bootstrap servers.
    pub brokers: String,
    pub topic: String,
    /// Events per second of wall-clock time; `None` for as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Further librdkafka settings (`security.protocol`, ...).
    pub settings: Vec<(String, String)>,
}

/// Counts deliveries that failed after librdkafka's retries.
#[derive(Default, Clone)]
struct Failures(Arc<AtomicU64>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces every event to `output.topic`, keyed by principal; returns how many were
/// delivered. Waits for every delivery before returning.
pub fn send_kafka(
    generator: &mut Generator,
    output: &KafkaOutput,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &output.brokers)
        .set("linger.ms", "5")
        .set("compression.type", "zstd")
        .set("enable.idempotence", "true");
    for (key, value) in &output.settings {
        config.set(key, value);
    }
    let failures = Failures::default();
    let producer: ThreadedProducer<Failures> = config.create_with_context(failures.clone())?;
    let started = Instant::now();
    let mut sent: u64 = 0;
    while let Some(event) = generator.next_event() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut record = BaseRecord::to(&output.topic)
            .key(event.key.as_bytes())
            .payload(event.json.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: the broker is the limit; wait for room.
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        sent += 1;
        if let Some(rate) = output.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(2) {
                std::thread::sleep(due - now);
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let failed = failures.0.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(Error::Undelivered {
            failed,
            sent,
            topic: output.topic.clone(),
        });
    }
    Ok(sent)
}
