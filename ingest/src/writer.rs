//! The pipeline's writer thread: commits each flush to the lake, then saves the detector
//! checkpoint cut with it and syncs the alert sink, and only then reports the offsets as
//! durable. Parquet encoding and the fsyncs (100–200 ms for 100k rows) happen here, so the
//! decode thread keeps decoding and detecting meanwhile.
//!
//! Flushes arrive over a channel of depth one and are handled strictly in order: a
//! checkpoint is saved only after the lake files of its own flush and every earlier one are
//! committed, so it never covers an event the lake lacks. When the writer falls behind,
//! the decode thread blocks on the channel and the source, in turn, on its own.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_store::{Lake, PartitionLog, Segment};

use crate::detection::{AlertSink, Checkpoint};
use crate::message::Durable;
use crate::pipeline::OnDurable;
use crate::stats::IngestStats;
use crate::{Error, Result};

/// A source partition: its name and number.
pub(crate) type PartitionKey = (Arc<str>, i32);

/// How many flushes may wait for the writer besides the one it is writing.
pub(crate) const QUEUED_FLUSHES: usize = 1;

/// One flush, as cut on the pipeline thread (its checkpoint where the detectors run).
#[derive(Default)]
pub(crate) struct Flush {
    /// Partitions the decode thread opened since the previous flush, with their manifests.
    pub opened: Vec<(PartitionKey, PartitionLog)>,
    /// The finished segments, at most one per partition.
    pub segments: Vec<(PartitionKey, Segment)>,
    /// The detector checkpoint covering this flush and every earlier one.
    pub checkpoint: Option<Checkpoint>,
    /// Partitions to forget once this flush is written (revoked).
    pub released: Vec<PartitionKey>,
    /// For a revoke: where to send the durable offsets instead of `on_durable`.
    pub reply: Option<SyncSender<Vec<Durable>>>,
    /// Partitions without a segment here whose lake end was never reported: every
    /// message read since was already in the lake (a re-read after another member or an
    /// earlier run wrote it). Reported once the flushes before this one are committed.
    pub caught_up: Vec<Durable>,
}

/// A hook run before each flush is written (tests block the writer with it).
pub type WriteHook = Box<dyn FnMut() + Send>;

pub(crate) struct Writer {
    pub lake: Lake,
    pub stats: Arc<IngestStats>,
    pub on_durable: OnDurable,
    pub sink: Option<Arc<dyn AlertSink>>,
    pub hook: Option<WriteHook>,
    pub logs: HashMap<PartitionKey, PartitionLog>,
}

impl Writer {
    /// Writes flushes until the decode thread drops its sender; stops at the first error
    /// (nothing after it is reported durable).
    pub fn run(mut self, flushes: Receiver<Flush>) -> Result<()> {
        for flush in flushes {
            if let Some(hook) = &mut self.hook {
                hook();
            }
            if let Err(error) = self.write(flush) {
                self.stats
                    .writer_failed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(error);
            }
        }
        Ok(())
    }

    fn write(&mut self, flush: Flush) -> Result<()> {
        let started = Instant::now();
        self.logs.extend(flush.opened);
        let mut durable = Vec::with_capacity(flush.segments.len());
        let (mut rows, mut bytes, mut files) = (0, 0, 0);
        for (key, segment) in flush.segments {
            let log = self
                .logs
                .get_mut(&key)
                .expect("a partition's manifest arrives with or before its first segment");
            let summary = retry_io(&self.stats, "committing a flush to the lake", || {
                self.lake.commit_ref(log, &segment).map_err(Error::from)
            })?;
            rows += summary.rows;
            bytes += summary.bytes;
            files += summary.files.len() as u64;
            for file in &summary.files {
                self.stats.file_bytes.observe(file.bytes.unwrap_or(0));
            }
            durable.push(Durable {
                next_offset: log.next_offset().expect("just committed"),
                source: key.0,
                partition: key.1,
            });
        }
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
        let checkpointed = flush.checkpoint.is_some();
        if let Some(checkpoint) = flush.checkpoint {
            let (lake, sink) = (&mut self.lake, self.sink.as_deref());
            retry_io(&self.stats, "saving the detector checkpoint", || {
                checkpoint.save(lake, sink)
            })?;
        }
        if files > 0 || checkpointed {
            let elapsed = started.elapsed().as_micros();
            self.stats
                .flush_micros
                .observe(u64::try_from(elapsed).unwrap_or(u64::MAX));
        }
        durable.extend(flush.caught_up);
        for key in &flush.released {
            self.logs.remove(key);
        }
        match flush.reply {
            // The decode thread waits for this reply; it only fails if that thread is gone.
            Some(reply) => {
                let _ = reply.send(durable);
            }
            None if !durable.is_empty() => (self.on_durable)(&durable),
            None => {}
        }
        Ok(())
    }
}

/// The longest wait between two attempts of a failing lake write.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Runs `write` until it succeeds, retrying I/O errors (a full or failing disk) with a
/// growing wait: nothing is reported durable meanwhile, so offsets stay uncommitted and
/// the source backs up, and once the disk has room again the same data is written. Other
/// errors (encoding) would fail the same way again and are returned.
fn retry_io<T>(stats: &IngestStats, what: &str, mut write: impl FnMut() -> Result<T>) -> Result<T> {
    let mut wait = Duration::from_millis(100);
    let mut failures = 0u64;
    loop {
        match write() {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(failures, "{what}: the lake accepts writes again");
                }
                return Ok(value);
            }
            Err(Error::Store(authtrail_store::Error::Io { path, source })) => {
                failures += 1;
                IngestStats::add(&stats.lake_write_retries, 1);
                tracing::error!(
                    path = %path.display(),
                    error = %source,
                    failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "{what} failed; offsets are not committed, retrying"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
            Err(other) => return Err(other),
        }
    }
}
