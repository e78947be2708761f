//! The embedded broker used when no brokers are configured: librdkafka's mock cluster on a
//! local port, so a new user can produce events with any Kafka client right away.
//!
//! It keeps messages in memory only. Its offsets restart at 0 with every process, so the
//! source numbers them on from where the lake's manifest ends (see
//! [`KafkaSource::new`](super::KafkaSource::new)); a restart
//! therefore never reuses a file name of an earlier run.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::Result;

/// A running embedded broker; dropping it stops it.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster with `topics`, each of `partitions` partitions.
    pub fn start(topics: &[String], partitions: i32) -> Result<Self> {
        let cluster = MockCluster::new(1)?;
        for topic in topics {
            cluster.create_topic(topic, partitions, 1)?;
        }
        Ok(EmbeddedKafka { cluster })
    }

    /// The broker's address, `127.0.0.1:PORT`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
