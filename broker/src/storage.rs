//! Every partition's log under one size bound.
//!
//! Appends reserve their bytes against the bound first; when it is reached the broker
//! deletes whole segments every group has committed past and, if that frees too little,
//! refuses the append. Unread messages are never deleted to make room.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::batch::{self, Invalid};
use crate::log::{PartitionLog, ReadError, Sequence};
use crate::{Error, Result};

/// Per partition, the lowest offset committed by any group that committed one there.
pub(crate) type Floors = HashMap<(String, i32), i64>;

/// Why an append was not stored.
#[derive(Debug)]
pub(crate) enum AppendError {
    UnknownPartition,
    Invalid(Invalid),
    /// An idempotent producer's batch out of sequence.
    OutOfOrder,
    Full,
    Io(Error),
}

/// What an append stored.
pub(crate) struct Appended {
    pub base_offset: i64,
    pub log_start: i64,
    /// To fsync before acknowledging.
    pub unsynced: Vec<Arc<File>>,
}

/// A partition's answer to a fetch.
pub(crate) struct PartitionRead {
    pub records: Vec<u8>,
    pub log_start: i64,
    pub high_watermark: i64,
}

/// Why a fetch found nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FetchError {
    UnknownPartition,
    OutOfRange { log_start: i64, high_watermark: i64 },
}

/// All partitions of all topics.
pub(crate) struct Storage {
    topics: BTreeMap<String, Vec<Mutex<PartitionLog>>>,
    max_bytes: u64,
    used: AtomicU64,
    refusing: AtomicBool,
    /// Bumped on every append, so waiting fetches look again.
    appended: watch::Sender<u64>,
}

fn lock(log: &Mutex<PartitionLog>) -> MutexGuard<'_, PartitionLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kafka's rule for topic names, which also keeps them safe as directory names.
pub(crate) fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl Storage {
    /// Opens (or creates) the logs under `dir`: every partition found there, plus the
    /// `topics` asked for with their partition counts.
    pub(crate) fn open(
        dir: &Path,
        topics: &[(String, i32)],
        first_offsets: &BTreeMap<(String, i32), i64>,
        segment_bytes: u64,
        max_bytes: u64,
    ) -> Result<Storage> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let name = entry.map_err(Error::io(dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some((topic, partition)) = name.rsplit_once('-') {
                if let (true, Ok(partition)) = (valid_topic(topic), partition.parse::<i32>()) {
                    let count = counts.entry(topic.to_owned()).or_default();
                    *count = (*count).max(partition + 1);
                }
            }
        }
        for (topic, partitions) in topics {
            if !valid_topic(topic) {
                return Err(Error::Config(format!(
                    "`{topic}` is not a valid topic name"
                )));
            }
            let count = counts.entry(topic.clone()).or_default();
            *count = (*count).max(*partitions);
        }
        let mut opened = BTreeMap::new();
        let mut used = 0;
        for (topic, count) in counts {
            let mut logs = Vec::new();
            for partition in 0..count {
                let path: PathBuf = dir.join(format!("{topic}-{partition}"));
                let first = first_offsets.get(&(topic.clone(), partition));
                let (log, _) =
                    PartitionLog::open(&path, segment_bytes, first.copied().unwrap_or(0))?;
                used += log.bytes();
                logs.push(Mutex::new(log));
            }
            opened.insert(topic, logs);
        }
        Ok(Storage {
            topics: opened,
            max_bytes,
            used: AtomicU64::new(used),
            refusing: AtomicBool::new(false),
            appended: watch::channel(0).0,
        })
    }

    /// Topics and their partition counts.
    pub(crate) fn topics(&self) -> impl Iterator<Item = (&str, i32)> {
        self.topics
            .iter()
            .map(|(name, logs)| (name.as_str(), logs.len() as i32))
    }

    /// Partitions of `topic`, if it exists.
    pub(crate) fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|logs| logs.len() as i32)
    }

    fn log(&self, topic: &str, partition: i32) -> Option<&Mutex<PartitionLog>> {
        self.topics
            .get(topic)?
            .get(usize::try_from(partition).ok()?)
    }

    /// Bytes stored over all partitions.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Wakes on every append.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Stores `records` (whole v2 record batches) at the end of the partition. When the
    /// bound is reached, deletes what `floors` allows first; refuses if that is not enough.
    pub(crate) fn append(
        &self,
        topic: &str,
        partition: i32,
        records: &[u8],
        floors: impl FnOnce() -> Floors,
    ) -> Result<Appended, AppendError> {
        let log = self
            .log(topic, partition)
            .ok_or(AppendError::UnknownPartition)?;
        let found = batch::parse_all(records).map_err(AppendError::Invalid)?;
        let len = records.len() as u64;
        if !self.reserve(len) {
            let freed = self.retain(&floors(), true).map_err(AppendError::Io)?;
            if !self.reserve(len) {
                if !self.refusing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        used_bytes = self.used_bytes(),
                        max_bytes = self.max_bytes,
                        freed,
                        "the embedded broker is full of messages authtrail has not committed yet: refusing produce requests (producers retry) until it catches up; raise `kafka.embedded_max_bytes` or check why ingest is stalled"
                    );
                }
                return Err(AppendError::Full);
            }
        }
        // Hysteresis: a small append fitting into a nearly full broker is not "again".
        if self.used_bytes() <= self.max_bytes / 10 * 9
            && self.refusing.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(
                used_bytes = self.used_bytes(),
                "the embedded broker accepts produce requests again"
            );
        }
        let mut log = lock(log);
        match log.sequence(&found) {
            Sequence::Fresh => {}
            Sequence::Duplicate(base_offset) => {
                self.used.fetch_sub(len, Ordering::Relaxed);
                return Ok(Appended {
                    base_offset,
                    log_start: log.start_offset(),
                    unsynced: Vec::new(),
                });
            }
            Sequence::OutOfOrder => {
                self.used.fetch_sub(len, Ordering::Relaxed);
                return Err(AppendError::OutOfOrder);
            }
        }
        let appended = log
            .append(records.to_vec(), &found)
            .map(|base_offset| Appended {
                base_offset,
                log_start: log.start_offset(),
                unsynced: log.take_unsynced(),
            });
        drop(log);
        match appended {
            Ok(appended) => {
                self.appended.send_modify(|count| *count += 1);
                Ok(appended)
            }
            Err(error) => {
                // What reached the file is cut at the next start (never acknowledged).
                self.used.fetch_sub(len, Ordering::Relaxed);
                Err(AppendError::Io(error))
            }
        }
    }

    fn reserve(&self, len: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                // A batch larger than the whole bound is still taken into an empty broker.
                (used == 0 || used + len <= self.max_bytes).then_some(used + len)
            })
            .is_ok()
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one).
    pub(crate) fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<PartitionRead, FetchError> {
        let log = self
            .log(topic, partition)
            .ok_or(FetchError::UnknownPartition)?;
        let log = lock(log);
        let (log_start, high_watermark) = (log.start_offset(), log.next_offset());
        match log.read(offset, max_bytes) {
            Ok(read) => Ok(PartitionRead {
                records: read.records,
                log_start,
                high_watermark,
            }),
            Err(ReadError::OutOfRange) => Err(FetchError::OutOfRange {
                log_start,
                high_watermark,
            }),
        }
    }

    /// The partition's first and next offsets.
    pub(crate) fn offsets(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let log = lock(self.log(topic, partition)?);
        Some((log.start_offset(), log.next_offset()))
    }

    /// The first offset at or after `timestamp` (milliseconds).
    pub(crate) fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Option<i64> {
        Some(lock(self.log(topic, partition)?).offset_for_timestamp(timestamp))
    }

    /// Deletes every segment below its partition's floor; under `pressure`, also closes
    /// and deletes an active segment that is entirely read. Returns the bytes freed.
    pub(crate) fn retain(&self, floors: &Floors, pressure: bool) -> Result<u64> {
        let mut freed = 0;
        for ((topic, partition), floor) in floors {
            let Some(log) = self.log(topic, *partition) else {
                continue;
            };
            let gone = lock(log).delete_below(*floor, pressure)?;
            if gone > 0 {
                tracing::debug!(topic, partition, bytes = gone, "deleted committed segments");
            }
            freed += gone;
        }
        self.used.fetch_sub(freed, Ordering::Relaxed);
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_batch;

    fn storage(dir: &Path, max_bytes: u64) -> Storage {
        Storage::open(
            dir,
            &[("t".to_owned(), 2)],
            &BTreeMap::new(),
            1_000,
            max_bytes,
        )
        .unwrap()
    }

    fn floors(offset: i64) -> Floors {
        [(("t".to_owned(), 0), offset)].into()
    }

    #[test]
    fn refuses_appends_when_full_of_unread_messages() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path(), 2_000);
        let batch = test_batch(10, 400, 0); // 461 bytes
        for _ in 0..4 {
            storage.append("t", 0, &batch, Floors::new).unwrap();
        }
        let refused = storage.append("t", 1, &batch, Floors::new);
        assert!(matches!(refused, Err(AppendError::Full)));
        // A group committed 19: the first segment (offsets 0-19) is not wholly below it.
        let refused = storage.append("t", 1, &batch, || floors(19));
        assert!(matches!(refused, Err(AppendError::Full)));
        assert_eq!(
            storage.offsets("t", 0),
            Some((0, 40)),
            "nothing unread deleted"
        );
    }

    #[test]
    fn makes_room_by_deleting_what_every_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path(), 2_000);
        let batch = test_batch(10, 400, 0);
        for _ in 0..4 {
            storage.append("t", 0, &batch, Floors::new).unwrap();
        }
        let appended = storage.append("t", 1, &batch, || floors(20)).unwrap();
        assert_eq!(appended.base_offset, 0);
        assert_eq!(storage.offsets("t", 0), Some((20, 40)));
        assert_eq!(storage.used_bytes(), 3 * 461);
        assert_eq!(
            storage.read("t", 0, 3, 100).err(),
            Some(FetchError::OutOfRange {
                log_start: 20,
                high_watermark: 40
            })
        );
    }

    #[test]
    fn reopening_keeps_partitions_offsets_and_the_bytes_used() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path(), 1 << 20);
        storage
            .append("t", 1, &test_batch(5, 10, 0), Floors::new)
            .unwrap();
        let used = storage.used_bytes();
        drop(storage);
        let reopened = Storage::open(
            dir.path(),
            &[("u".to_owned(), 1)],
            &BTreeMap::new(),
            1_000,
            1 << 20,
        )
        .unwrap();
        let topics: Vec<_> = reopened.topics().collect();
        assert_eq!(topics, [("t", 2), ("u", 1)]);
        assert_eq!(reopened.offsets("t", 1), Some((0, 5)));
        assert_eq!(reopened.used_bytes(), used);
    }

    #[test]
    fn rejects_message_sets_of_old_formats() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path(), 1 << 20);
        let mut old = test_batch(1, 10, 0);
        old[16] = 1;
        let refused = storage.append("t", 0, &old, Floors::new);
        assert!(matches!(
            refused,
            Err(AppendError::Invalid(Invalid::OldFormat))
        ));
        assert_eq!(storage.used_bytes(), 0);
    }
}
