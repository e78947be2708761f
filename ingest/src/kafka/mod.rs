//! The Kafka source: a consumer group member that reads the configured topics, hands
//! messages to the pipeline, and commits offsets only once the lake holds them.

mod config;
mod embedded;
mod source;

pub use config::{KafkaConfig, TopicSource, DEFAULT_FETCH_WAIT_MAX_MS};
pub use embedded::EmbeddedKafka;
pub use source::KafkaSource;
