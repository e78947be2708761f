//! The pipeline: decode each message against the contract, buffer events and rejects per
//! source partition, flush them to the lake on row count or age, and report which offsets
//! became durable so the source can commit them.
//!
//! It runs on its own thread (decoding and Parquet encoding are CPU work that must not sit
//! on an async reactor) and reads a bounded channel, so a slow disk stops the source from
//! reading instead of growing memory.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use authtrail_model::{parse_event, ContractError, ContractLimits, IngestMeta, Micros, RejectKind};
use authtrail_store::{Lake, PartitionLog, SegmentBuilder};

use crate::config::PipelineConfig;
use crate::detection::Detection;
use crate::message::{Durable, Input, RawMessage};
use crate::stats::IngestStats;
use crate::Result;

/// Called with the offsets each flush made durable.
pub type OnDurable = Box<dyn FnMut(&[Durable]) + Send>;

/// The decode → buffer → flush stage.
pub struct Pipeline {
    lake: Lake,
    config: PipelineConfig,
    limits: ContractLimits,
    stats: Arc<IngestStats>,
    partitions: HashMap<(Arc<str>, i32), PartitionState>,
    buffered_rows: usize,
    oldest_buffered: Option<Instant>,
    on_durable: OnDurable,
    detection: Option<Detection>,
    /// Whether the detectors saw events since their last checkpoint.
    detection_dirty: bool,
}

struct PartitionState {
    log: PartitionLog,
    segment: SegmentBuilder,
    /// The offset the next message should have; `None` until the first one when the lake
    /// holds nothing of this partition yet.
    expected: Option<i64>,
    /// The first offset the detectors' restored state has not seen (`None`: none seen).
    detected_until: Option<i64>,
}

impl Pipeline {
    /// A pipeline writing to `lake` that reports durable offsets to `on_durable`, and runs
    /// `detection` (if any) on every accepted event.
    pub fn new(
        lake: Lake,
        config: PipelineConfig,
        stats: Arc<IngestStats>,
        on_durable: OnDurable,
        detection: Option<Detection>,
    ) -> Self {
        Pipeline {
            lake,
            limits: config.contract_limits(),
            config,
            stats,
            partitions: HashMap::new(),
            buffered_rows: 0,
            oldest_buffered: None,
            on_durable,
            detection,
            detection_dirty: false,
        }
    }

    /// Processes input until every sender is gone, then flushes what is left.
    pub fn run(mut self, input: Receiver<Input>) -> Result<()> {
        loop {
            let wait = match self.oldest_buffered {
                Some(oldest) => self.config.flush_age.saturating_sub(oldest.elapsed()),
                None => self.config.flush_age,
            };
            match input.recv_timeout(wait) {
                Ok(Input::Messages(messages)) => {
                    for message in messages {
                        self.process(message)?;
                    }
                    if self.buffered_rows >= self.config.flush_rows {
                        self.flush_and_report()?;
                    }
                }
                Ok(Input::Revoke { partitions, reply }) => {
                    let durable = self.release(&partitions)?;
                    // The source may have given up waiting (it is shutting down): nothing
                    // is lost, the offsets are in the lake's manifest.
                    let _ = reply.send(durable);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.oldest_buffered.is_some() || self.detection_dirty {
                        self.flush_and_report()?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_and_report()?;
                    return Ok(());
                }
            }
        }
    }

    fn flush_and_report(&mut self) -> Result<()> {
        let durable = self.flush_all()?;
        if !durable.is_empty() {
            (self.on_durable)(&durable);
        }
        Ok(())
    }

    fn process(&mut self, message: RawMessage) -> Result<()> {
        IngestStats::add(&self.stats.received, 1);
        let key = (message.source.clone(), message.partition);
        let state = match self.partitions.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let log = self
                    .lake
                    .open_partition(&message.source, message.partition)?;
                let covered = self
                    .detection
                    .as_ref()
                    .and_then(|detection| detection.covered(&message.source, message.partition));
                if let Some(next) = log.next_offset() {
                    tracing::info!(source = %message.source, partition = message.partition, next_offset = next, detectors_from = covered, "lake holds this partition up to offset {}", next - 1);
                }
                // Resume at the first offset either the lake or the detectors still need.
                let expected = match (log.next_offset(), covered, &self.detection) {
                    (None, _, _) => None,
                    // Detectors that never saw this partition take whatever arrives.
                    (Some(_), None, Some(_)) => None,
                    (Some(next), Some(covered), Some(_)) => Some(next.min(covered)),
                    (Some(next), _, None) => Some(next),
                };
                entry.insert(PartitionState {
                    expected,
                    detected_until: covered,
                    log,
                    segment: SegmentBuilder::new(
                        &message.source,
                        message.partition,
                        self.config.max_reject_raw_bytes,
                    ),
                })
            }
        };
        match state.expected {
            Some(expected) if message.offset < expected => {
                // Already handled: in the lake and seen by the detectors (a replay after a
                // crash between the lake commit and the offset commit), or delivered twice
                // in this session.
                let in_lake = state
                    .log
                    .next_offset()
                    .is_some_and(|next| message.offset < next);
                let counter = if in_lake {
                    &self.stats.already_in_lake
                } else {
                    &self.stats.redelivered
                };
                IngestStats::add(counter, 1);
                return Ok(());
            }
            Some(expected) if message.offset > expected => {
                IngestStats::add(&self.stats.offset_gaps, 1);
                let resuming =
                    state.segment.is_empty() && state.log.next_offset() == Some(expected);
                if resuming {
                    // Where a consumer resumes, a gap means the broker skipped messages the
                    // lake never received; compaction or transaction markers also leave gaps.
                    tracing::warn!(source = %message.source, partition = message.partition, expected, received = message.offset, "offsets {}..{} were not delivered where consumption resumed", expected, message.offset - 1);
                } else {
                    tracing::debug!(source = %message.source, partition = message.partition, expected, received = message.offset, "offset gap");
                }
            }
            _ => {}
        }
        state.expected = Some(message.offset + 1);

        let store = state
            .log
            .next_offset()
            .is_none_or(|next| message.offset >= next);
        let detect = self.detection.is_some()
            && state
                .detected_until
                .is_none_or(|next| message.offset >= next);
        if !store {
            IngestStats::add(&self.stats.already_in_lake, 1);
            if !detect {
                return Ok(());
            }
        }

        let now = wall_clock_micros();
        let payload = message.payload.as_deref();
        let outcome = match payload {
            None => Err(ContractError::new(
                RejectKind::InvalidJson,
                "message has no value (a tombstone), expected one JSON object",
            )),
            Some(_) if message.size > self.limits.max_message_bytes => Err(ContractError::new(
                RejectKind::TooLarge,
                format!(
                    "message of {} bytes exceeds the limit of {} bytes",
                    message.size, self.limits.max_message_bytes
                ),
            )),
            Some(bytes) => parse_event(bytes, now, &self.limits),
        };
        if let (Ok(event), Some(detection)) = (&outcome, &mut self.detection) {
            if detect {
                detection.observe(event)?;
                self.detection_dirty = true;
            }
        }
        if !store {
            return Ok(());
        }
        let meta = IngestMeta {
            topic: &message.source,
            partition: message.partition,
            offset: message.offset,
            ingest_time: now,
        };
        match outcome {
            Ok(event) => {
                IngestStats::add(&self.stats.accepted, 1);
                state.segment.push_event(&event, &meta);
            }
            Err(error) => {
                IngestStats::add(&self.stats.rejected, 1);
                tracing::debug!(source = %message.source, partition = message.partition, offset = message.offset, kind = %error.kind, "rejected message");
                let partition_time = message.timestamp.unwrap_or(now);
                state.segment.push_reject(
                    payload.unwrap_or_default(),
                    message.size,
                    &error,
                    &meta,
                    partition_time,
                );
            }
        }
        self.buffered_rows += 1;
        self.oldest_buffered.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Flushes every partition with buffered rows to the lake, then checkpoints the
    /// detectors (covering exactly what the lake now holds), and returns the offsets the
    /// source may commit.
    fn flush_all(&mut self) -> Result<Vec<Durable>> {
        let started = Instant::now();
        let mut durable = Vec::new();
        let (mut rows, mut bytes, mut files) = (0, 0, 0);
        for (key, state) in &mut self.partitions {
            let Some(segment) = state.segment.finish()? else {
                continue;
            };
            let summary = self.lake.commit(&mut state.log, segment)?;
            rows += summary.rows;
            bytes += summary.bytes;
            files += summary.files.len() as u64;
            durable.push(Durable {
                source: key.0.clone(),
                partition: key.1,
                next_offset: state.log.next_offset().expect("just committed"),
            });
        }
        self.buffered_rows = 0;
        self.oldest_buffered = None;
        if files > 0 {
            IngestStats::add(&self.stats.flushes, 1);
            IngestStats::add(&self.stats.files, files);
            IngestStats::add(&self.stats.bytes, bytes);
            tracing::info!(
                rows,
                files,
                bytes,
                partitions = durable.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "flushed to the lake"
            );
        }
        if let Some(detection) = &mut self.detection {
            if self.detection_dirty || files > 0 {
                let positions = self.partitions.iter().filter_map(|(key, state)| {
                    state.expected.map(|next| (key.0.as_ref(), key.1, next))
                });
                detection.checkpoint(&mut self.lake, positions)?;
                self.detection_dirty = false;
            }
        }
        Ok(durable)
    }

    /// Flushes everything and forgets the given partitions: they move to another consumer,
    /// or come back later and are re-read from the lake's manifest. Returns every durable
    /// offset; the caller commits them before the partitions change hands.
    fn release(&mut self, partitions: &[(Arc<str>, i32)]) -> Result<Vec<Durable>> {
        let durable = self.flush_all()?;
        for key in partitions {
            self.partitions.remove(key);
        }
        Ok(durable)
    }
}

fn wall_clock_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as Micros)
}
