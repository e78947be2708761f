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
        }
    }
}

impl PipelineConfig {
    /// The contract limits these settings describe.
    pub fn contract_limits(&self) -> ContractLimits {
        ContractLimits {
            max_message_bytes: self.max_message_bytes,
            max_future_skew: i64::try_from(self.max_future_skew.as_micros()).unwrap_or(i64::MAX),
        }
    }
}
