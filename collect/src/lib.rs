//! authtrail's HTTP collector: identity records posted as their sources write them
//! (the Kubernetes audit webhook, OPA's decision logs, an IdP's log stream), produced to
//! Kafka for authtrail's ingest to adapt and store.
//!
//! A request `POST /api/v1/collect/{format}` carries a collector key (write-only: never a
//! query key), a body of JSON records (one object, JSON lines, an array, a list object's
//! `items`; gzip or not). The body is inflated up to `max_body_bytes`, split into
//! records ([`authtrail_model::records::split_records`]), each checked by the format's
//! adapter (counted as mapped, unmapped, rejected or skipped: all are produced, since
//! ingest keeps rejects with their Kafka coordinates), charged to the key's rate, and
//! produced unchanged to the format's topic by an idempotent producer with `acks=all`,
//! keyed by the event id. The answer is 200 only once the broker acknowledged every record; 503 with
//! `Retry-After` when it did not, so the sender retries and nothing it was told is kept
//! is lost. The collector does not write the lake: `authtrail run`/`ingest` consume the
//! topics with their formats ([`CollectConfig::topics_by_format`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use authtrail_collect::{router, CollectConfig, Collector};
//!
//! let config = CollectConfig::default();
//! let keys = vec!["a-collector-key-of-16+".to_owned()];
//! let collector = Arc::new(Collector::new(config, "kafka-1:9092", &keys)?);
//! let app: axum::Router = router(collector);
//! # Ok::<(), authtrail_collect::Error>(())
//! ```

mod body;
mod config;
mod error;
mod formats;
mod keys;
mod metrics;
mod producer;
mod rate;
mod router;

use std::collections::BTreeMap;
use std::sync::Arc;

use authtrail_metrics::Exposition;

pub use config::{check_keys_are_separate, CollectConfig, MIN_KEY_LEN};
pub use error::{Error, Refusal};
pub use formats::known as known_formats;
pub use keys::{require_key, KeyIndex, Keys};
pub use router::router;

use formats::Route;
use producer::Producer;
use rate::RateLimiter;

/// The collector crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a collector request uses: config, keys, rate buckets, producer, metrics.
pub struct Collector {
    config: CollectConfig,
    keys: Arc<Keys>,
    rate: RateLimiter,
    producer: Producer,
    /// Every format's adapter, topic and counters.
    routes: BTreeMap<&'static str, Route>,
}

impl Collector {
    /// A collector producing to `brokers`, accepting `keys`. The producer connects lazily:
    /// an unreachable cluster is answered 503 per request, not refused here.
    pub fn new(config: CollectConfig, brokers: &str, keys: &[String]) -> Result<Collector> {
        config.validate()?;
        let producer = Producer::new(&config, brokers)?;
        Ok(Collector {
            rate: RateLimiter::new(config.rate_per_key, config.rate_burst),
            keys: Arc::new(Keys::new(keys)),
            producer,
            routes: formats::routes(&config)?,
            config,
        })
    }

    /// Writes the collector's metric families.
    pub fn expose(&self, out: &mut Exposition) {
        metrics::expose(&self.routes, out);
    }
}
