//! Retention and compaction, recorded in `_manifest/_maintenance.jsonl` so `verify` keeps
//! passing after either.
//!
//! Retention deletes whole hour partitions older than a table's `retention_days`: one
//! `removed` record per hour is appended first, then its files are deleted. Compaction
//! rewrites the small files one source partition flushed into a closed hour as one file,
//! named for the whole offset range, in four steps a crash may cut at any point:
//!
//! 1. a `pending` record names the new file;
//! 2. the new file is written under its temporary name and fsynced;
//! 3. a `committed` record names it (with digest) and lists the small files as `removed`;
//! 4. the new file is renamed into place, then the small files are deleted.
//!
//! Reopening the log after a crash before 3 deletes the temporary file (the small files
//! still hold the rows); after 3 it finishes step 4. Queries never see a row missing; only
//! between the rename and the deletes (or a crash there, until the next run) both copies
//! exist. Alerts files are not compacted: a crashed pipeline rewrites its last checkpoint's
//! alerts file under its own name, which must not come back beside a compacted copy.
//!
//! On an object store step 2 writes the new file under its final name (there is no
//! rename), and step 4 only deletes. Runs are kept apart by a lock file on a local disk;
//! an object store has no such lock, but its log's records are created only if their
//! number is free, so of two runs at once one fails its next record and stops.
//!
//! Last, garbage goes: table files that no manifest record accounts for, last written
//! longer than `garbage_after` ago (a writer that lost its partition, see `records.rs`).
//! They were never part of the lake, so deleting them needs no record; each is logged.

mod compact;
mod config;

use std::fs::{File, OpenOptions};
use std::path::Path;

use authtrail_model::lake::{
    parse_partition, Table, DATE_COLUMN, MAINTENANCE_MANIFEST, MANIFEST_DIR,
};
use authtrail_model::time::MICROS_PER_HOUR;
use authtrail_model::Micros;

pub use config::{MaintenanceConfig, RetentionDays};

use crate::error::Error;
use crate::manifest::{PartitionLog, RecordState};
use crate::storage::Storage;
use crate::{Lake, Result};

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Hour partitions deleted by retention.
    pub partitions_expired: usize,
    /// Files deleted by retention.
    pub files_expired: usize,
    /// Compacted files written.
    pub files_compacted: usize,
    /// Small files those replaced.
    pub files_replaced: usize,
    /// Files in no manifest record (garbage) deleted.
    pub garbage_removed: usize,
}

/// Steps of a compaction a test may fail after, to check recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Pending,
    Written,
    Committed,
    Renamed,
}

/// A maintenance run: the log, held under an exclusive lock.
pub(crate) struct Maintenance<'a> {
    lake: &'a mut Lake,
    log: PartitionLog,
    /// The local lake's lock, held for the run (an object store has none).
    _lock: Option<File>,
    /// Fail with an injected error right after this step (tests of crash recovery).
    pub(crate) fail_after: Option<Step>,
}

impl Lake {
    /// Applies retention, then compacts closed hours, as of `now` (µs since the epoch).
    /// Fails at once if another maintenance run holds the lake's maintenance lock.
    pub fn maintain(
        &mut self,
        config: &MaintenanceConfig,
        now: Micros,
    ) -> Result<MaintenanceReport> {
        let mut run = Maintenance::open(self)?;
        let mut report = MaintenanceReport::default();
        run.expire(&config.retention_days, now, &mut report)?;
        run.compact(config, now, &mut report)?;
        let before =
            now.saturating_sub(i64::try_from(config.garbage_after.as_micros()).unwrap_or(i64::MAX));
        run.remove_garbage(before, &mut report)?;
        Ok(report)
    }
}

impl<'a> Maintenance<'a> {
    /// Takes the lock and opens the log, finishing or rolling back an interrupted step.
    pub(crate) fn open(lake: &'a mut Lake) -> Result<Maintenance<'a>> {
        let lock = match lake.storage.local_root().map(Path::to_path_buf) {
            Some(root) => {
                lake.storage.ensure_dir(MANIFEST_DIR)?;
                let lock_path = root.join(MANIFEST_DIR).join("_maintenance.lock");
                let lock = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(Error::io(&lock_path))?;
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                    .map_err(|_| {
                        Error::Maintenance(
                            "another maintenance run holds the lake's lock".to_owned(),
                        )
                    })?;
                Some(lock)
            }
            None => None,
        };
        let name = format!("{MANIFEST_DIR}/{MAINTENANCE_MANIFEST}");
        let log = PartitionLog::open(
            &mut lake.storage,
            &name,
            "_maintenance",
            0,
            lake.key.clone(),
        )?;
        Ok(Maintenance {
            lake,
            log,
            _lock: lock,
            fail_after: None,
        })
    }

    fn step(&self, step: Step) -> Result<()> {
        if self.fail_after == Some(step) {
            return Err(Error::Maintenance(format!(
                "injected failure after {step:?}"
            )));
        }
        Ok(())
    }

    /// Deletes the hour partitions of each table older than its retention.
    fn expire(
        &mut self,
        retention: &RetentionDays,
        now: Micros,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        for table in Table::ALL {
            let Some(days) = retention.of(table) else {
                continue;
            };
            let cutoff = now - i64::from(days) * 24 * MICROS_PER_HOUR;
            for (hour_start, dir, files) in hour_partitions(&self.lake.storage, table)? {
                if hour_start + MICROS_PER_HOUR > cutoff {
                    continue;
                }
                if !files.is_empty() {
                    self.log.append_removing(
                        RecordState::Removed,
                        0,
                        0,
                        Vec::new(),
                        files.clone(),
                    )?;
                    self.lake.storage.remove(&files)?;
                    report.files_expired += files.len();
                }
                report.partitions_expired += 1;
                tracing::info!(table = %table, partition = ?dir, files = files.len(), "retention deleted an hour partition");
                self.lake.storage.remove_empty_dir(&dir);
                if let Some((date_dir, _)) = dir.rsplit_once('/') {
                    self.lake.storage.remove_empty_dir(date_dir);
                }
            }
        }
        Ok(())
    }

    /// Deletes the table files no manifest record accounts for, last written before
    /// `written_before` (see `verify::garbage`).
    fn remove_garbage(
        &mut self,
        written_before: Micros,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let garbage = crate::verify::garbage(&self.lake.storage, written_before)?;
        for path in &garbage {
            tracing::warn!(path = ?path, "deleting a file no manifest record accounts for");
        }
        self.lake.storage.remove(&garbage)?;
        report.garbage_removed += garbage.len();
        Ok(())
    }
}

/// A table's hour partitions: the start of each hour, its directory (lake-relative) and
/// the `.parquet` files in it, oldest hour first.
pub(crate) fn hour_partitions(
    storage: &Storage,
    table: Table,
) -> Result<Vec<(Micros, String, Vec<String>)>> {
    let mut hours: std::collections::BTreeMap<(Micros, String), Vec<String>> = Default::default();
    let date_prefix = format!("{DATE_COLUMN}=");
    for listed in storage.list(table.as_str())? {
        // `<table>/date=…/hour=…/<file>`
        let mut parts = listed.path.splitn(4, '/');
        let (Some(_), Some(date), Some(hour), Some(file)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !date.starts_with(&date_prefix) || file.contains('/') {
            continue;
        }
        let Some(start) = parse_partition(date, hour) else {
            continue;
        };
        let files = hours
            .entry((start, format!("{table}/{date}/{hour}")))
            .or_default();
        if file.ends_with(".parquet") {
            files.push(listed.path);
        }
    }
    Ok(hours
        .into_iter()
        .map(|((start, dir), files)| (start, dir, files))
        .collect())
}

#[cfg(test)]
mod tests;
