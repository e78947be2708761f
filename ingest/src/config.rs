//! Configuration of the decode → buffer → flush pipeline (`[ingest]` in authtrail.toml).

use std::time::Duration;

use authtrail_model::ContractLimits;
use serde::Deserialize;

/// When to flush, and the contract's limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Flush when this many rows (events and rejects, all partitions) are buffered.
    pub flush_rows: usize,
    /// Flush when the oldest buffered row is this old, e.g. "10s".
    #[serde(with = "humantime_serde")]
    pub flush_age: Duration,
    /// Largest accepted message in bytes; larger ones are rejected as `too_large`.
    pub max_message_bytes: usize,
    /// How far an event's `time` may lie ahead of the ingest clock, e.g. "1h".
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// How many bytes of a rejected message the `rejects` table keeps.
    pub max_reject_raw_bytes: usize,
    /// Batches of messages in flight between a source and the pipeline; bounds memory,
    /// so a slow disk pushes back on the source instead of growing buffers.
    pub queue_batches: usize,
    /// Threads that decode messages ahead of the pipeline thread; with any, the detectors
    /// also run on a thread of their own, so decoding, Arrow building, detection and
    /// Parquet encoding share the machine's cores. `0` decodes and detects on the
    /// pipeline thread. Unset: one per core for files and stdin (a backfill is CPU-bound),
    /// `0` for Kafka (a live stream waits on the broker, and every hop between threads
    /// adds to alert latency).
    pub decode_threads: Option<usize>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            flush_rows: 100_000,
            flush_age: Duration::from_secs(10),
            max_message_bytes: 1024 * 1024,
            max_future_skew: Duration::from_secs(3_600),
            max_reject_raw_bytes: 64 * 1024,
            queue_batches: 16,
            decode_threads: None,
        }
    }
}

impl PipelineConfig {
    /// These settings with `decode_threads` set to `threads` unless the user set it.
    pub fn with_default_decode_threads(mut self, threads: usize) -> Self {
        self.decode_threads.get_or_insert(threads);
        self
    }

    /// The contract limits these settings describe.
    pub fn contract_limits(&self) -> ContractLimits {
        ContractLimits {
            max_message_bytes: self.max_message_bytes,
            max_future_skew: i64::try_from(self.max_future_skew.as_micros()).unwrap_or(i64::MAX),
        }
    }
}
