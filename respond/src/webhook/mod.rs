//! Webhook sinks: configuration, bodies, Standard Webhooks signing, and the guards of one
//! endpoint (circuit breaker, revocation rate limit, requests in flight).

mod body;
mod breaker;
mod config;
mod rate;
pub mod send;
mod sign;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use body::BodyBuilder;
pub use breaker::Breaker;
pub(crate) use config::redacted_url;
pub use config::{Action, WebhookConfig};
pub use rate::RateLimit;
pub use sign::Secret;

use crate::error::Error;

/// Where a sink's deliveries go.
pub enum Target {
    /// POST to `config.url`, signed with the secret.
    Http(Secret),
    /// Produce to a Kafka topic.
    Kafka {
        producer: rdkafka::producer::FutureProducer,
        topic: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(secret) => f.debug_tuple("Http").field(secret).finish(),
            Target::Kafka { topic, .. } => f.debug_struct("Kafka").field("topic", topic).finish(),
        }
    }
}

/// One configured endpoint, ready to send to.
#[derive(Debug)]
pub struct Sink {
    pub config: WebhookConfig,
    pub target: Target,
    pub body: BodyBuilder,
    pub breaker: Breaker,
    pub rate: RateLimit,
    pub in_flight: Arc<Semaphore>,
    pub counters: DeliveryCounters,
}

/// Outcomes of one sink's delivery attempts since the process started, for metrics
/// (`metrics.rs` writes them).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Alerts the endpoint accepted (or a dry run built).
    pub(crate) delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub(crate) retries: AtomicU64,
    /// Alerts that became dead letters (refused, or out of retry time).
    pub(crate) dead: AtomicU64,
    /// Alerts held by the revocation rate limit.
    pub(crate) held: AtomicU64,
}

impl DeliveryCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Sink {
    /// Validates `config`, loads its secret and checks its template.
    pub fn new(config: &WebhookConfig, max_in_flight: usize) -> Result<Sink, Error> {
        config.validate()?;
        let secret = Secret::load(
            &config.name,
            config.secret_env.as_deref(),
            config.secret_file.as_deref(),
        )?;
        Sink::build(config, Target::Http(secret), max_in_flight)
    }

    /// The Kafka publishing sink.
    pub fn kafka(config: &crate::KafkaPublishConfig, max_in_flight: usize) -> Result<Sink, Error> {
        let target = Target::Kafka {
            producer: config.producer()?,
            topic: config.topic.clone(),
        };
        Sink::build(&config.delivery_config(), target, max_in_flight)
    }

    fn build(config: &WebhookConfig, target: Target, max_in_flight: usize) -> Result<Sink, Error> {
        Ok(Sink {
            body: BodyBuilder::new(&config.name, config.action, config.body_template.as_deref())?,
            breaker: Breaker::new(
                &config.name,
                config.breaker_failures,
                config.breaker_cooldown,
            ),
            rate: RateLimit::new(config.rate_limit, config.rate_window),
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            counters: DeliveryCounters::default(),
            target,
            config: config.clone(),
        })
    }
}
