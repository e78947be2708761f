//! The embedded broker used when no brokers are configured: [`authtrail_broker`] on a local
//! port with its data directory beside the lake, so a new user can produce events with any
//! Kafka client right away and nothing acknowledged is lost.
//!
//! Its logs and committed offsets survive a restart, so authtrail resumes from its
//! committed offsets like with any cluster.

use std::path::PathBuf;

use authtrail_broker::{Broker, BrokerConfig};
use authtrail_store::Lake;

use super::KafkaConfig;
use crate::Result;

/// Largest segment file; smaller with a small size bound, so whole segments can be freed.
const MAX_SEGMENT_BYTES: u64 = 16 << 20;
const MIN_SEGMENT_BYTES: u64 = 64 << 10;

/// A running embedded broker; dropping it stops it.
pub struct EmbeddedKafka {
    broker: Broker,
    max_bytes: u64,
}

impl EmbeddedKafka {
    /// Starts the broker for every topic of `kafka` (each of `kafka.embedded_partitions`
    /// partitions) in `kafka.embedded_dir` or beside `lake`. A partition new to the broker
    /// starts where the lake ends (a deleted broker directory must not hand out offsets
    /// the lake holds: the pipeline would skip those messages as already stored).
    pub fn start(kafka: &KafkaConfig, lake: &mut Lake) -> Result<Self> {
        let dir = match (lake.local_root(), &kafka.embedded_dir) {
            (Some(root), _) => kafka.embedded_dir(root),
            (None, Some(dir)) => dir.clone(),
            (None, None) => {
                return Err(crate::Error::Config(
                    "a lake on object storage has no directory to keep the embedded broker's \
                     data beside: set `kafka.brokers` (or `kafka.embedded_dir`)"
                        .to_owned(),
                ))
            }
        };
        let partitions = kafka.embedded_partitions.max(1);
        let topics = kafka.all_topics();
        let mut first_offsets = std::collections::BTreeMap::new();
        for topic in &topics {
            for partition in 0..partitions {
                if let Some(next) = lake.open_partition(topic, partition)?.next_offset() {
                    first_offsets.insert((topic.clone(), partition), next);
                }
            }
        }
        let per_partition =
            kafka.embedded_max_bytes / (4 * topics.len().max(1) as u64 * partitions as u64);
        let config = BrokerConfig {
            dir,
            port: kafka.embedded_port,
            topics: topics
                .iter()
                .map(|topic| (topic.clone(), partitions))
                .collect(),
            max_bytes: kafka.embedded_max_bytes,
            segment_bytes: per_partition.clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            first_offsets,
        };
        let broker = Broker::start(config)?;
        Ok(EmbeddedKafka {
            broker,
            max_bytes: kafka.embedded_max_bytes,
        })
    }

    /// The broker's address, `127.0.0.1:PORT`.
    pub fn bootstrap_servers(&self) -> String {
        self.broker.bootstrap_servers()
    }

    /// Its data directory.
    pub fn dir(&self) -> PathBuf {
        self.broker.dir().to_path_buf()
    }

    /// The one-time notice of what the embedded broker is for.
    pub fn notice(&self, topics: &[String]) -> String {
        format!(
            "the embedded Kafka broker is for one machine: it listens on {} (produce to topic(s) {}), keeps its data in `{}` and holds at most {} MiB (`kafka.embedded_max_bytes`); when that is full of messages authtrail has not stored yet, producers are refused until it catches up. For more than one machine, set `kafka.brokers` to a real cluster",
            self.bootstrap_servers(),
            topics.join(", "),
            self.broker.dir().display(),
            self.max_bytes >> 20
        )
    }
}
