//! The pipeline: decode each message against the contract, buffer events and rejects per
//! source partition, flush them to the lake on row count or age, and report which offsets
//! became durable so the source can commit them.
//!
//! It runs on its own thread (decoding is CPU work that must not sit on an async reactor)
//! and hands each flush to a writer thread ([`crate::writer`]) that encodes and commits it,
//! so decoding and detection go on while the disk works. Every channel is bounded (the
//! source's, and one flush queued for the writer), so a slow disk stops the source from
//! reading instead of growing memory.
//!
//! With `decode_threads` set, a pool of decoders ([`crate::decode_pool`]) decodes ahead of
//! this thread and the detectors run on a thread of their own ([`crate::detect_stage`]);
//! this thread keeps what must happen in order (offsets, duplicates, the Arrow rows of
//! each segment, when to flush), so the lake files, alerts and checkpoints are the ones
//! the single thread makes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use authtrail_model::time::now_micros;
use authtrail_model::{ContractLimits, IngestMeta};
use authtrail_store::Lake;

use crate::config::PipelineConfig;
use crate::decode::{decode, Clock, Decoding, Outcome};
use crate::decode_pool::{Arrival, Arrived, DecodePool, Feed, Next};
use crate::detect_stage::{DetectStage, Positions};
use crate::detection::Detection;
use crate::formats::{RecentIds, SourceFormats, RECENT_RECORDS};
use crate::message::{Durable, Input};
use crate::partition::{PartitionState, SourceLog};
use crate::stats::IngestStats;
use crate::writer::{Flush, PartitionKey, WriteHook, Writer, QUEUED_FLUSHES};
use crate::{Error, Result};

/// Called with the offsets each flush made durable.
pub type OnDurable = Box<dyn FnMut(&[Durable]) + Send>;

/// The decode → buffer → flush stage.
pub struct Pipeline {
    lake: Lake,
    config: PipelineConfig,
    limits: ContractLimits,
    stats: Arc<IngestStats>,
    partitions: HashMap<PartitionKey, PartitionState>,
    buffered_rows: usize,
    oldest_buffered: Option<Instant>,
    /// Moves to the writer thread when `run` starts.
    writer: Option<Writer>,
    /// Manifests opened since the last flush, for the writer.
    opened: Vec<(PartitionKey, authtrail_store::PartitionLog)>,
    detection: Option<DetectStage>,
    /// Whether the detectors saw events since their last checkpoint.
    detection_dirty: bool,
    /// Where the source's partitions start, to tell loss from legitimate gaps; `None`
    /// for sources that never delete (files, stdin).
    source_log: Option<Box<dyn SourceLog>>,
    /// Each source's format (the contract unless configured).
    formats: SourceFormats,
    /// Per adapted source, the ids of its latest events (a record shipped twice is kept
    /// once).
    recent_ids: HashMap<Arc<str>, RecentIds>,
    /// The ingest clock (the wall clock; tests fix it to compare runs byte for byte).
    clock: Clock,
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
        let writer = Writer {
            lake: lake.handle(),
            stats: stats.clone(),
            on_durable,
            sink: detection.as_ref().and_then(Detection::sink),
            hook: None,
            logs: HashMap::new(),
        };
        Pipeline {
            lake,
            limits: config.contract_limits(),
            config,
            stats,
            partitions: HashMap::new(),
            buffered_rows: 0,
            oldest_buffered: None,
            writer: Some(writer),
            opened: Vec::new(),
            detection: detection.map(|detection| DetectStage::Inline(Box::new(detection))),
            detection_dirty: false,
            source_log: None,
            formats: SourceFormats::contract(),
            recent_ids: HashMap::new(),
            clock: now_micros,
        }
    }

    /// Reads each source in its format (see [`SourceFormats`]).
    pub fn with_formats(mut self, formats: SourceFormats) -> Self {
        self.formats = formats;
        self
    }

    /// Judges offset gaps against `log` (see [`SourceLog`]): a source that may delete
    /// messages before they are read (Kafka retention) must set one, or its gaps are taken
    /// for legitimate ones.
    pub fn with_source_log(mut self, log: Box<dyn SourceLog>) -> Self {
        self.source_log = Some(log);
        self
    }

    /// Runs `hook` on the writer thread before each flush is written. For tests: a hook
    /// that blocks shows what the decode thread does while a flush is in progress.
    #[doc(hidden)]
    pub fn with_write_hook(mut self, hook: WriteHook) -> Self {
        if let Some(writer) = &mut self.writer {
            writer.hook = Some(hook);
        }
        self
    }

    /// Reads the ingest time from `clock` instead of the wall clock. For tests: with a
    /// fixed clock, two runs over the same input write the same bytes.
    #[doc(hidden)]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Processes input until every sender is gone, then flushes what is left and waits
    /// until the writer has written it.
    pub fn run(mut self, input: Receiver<Input>) -> Result<()> {
        let writer = self.writer.take().expect("run once");
        let (flushes, queue) = sync_channel(QUEUED_FLUSHES);
        let writer = thread::Builder::new()
            .name("authtrail-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(Error::Thread)?;
        self.stats
            .pipeline_running
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let decoded = self
            .start_threads(input, &flushes)
            .and_then(|feed| self.decode(feed, &flushes));
        let detected = self.detection.take().map_or(Ok(()), DetectStage::finish);
        drop(flushes);
        let written = writer.join().map_err(|_| Error::PipelineGone);
        self.stats
            .pipeline_running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let written = written?;
        // The writer's error first, then the detectors': each is the cause when the
        // stages before it saw it go away.
        written.and(detected).and(decoded)
    }

    /// With `decode_threads`, starts the decoders and moves the detectors to their own
    /// thread (handing flushes on to `flushes`); returns where input comes from.
    fn start_threads(
        &mut self,
        input: Receiver<Input>,
        flushes: &SyncSender<Flush>,
    ) -> Result<Feed> {
        let decoders = self.config.decode_threads.unwrap_or(0);
        if decoders == 0 {
            return Ok(Feed::Direct(input));
        }
        if let Some(detection) = self.detection.take() {
            self.detection = Some(detection.on_own_thread(flushes.clone())?);
        }
        let pool = DecodePool::start(
            input,
            decoders,
            self.formats.clone(),
            self.limits,
            self.clock,
        )?;
        Ok(Feed::Pool(pool))
    }

    fn decode(&mut self, mut feed: Feed, flushes: &SyncSender<Flush>) -> Result<()> {
        loop {
            let wait = match self.oldest_buffered {
                Some(oldest) => self.config.flush_age.saturating_sub(oldest.elapsed()),
                None => self.config.flush_age,
            };
            match feed.next(wait)? {
                Next::Arrival(Arrival::Messages(messages)) => {
                    for message in messages {
                        self.process(message)?;
                    }
                    if let Some(detection) = &mut self.detection {
                        detection.tick(false)?;
                    }
                    if self.buffered_rows >= self.config.flush_rows {
                        self.flush(flushes, Flush::default())?;
                    }
                }
                Next::Arrival(Arrival::Assign(partitions)) => {
                    if let Some(detection) = &mut self.detection {
                        detection.assign(partitions)?;
                    }
                }
                Next::Arrival(Arrival::Revoke { partitions, reply }) => {
                    let durable = self.release(flushes, partitions)?;
                    // The source may have given up waiting (it is shutting down): nothing
                    // is lost, the offsets are in the lake's manifest.
                    let _ = reply.send(durable);
                }
                Next::Timeout => {
                    if let Some(detection) = &mut self.detection {
                        detection.tick(true)?;
                    }
                    if self.oldest_buffered.is_some() || self.detection_dirty {
                        self.flush(flushes, Flush::default())?;
                    }
                }
                Next::Ended => {
                    return self.flush(flushes, Flush::default());
                }
            }
        }
    }

    fn process(&mut self, arrived: Arrived) -> Result<()> {
        let Arrived { message, decoded } = arrived;
        IngestStats::add(&self.stats.received, 1);
        let key = (message.source.clone(), message.partition);
        let state = match self.partitions.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let detection = match &mut self.detection {
                    Some(detection) => Some(detection.open(&message.source, message.partition)?),
                    None => None,
                };
                let (state, log) = PartitionState::open(
                    &mut self.lake,
                    detection,
                    &self.stats,
                    &message.source,
                    message.partition,
                    self.config.max_reject_raw_bytes,
                    self.source_log.as_ref().and_then(|log| log.first_offset()),
                )?;
                self.opened.push((entry.key().clone(), log));
                entry.insert(state)
            }
        };
        IngestStats::add(&state.counters.received, 1);
        if !state.admit(
            message.offset,
            &message.source,
            message.partition,
            &self.stats,
        ) {
            return Ok(());
        }

        let store = state
            .flushed_until
            .is_none_or(|next| message.offset >= next);
        let detect = self.detection.is_some()
            && state
                .detected_until
                .is_none_or(|next| message.offset >= next);
        if !store {
            IngestStats::add(&self.stats.already_in_lake, 1);
            // A flush soon lets the source commit the lake's end for this partition, so a
            // re-read of what the lake holds is not repeated after the next restart.
            self.oldest_buffered.get_or_insert_with(Instant::now);
            if !detect {
                return Ok(());
            }
        }

        let Decoding { now, outcome } = match decoded {
            Some(decoded) => decoded,
            None => decode(&message, &self.formats, self.limits, (self.clock)()),
        };
        let outcome = match outcome {
            Outcome::Event(event) => Ok(event),
            Outcome::Rejected(error) => Err(error),
            Outcome::SkipUnmapped => {
                IngestStats::add(&self.stats.unmapped_skipped, 1);
                return Ok(());
            }
            Outcome::NotEvent => {
                IngestStats::add(&self.stats.not_events, 1);
                return Ok(());
            }
        };
        let payload = message.payload.as_deref();
        if let (Ok(event), Some(bytes)) = (&outcome, payload) {
            if !self.formats.of(&message.source).format.is_contract()
                && !self
                    .recent_ids
                    .entry(message.source.clone())
                    .or_insert_with(|| RecentIds::new(RECENT_RECORDS))
                    .insert(&event.id, bytes)
            {
                IngestStats::add(&self.stats.duplicate_ids, 1);
                return Ok(());
            }
        }
        let meta = IngestMeta {
            topic: &message.source,
            partition: message.partition,
            offset: message.offset,
            ingest_time: now,
        };
        // The detectors take the event after its row is built (on their own thread they
        // keep it); what they see, and in which order, is the same either way.
        let to_detect = state.detect_source.filter(|_| detect);
        match outcome {
            Ok(event) => {
                if store {
                    IngestStats::add(&self.stats.accepted, 1);
                    IngestStats::add(&state.counters.accepted, 1);
                    state.segment.push_event(&event, &meta);
                }
                if let (Some(source), Some(detection)) = (to_detect, &mut self.detection) {
                    detection.observe(source, event)?;
                    self.detection_dirty = true;
                }
                if !store {
                    return Ok(());
                }
            }
            Err(_) if !store => return Ok(()),
            Err(error) => {
                IngestStats::add(&self.stats.rejected, 1);
                IngestStats::add(&state.counters.rejected, 1);
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

    /// Hands every partition's buffered rows to the writer, with a detector checkpoint
    /// covering exactly those offsets (the writer saves it after committing them). Blocks
    /// while the writer is a full flush behind.
    fn flush(&mut self, flushes: &SyncSender<Flush>, mut flush: Flush) -> Result<()> {
        let started = Instant::now();
        for (key, state) in &mut self.partitions {
            // Judged before the segment is cut: a gap always comes with the message after
            // it, so its loss is recorded with that message's flush.
            let lost = state.judge_gaps(self.source_log.as_deref_mut(), &key.0, key.1, &self.stats);
            match state.segment.finish()? {
                Some(mut segment) => {
                    segment.lost = lost;
                    state.flushed_until = Some(segment.last_offset + 1);
                    flush.segments.push((key.clone(), segment));
                }
                None => {
                    debug_assert!(lost.is_empty(), "a gap comes with a message to store");
                    // Not past what was read: the detector checkpoint covers only that.
                    let committable = match (state.flushed_until, state.expected) {
                        (Some(end), Some(read)) => Some(end.min(read)),
                        _ => None,
                    };
                    if let Some(next_offset) = committable {
                        if state
                            .reported_until
                            .is_none_or(|reported| reported < next_offset)
                        {
                            flush.caught_up.push(Durable {
                                source: key.0.clone(),
                                partition: key.1,
                                next_offset,
                            });
                            state.reported_until = Some(next_offset);
                        }
                    }
                    continue;
                }
            }
            state.reported_until = state.flushed_until;
        }
        flush.opened = std::mem::take(&mut self.opened);
        tracing::debug!(
            rows = self.buffered_rows,
            elapsed_us = started.elapsed().as_micros() as u64,
            "segments cut for a flush"
        );
        self.buffered_rows = 0;
        self.oldest_buffered = None;
        let Some(detection) = &mut self.detection else {
            return flushes.send(flush).map_err(|_| Error::PipelineGone);
        };
        let positions = (self.detection_dirty || !flush.segments.is_empty()).then(|| {
            self.partitions
                .iter()
                .filter_map(|(key, state)| state.expected.map(|next| (key.0.clone(), key.1, next)))
                .collect::<Positions>()
        });
        self.detection_dirty = false;
        detection.hand_over(flush, positions, flushes)
    }

    /// Flushes everything and forgets the given partitions: they move to another consumer,
    /// or come back later and are re-read from the lake's manifest. Waits until the writer
    /// has committed every flush before returning the offsets this one made durable; the
    /// caller commits them before the partitions change hands.
    fn release(
        &mut self,
        flushes: &SyncSender<Flush>,
        partitions: Vec<PartitionKey>,
    ) -> Result<Vec<Durable>> {
        let (reply, written) = sync_channel(1);
        let flush = Flush {
            released: partitions.clone(),
            reply: Some(reply),
            ..Flush::default()
        };
        self.flush(flushes, flush)?;
        for key in &partitions {
            self.partitions.remove(key);
        }
        if let Some(detection) = &mut self.detection {
            detection.revoke(partitions)?;
        }
        written.recv().map_err(|_| Error::PipelineGone)
    }
}
