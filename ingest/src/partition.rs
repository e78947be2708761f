//! What the pipeline keeps per source partition: its buffered segment, where the lake and
//! the detectors' checkpoint end, and which offset comes next (duplicates and gaps).
//!
//! A gap (an offset past the one expected) is either loss or legitimate, and the offsets
//! alone cannot tell which: a transactional producer leaves one offset per commit marker
//! (and whole aborted transactions) that a consumer never receives, a compacted topic
//! leaves the offsets of its removed records, and a broker that deleted messages by
//! retention (or truncated its log) leaves the offsets it no longer holds. Only the last
//! is loss. Gaps are therefore kept until the next flush and judged then against the
//! partition's log start offset, asked of the source once per partition and flush
//! ([`SourceLog`]): offsets below it were deleted, offsets at or above it are still in the
//! log and were skipped on purpose. Judging at the flush, not per message, keeps a
//! transactional topic (a gap per transaction) from costing a broker round trip per
//! message; the loss is logged, counted and recorded in the manifest with the first data
//! after it (see [`authtrail_store::LostRange`]).

use std::sync::Arc;

use authtrail_detect::SourceId;
use authtrail_store::{Lake, LostRange, PartitionLog, SegmentBuilder};

use crate::stats::{IngestStats, PartitionStats};
use crate::Result;

/// What the pipeline may ask a source about its partitions' logs, to tell messages lost
/// to retention from legitimate gaps. A pipeline without one (files, stdin) has a source
/// that never deletes anything, so no gap of it is loss.
pub trait SourceLog: Send {
    /// The offset a partition the lake never held starts at, when the source starts such
    /// a partition at its beginning (Kafka with `auto.offset.reset = earliest`: 0); `None`
    /// when it may start anywhere (`latest`), so the first message sets the expectation.
    fn first_offset(&self) -> Option<i64>;

    /// The partition's log start offset now (Kafka: the low watermark), in the offsets
    /// the pipeline sees; `None` when the source cannot tell (the broker did not answer).
    fn log_start(&mut self, source: &str, partition: i32) -> Option<i64>;
}

/// An offset jump whose offsets the lake does not hold, judged at the next flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// The first offset that did not arrive (never below where the lake ends).
    pub from: i64,
    /// The offset that arrived instead.
    pub received: i64,
    /// Whether it came with the first message since the partition was opened (start,
    /// assignment after a rebalance): where a consumer resumes after being away.
    pub at_start: bool,
}

/// What the source said about a partition's log when its gaps were judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogStart {
    /// The source keeps everything (files, stdin): its gaps are blank lines.
    Kept,
    /// The log starts at this offset now.
    At(i64),
    /// The source was asked and could not tell.
    Unknown,
}

impl Gap {
    /// The offsets of this gap that are lost, or `None` for a legitimate gap.
    ///
    /// Offsets below the log start are gone for good; those at or above it are still in
    /// the log and were skipped on purpose (markers, aborted transactions, compaction).
    /// Retention may have moved the log start since the gap was read, which can only
    /// make a marker just read look lost; a consumer that close to the retention edge is
    /// about to lose data anyway, so this errs on the side of saying so. When the source
    /// cannot tell, a gap where reading (re)started counts as lost: that is where a
    /// consumer that was away finds its next offset deleted, and saying nothing would be
    /// the silent loss this check exists to end. A gap mid-stream without an answer is
    /// taken for a marker, the common case on a live partition.
    pub fn lost(&self, log_start: LogStart) -> Option<LostRange> {
        let end = match log_start {
            LogStart::Kept => return None,
            LogStart::At(start) => start.min(self.received),
            LogStart::Unknown if self.at_start => self.received,
            LogStart::Unknown => return None,
        };
        (end > self.from).then(|| LostRange {
            first_offset: self.from,
            last_offset: end - 1,
        })
    }
}

pub(crate) struct PartitionState {
    /// Where the lake ends once the flushes handed to the writer are committed (what the
    /// manifest's `next_offset` will say); `None` while it holds nothing of this partition.
    pub flushed_until: Option<i64>,
    /// The lake end last handed to the source to commit (`None`: never).
    pub reported_until: Option<i64>,
    pub segment: SegmentBuilder,
    /// The offset the next message should have; `None` until the first one when neither
    /// the lake nor the source says where the partition starts.
    pub expected: Option<i64>,
    /// The first offset the detectors' restored state has not seen (`None`: none seen).
    pub detected_until: Option<i64>,
    /// This partition's watermark in the detectors.
    pub detect_source: Option<SourceId>,
    /// This partition's metrics (atomics: no lock per message).
    pub counters: Arc<PartitionStats>,
    /// Offset jumps since the last flush, judged at the next one (usually empty).
    pub gaps: Vec<Gap>,
    /// Whether a message was admitted since the partition was opened.
    pub started: bool,
}

impl PartitionState {
    /// Opens a partition at its first message: reads its manifest (returned for the
    /// writer). `detection` is, when detectors run, where their state of the partition
    /// ends and its watermark ([`crate::detect_stage::DetectStage::open`]). `first_offset` is where the source
    /// starts a partition the lake never held ([`SourceLog::first_offset`]).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        lake: &mut Lake,
        detection: Option<(Option<i64>, SourceId)>,
        stats: &IngestStats,
        source: &Arc<str>,
        partition: i32,
        max_reject_raw_bytes: usize,
        first_offset: Option<i64>,
    ) -> Result<(PartitionState, PartitionLog)> {
        let log = lake.open_partition(source, partition)?;
        let detecting = detection.is_some();
        let (covered, detect_source) = match detection {
            Some((covered, watermark)) => (covered, Some(watermark)),
            None => (None, None),
        };
        if let Some(next) = log.next_offset() {
            tracing::info!(source = %source, partition, next_offset = next, detectors_from = covered, "lake holds this partition up to offset {}", next - 1);
        }
        // Resume at the first offset either the lake or the detectors still need.
        let expected = match (log.next_offset(), covered, detecting) {
            // A source that starts new partitions at their beginning must deliver that
            // offset first; anything later was deleted before the lake got it.
            (None, _, _) => first_offset,
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
            gaps: Vec::new(),
            started: false,
        };
        Ok((state, log))
    }

    /// Checks `offset` against the one expected next and moves past it. Returns false for
    /// a message already handled (counted as skipped); a gap is counted, and kept for the
    /// next flush to judge when the lake does not hold its offsets.
    pub fn admit(
        &mut self,
        offset: i64,
        source: &str,
        partition: i32,
        stats: &IngestStats,
    ) -> bool {
        let at_start = !self.started;
        if let Some(expected) = self.expected.filter(|&expected| offset < expected) {
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
            tracing::trace!(
                source,
                partition,
                offset,
                expected,
                "offset already handled"
            );
            return false;
        }
        self.started = true;
        // Loss is judged against the lake: offsets it holds are not lost, even when the
        // detectors (which may resume earlier) skip some of them.
        let from = match (self.expected, self.flushed_until) {
            (Some(expected), Some(lake_end)) => Some(expected.max(lake_end)),
            (expected, lake_end) => expected.or(lake_end),
        };
        let jumped = self.expected.is_some_and(|expected| offset > expected);
        match from.filter(|&from| offset > from) {
            Some(from) => {
                IngestStats::add(&stats.offset_gaps, 1);
                tracing::debug!(
                    source,
                    partition,
                    expected = from,
                    received = offset,
                    at_start,
                    "offset gap, judged at the next flush"
                );
                self.gaps.push(Gap {
                    from,
                    received: offset,
                    at_start,
                });
            }
            None if jumped => {
                // Offsets the lake holds but the detectors will not see again.
                IngestStats::add(&stats.offset_gaps, 1);
                tracing::debug!(source, partition, expected = ?self.expected, received = offset, "offset gap inside what the lake holds");
            }
            None => {}
        }
        self.expected = Some(offset + 1);
        true
    }

    /// Judges the gaps since the last flush, asking `source_log` (if any) where the log
    /// starts; logs and counts the lost offsets and returns them for the manifest.
    pub fn judge_gaps(
        &mut self,
        source_log: Option<&mut (dyn SourceLog + 'static)>,
        source: &str,
        partition: i32,
        stats: &IngestStats,
    ) -> Vec<LostRange> {
        if self.gaps.is_empty() {
            return Vec::new();
        }
        let log_start = match source_log {
            None => LogStart::Kept,
            Some(log) => log
                .log_start(source, partition)
                .map_or(LogStart::Unknown, LogStart::At),
        };
        let mut lost = Vec::new();
        for gap in std::mem::take(&mut self.gaps) {
            let Some(range) = gap.lost(log_start) else {
                log_legitimate(gap, log_start, source, partition);
                continue;
            };
            let count = range.len();
            IngestStats::add(&stats.events_lost, count);
            IngestStats::add(&self.counters.lost, count);
            let known_start = match log_start {
                LogStart::At(start) => Some(start),
                _ => None,
            };
            tracing::error!(
                topic = source,
                partition,
                expected = gap.from,
                received = gap.received,
                log_start = known_start,
                lost = count,
                "{count} messages lost: offsets {}..={} were deleted from the source \
                 (retention or a truncated log) before authtrail read them; recorded in \
                 the manifest, `authtrail verify` reports them",
                range.first_offset,
                range.last_offset,
            );
            if range.last_offset + 1 < gap.received {
                // The rest of the gap is still in the log: markers or compaction.
                log_legitimate(
                    Gap {
                        from: range.last_offset + 1,
                        ..gap
                    },
                    LogStart::At(range.last_offset + 1),
                    source,
                    partition,
                );
            }
            lost.push(range);
        }
        lost
    }
}

/// A gap the source still holds the offsets of (or never deletes): skipped on purpose.
fn log_legitimate(gap: Gap, log_start: LogStart, source: &str, partition: i32) {
    if gap.at_start && log_start != LogStart::Kept {
        // Where reading resumes, skipped offsets may also be a broker that did not deliver
        // what it holds (tansu 0.6.0 answers a fetch inside a batch with the next batch).
        tracing::warn!(
            topic = source,
            partition,
            expected = gap.from,
            received = gap.received,
            "offsets {}..={} were not delivered where consumption resumed; the source \
             still holds them (transaction markers, compaction, or a broker that skipped them)",
            gap.from,
            gap.received - 1
        );
    } else {
        tracing::debug!(
            source,
            partition,
            expected = gap.from,
            received = gap.received,
            "offset gap: transaction markers or compaction"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from: i64, received: i64, at_start: bool) -> Gap {
        Gap {
            from,
            received,
            at_start,
        }
    }

    fn range(first_offset: i64, last_offset: i64) -> Option<LostRange> {
        Some(LostRange {
            first_offset,
            last_offset,
        })
    }

    #[test]
    fn offsets_below_the_log_start_are_lost_wherever_the_gap_is() {
        // A fresh partition expecting 0 whose first 1000 messages retention deleted.
        assert_eq!(gap(0, 1000, true).lost(LogStart::At(1000)), range(0, 999));
        // A consumer that fell behind retention mid-stream and was reset to the log start.
        assert_eq!(gap(50, 80, false).lost(LogStart::At(80)), range(50, 79));
        // Deleted up to 60; 60..80 still in the log (markers or compaction).
        assert_eq!(gap(50, 80, true).lost(LogStart::At(60)), range(50, 59));
        // The log start moved past what was read since: only the gap itself counts.
        assert_eq!(gap(50, 80, false).lost(LogStart::At(500)), range(50, 79));
    }

    #[test]
    fn gaps_the_log_still_holds_are_markers_or_compaction_not_loss() {
        // A commit marker right where the lake ends, seen where consumption resumes.
        assert_eq!(gap(100, 101, true).lost(LogStart::At(0)), None);
        assert_eq!(gap(100, 130, false).lost(LogStart::At(100)), None);
        // Files and stdin never delete: their gaps are blank lines.
        assert_eq!(gap(0, 7, true).lost(LogStart::Kept), None);
    }

    #[test]
    fn without_an_answer_only_a_gap_where_reading_restarts_counts_as_lost() {
        assert_eq!(gap(100, 130, true).lost(LogStart::Unknown), range(100, 129));
        assert_eq!(gap(100, 101, false).lost(LogStart::Unknown), None);
    }
}
