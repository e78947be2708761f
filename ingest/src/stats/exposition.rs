//! The ingest path's metric families: the source (consumed, accepted, rejected, lost,
//! skipped, offset gaps, assignment, lag), the lake (flushes, files, bytes, retries, flush
//! time, file sizes) and detection (latency, alerts, the detectors' clock and state).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use authtrail_detect::TableStats;
use authtrail_metrics::{Exposition, Kind};

use super::{lock, IngestStats, PartitionStats};

/// Detector latency quantiles exposed.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

impl IngestStats {
    /// Writes every ingest and detection family into `out`.
    pub fn expose(&self, out: &mut Exposition) {
        self.expose_source(out);
        self.expose_lake(out);
        self.expose_detection(out);
    }

    fn expose_source(&self, out: &mut Exposition) {
        let partitions = lock(&self.partitions).clone();
        let per_partition =
            |out: &mut Exposition, name, help, pick: fn(&PartitionStats) -> &AtomicU64| {
                out.family(name, Kind::Counter, help);
                for p in &partitions {
                    let partition = p.partition.to_string();
                    out.sample(
                        &[("topic", &p.source), ("partition", &partition)],
                        pick(p).load(Relaxed) as f64,
                    );
                }
            };
        per_partition(
            out,
            "authtrail_events_consumed_total",
            "Messages received from the source, per topic (or file source) and partition.",
            |p| &p.received,
        );
        per_partition(
            out,
            "authtrail_events_accepted_total",
            "Messages that met the event contract and went to the `events` table.",
            |p| &p.accepted,
        );
        per_partition(
            out,
            "authtrail_events_rejected_total",
            "Messages that broke the event contract and went to the `rejects` table.",
            |p| &p.rejected,
        );
        per_partition(
            out,
            "authtrail_events_lost_total",
            "Messages the source had deleted (retention, a truncated log) before authtrail read them: never in the lake, recorded in its manifest for `authtrail verify`. Alert on any increase.",
            |p| &p.lost,
        );
        out.family("authtrail_events_skipped_total", Kind::Counter, "Messages not stored: already handled (in the lake after a restart, delivered twice, an adapted event's id seen again) or, for native formats, no event by the format's rules or unmapped on a `skip_unmapped` source.")
            .sample(&[("reason", "already_in_lake")], self.already_in_lake.load(Relaxed) as f64)
            .sample(&[("reason", "redelivered")], self.redelivered.load(Relaxed) as f64)
            .sample(&[("reason", "duplicate_id")], self.duplicate_ids.load(Relaxed) as f64)
            .sample(&[("reason", "not_an_event")], self.not_events.load(Relaxed) as f64)
            .sample(&[("reason", "unmapped")], self.unmapped_skipped.load(Relaxed) as f64);
        out.family(
            "authtrail_offset_gaps_total",
            Kind::Counter,
            "Places where a partition's offsets jumped forward: transaction markers, compaction, or lost messages (authtrail_events_lost_total).",
        )
        .sample(&[], self.offset_gaps.load(Relaxed) as f64);
        out.family(
            "authtrail_kafka_assigned_partitions",
            Kind::Gauge,
            "Kafka partitions assigned to this consumer.",
        )
        .sample(&[], self.assigned_partitions.load(Relaxed) as f64);
        out.family("authtrail_kafka_consumer_lag", Kind::Gauge, "Messages in a partition's log past this group's committed offset (librdkafka statistics, every 5 s).");
        for ((topic, partition), lag) in lock(&self.consumer_lag).iter() {
            out.sample(
                &[("topic", topic), ("partition", &partition.to_string())],
                *lag as f64,
            );
        }
    }

    fn expose_lake(&self, out: &mut Exposition) {
        out.family(
            "authtrail_lake_flushes_total",
            Kind::Counter,
            "Flushes that wrote at least one Parquet file.",
        )
        .sample(&[], self.flushes.load(Relaxed) as f64);
        out.family(
            "authtrail_lake_files_total",
            Kind::Counter,
            "Parquet files written to the lake.",
        )
        .sample(&[], self.files.load(Relaxed) as f64);
        out.family(
            "authtrail_lake_written_bytes_total",
            Kind::Counter,
            "Bytes of Parquet written to the lake.",
        )
        .sample(&[], self.bytes.load(Relaxed) as f64);
        out.family(
            "authtrail_lake_write_retries_total",
            Kind::Counter,
            "Lake writes that failed with an I/O error (a full disk) and are retried; offsets are not committed meanwhile.",
        )
        .sample(&[], self.lake_write_retries.load(Relaxed) as f64);
        out.family("authtrail_lake_flush_duration_seconds", Kind::Histogram, "Time one flush took on the writer thread: encode, fsync and commit the Parquet files, save the detector checkpoint, sync the alert outbox.")
            .histogram(&[], &self.flush_micros.snapshot());
        out.family(
            "authtrail_lake_file_size_bytes",
            Kind::Histogram,
            "Size of each Parquet file written.",
        )
        .histogram(&[], &self.file_bytes.snapshot());
    }

    fn expose_detection(&self, out: &mut Exposition) {
        out.family("authtrail_detector_latency_seconds", Kind::Summary, "Time the detectors take per event (hdrhistogram; quantiles over the last 1-2 minutes, sum and count since start).")
            .summary(&[], &self.detect_latency.snapshot(&QUANTILES));
        out.family("authtrail_kafka_record_age_seconds", Kind::Histogram, "Time from each Kafka message's timestamp (the producer's, or the broker's with LogAppendTime) to when the consumer polled it: producer batching, the broker, the fetch wait and any backlog.")
            .histogram(&[], &self.record_age_micros.snapshot());
        out.family("authtrail_kafka_source_blocked_seconds", Kind::Histogram, "Time the Kafka source waited to hand each batch of messages to the pipeline, its queue full (the pipeline behind). Messages stay unpolled meanwhile and age.")
            .histogram(&[], &self.source_blocked_micros.snapshot());
        out.family("authtrail_detector_flush_pause_seconds", Kind::Histogram, "Time the detectors stop observing for each flush: cutting their checkpoint and waiting for the writer to take the flush. Events arriving meanwhile wait too.")
            .histogram(&[], &self.detect_pause_micros.snapshot());
        out.family(
            "authtrail_alerts_total",
            Kind::Counter,
            "Alerts raised, per detector and severity.",
        );
        for ((detector, severity), count) in lock(&self.alerts_by).iter() {
            out.sample(
                &[("detector", detector), ("severity", severity)],
                *count as f64,
            );
        }
        let state = self.detect_stats().unwrap_or_default();
        out.family("authtrail_detector_events_total", Kind::Counter, "Events the detectors observed since their state was first created (survives restarts through checkpoints).")
            .sample(&[], state.events as f64);
        out.family(
            "authtrail_detector_late_events_total",
            Kind::Counter,
            "Events older than the allowed lateness when they arrived.",
        )
        .sample(&[], state.late_events as f64);
        out.family(
            "authtrail_detector_suppressed_alerts_total",
            Kind::Counter,
            "Alerts suppressed as repeats of one already raised.",
        )
        .sample(&[], state.suppressed as f64);
        out.family(
            "authtrail_detector_active_sources",
            Kind::Gauge,
            "Sources (Kafka partitions) whose watermark holds the detectors' clock: assigned, neither idle nor revoked.",
        )
        .sample(&[], state.active_sources as f64);
        out.family("authtrail_detector_clock_seconds", Kind::Gauge, "Event time (Unix seconds) state expires on: the oldest watermark of the active sources. `time() - authtrail_detector_clock_seconds` is how far detection lags behind. No sample until every active source has shown an event.");
        if let Some(clock) = state.clock {
            out.sample(&[], clock as f64 / 1e6);
        }
        let per_table = |out: &mut Exposition, name, kind, help, pick: fn(&TableStats) -> u64| {
            out.family(name, kind, help);
            for table in &state.tables {
                out.sample(&[("table", table.name)], pick(&table.state) as f64);
            }
        };
        per_table(
            out,
            "authtrail_detector_state_keys",
            Kind::Gauge,
            "Keys held in a detector's (or shared table's) state.",
            |t| t.live_keys as u64,
        );
        per_table(
            out,
            "authtrail_detector_state_evictions_total",
            Kind::Counter,
            "Keys dropped early because a state table was at its cap (`detect.max_keys`).",
            |t| t.evicted,
        );
        per_table(
            out,
            "authtrail_detector_state_expirations_total",
            Kind::Counter,
            "Keys dropped because their window ran out.",
            |t| t.expired,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn partitions_are_labelled_by_topic_and_partition() {
        let stats = IngestStats::default();
        let topic: Arc<str> = Arc::from("auth-events");
        IngestStats::add(&stats.partition(&topic, 3).received, 2);
        IngestStats::add(&stats.flushes, 1);
        let mut out = Exposition::default();
        stats.expose(&mut out);
        let text = out.finish();
        assert!(
            text.contains(
                "authtrail_events_consumed_total{topic=\"auth-events\",partition=\"3\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("authtrail_lake_flushes_total 1\n"), "{text}");
        assert!(
            text.contains("# TYPE authtrail_detector_clock_seconds gauge\n"),
            "{text}"
        );
        assert!(
            !text.contains("\nauthtrail_detector_clock_seconds "),
            "no clock sample before detection ran: {text}"
        );
    }
}
