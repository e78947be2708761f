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

mod compact;
mod config;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use authtrail_model::lake::{
    parse_partition, Table, DATE_COLUMN, MAINTENANCE_MANIFEST, MANIFEST_DIR,
};
use authtrail_model::time::MICROS_PER_HOUR;
use authtrail_model::Micros;

pub use config::{MaintenanceConfig, RetentionDays};

use crate::error::Error;
use crate::manifest::{remove_files, PartitionLog, RecordState};
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
    _lock: File,
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
        Ok(report)
    }
}

impl<'a> Maintenance<'a> {
    /// Takes the lock and opens the log, finishing or rolling back an interrupted step.
    pub(crate) fn open(lake: &'a mut Lake) -> Result<Maintenance<'a>> {
        let dir = lake.root.join(MANIFEST_DIR);
        lake.dirs.ensure(&lake.root, &dir)?;
        let lock_path = dir.join("_maintenance.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| Error::Maintenance("another maintenance run holds the lake's lock".to_owned()),
        )?;
        let log = PartitionLog::open(
            &lake.root,
            dir.join(MAINTENANCE_MANIFEST),
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
            for (hour_start, dir) in hour_dirs(&self.lake.root.join(table.as_str()))? {
                if hour_start + MICROS_PER_HOUR > cutoff {
                    continue;
                }
                let files = files_in(&self.lake.root, &dir, |_| true)?;
                if !files.is_empty() {
                    self.log.append_removing(
                        RecordState::Removed,
                        0,
                        0,
                        Vec::new(),
                        files.clone(),
                    )?;
                    remove_files(&self.lake.root, files.iter().map(String::as_str))?;
                    report.files_expired += files.len();
                }
                report.partitions_expired += 1;
                tracing::info!(table = %table, partition = %dir.display(), files = files.len(), "retention deleted an hour partition");
                // Only empty directories go; a file a writer added meanwhile stays.
                let _ = fs::remove_dir(&dir);
                if let Some(date_dir) = dir.parent() {
                    let _ = fs::remove_dir(date_dir);
                }
            }
        }
        Ok(())
    }
}

/// The hour partitions below a table directory, with the start of each hour.
pub(crate) fn hour_dirs(table_dir: &Path) -> Result<Vec<(Micros, PathBuf)>> {
    let mut found = Vec::new();
    let date_prefix = format!("{DATE_COLUMN}=");
    for date_dir in subdirs(table_dir)? {
        let Some(date) = dir_name(&date_dir).filter(|name| name.starts_with(&date_prefix)) else {
            continue;
        };
        for hour_dir in subdirs(&date_dir)? {
            let start = dir_name(&hour_dir).and_then(|hour| parse_partition(date, hour));
            if let Some(start) = start {
                found.push((start, hour_dir));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn dir_name(dir: &Path) -> Option<&str> {
    dir.file_name()?.to_str()
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io(dir)(error)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        if entry.file_type().map_err(Error::io(dir))?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// The lake-relative paths of the `.parquet` files in `dir` whose name passes `keep`.
pub(crate) fn files_in(
    root: &Path,
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if name.ends_with(".parquet") && keep(name) {
            files.push(crate::path_text(
                path.strip_prefix(root).expect("below the root"),
            ));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
