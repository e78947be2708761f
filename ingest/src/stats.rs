//! Counters of the ingest path, shared between threads and read by the CLI (and later by
//! the metrics endpoint).

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since the process started.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Messages (or non-blank lines) the pipeline received.
    pub received: AtomicU64,
    /// Messages accepted into `events`.
    pub accepted: AtomicU64,
    /// Messages written to `rejects`.
    pub rejected: AtomicU64,
    /// Messages skipped because the lake already holds their offset (a replay after a
    /// crash between the lake commit and the offset commit).
    pub already_in_lake: AtomicU64,
    /// Messages delivered again within one session (skipped, they are already buffered).
    pub redelivered: AtomicU64,
    /// Places where offsets jumped forward (compaction, transaction markers, or messages a
    /// broker skipped).
    pub offset_gaps: AtomicU64,
    /// Blank lines in file sources (no data, nothing to keep).
    pub blank_lines: AtomicU64,
    /// Alerts the detectors raised.
    pub alerts: AtomicU64,
    /// Kafka partitions currently assigned to this consumer.
    pub assigned_partitions: AtomicU64,
    /// Flushes that committed at least one file.
    pub flushes: AtomicU64,
    /// Parquet files written.
    pub files: AtomicU64,
    /// Bytes of Parquet written.
    pub bytes: AtomicU64,
    /// Lake writes that failed with an I/O error (a full disk) and were retried; offsets
    /// are not committed meanwhile.
    pub lake_write_retries: AtomicU64,
}

/// A point-in-time copy of [`IngestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub already_in_lake: u64,
    pub redelivered: u64,
    pub offset_gaps: u64,
    pub blank_lines: u64,
    pub alerts: u64,
    pub assigned_partitions: u64,
    pub flushes: u64,
    pub files: u64,
    pub bytes: u64,
    pub lake_write_retries: u64,
}

impl IngestStats {
    pub(crate) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// The current totals.
    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            received: read(&self.received),
            accepted: read(&self.accepted),
            rejected: read(&self.rejected),
            already_in_lake: read(&self.already_in_lake),
            redelivered: read(&self.redelivered),
            offset_gaps: read(&self.offset_gaps),
            blank_lines: read(&self.blank_lines),
            alerts: read(&self.alerts),
            assigned_partitions: read(&self.assigned_partitions),
            flushes: read(&self.flushes),
            files: read(&self.files),
            bytes: read(&self.bytes),
            lake_write_retries: read(&self.lake_write_retries),
        }
    }
}
