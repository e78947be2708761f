//! What the pipeline keeps per source partition: its buffered segment, where the lake and
//! the detectors' checkpoint end, and which offset comes next (duplicates and gaps).

use std::sync::Arc;

use authtrail_detect::SourceId;
use authtrail_store::{Lake, PartitionLog, SegmentBuilder};

use crate::detection::Detection;
use crate::stats::{IngestStats, PartitionStats};
use crate::Result;

pub(crate) struct PartitionState {
    /// Where the lake ends once the flushes handed to the writer are committed (what the
    /// manifest's `next_offset` will say); `None` while it holds nothing of this partition.
    pub flushed_until: Option<i64>,
    /// The lake end last handed to the source to commit (`None`: never).
    pub reported_until: Option<i64>,
    pub segment: SegmentBuilder,
    /// The offset the next message should have; `None` until the first one when the lake
    /// holds nothing of this partition yet.
    pub expected: Option<i64>,
    /// The first offset the detectors' restored state has not seen (`None`: none seen).
    pub detected_until: Option<i64>,
    /// This partition's watermark in the detectors.
    pub detect_source: Option<SourceId>,
    /// This partition's metrics (atomics: no lock per message).
    pub counters: Arc<PartitionStats>,
}

impl PartitionState {
    /// Opens a partition at its first message: reads its manifest (returned for the
    /// writer) and the detectors' position in it, and registers it with the detectors.
    pub fn open(
        lake: &mut Lake,
        detection: Option<&mut Detection>,
        stats: &IngestStats,
        source: &Arc<str>,
        partition: i32,
        max_reject_raw_bytes: usize,
    ) -> Result<(PartitionState, PartitionLog)> {
        let log = lake.open_partition(source, partition)?;
        let detecting = detection.is_some();
        let (covered, detect_source) = match detection {
            Some(detection) => (
                detection.covered(source, partition),
                Some(detection.source(source, partition)),
            ),
            None => (None, None),
        };
        if let Some(next) = log.next_offset() {
            tracing::info!(source = %source, partition, next_offset = next, detectors_from = covered, "lake holds this partition up to offset {}", next - 1);
        }
        // Resume at the first offset either the lake or the detectors still need.
        let expected = match (log.next_offset(), covered, detecting) {
            (None, _, _) => None,
            // Detectors that never saw this partition take whatever arrives.
            (Some(_), None, true) => None,
            (Some(next), Some(covered), true) => Some(next.min(covered)),
            (Some(next), _, false) => Some(next),
        };
        let state = PartitionState {
            counters: stats.partition(source, partition),
            expected,
            detected_until: covered,
            detect_source,
            flushed_until: log.next_offset(),
            reported_until: None,
            segment: SegmentBuilder::new(source, partition, max_reject_raw_bytes),
        };
        Ok((state, log))
    }

    /// Checks `offset` against the one expected next and moves past it. Returns false for
    /// a message already handled (counted as skipped); a gap is counted and logged.
    pub fn admit(
        &mut self,
        offset: i64,
        source: &str,
        partition: i32,
        stats: &IngestStats,
    ) -> bool {
        match self.expected {
            Some(expected) if offset < expected => {
                // Already handled: in the lake and seen by the detectors (a replay after a
                // crash between the lake commit and the offset commit), or delivered twice
                // in this session.
                let in_lake = self.flushed_until.is_some_and(|next| offset < next);
                let counter = if in_lake {
                    &stats.already_in_lake
                } else {
                    &stats.redelivered
                };
                IngestStats::add(counter, 1);
                return false;
            }
            Some(expected) if offset > expected => {
                IngestStats::add(&stats.offset_gaps, 1);
                let resuming = self.segment.is_empty() && self.flushed_until == Some(expected);
                if resuming {
                    // Where a consumer resumes, a gap means the broker skipped messages the
                    // lake never received; compaction or transaction markers also leave gaps.
                    tracing::warn!(
                        source,
                        partition,
                        expected,
                        received = offset,
                        "offsets {}..{} were not delivered where consumption resumed",
                        expected,
                        offset - 1
                    );
                } else {
                    tracing::debug!(source, partition, expected, received = offset, "offset gap");
                }
            }
            _ => {}
        }
        self.expected = Some(offset + 1);
        true
    }
}
