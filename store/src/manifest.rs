//! The commit manifest of one source partition: an append-only JSON-lines log that makes a
//! flush atomic across the several files it writes.
//!
//! A flush first appends a `pending` record naming every file it is about to write, then
//! writes the files, then appends a `committed` record with their sizes and digests. Only
//! after that are the offsets committed to the source. On open, a `pending` record without
//! its `committed` record (a crash mid-flush) is rolled back: its files are deleted and an
//! `aborted` record appended, so the range is written afresh and never twice. Each record
//! carries the sha256 of the previous line, chaining the log.
//!
//! The same log format records the lake's other changes: the alerts writer keeps one
//! (`_alerts.jsonl`, offsets are checkpoint numbers), and retention and compaction keep one
//! (`_maintenance.jsonl`), whose records name the files they remove. A record that removes
//! files is appended before they are deleted; opening the log finishes deletions a crash
//! interrupted. With a [`ManifestKey`] every record is signed (see `sign.rs`).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use authtrail_model::time::now_micros;
use authtrail_model::Micros;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable::{append_durably, open_for_append, temp_path};
use crate::error::Error;
use crate::sign::ManifestKey;
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

/// Parses one manifest line.
pub(crate) fn parse_line(path: &Path, index: usize, line: &str) -> Result<ManifestRecord> {
    serde_json::from_str(line).map_err(|error| Error::Manifest {
        path: path.to_path_buf(),
        line: index + 1,
        message: error.to_string(),
    })
}

/// An open manifest: where the partition's committed data ends, and the log's tail.
pub struct PartitionLog {
    source: String,
    partition: i32,
    path: PathBuf,
    file: File,
    next_seq: u64,
    prev: String,
    next_offset: Option<i64>,
    pending: Option<ManifestRecord>,
    key: Option<ManifestKey>,
}

impl PartitionLog {
    /// Opens (creating if needed) the manifest at `path` and rolls back an interrupted
    /// flush, deleting its files below `root`.
    pub(crate) fn open(
        root: &Path,
        path: PathBuf,
        source: &str,
        partition: i32,
        key: Option<ManifestKey>,
    ) -> Result<Self> {
        let mut file = open_for_append(&path)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(Error::io(&path))?;
        let complete = match text.rfind('\n') {
            Some(end) => end + 1,
            None => 0,
        };
        if complete < text.len() {
            // A torn final line: the crash hit mid-append, so it was never acknowledged.
            tracing::warn!(path = %path.display(), bytes = text.len() - complete, "dropping torn manifest line");
            file.set_len(complete as u64).map_err(Error::io(&path))?;
            file.sync_data().map_err(Error::io(&path))?;
        }
        let mut log = PartitionLog {
            source: source.to_owned(),
            partition,
            path,
            file,
            next_seq: 0,
            prev: String::new(),
            next_offset: None,
            pending: None,
            key,
        };
        let mut unfinished_removal = Vec::new();
        let mut unpublished = Vec::new();
        for (index, line) in text[..complete].lines().enumerate() {
            let record = parse_line(&log.path, index, line)?;
            unfinished_removal = match record.state {
                RecordState::Pending => Vec::new(),
                _ => record.removed.clone(),
            };
            unpublished = match record.state {
                RecordState::Committed => {
                    record.files.iter().map(|file| file.path.clone()).collect()
                }
                _ => Vec::new(),
            };
            log.next_seq = record.seq + 1;
            log.prev = hex::encode(Sha256::digest(line.as_bytes()));
            match record.state {
                RecordState::Pending => log.pending = Some(record),
                RecordState::Committed => {
                    log.next_offset = Some(record.last_offset + 1);
                    log.pending = None;
                }
                RecordState::Aborted | RecordState::Removed => log.pending = None,
            }
        }
        if let Some(pending) = log.pending.take() {
            log.roll_back(root, pending)?;
        }
        // A compaction commits its file before renaming it into place (see `maintain`):
        // a crash in between leaves it under its temporary name.
        for relative in unpublished {
            let path = root.join(&relative);
            if !path.exists() && temp_path(&path).exists() {
                crate::durable::publish(&path)?;
            }
        }
        // The last record's removals may have been cut short by a crash; deleting is
        // idempotent, so finish them.
        remove_files(root, unfinished_removal.iter().map(String::as_str))?;
        Ok(log)
    }

    /// The first offset not yet in the lake, or `None` when nothing was ever committed.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn roll_back(&mut self, root: &Path, pending: ManifestRecord) -> Result<()> {
        tracing::warn!(
            source = %pending.source,
            partition = pending.partition,
            first_offset = pending.first_offset,
            last_offset = pending.last_offset,
            "rolling back a flush interrupted by a crash"
        );
        remove_files(root, pending.files.iter().map(|entry| entry.path.as_str()))?;
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
        let mut line = serde_json::to_string(&record).expect("manifest records serialize");
        let hash = hex::encode(Sha256::digest(line.as_bytes()));
        line.push('\n');
        append_durably(&mut self.file, &self.path, line.as_bytes())?;
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

/// Deletes lake files (and their temporary twins) that may or may not exist, then makes
/// the deletions durable.
pub(crate) fn remove_files<'a>(root: &Path, paths: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for relative in paths {
        let path = root.join(relative);
        for candidate in [temp_path(&path), path.clone()] {
            match fs::remove_file(&candidate) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::io(&candidate)(error)),
            }
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        crate::durable::sync_dir(&dir).or_else(|error| match error {
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => Err(other),
        })?;
    }
    Ok(())
}
