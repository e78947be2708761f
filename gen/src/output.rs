//! Where generated events go: JSON lines (a file or stdout) or Kafka topics, keyed by
//! principal, flat out or at a given rate; in the event contract or, for the events a
//! native format expresses, in that format (`native.rs`).

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use authtrail_model::Micros;

use crate::error::Error;
use crate::native::Format;
use crate::sim::Generator;
use crate::Result;

/// Writes every event as one JSON line of the contract to `out`; returns how many. Stops
/// early (with what was written so far) when `stop` is set.
pub fn write_jsonl(
    generator: &mut Generator,
    out: impl Write,
    what: &str,
    stop: &AtomicBool,
) -> Result<u64> {
    write_jsonl_as(generator, Format::Authtrail, out, what, stop).map(|lines| lines.written)
}

/// What [`write_jsonl_as`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Lines written.
    pub written: u64,
    /// Events the format cannot express, left out.
    pub left_out: u64,
}

/// Writes every event `format` expresses as one JSON line in that format to `out`, and
/// counts the rest. Stops early (with what was written so far) when `stop` is set.
pub fn write_jsonl_as(
    generator: &mut Generator,
    format: Format,
    mut out: impl Write,
    what: &str,
    stop: &AtomicBool,
) -> Result<Written> {
    let error = |source| Error::Write {
        what: what.to_owned(),
        source,
    };
    let mut lines = Written {
        written: 0,
        left_out: 0,
    };
    let mut seen: u64 = 0;
    while let Some(event) = generator.next_event() {
        match format.render(&event) {
            Some(line) => {
                out.write_all(line.as_bytes()).map_err(error)?;
                out.write_all(b"\n").map_err(error)?;
                lines.written += 1;
            }
            None => lines.left_out += 1,
        }
        seen += 1;
        if seen.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
            break;
        }
    }
    out.flush().map_err(error)?;
    Ok(lines)
}

/// Where and how fast to produce.
#[derive(Debug, Clone)]
pub struct KafkaOutput {
    /// Bootstrap servers.
    pub brokers: String,
    pub topic: String,
    /// How fast to send.
    pub pace: Pace,
    /// Further librdkafka settings (`security.protocol`, ...).
    pub settings: Vec<(String, String)>,
}

/// How fast events are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the broker takes them.
    FlatOut,
    /// Events per second of wall-clock time.
    Rate(f64),
    /// Flat out up to event time `from` (say, a learning period), then the rest in event
    /// time `speedup` times faster than real time, so what follows unfolds while one watches.
    Replay { from: Micros, speedup: f64 },
}

impl Pace {
    /// How long after `started` (when the first event was sent) the `sent`-th event, at
    /// event time `time`, is due; `None`: at once. `replay_started` is when the first event
    /// at or after `from` was sent.
    fn due(
        self,
        started: Instant,
        sent: u64,
        time: Micros,
        replay_started: &mut Option<(Instant, Micros)>,
    ) -> Option<Instant> {
        match self {
            Pace::FlatOut => None,
            Pace::Rate(rate) => Some(started + Duration::from_secs_f64(sent as f64 / rate)),
            Pace::Replay { from, .. } if time < from => None,
            Pace::Replay { speedup, .. } => {
                let (wall, event) = *replay_started.get_or_insert((Instant::now(), time));
                let behind = (time - event).max(0) as f64 / 1e6 / speedup;
                Some(wall + Duration::from_secs_f64(behind))
            }
        }
    }
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
    let delivered = send_kafka_routed(generator, output, &[], stop)?;
    Ok(delivered.iter().map(|topic| topic.events).sum())
}

/// A native format and the topic its records go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeTopic {
    pub format: Format,
    pub topic: String,
}

impl NativeTopic {
    /// `format` to its default topic (`keycloak-events`, `k8s-audit`); `None` for the
    /// contract, which has no topic of its own.
    pub fn default_for(format: Format) -> Option<NativeTopic> {
        Some(NativeTopic {
            format,
            topic: format.default_topic()?,
        })
    }
}

/// How many events went to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub topic: String,
    pub events: u64,
}

/// Produces each event, keyed by principal, in the first of the `native` formats that
/// expresses it to that format's topic, and the rest as contract events to
/// `output.topic`. Returns the events delivered per topic, `output.topic` first, then
/// `native` in order. Waits for every delivery before returning.
pub fn send_kafka_routed(
    generator: &mut Generator,
    output: &KafkaOutput,
    native: &[NativeTopic],
    stop: &AtomicBool,
) -> Result<Vec<Delivered>> {
    check_routes(&output.topic, native)?;
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
    let mut replay_started = None;
    let mut delivered: Vec<Delivered> = std::iter::once(&output.topic)
        .chain(native.iter().map(|route| &route.topic))
        .map(|topic| Delivered {
            topic: topic.clone(),
            events: 0,
        })
        .collect();
    let mut sent: u64 = 0;
    while let Some(event) = generator.next_event() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (route, payload) = native
            .iter()
            .enumerate()
            .find_map(|(at, route)| Some((at + 1, route.format.render(&event)?)))
            .unwrap_or_else(|| (0, Cow::Borrowed(&event.json)));
        let mut record = BaseRecord::to(&delivered[route].topic)
            .key(event.key.as_bytes())
            .payload(payload.as_bytes());
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
        delivered[route].events += 1;
        if let Some(due) = output
            .pace
            .due(started, sent, event.time, &mut replay_started)
        {
            let now = Instant::now();
            if due > now + Duration::from_millis(2) {
                std::thread::sleep(due - now);
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let failed = failures.0.load(Ordering::Relaxed);
    if failed > 0 {
        let topics: Vec<&str> = delivered.iter().map(|to| to.topic.as_str()).collect();
        return Err(Error::Undelivered {
            failed,
            sent,
            topic: topics.join("`, `"),
        });
    }
    Ok(delivered)
}

/// Each native format once, each to a topic of its own: one topic, one format.
fn check_routes(contract: &str, native: &[NativeTopic]) -> Result<()> {
    for (at, route) in native.iter().enumerate() {
        if route.format == Format::Authtrail {
            return Err(Error::Config(format!(
                "`{}` is the contract, not a native format: its events go to `{contract}`",
                route.format
            )));
        }
        if route.topic.is_empty() {
            return Err(Error::Config(format!(
                "the topic of format `{}` is empty",
                route.format
            )));
        }
        if route.topic == contract {
            return Err(Error::Config(format!(
                "format `{}` would share topic `{contract}` with the contract's events",
                route.format
            )));
        }
        for earlier in &native[..at] {
            if earlier.format == route.format {
                return Err(Error::Config(format!(
                    "format `{}` is listed twice",
                    route.format
                )));
            }
            if earlier.topic == route.topic {
                return Err(Error::Config(format!(
                    "formats `{}` and `{}` would share topic `{}`",
                    earlier.format, route.format, route.topic
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_flat_out_before_its_start_then_follows_event_time_sped_up() {
        let pace = Pace::Replay {
            from: 1_000_000,
            speedup: 10.0,
        };
        let started = Instant::now();
        let mut replay_started = None;
        assert_eq!(pace.due(started, 1, 999_999, &mut replay_started), None);
        let first = pace
            .due(started, 2, 1_500_000, &mut replay_started)
            .unwrap();
        // 20 s of event time later, at 10x: due 2 s after the first replayed event.
        let later = pace
            .due(started, 3, 21_500_000, &mut replay_started)
            .unwrap();
        assert_eq!(later - first, Duration::from_secs(2));
    }

    #[test]
    fn a_rate_spaces_events_evenly_from_the_start() {
        let started = Instant::now();
        let due = Pace::Rate(4.0).due(started, 2, 0, &mut None).unwrap();
        assert_eq!(due - started, Duration::from_millis(500));
    }
}
