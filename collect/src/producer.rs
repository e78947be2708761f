//! The Kafka side: an idempotent producer with `acks=all`, whose every delivery a request
//! awaits before it is answered, and a cheap check that fails requests fast while the
//! brokers are down instead of letting each wait out its delivery timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authtrail_metrics::lock;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, ClientContext};

use crate::error::Refusal;
use crate::{CollectConfig, Error};

/// Properties the delivery promise depends on; `[collect] settings` may not change them.
const MANAGED_SETTINGS: [&str; 5] = [
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
];

/// How long the reachability check waits for the brokers' metadata.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A check's result is reused by the requests that arrive within this long.
const PROBE_REUSE: Duration = Duration::from_secs(1);

/// Records librdkafka may hold unacknowledged (ten full requests at the default limit).
const QUEUE_MESSAGES: &str = "100000";

/// Learns from librdkafka when every broker is down.
struct Context {
    brokers_down: Arc<AtomicBool>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.store(true, Ordering::Relaxed);
        }
        tracing::warn!(%error, reason, "Kafka producer error");
    }
}

/// The collector's producer.
pub struct Producer {
    config: ClientConfig,
    producer: Mutex<FutureProducer<Context>>,
    /// Set when a delivery failed or librdkafka saw every broker down; cleared by a
    /// successful check or delivery. While set, requests check before producing.
    brokers_down: Arc<AtomicBool>,
    /// The last check: when, and whether the brokers answered.
    last_probe: Mutex<Option<(Instant, bool)>>,
    delivery_timeout: Duration,
}

/// Records on their way to the broker, from [`Producer::enqueue`].
pub struct InFlight(Vec<DeliveryFuture>);

impl Producer {
    /// A producer to `brokers` with `config`'s settings; connects lazily.
    pub fn new(config: &CollectConfig, brokers: &str) -> Result<Producer, Error> {
        Producer::new_with(config, brokers, |name| std::env::var(name).ok())
    }

    fn new_with(
        config: &CollectConfig,
        brokers: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Producer, Error> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", brokers)
            .set("client.id", "authtrail-collect")
            .set("queue.buffering.max.messages", QUEUE_MESSAGES)
            // A broker that comes back is found within a second, not librdkafka's 10 s.
            .set("reconnect.backoff.max.ms", "1000")
            // A request waits for its acknowledgements: no Nagle delay on small batches.
            .set("socket.nagle.disable", "true")
            .set("linger.ms", config.linger.as_millis().to_string());
        let settings = config
            .settings
            .iter()
            .map(|(key, value)| (key, Some(value.clone())));
        let from_env = config
            .settings_from_env
            .iter()
            .map(|(key, variable)| (key, env(variable)));
        for (key, value) in settings.chain(from_env) {
            if MANAGED_SETTINGS.contains(&key.as_str()) {
                return Err(Error::Config(format!(
                    "`{key}` is managed by the collector (acks=all, idempotence, `delivery_timeout`); remove it from `collect.settings`"
                )));
            }
            let value = value.ok_or_else(|| {
                Error::Config(format!(
                    "`collect.settings_from_env.{key}` names a variable that is not set"
                ))
            })?;
            client.set(key, value);
        }
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().max(1).to_string(),
            );
        let brokers_down = Arc::new(AtomicBool::new(false));
        let producer = create(&client, &brokers_down)?;
        Ok(Producer {
            config: client,
            producer: Mutex::new(producer),
            brokers_down,
            last_probe: Mutex::new(None),
            delivery_timeout: config.delivery_timeout,
        })
    }

    /// 503 at once while the brokers are known to be down: one metadata request (at most
    /// one a second, shared by concurrent requests) instead of a delivery timeout each.
    /// Blocks for up to a second: call it off the reactor.
    pub fn check_reachable(&self, topic: &str) -> Result<(), Refusal> {
        if !self.brokers_down.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut last_probe = lock(&self.last_probe);
        let reachable = match *last_probe {
            Some((at, reachable)) if at.elapsed() < PROBE_REUSE => reachable,
            _ => {
                let producer = lock(&self.producer).clone();
                let answered = producer
                    .client()
                    .fetch_metadata(Some(topic), PROBE_TIMEOUT)
                    .is_ok();
                *last_probe = Some((Instant::now(), answered));
                answered
            }
        };
        if reachable {
            self.brokers_down.store(false, Ordering::Relaxed);
            Ok(())
        } else {
            Err(self.unavailable("the Kafka brokers are unreachable"))
        }
    }

    /// Hands every record to librdkafka for `topic` (blocking-free, but CPU: call it off
    /// the reactor); `key` is each record's Kafka key.
    pub fn enqueue<'a>(
        &self,
        topic: &str,
        records: impl Iterator<Item = (Option<String>, &'a [u8])>,
    ) -> Result<InFlight, Refusal> {
        let producer = lock(&self.producer).clone();
        let mut deliveries = Vec::with_capacity(records.size_hint().0);
        for (key, payload) in records {
            let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
            if let Some(key) = &key {
                record = record.key(key.as_str());
            }
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                // What was enqueued is delivered anyway; the sender's retry resends it,
                // and the lake keeps one copy (the native id is the event id).
                Err((error, _)) => {
                    tracing::warn!(%error, topic, "the producer's queue refused a record");
                    return Err(Refusal::Unavailable {
                        message: "the collector is busy; retry".into(),
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
        }
        Ok(InFlight(deliveries))
    }

    /// Waits until the broker acknowledged every record of `in_flight` (200), or one
    /// failed or `delivery_timeout` passed (503).
    pub async fn acknowledged(&self, in_flight: InFlight) -> Result<(), Refusal> {
        // librdkafka fails each record by `message.timeout.ms`; this bound only guards
        // against a delivery report that never comes.
        let bound = self.delivery_timeout + Duration::from_secs(1);
        let outcome = tokio::time::timeout(bound, async {
            for delivery in in_flight.0 {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => return Err(error.to_string()),
                    Err(_) => return Err("the producer dropped a delivery report".into()),
                }
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err("no delivery report within the delivery timeout".into()));
        match outcome {
            Ok(()) => {
                self.brokers_down.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "the broker did not acknowledge every record; answering 503");
                self.brokers_down.store(true, Ordering::Relaxed);
                self.replace_if_fatal();
                Err(self.unavailable("the Kafka brokers did not acknowledge every record"))
            }
        }
    }

    /// An idempotent producer that hit a fatal error (a broken sequence) produces nothing
    /// more: start a new one, with a new producer id.
    fn replace_if_fatal(&self) {
        let mut producer = lock(&self.producer);
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::error!(?code, %reason, "the Kafka producer failed fatally; starting a new one");
            match create(&self.config, &self.brokers_down) {
                Ok(fresh) => *producer = fresh,
                Err(error) => tracing::error!(%error, "starting a new Kafka producer"),
            }
        }
    }

    fn unavailable(&self, message: &str) -> Refusal {
        Refusal::Unavailable {
            message: format!("{message}; nothing of this request was acknowledged, retry it"),
            retry_after: self.delivery_timeout,
        }
    }
}

fn create(
    client: &ClientConfig,
    brokers_down: &Arc<AtomicBool>,
) -> Result<FutureProducer<Context>, Error> {
    client
        .create_with_context(Context {
            brokers_down: brokers_down.clone(),
        })
        .map_err(|error| Error::Producer(error.to_string()))
}

/// The settings a config gives the producer, for tests.
#[cfg(test)]
fn settings_of(
    config: &CollectConfig,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let producer = Producer::new_with(config, "127.0.0.1:1", |_| None)?;
    Ok(producer
        .config
        .config_map()
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_promise_cannot_be_configured_away() {
        let settings = settings_of(&CollectConfig::default()).unwrap();
        assert_eq!(settings["enable.idempotence"], "true");
        assert_eq!(settings["acks"], "all");
        assert_eq!(settings["message.timeout.ms"], "5000");
        for managed in MANAGED_SETTINGS {
            let config = CollectConfig {
                settings: [(managed.to_owned(), "0".to_owned())].into(),
                ..CollectConfig::default()
            };
            let error = settings_of(&config).unwrap_err().to_string();
            assert!(error.contains(managed), "{error}");
        }
    }
}
