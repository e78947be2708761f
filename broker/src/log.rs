//! One partition's log: append-only segment files `<base offset>.log` in the partition's
//! directory, each a plain sequence of record batches, and an in-memory index of their
//! batch headers rebuilt by scanning the files at start.
//!
//! The newest segment is never deleted, even when empty: its name keeps the next offset
//! across restarts once everything older is gone.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchInfo, Invalid};
use crate::{Error, Result};

const SUFFIX: &str = ".log";
/// Batches remembered per idempotent producer: its retries come from at most this many
/// requests in flight (librdkafka and the Java client allow 5 with idempotence).
const PRODUCER_WINDOW: usize = 5;

/// An idempotent producer's latest epoch and its recent batches (first sequence, last
/// sequence, base offset), to recognise a retry of a batch already stored.
#[derive(Default)]
struct ProducerState {
    epoch: i16,
    recent: VecDeque<(i32, i32, i64)>,
}

/// What an idempotent producer's batch is, given what the log holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// Not idempotent, or the next batch: store it.
    Fresh,
    /// A retry of the batch stored at this offset: acknowledge it again, store nothing.
    Duplicate(i64),
    /// A gap or an older epoch: refuse.
    OutOfOrder,
}

/// Where one batch is and what it numbers.
#[derive(Debug, Clone, Copy)]
struct Entry {
    base: i64,
    /// One past its last offset.
    next: i64,
    position: u64,
    len: u32,
    max_timestamp: i64,
}

struct Segment {
    base: i64,
    path: PathBuf,
    file: Arc<File>,
    size: u64,
    entries: Vec<Entry>,
}

impl Segment {
    fn next_offset(&self) -> i64 {
        self.entries.last().map_or(self.base, |entry| entry.next)
    }
}

/// What a read found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// Whole batches, the first one holding the offset asked for (it may start earlier).
    pub records: Vec<u8>,
}

/// Why a read found nothing to return.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Below the log start or past its end.
    OutOfRange,
}

/// A partition's log on disk.
pub(crate) struct PartitionLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    segment_bytes: u64,
    /// Segments written to since the last [`take_unsynced`](Self::take_unsynced).
    unsynced: Vec<Arc<File>>,
    producers: HashMap<i64, ProducerState>,
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io(dir))
}

impl PartitionLog {
    /// Opens the log in `dir` (creating it, starting at `first_offset`), scanning every
    /// segment; a torn or corrupt tail is cut off (a batch the broker never acknowledged).
    /// Returns the log and the bytes cut.
    pub(crate) fn open(dir: &Path, segment_bytes: u64, first_offset: i64) -> Result<(Self, u64)> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let name = entry.map_err(Error::io(dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(SUFFIX)
                .and_then(|b| b.parse::<i64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            segment_bytes,
            unsynced: Vec::new(),
            producers: HashMap::new(),
        };
        let mut cut = 0;
        for base in bases {
            let (segment, found, cut_here) = scan(&segment_path(dir, base), base)?;
            cut += cut_here;
            for info in found {
                log.remember(&info);
            }
            log.segments.push(segment);
        }
        if log.segments.is_empty() {
            log.roll(first_offset.max(0))?;
        }
        Ok((log, cut))
    }

    /// The first offset still stored.
    pub(crate) fn start_offset(&self) -> i64 {
        self.segments[0].base
    }

    /// The offset the next record gets.
    pub(crate) fn next_offset(&self) -> i64 {
        self.segments.last().expect("never empty").next_offset()
    }

    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.size).sum()
    }

    /// Whether `found` (one request's batches for this partition) is new, or a retry of
    /// what an idempotent producer already stored.
    pub(crate) fn sequence(&self, found: &[BatchInfo]) -> Sequence {
        let Some(first) = found.first() else {
            return Sequence::Fresh;
        };
        let (id, epoch, sequence) = first.producer;
        if id < 0 || sequence < 0 {
            return Sequence::Fresh;
        }
        let Some(state) = self.producers.get(&id) else {
            return Sequence::Fresh;
        };
        if epoch > state.epoch {
            return Sequence::Fresh;
        }
        if epoch < state.epoch {
            return Sequence::OutOfOrder;
        }
        if let Some((_, _, offset)) = state.recent.iter().find(|(from, _, _)| *from == sequence) {
            return Sequence::Duplicate(*offset);
        }
        match state.recent.back() {
            Some((_, last, _)) if sequence != next_sequence(*last) => Sequence::OutOfOrder,
            _ => Sequence::Fresh,
        }
    }

    fn remember(&mut self, info: &BatchInfo) {
        let (id, epoch, sequence) = info.producer;
        if id < 0 || sequence < 0 {
            return;
        }
        let state = self.producers.entry(id).or_default();
        if epoch != state.epoch {
            state.epoch = epoch;
            state.recent.clear();
        }
        let last = (i64::from(sequence) + info.offsets - 1) % (i64::from(i32::MAX) + 1);
        state
            .recent
            .push_back((sequence, last as i32, info.base_offset));
        if state.recent.len() > PRODUCER_WINDOW {
            state.recent.pop_front();
        }
    }

    /// Appends `batches` (already checked by [`batch::parse_all`]), numbering them from the
    /// log's end. Returns the first offset given.
    pub(crate) fn append(&mut self, mut batches: Vec<u8>, found: &[BatchInfo]) -> Result<i64> {
        let first = self.next_offset();
        let active = self.segments.last().expect("never empty");
        if active.size > 0 && active.size + batches.len() as u64 > self.segment_bytes {
            self.roll(first)?;
        }
        let mut next = first;
        let segment = self.segments.last_mut().expect("never empty");
        let mut entries = Vec::with_capacity(found.len());
        let mut stored = Vec::with_capacity(found.len());
        for info in found {
            batch::set_base_offset(&mut batches, info.position, next);
            stored.push(BatchInfo {
                base_offset: next,
                ..*info
            });
            entries.push(Entry {
                base: next,
                next: next + info.offsets,
                position: segment.size + info.position as u64,
                len: info.len as u32,
                max_timestamp: info.max_timestamp,
            });
            next += info.offsets;
        }
        (&*segment.file)
            .write_all(&batches)
            .map_err(Error::io(&segment.path))?;
        segment.size += batches.len() as u64;
        segment.entries.extend(entries);
        for info in &stored {
            self.remember(info);
        }
        let segment = self.segments.last().expect("never empty");
        if !self
            .unsynced
            .iter()
            .any(|file| Arc::ptr_eq(file, &segment.file))
        {
            self.unsynced.push(segment.file.clone());
        }
        Ok(first)
    }

    /// The files to fsync before acknowledging what was appended (taken, so the fsync
    /// runs without holding the log).
    pub(crate) fn take_unsynced(&mut self) -> Vec<Arc<File>> {
        std::mem::take(&mut self.unsynced)
    }

    /// Whole batches from the one holding `offset`, at least one, then more while they
    /// fit in `max_bytes`.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Read, ReadError> {
        if offset < self.start_offset() || offset > self.next_offset() {
            return Err(ReadError::OutOfRange);
        }
        let first = self
            .segments
            .partition_point(|segment| segment.base <= offset);
        for segment in &self.segments[first.saturating_sub(1)..] {
            let at = segment
                .entries
                .partition_point(|entry| entry.next <= offset);
            let Some(start) = segment.entries.get(at) else {
                continue; // Offset at this segment's end: the next one starts there.
            };
            let mut end = at + 1;
            let mut len = start.len as usize;
            while let Some(entry) = segment.entries.get(end) {
                if len + entry.len as usize > max_bytes {
                    break;
                }
                len += entry.len as usize;
                end += 1;
            }
            let mut records = vec![0; len];
            if segment
                .file
                .read_exact_at(&mut records, start.position)
                .is_err()
            {
                // Deleted under us by retention after the range check: nothing to serve.
                return Err(ReadError::OutOfRange);
            }
            return Ok(Read { records });
        }
        Ok(Read::default())
    }

    /// The first offset whose batch's newest timestamp is at or after `timestamp`, or the
    /// log's end.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> i64 {
        self.segments
            .iter()
            .flat_map(|segment| &segment.entries)
            .find(|entry| entry.max_timestamp >= timestamp)
            .map_or(self.next_offset(), |entry| entry.base)
    }

    /// Deletes the segments whose every offset is below `floor` (read and committed by
    /// every group). With `roll_active`, an active segment that is entirely below the floor
    /// is closed first so it can go too. Returns the bytes freed.
    pub(crate) fn delete_below(&mut self, floor: i64, roll_active: bool) -> Result<u64> {
        let next = self.next_offset();
        if roll_active && floor >= next && self.segments.last().expect("never empty").size > 0 {
            self.roll(next)?;
        }
        let mut freed = 0;
        while self.segments.len() > 1 && self.segments[1].base <= floor {
            let segment = self.segments.remove(0);
            std::fs::remove_file(&segment.path).map_err(Error::io(&segment.path))?;
            freed += segment.size;
        }
        Ok(freed)
    }

    /// Starts a new, empty segment at `base`.
    fn roll(&mut self, base: i64) -> Result<()> {
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        // The name carries the next offset: it must survive a crash.
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            base,
            path,
            file: Arc::new(file),
            size: 0,
            entries: Vec::new(),
        });
        Ok(())
    }
}

/// The sequence number after `last` (they wrap to 0 past `i32::MAX`).
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// Reads a segment's batch headers; cuts the file at the first batch that is torn or
/// corrupt.
fn scan(path: &Path, base: i64) -> Result<(Segment, Vec<BatchInfo>, u64)> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let mut found = Vec::new();
    let mut entries = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        match batch::parse_one(&bytes, position) {
            Ok(info) => {
                entries.push(Entry {
                    base: info.base_offset,
                    next: info.base_offset + info.offsets,
                    position: position as u64,
                    len: info.len as u32,
                    max_timestamp: info.max_timestamp,
                });
                found.push(info);
                position += info.len;
            }
            Err(Invalid::Truncated | Invalid::Corrupt | Invalid::OldFormat) => break,
        }
    }
    let file = OpenOptions::new()
        .append(true)
        .read(true)
        .open(path)
        .map_err(Error::io(path))?;
    let cut = (bytes.len() - position) as u64;
    if cut > 0 {
        tracing::warn!(segment = %path.display(), bytes = cut, "cutting a torn tail off the embedded broker's log (never acknowledged)");
        file.set_len(position as u64).map_err(Error::io(path))?;
        file.sync_all().map_err(Error::io(path))?;
    }
    Ok((
        Segment {
            base,
            path: path.to_path_buf(),
            file: Arc::new(file),
            size: position as u64,
            entries,
        },
        found,
        cut,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_batch;

    fn append(log: &mut PartitionLog, records: i32, payload: usize) -> i64 {
        let bytes = test_batch(records, payload, 1_000);
        let found = batch::parse_all(&bytes).unwrap();
        log.append(bytes, &found).unwrap()
    }

    fn offsets_in(read: &Read) -> Vec<(i64, i64)> {
        batch::parse_all(&read.records)
            .unwrap()
            .iter()
            .map(|info| (info.base_offset, info.offsets))
            .collect()
    }

    #[test]
    fn appends_number_batches_on_from_the_end_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(append(&mut log, 3, 10), 0);
        assert_eq!(append(&mut log, 2, 10), 3);
        drop(log);
        let (mut log, cut) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!((cut, log.next_offset()), (0, 5));
        assert_eq!(append(&mut log, 1, 10), 5);
        let read = log.read(4, 1 << 20).unwrap();
        assert_eq!(offsets_in(&read), [(3, 2), (5, 1)]);
        assert!(log.read(6, 100).unwrap().records.is_empty());
        assert_eq!(log.read(7, 100).unwrap_err(), ReadError::OutOfRange);
    }

    #[test]
    fn a_new_log_starts_at_the_offset_given_and_an_existing_one_ignores_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 500).unwrap();
        assert_eq!((log.start_offset(), append(&mut log, 2, 1)), (500, 500));
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), 1 << 20, 9_000).unwrap();
        assert_eq!(log.next_offset(), 502);
    }

    #[test]
    fn a_torn_tail_is_cut_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        append(&mut log, 4, 100);
        let whole = log.bytes();
        drop(log);
        let torn = &test_batch(2, 100, 0)[..50];
        let path = segment_path(dir.path(), 0);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(torn).unwrap();
        let (mut log, cut) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!((cut, log.bytes(), log.next_offset()), (50, whole, 4));
        assert_eq!(append(&mut log, 1, 1), 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), log.bytes());
    }

    #[test]
    fn reads_return_at_least_one_batch_and_stop_at_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        for _ in 0..3 {
            append(&mut log, 1, 500);
        }
        assert_eq!(offsets_in(&log.read(0, 10).unwrap()).len(), 1);
        assert_eq!(offsets_in(&log.read(0, 1_200).unwrap()).len(), 2);
    }

    #[test]
    fn rolls_segments_and_deletes_only_those_wholly_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1_000, 0).unwrap();
        for _ in 0..6 {
            append(&mut log, 10, 400); // 461 bytes: two batches per segment
        }
        assert_eq!(log.segments.len(), 3);
        assert_eq!(log.delete_below(19, false).unwrap(), 0, "offset 19 unread");
        assert_eq!(log.delete_below(20, false).unwrap(), 922);
        assert_eq!(log.start_offset(), 20);
        assert_eq!(log.read(5, 100).unwrap_err(), ReadError::OutOfRange);
        // The active segment goes only when asked to roll it, and the offsets carry on.
        log.delete_below(60, false).unwrap();
        assert_eq!(log.start_offset(), 40);
        log.delete_below(60, true).unwrap();
        assert_eq!((log.start_offset(), log.bytes()), (60, 0));
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), 1_000, 0).unwrap();
        assert_eq!(append(&mut log, 1, 1), 60);
    }

    #[test]
    fn a_retried_idempotent_batch_is_acknowledged_again_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        let batch_of = |sequence: i32| {
            let mut bytes = test_batch(3, 10, 0);
            batch::set_producer(&mut bytes, 7, 0, sequence);
            let found = batch::parse_all(&bytes).unwrap();
            (bytes, found)
        };
        let (bytes, found) = batch_of(0);
        assert_eq!(log.sequence(&found), Sequence::Fresh);
        log.append(bytes, &found).unwrap();
        let (bytes, found) = batch_of(3);
        log.append(bytes, &found).unwrap();
        assert_eq!(log.sequence(&batch_of(0).1), Sequence::Duplicate(0));
        assert_eq!(log.sequence(&batch_of(3).1), Sequence::Duplicate(3));
        assert_eq!(log.sequence(&batch_of(9).1), Sequence::OutOfOrder);
        assert_eq!(log.sequence(&batch_of(6).1), Sequence::Fresh);
        // The producers' state is rebuilt from the log at start.
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(log.sequence(&batch_of(3).1), Sequence::Duplicate(3));
    }

    #[test]
    fn finds_offsets_by_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        for timestamp in [100, 200, 300] {
            let bytes = test_batch(2, 1, timestamp);
            let found = batch::parse_all(&bytes).unwrap();
            log.append(bytes, &found).unwrap();
        }
        assert_eq!(log.offset_for_timestamp(150), 2);
        assert_eq!(log.offset_for_timestamp(301), 6);
    }
}
