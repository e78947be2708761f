//! The commit manifest of one source partition: an append-only log that makes a flush
//! atomic across the several files it writes (a JSON-lines file on a local disk, an object
//! per record on an object store: see `records.rs`).
//!
//! A flush first appends a `pending` record naming every file it is about to write, then
//! writes the files, then appends a `committed` record with their sizes and digests. Only
//! after that are the offsets committed to the source. On open, a `pending` record without
//! its `committed` record (a crash mid-flush) is rolled back: its files are deleted and an
//! `aborted` record appended, so the range is written afresh and never twice. Each record
//! carries the sha256 of the previous record, chaining the log.
//!
//! On an object store several processes may hold the same log (a member whose partition
//! moved to another while it was paused). Each record is created only if its sequence
//! number is free, so exactly one writer wins each number; the other's commit fails with
//! [`Error::Conflict`]. Opening the log takes it over: a trailing `pending` record of a
//! writer that is still alive is rolled back like a crashed one, and that writer's commit
//! then fails on the `aborted` record's number. Files it writes after that are in no
//! committed record: `verify` reports them and `maintain` deletes them.
//!
//! The same log format records the lake's other changes: the alerts writer keeps one
//! (`_alerts.jsonl`, offsets are checkpoint numbers), and retention and compaction keep one
//! (`_maintenance.jsonl`), whose records name the files they remove. A record that removes
//! files is appended before they are deleted; opening the log finishes deletions a crash
//! interrupted. With a [`ManifestKey`] every record is signed (see `sign.rs`).

use authtrail_model::time::now_micros;
use authtrail_model::Micros;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::records::Records;
use crate::sign::ManifestKey;
use crate::storage::Storage;
use crate::Result;

/// The state a manifest record declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Files about to be written; not yet part of the lake.
    Pending,
    /// Files written and durable; part of the lake.
    Committed,
    /// A pending flush rolled back after a crash; its files were deleted.
    Aborted,
    /// Files deleted from the lake (retention); they are named in `removed`.
    Removed,
}

/// One file named by a manifest record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the lake root.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Smallest and largest row time, µs since the epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_range: Option<(Micros, Micros)>,
}

/// Offsets of a source partition that never reached the lake because the source no longer
/// held them when authtrail read the partition (deleted by retention, a truncated log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRange {
    /// The first offset lost.
    pub first_offset: i64,
    /// The last offset lost (inclusive, like a record's `last_offset`).
    pub last_offset: i64,
}

impl LostRange {
    /// How many offsets the range spans.
    pub fn len(&self) -> u64 {
        (self.last_offset - self.first_offset + 1).max(0) as u64
    }

    /// Whether the range spans no offset.
    pub fn is_empty(&self) -> bool {
        self.last_offset < self.first_offset
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRecord {
    pub seq: u64,
    pub state: RecordState,
    pub source: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub files: Vec<FileEntry>,
    /// Lake-relative paths this record takes out of the lake (retention, or the small files
    /// a compaction replaced).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub removed: Vec<String>,
    /// On a committed record: offsets before or inside its range that the source had
    /// already deleted, so the lake will never hold them. Recorded with the data that
    /// follows them, so a crash before the commit records them again at the replay, once.
    /// Skipped when empty: records written before this field existed keep their bytes,
    /// hashes and signatures.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub lost: Vec<LostRange>,
    /// Wall clock when the record was written, µs since the epoch.
    pub recorded_at: Micros,
    /// sha256 (hex) of the previous line, empty for the first.
    pub prev: String,
    /// Ed25519 signature (hex) of the record serialized without this field.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sig: Option<String>,
}

impl ManifestRecord {
    /// The bytes a signature covers: the record serialized without its signature.
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = ManifestRecord {
            sig: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("manifest records serialize")
    }
}

/// Parses one manifest record.
pub(crate) fn parse_line(log: &str, index: usize, line: &str) -> Result<ManifestRecord> {
    serde_json::from_str(line).map_err(|error| Error::Manifest {
        log: log.to_owned(),
        line: index + 1,
        message: error.to_string(),
    })
}

/// An open manifest: where the partition's committed data ends, and the log's tail.
pub struct PartitionLog {
    source: String,
    partition: i32,
    records: Records,
    next_seq: u64,
    prev: String,
    next_offset: Option<i64>,
    pending: Option<ManifestRecord>,
    key: Option<ManifestKey>,
}

impl PartitionLog {
    /// Opens (creating if needed) the manifest `name` (lake-relative) and rolls back an
    /// interrupted flush, deleting its files.
    ///
    /// Only the log's tail is read: the last record, and the ones before it back to the
    /// last committed one (one or three on an object store, where each is a request).
    pub(crate) fn open(
        storage: &mut Storage,
        name: &str,
        source: &str,
        partition: i32,
        key: Option<ManifestKey>,
    ) -> Result<Self> {
        let records = Records::open(storage, name)?;
        let mut log = PartitionLog {
            source: source.to_owned(),
            partition,
            records,
            next_seq: 0,
            prev: String::new(),
            next_offset: None,
            pending: None,
            key,
        };
        let count = log.records.len();
        let Some(last_index) = count.checked_sub(1) else {
            return Ok(log);
        };
        let last_line = log.records.line(last_index)?;
        let last = parse_line(log.records.name(), last_index, &last_line)?;
        log.next_seq = last.seq + 1;
        log.prev = hex::encode(Sha256::digest(last_line.as_bytes()));
        let mut unfinished_removal = Vec::new();
        let mut unpublished = Vec::new();
        match last.state {
            RecordState::Pending => log.pending = Some(last),
            RecordState::Committed => {
                log.next_offset = Some(last.last_offset + 1);
                unpublished = last.files.iter().map(|file| file.path.clone()).collect();
                unfinished_removal = last.removed;
            }
            RecordState::Aborted | RecordState::Removed => unfinished_removal = last.removed,
        }
        if log.next_offset.is_none() {
            for index in (0..last_index).rev() {
                let record = parse_line(log.records.name(), index, &log.records.line(index)?)?;
                if record.state == RecordState::Committed {
                    log.next_offset = Some(record.last_offset + 1);
                    break;
                }
            }
        }
        if let Some(pending) = log.pending.take() {
            log.roll_back(storage, pending)?;
        }
        // A compaction commits its file before renaming it into place (see `maintain`):
        // a crash in between leaves it under its temporary name.
        for relative in unpublished {
            storage.finish_publish(&relative)?;
        }
        // The last record's removals may have been cut short by a crash; deleting is
        // idempotent, so finish them.
        storage.remove(&unfinished_removal)?;
        Ok(log)
    }

    /// The first offset not yet in the lake, or `None` when nothing was ever committed.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// Whether this handle still holds the log: no other writer appended since its last
    /// record.
    pub(crate) fn still_held(&self) -> Result<bool> {
        self.records.unchanged(self.next_seq)
    }

    /// The error of a writer that no longer holds the log.
    pub(crate) fn lost(&self) -> Error {
        Error::Conflict {
            log: self.records.name().to_owned(),
            seq: self.next_seq,
        }
    }

    /// The manifest's lake-relative name (`_manifest/<source>-<partition>.jsonl`).
    pub fn name(&self) -> &str {
        self.records.name()
    }

    fn roll_back(&mut self, storage: &mut Storage, pending: ManifestRecord) -> Result<()> {
        tracing::warn!(
            source = %pending.source,
            partition = pending.partition,
            first_offset = pending.first_offset,
            last_offset = pending.last_offset,
            "rolling back a flush interrupted by a crash"
        );
        let files: Vec<String> = pending
            .files
            .iter()
            .map(|entry| entry.path.clone())
            .collect();
        storage.remove(&files)?;
        self.append(
            RecordState::Aborted,
            pending.first_offset,
            pending.last_offset,
            pending.files,
        )
    }

    /// Durably appends a record and advances the chain.
    pub(crate) fn append(
        &mut self,
        state: RecordState,
        first_offset: i64,
        last_offset: i64,
        files: Vec<FileEntry>,
    ) -> Result<()> {
        self.append_removing(state, first_offset, last_offset, files, Vec::new())
    }

    /// Durably appends a record that also takes `removed` out of the lake (the caller
    /// deletes them afterwards; a reopened log finishes the deletion).
    pub(crate) fn append_removing(
        &mut self,
        state: RecordState,
        first_offset: i64,
        last_offset: i64,
        files: Vec<FileEntry>,
        removed: Vec<String>,
    ) -> Result<()> {
        self.append_record(state, first_offset, last_offset, files, removed, Vec::new())
    }

    /// Durably appends a committed record that also declares `lost` offsets.
    pub(crate) fn append_committed(
        &mut self,
        first_offset: i64,
        last_offset: i64,
        files: Vec<FileEntry>,
        lost: Vec<LostRange>,
    ) -> Result<()> {
        let state = RecordState::Committed;
        self.append_record(state, first_offset, last_offset, files, Vec::new(), lost)
    }

    fn append_record(
        &mut self,
        state: RecordState,
        first_offset: i64,
        last_offset: i64,
        files: Vec<FileEntry>,
        removed: Vec<String>,
        lost: Vec<LostRange>,
    ) -> Result<()> {
        let mut record = ManifestRecord {
            seq: self.next_seq,
            state,
            source: self.source.clone(),
            partition: self.partition,
            first_offset,
            last_offset,
            files,
            removed,
            lost,
            recorded_at: now_micros(),
            prev: self.prev.clone(),
            sig: None,
        };
        if let Some(key) = &self.key {
            record.sig = Some(key.sign(&record.signed_bytes()));
        }
        let line = serde_json::to_string(&record).expect("manifest records serialize");
        let hash = hex::encode(Sha256::digest(line.as_bytes()));
        self.records.append(record.seq, &line)?;
        // Only a durable line becomes the chain's tail: after a failed append (disk full)
        // the next record still links to the last one on disk.
        self.prev = hash;
        self.next_seq += 1;
        if state == RecordState::Committed {
            self.next_offset = Some(last_offset + 1);
        }
        Ok(())
    }
}
