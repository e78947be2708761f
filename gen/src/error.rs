//! The crate's one error type.

/// What can go wrong generating, writing or evaluating traffic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting no model can run with.
    #[error("invalid generator setting: {0}")]
    Config(String),
    /// Writing the events or the ground truth failed.
    #[error("writing `{what}`: {source}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading the events or the ground truth failed.
    #[error("reading `{what}`: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A ground-truth line that is not a truth record.
    #[error("`{what}` line {line}: {message}")]
    Truth {
        what: String,
        line: usize,
        message: String,
    },
    /// The Kafka producer failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Events the broker did not take, after the producer's retries.
    #[error("{failed} of {sent} events were not delivered to topic `{topic}`")]
    Undelivered {
        failed: u64,
        sent: u64,
        topic: String,
    },
    /// The detectors would not start.
    #[error("detectors: {0}")]
    Detect(#[from] authtrail_detect::Error),
}
