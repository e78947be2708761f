//! Counters of the ingest path, shared between threads, summed up for the CLI
//! ([`StatsSnapshot`]) and written as Prometheus families by [`IngestStats::expose`]
//! (`stats/exposition.rs`). The decode thread only touches atomics per event; anything
//! behind a lock is updated per partition opened, per alert, per flush or about once a
//! second. The counters are private to the crate: other crates read totals, readiness and
//! the exposition.

mod exposition;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use authtrail_detect::DetectStats;
pub(crate) use authtrail_metrics::lock;
use authtrail_metrics::{Histogram, LatencyWindow};

/// Running totals since the process started. `received`, `alerts` and
/// `assigned_partitions` stay public: the whole-pipeline benches poll them while it runs.
#[derive(Debug)]
pub struct IngestStats {
    /// Messages (or non-blank lines) the pipeline received.
    pub received: AtomicU64,
    /// Messages accepted into `events`.
    pub(crate) accepted: AtomicU64,
    /// Messages written to `rejects`.
    pub(crate) rejected: AtomicU64,
    /// Messages skipped because the lake already holds their offset (a replay after a
    /// crash between the lake commit and the offset commit).
    pub(crate) already_in_lake: AtomicU64,
    /// Messages delivered again within one session (skipped, they are already buffered).
    pub(crate) redelivered: AtomicU64,
    /// Places where offsets jumped forward: transaction markers, compaction, messages a
    /// broker skipped, or messages lost (see `events_lost`).
    pub(crate) offset_gaps: AtomicU64,
    /// Offsets the source had deleted (retention, a truncated log) before they were read:
    /// never in the lake, recorded in its manifest.
    pub(crate) events_lost: AtomicU64,
    /// Blank lines in file sources (no data, nothing to keep).
    pub(crate) blank_lines: AtomicU64,
    /// Native records their format's own rules say are no event (a Kubernetes audit
    /// event's `RequestReceived` stage): counted, not kept.
    pub(crate) not_events: AtomicU64,
    /// Native records of a type their mapping does not map, from a source with
    /// `skip_unmapped` (elsewhere they are rejects of kind `unmapped`).
    pub(crate) unmapped_skipped: AtomicU64,
    /// Adapted events whose id the source had delivered within its recent-ids window (a
    /// sender's retry, or another stage of one Kubernetes request): kept once.
    pub(crate) duplicate_ids: AtomicU64,
    /// Alerts the detectors raised.
    pub alerts: AtomicU64,
    /// Kafka partitions currently assigned to this consumer.
    pub assigned_partitions: AtomicU64,
    /// Flushes that committed at least one file.
    pub(crate) flushes: AtomicU64,
    /// Parquet files written.
    pub(crate) files: AtomicU64,
    /// Bytes of Parquet written.
    pub(crate) bytes: AtomicU64,
    /// Lake writes that failed with an I/O error (a full disk) and were retried; offsets
    /// are not committed meanwhile.
    pub(crate) lake_write_retries: AtomicU64,
    /// Per source partition: messages received, accepted, rejected.
    pub(crate) partitions: Mutex<Vec<Arc<PartitionStats>>>,
    /// How long each flush took on the writer thread (lake files, checkpoint, sink sync),
    /// in microseconds.
    pub(crate) flush_micros: Histogram,
    /// Size of each Parquet file written, in bytes.
    pub(crate) file_bytes: Histogram,
    /// How long the detectors stopped for each flush (cutting the checkpoint, waiting for
    /// the writer to take it), in microseconds.
    pub(crate) detect_pause_micros: Histogram,
    /// Per Kafka message, from its timestamp to when the consumer polled it, in
    /// microseconds (producer batching, the broker, the fetch wait, any backlog).
    pub(crate) record_age_micros: Histogram,
    /// Per batch of Kafka messages, how long the source waited to hand it to the pipeline
    /// (its queue full), in microseconds; messages wait unpolled meanwhile, and age.
    pub(crate) source_blocked_micros: Histogram,
    /// Time the detectors took per event, published by the decode thread about once a second.
    pub(crate) detect_latency: LatencyWindow,
    /// Alerts raised per (detector, severity).
    pub(crate) alerts_by: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The detectors' state sizes, published with `detect_latency`.
    pub(crate) detect_state: Mutex<Option<DetectStats>>,
    /// Per Kafka partition: messages in the log past the committed offset, from
    /// librdkafka's statistics.
    pub(crate) consumer_lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// When the source last polled for input (ms since the epoch; 0: not yet).
    pub(crate) source_heartbeat_ms: AtomicU64,
    /// Set while the pipeline runs; cleared when it stops (cleanly or not).
    pub(crate) pipeline_running: AtomicBool,
    /// Set when the writer thread failed: nothing more reaches the lake.
    pub(crate) writer_failed: AtomicBool,
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            already_in_lake: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            offset_gaps: AtomicU64::new(0),
            events_lost: AtomicU64::new(0),
            blank_lines: AtomicU64::new(0),
            not_events: AtomicU64::new(0),
            unmapped_skipped: AtomicU64::new(0),
            duplicate_ids: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            assigned_partitions: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            lake_write_retries: AtomicU64::new(0),
            partitions: Mutex::default(),
            flush_micros: Histogram::seconds(),
            file_bytes: Histogram::bytes(),
            detect_pause_micros: Histogram::seconds(),
            record_age_micros: Histogram::seconds(),
            source_blocked_micros: Histogram::seconds(),
            detect_latency: LatencyWindow::default(),
            alerts_by: Mutex::default(),
            detect_state: Mutex::default(),
            consumer_lag: Mutex::default(),
            source_heartbeat_ms: AtomicU64::new(0),
            pipeline_running: AtomicBool::new(false),
            writer_failed: AtomicBool::new(false),
        }
    }
}

/// Counters of one source partition.
#[derive(Debug)]
pub(crate) struct PartitionStats {
    pub(crate) source: Arc<str>,
    pub(crate) partition: i32,
    /// Messages received (consumed).
    pub(crate) received: AtomicU64,
    /// Messages accepted into `events`.
    pub(crate) accepted: AtomicU64,
    /// Messages written to `rejects`.
    pub(crate) rejected: AtomicU64,
    /// Offsets lost: deleted by the source before they were read.
    pub(crate) lost: AtomicU64,
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
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
    pub events_lost: u64,
    pub blank_lines: u64,
    pub not_events: u64,
    pub unmapped_skipped: u64,
    pub duplicate_ids: u64,
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

    /// The counters of a source partition (created on first use, kept across revokes).
    pub(crate) fn partition(&self, source: &Arc<str>, partition: i32) -> Arc<PartitionStats> {
        let mut partitions = lock(&self.partitions);
        if let Some(found) = partitions
            .iter()
            .find(|p| p.partition == partition && p.source == *source)
        {
            return found.clone();
        }
        let stats = Arc::new(PartitionStats {
            source: source.clone(),
            partition,
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        partitions.push(stats.clone());
        stats
    }

    /// Records that the source is polling (cheap: one relaxed store).
    pub(crate) fn heartbeat(&self) {
        self.source_heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Ready: the pipeline runs, its writer has not failed, and the source polled within
    /// `max_silence_ms`. The reason when not.
    pub fn readiness(&self, max_silence_ms: u64) -> Result<(), &'static str> {
        if self.writer_failed.load(Ordering::Relaxed) {
            return Err("the lake writer failed");
        }
        if !self.pipeline_running.load(Ordering::Relaxed) {
            return Err("the pipeline is not running");
        }
        let heartbeat = self.source_heartbeat_ms.load(Ordering::Relaxed);
        if heartbeat == 0 {
            return Err("the source has not started consuming");
        }
        if now_ms().saturating_sub(heartbeat) > max_silence_ms {
            return Err("the source has stopped polling");
        }
        Ok(())
    }

    /// The detectors' state sizes as last published (none before detection ran).
    pub fn detect_stats(&self) -> Option<DetectStats> {
        lock(&self.detect_state).clone()
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
            events_lost: read(&self.events_lost),
            blank_lines: read(&self.blank_lines),
            not_events: read(&self.not_events),
            unmapped_skipped: read(&self.unmapped_skipped),
            duplicate_ids: read(&self.duplicate_ids),
            alerts: read(&self.alerts),
            assigned_partitions: read(&self.assigned_partitions),
            flushes: read(&self.flushes),
            files: read(&self.files),
            bytes: read(&self.bytes),
            lake_write_retries: read(&self.lake_write_retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_keeps_its_counters_when_opened_again() {
        let stats = IngestStats::default();
        let topic: Arc<str> = Arc::from("auth-events");
        let first = stats.partition(&topic, 3);
        IngestStats::add(&first.received, 2);
        let again = stats.partition(&topic, 3);
        assert_eq!(again.received.load(Ordering::Relaxed), 2);
        stats.partition(&topic, 4);
        assert_eq!(lock(&stats.partitions).len(), 2);
    }

    #[test]
    fn ready_only_while_running_polling_and_writing() {
        let stats = IngestStats::default();
        assert!(stats.readiness(10_000).is_err(), "not started");
        stats.pipeline_running.store(true, Ordering::Relaxed);
        assert!(stats.readiness(10_000).is_err(), "not polled yet");
        stats.heartbeat();
        assert_eq!(stats.readiness(10_000), Ok(()));
        stats.source_heartbeat_ms.store(1, Ordering::Relaxed);
        assert!(stats.readiness(10_000).is_err(), "silent source");
        stats.heartbeat();
        stats.writer_failed.store(true, Ordering::Relaxed);
        assert_eq!(stats.readiness(10_000), Err("the lake writer failed"));
    }
}
