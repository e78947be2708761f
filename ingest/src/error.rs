//! The ingest crate's error type.

/// What stops ingestion.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lake: {0}")]
    Store(#[from] authtrail_store::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Broker(#[from] authtrail_broker::Error),
    #[error("reading `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("detectors: {0}")]
    Detect(#[from] authtrail_detect::Error),
    #[error("detector checkpoint: {0}")]
    Checkpoint(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("alert sink: {0}")]
    AlertSink(crate::detection::BoxError),
    #[error("starting the writer thread: {0}")]
    Thread(std::io::Error),
    #[error("the pipeline thread stopped unexpectedly")]
    PipelineGone,
}
