//! authtrail's Parquet lake.
//!
//! The pipeline buffers each source partition's rows in a [`SegmentBuilder`]; on flush it
//! hands the finished [`Segment`] to [`Lake::commit`], which encodes one Parquet file per
//! table and hour, writes each durably (temporary name, fsync, rename, directory fsync)
//! under a name derived from the offset range, and records the flush in the partition's
//! manifest ([`PartitionLog`]). Once `commit` returns, the range is in the lake and the
//! source may commit its offsets; [`PartitionLog::next_offset`] tells a restarted pipeline
//! where the lake ends, so nothing is written twice.
//!
//! Alerts files are recorded the same way in `_manifest/_alerts.jsonl`. Every record
//! carries the hash of the previous one and, with a [`ManifestKey`], an Ed25519 signature;
//! [`verify`] checks the files on disk against the logs.
//!
//! A lake lives in a local directory or under a prefix of an object store
//! ([`LakeLocation`]: `s3://`, `gs://`, `az://`). On an object store there is no rename:
//! files are written under their final names and each manifest record is a new object
//! created only if its sequence number is free, so two processes can never both commit
//! the same record of a log (see `records.rs`). Both kinds go through `storage.rs`; the
//! manifest, verify and maintenance logic is the same for both.

mod durable;
mod encode;
mod error;
mod fault;
mod location;
mod maintain;
mod manifest;
mod records;
mod remote;
mod segment;
mod sign;
mod storage;
mod verify;

use std::path::{Path, PathBuf};

use authtrail_model::lake::{
    alerts_file_path, checkpoint_path, data_file_path, manifest_path, Table, ALERTS_MANIFEST,
    MANIFEST_DIR,
};
use sha2::{Digest, Sha256};
use storage::Storage;

pub use encode::{encode, EncodeOptions, EncodedFile};
pub use error::Error;
pub use fault::FAULT_LAKE_FULL_ENV;
pub use location::LakeLocation;
pub use maintain::{MaintenanceConfig, MaintenanceReport, RetentionDays};
pub use manifest::{FileEntry, LostRange, ManifestRecord, PartitionLog, RecordState};
pub use remote::RemoteLake;
pub use segment::{Segment, SegmentBuilder};
pub use sign::{ManifestKey, PublicKey};
pub use verify::{verify, Finding, VerifyOptions, VerifyReport};

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A lake in a local directory or on an object store.
pub struct Lake {
    location: LakeLocation,
    options: EncodeOptions,
    storage: Storage,
    key: Option<ManifestKey>,
    /// The alerts manifest, opened on the first alerts write.
    alerts_log: Option<PartitionLog>,
}

/// What one commit wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSummary {
    pub files: Vec<FileEntry>,
    pub rows: u64,
    pub bytes: u64,
}

impl Lake {
    /// Opens the lake in the local directory `root`, creating it if needed.
    pub fn open(root: impl Into<PathBuf>, options: EncodeOptions) -> Result<Lake> {
        Lake::open_at(LakeLocation::Local(root.into()), options)
    }

    /// Opens the lake at `location`, creating a local directory if needed (an object
    /// store's prefix needs no creating).
    pub fn open_at(location: LakeLocation, options: EncodeOptions) -> Result<Lake> {
        if let LakeLocation::Local(root) = &location {
            std::fs::create_dir_all(root).map_err(Error::io(root))?;
        }
        Ok(Lake {
            storage: Storage::new(&location),
            location,
            options,
            key: None,
            alerts_log: None,
        })
    }

    /// Signs every manifest record this lake (and its handles) writes with `key`.
    pub fn with_manifest_key(mut self, key: Option<ManifestKey>) -> Lake {
        self.key = key;
        self
    }

    /// A second handle on the same lake, for another thread (the pipeline opens partitions
    /// on its decode thread and commits on its writer thread).
    pub fn handle(&self) -> Lake {
        Lake {
            location: self.location.clone(),
            options: self.options,
            storage: Storage::new(&self.location),
            key: self.key.clone(),
            alerts_log: None,
        }
    }

    /// Where the lake lives.
    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The lake's local directory; `None` for a lake on an object store.
    pub fn local_root(&self) -> Option<&Path> {
        self.location.local_root()
    }

    /// Opens a source partition's manifest, rolling back a flush a crash interrupted (or,
    /// on an object store, one a process that lost the partition left unfinished).
    pub fn open_partition(&mut self, source: &str, partition: i32) -> Result<PartitionLog> {
        let name = path_text(&manifest_path(source, partition));
        PartitionLog::open(
            &mut self.storage,
            &name,
            source,
            partition,
            self.key.clone(),
        )
    }

    /// The lowest partition number of `source` that has no manifest yet: a fresh stream for
    /// sources that cannot be replayed (stdin).
    pub fn unused_partition(&self, source: &str) -> Result<i32> {
        for partition in 0.. {
            let name = path_text(&manifest_path(source, partition));
            if !records::exists(&self.storage, &name)? {
                return Ok(partition);
            }
        }
        unreachable!("fewer than 2^31 partitions")
    }

    /// Writes a segment durably and records it as committed in `log`.
    ///
    /// The segment's first offset must be the log's next offset (or later): ranges never
    /// overlap what the lake already holds.
    pub fn commit(&mut self, log: &mut PartitionLog, segment: Segment) -> Result<CommitSummary> {
        self.commit_ref(log, &segment)
    }

    /// [`commit`](Self::commit) that leaves the segment with the caller, to retry it after
    /// an I/O error (a full disk): a retry appends a new pending record and rewrites the
    /// same files under the same names.
    pub fn commit_ref(
        &mut self,
        log: &mut PartitionLog,
        segment: &Segment,
    ) -> Result<CommitSummary> {
        debug_assert!(log
            .next_offset()
            .is_none_or(|next| segment.first_offset >= next));
        let planned: Vec<(PathBuf, Table, &arrow_array::RecordBatch)> = segment
            .batches
            .iter()
            .map(|(table, hour, batch)| {
                let path = data_file_path(
                    *table,
                    *hour,
                    &segment.source,
                    segment.partition,
                    segment.first_offset,
                    segment.last_offset,
                );
                (path, *table, batch)
            })
            .collect();
        let pending = planned
            .iter()
            .map(|(path, _, _)| FileEntry::planned(path))
            .collect();
        log.append(
            RecordState::Pending,
            segment.first_offset,
            segment.last_offset,
            pending,
        )?;

        let mut summary = CommitSummary {
            files: Vec::with_capacity(planned.len()),
            rows: 0,
            bytes: 0,
        };
        for (relative, table, batch) in planned {
            let entry = self.write_file(log, &relative, table, batch, &mut summary)?;
            summary.files.push(entry);
        }
        log.append_committed(
            segment.first_offset,
            segment.last_offset,
            summary.files.clone(),
            segment.lost.clone(),
        )?;
        Ok(summary)
    }
}

impl Lake {
    /// Writes one alerts file per hour, named `alerts-<checkpoint>.parquet`, durably, and
    /// records them in the alerts manifest (pending before, committed after, like a flush).
    ///
    /// Alerts are written with the detector checkpoint that covers the events raising
    /// them; after a crash the same checkpoint number is written again and replaces its
    /// files rather than adding copies (the newer record supersedes the older).
    pub fn write_alerts(
        &mut self,
        checkpoint: u64,
        batches: &[(i64, arrow_array::RecordBatch)],
    ) -> Result<CommitSummary> {
        if self.alerts_log.is_none() {
            let name = format!("{MANIFEST_DIR}/{ALERTS_MANIFEST}");
            let log = PartitionLog::open(&mut self.storage, &name, "_alerts", 0, self.key.clone())?;
            self.alerts_log = Some(log);
        }
        let number = i64::try_from(checkpoint).unwrap_or(i64::MAX);
        let planned: Vec<PathBuf> = batches
            .iter()
            .map(|(hour, _)| alerts_file_path(*hour, checkpoint))
            .collect();
        let pending = planned
            .iter()
            .map(|path| FileEntry::planned(path))
            .collect();
        // Out of `self` while the files are written; an error leaves it closed, and the
        // next write opens it again (rolling back this pending record).
        let mut log = self.alerts_log.take().expect("opened above");
        log.append(RecordState::Pending, number, number, pending)?;
        let mut summary = CommitSummary {
            files: Vec::with_capacity(batches.len()),
            rows: 0,
            bytes: 0,
        };
        for (relative, (_, batch)) in planned.iter().zip(batches) {
            let entry = self.write_file(&log, relative, Table::Alerts, batch, &mut summary)?;
            summary.files.push(entry);
        }
        let log = self.alerts_log.insert(log);
        log.append(
            RecordState::Committed,
            number,
            number,
            summary.files.clone(),
        )?;
        Ok(summary)
    }

    /// Encodes `batch` and writes it durably at `relative` for the flush `log` records;
    /// returns its manifest entry.
    fn write_file(
        &mut self,
        log: &PartitionLog,
        relative: &Path,
        table: Table,
        batch: &arrow_array::RecordBatch,
        summary: &mut CommitSummary,
    ) -> Result<FileEntry> {
        let encoded = encode(table, batch, &self.options)?;
        self.storage
            .put_for(log, &path_text(relative), &encoded.bytes)?;
        summary.rows += encoded.rows as u64;
        summary.bytes += encoded.bytes.len() as u64;
        Ok(FileEntry {
            path: path_text(relative),
            rows: Some(encoded.rows as u64),
            bytes: Some(encoded.bytes.len() as u64),
            sha256: Some(hex::encode(Sha256::digest(&encoded.bytes))),
            time_range: encoded.time_range,
        })
    }

    /// Replaces the checkpoint `name` (under `_checkpoint/`) atomically and durably.
    pub fn save_checkpoint(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.storage.put(&path_text(&checkpoint_path(name)), bytes)
    }

    /// The checkpoint `name`, if one was saved.
    pub fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let saved = self.storage.get(&path_text(&checkpoint_path(name)))?;
        Ok(saved.map(|bytes| bytes.to_vec()))
    }
}

impl FileEntry {
    /// The entry of a file about to be written: its path only.
    pub(crate) fn planned(path: &Path) -> FileEntry {
        FileEntry {
            path: path_text(path),
            rows: None,
            bytes: None,
            sha256: None,
            time_range: None,
        }
    }
}

/// A lake-relative path as manifest text, with `/` separators on every platform.
fn path_text(path: &Path) -> String {
    path.components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
