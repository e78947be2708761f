//! authtrail's embedded Kafka broker: a single-node, in-process broker on 127.0.0.1 that
//! keeps what it acknowledged on disk until every consumer group has committed past it,
//! bounded by a size, refusing producers rather than deleting unread messages when full.
//!
//! It is what `authtrail run`, `ingest` and `demo` start when no brokers are configured.
//! Any Kafka client (librdkafka, the Java client, kcat) produces to it; authtrail consumes
//! from it as a consumer group member.
//!
//! Data flow: a connection task ([`server`]) decodes each request with the `kafka-protocol`
//! crate and hands it to its handler (`api`). Produce appends the record batches as
//! received, with only their base offsets patched, to the partition's segmented log
//! (`log`) and fsyncs before acknowledging; Fetch returns the stored batches as they are.
//! The group coordinator (`groups`) runs the classic consumer group protocol, and
//! committed offsets (`offsets`) are written to a file atomically; they are also what
//! decides which segments `storage` may delete.
//!
//! ```no_run
//! use authtrail_broker::{Broker, BrokerConfig};
//!
//! let broker = Broker::start(BrokerConfig::new("/tmp/broker", "auth-events", 4))?;
//! println!("produce to {}", broker.bootstrap_servers());
//! drop(broker); // stops it; the data stays for the next start
//! # Ok::<(), authtrail_broker::Error>(())
//! ```

mod api;
mod batch;
mod config;
mod error;
mod groups;
mod log;
mod offsets;
mod server;
mod storage;

pub use config::BrokerConfig;
pub use error::Error;
pub use server::Broker;

/// The broker crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
