//! authtrail's ingest path: sources and the pipeline that lands their messages in the lake.
//!
//! A source (a Kafka consumer group member, or a JSON-lines file or stdin) reads messages
//! and sends them in batches over a bounded channel to the [`Pipeline`], which runs on its
//! own thread: it checks each message against the event contract, buffers events and
//! rejects per source partition, and flushes them to the lake on row count or age. After
//! each flush the pipeline reports the offsets that became durable, and only then does the
//! Kafka source commit them. [`ingest_kafka`] and [`ingest_lines`] wire the two together.

mod config;
mod decode;
mod decode_pool;
mod detect_stage;
mod detection;
mod error;
pub mod file;
mod formats;
pub mod kafka;
mod message;
mod partition;
mod pipeline;
mod stats;
mod writer;

use std::io::BufRead;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread;

use authtrail_model::adapt::Format;
use authtrail_store::Lake;
use tokio_util::sync::CancellationToken;

pub use config::PipelineConfig;
pub use decode::Clock;
pub use detection::{AlertSink, BoxError, Detection, ReloadError, RulesReload};
pub use error::Error;
pub use formats::{SourceFormat, SourceFormats};
pub use message::{Durable, Input, RawMessage, SOURCE_BATCH};
pub use partition::SourceLog;
pub use pipeline::{OnDurable, Pipeline};
pub use stats::{IngestStats, StatsSnapshot};
pub use writer::WriteHook;

/// The ingest crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Consumes `kafka.topics` from `brokers` into the lake until `stop` is cancelled, then flushes
/// and commits what it holds.
#[allow(clippy::too_many_arguments)]
pub fn ingest_kafka(
    lake: Lake,
    config: &PipelineConfig,
    kafka: &kafka::KafkaConfig,
    brokers: &str,
    detection: Option<Detection>,
    stats: Arc<IngestStats>,
    stop: &CancellationToken,
) -> Result<()> {
    let (sender, receiver) = sync_channel(config.queue_batches);
    let source = kafka::KafkaSource::new(
        kafka.client_config(brokers)?,
        kafka.all_topics(),
        sender,
        config,
        stats.clone(),
    )?;
    let pipeline = Pipeline::new(lake, config.clone(), stats, source.committer(), detection)
        .with_source_log(source.source_log())
        .with_formats(SourceFormats::from_kafka(kafka)?);
    let worker = thread::Builder::new()
        .name("authtrail-pipeline".into())
        .spawn(move || pipeline.run(receiver))
        .expect("spawn pipeline thread");
    let consumed = source.run(stop);
    let flushed = worker.join().map_err(|_| Error::PipelineGone)?;
    // Report the pipeline's error first: it is the cause when the source saw it go away.
    flushed.and(consumed)
}

/// Reads records from `reader` into the lake as `source` / `partition` until the input
/// ends (or `stop` is cancelled), then flushes: JSON lines of the contract, or records of
/// a native `format` (JSON lines, arrays or list objects; see [`file::read_records`]).
/// Decodes on one thread per core unless `config.decode_threads` says otherwise.
#[allow(clippy::too_many_arguments)]
pub fn ingest_lines(
    lake: Lake,
    config: &PipelineConfig,
    reader: impl BufRead,
    label: &str,
    source: &str,
    partition: i32,
    format: Format,
    detection: Option<Detection>,
    stats: Arc<IngestStats>,
    stop: &CancellationToken,
) -> Result<()> {
    let (sender, receiver) = sync_channel(config.queue_batches);
    let contract = format.is_contract();
    let pipeline = Pipeline::new(
        lake,
        config
            .clone()
            .with_default_decode_threads(available_cores()),
        stats.clone(),
        Box::new(|_| {}),
        detection,
    )
    .with_formats(SourceFormats::contract().with(source, format, false));
    let worker = thread::Builder::new()
        .name("authtrail-pipeline".into())
        .spawn(move || pipeline.run(receiver))
        .expect("spawn pipeline thread");
    let input = file::FileInput {
        label,
        source: Arc::from(source),
        partition,
        keep_bytes: config.max_message_bytes,
    };
    let read = if contract {
        file::read_lines(reader, &input, &sender, &stats, stop)
    } else {
        file::read_records(reader, &input, &sender, &stats, stop)
    };
    drop(sender);
    let flushed = worker.join().map_err(|_| Error::PipelineGone)?;
    flushed.and(read)
}

/// The cores this process may use (one when the system cannot tell).
fn available_cores() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}
