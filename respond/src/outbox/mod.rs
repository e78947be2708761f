//! The durable outbox under `<lake>/_outbox/`: an append-only log of alert records and
//! their delivery state transitions, replayed into memory at open.
//!
//! One process writes it at a time: the writer holds an exclusive lock on `lock` for as
//! long as it runs, and others (the `authtrail alerts` command) only read the log, or hand
//! changes to the writer as request files (see [`requests`]). Appends are `write`s (they
//! survive the process being killed); [`Outbox::sync`] makes them survive power loss and
//! is called before the source commits the offsets of the events that raised them. When
//! the log is mostly superseded records it is rewritten to a new file that replaces it
//! atomically.

mod record;
mod replay;
pub mod requests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use authtrail_model::lake::OUTBOX_DIR;
use authtrail_model::time::now_micros;
use authtrail_model::Alert;

pub use record::State;
use record::{encode, Record};
use replay::{apply, load, snapshot};

use crate::error::Error;
use crate::Result;

const LOG: &str = "outbox.log";
const LOCK: &str = "lock";

/// A duplicate of the log's file handle, to fsync it.
pub struct SyncHandle {
    file: File,
    path: PathBuf,
}

impl SyncHandle {
    /// fsyncs the log.
    pub fn sync(self) -> Result<()> {
        self.file.sync_data().map_err(Error::io(self.path))
    }
}

/// (alert id, webhook name): what the outbox deduplicates on.
pub type Key = (String, String);

/// One alert for one webhook and where its delivery stands.
#[derive(Debug, Clone)]
pub struct Entry {
    pub alert_id: String,
    pub webhook: String,
    /// The alert itself; dropped once delivered (only the key is kept, to deduplicate).
    pub alert: Option<Arc<Alert>>,
    pub state: State,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Wall-clock microseconds when first recorded, of the last change, and when the
    /// current round of attempts began.
    pub created: i64,
    pub updated: i64,
    pub since: i64,
    /// Released by an operator from `held`: the rate limit no longer applies.
    pub released: bool,
}

/// The outbox, opened for writing.
pub struct Outbox {
    dir: PathBuf,
    file: File,
    _lock: File,
    entries: HashMap<Key, Entry>,
    /// Records in the log file, for deciding when to compact.
    records: usize,
    bytes: u64,
}

/// The outbox directory of a lake.
pub fn outbox_dir(lake_root: &Path) -> PathBuf {
    lake_root.join(OUTBOX_DIR)
}

impl Outbox {
    /// Opens (creating) the outbox in `dir` for writing; `Ok(None)` when another process
    /// holds it.
    pub fn open(dir: &Path) -> Result<Option<Outbox>> {
        std::fs::create_dir_all(dir.join(requests::REQUESTS)).map_err(Error::io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(error) => return Err(Error::io(&lock_path)(error.into())),
        }
        let path = dir.join(LOG);
        let (entries, records, good_len) = load(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        let len = file.metadata().map_err(Error::io(&path))?.len();
        if good_len < len {
            // A line torn by a crash: cut it off so the next append starts a fresh line.
            tracing::warn!(outbox = %path.display(), bytes = len - good_len, "dropping a torn last line of the outbox");
            file.set_len(good_len).map_err(Error::io(&path))?;
        }
        Ok(Some(Outbox {
            dir: dir.to_path_buf(),
            file,
            _lock: lock,
            entries,
            records,
            bytes: good_len,
        }))
    }

    /// Every entry of the outbox in `dir`, read without taking the lock (a running writer
    /// may append meanwhile; a torn last line is ignored).
    pub fn read_entries(dir: &Path) -> Result<Vec<Entry>> {
        let (entries, _, _) = load(&dir.join(LOG))?;
        let mut entries: Vec<Entry> = entries.into_values().collect();
        entries.sort_by(|a, b| (a.created, &a.alert_id).cmp(&(b.created, &b.alert_id)));
        Ok(entries)
    }

    /// The directory the outbox lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry of `key`, if recorded.
    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Records `alert` for `webhook` unless that pair is already recorded (a replay after
    /// a crash raises the same ids); returns whether it is new.
    pub fn insert(&mut self, webhook: &str, alert: &Alert) -> Result<bool> {
        let key = (alert.id.clone(), webhook.to_owned());
        if self.entries.contains_key(&key) {
            return Ok(false);
        }
        // The same path as a replay of the log takes, so memory and log agree.
        let record = Record::Alert {
            webhook: webhook.to_owned(),
            at: now_micros(),
            alert: Arc::new(alert.clone()),
        };
        self.append(&record)?;
        apply(&mut self.entries, record);
        Ok(true)
    }

    /// Moves `key` to `state`; `restart` begins a new round of attempts (max age counts
    /// from now), as `retry` and `release` do.
    pub fn transition(
        &mut self,
        key: &Key,
        state: State,
        attempts: u32,
        error: Option<String>,
        restart: bool,
        released: bool,
    ) -> Result<()> {
        let Some(entry) = self.entries.get(key) else {
            return Err(Error::NoSuchEntry(key.0.clone()));
        };
        let at = now_micros();
        let record = Record::State {
            id: key.0.clone(),
            webhook: key.1.clone(),
            at,
            state,
            attempts,
            error,
            since: if restart { at } else { entry.since },
            released: released || entry.released,
            created: entry.created,
        };
        self.append(&record)?;
        apply(&mut self.entries, record);
        Ok(())
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let line = encode(record);
        let path = self.dir.join(LOG);
        self.file.write_all(&line).map_err(Error::io(&path))?;
        self.records += 1;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Makes every record appended so far durable (fsync).
    pub fn sync(&mut self) -> Result<()> {
        self.sync_handle()?.sync()
    }

    /// A handle that makes the records appended so far durable, usable without holding
    /// the outbox (so an fsync does not stall the pipeline's appends).
    pub fn sync_handle(&self) -> Result<SyncHandle> {
        let path = self.dir.join(LOG);
        let file = self.file.try_clone().map_err(Error::io(&path))?;
        Ok(SyncHandle { file, path })
    }

    /// Bytes appended to the log since it was opened or compacted.
    pub fn appended(&self) -> u64 {
        self.bytes
    }

    /// Rewrites the log without superseded records and without delivered entries older
    /// than `keep_delivered_micros`, once it is over `min_bytes` and mostly superseded.
    pub fn maybe_compact(&mut self, min_bytes: u64, keep_delivered_micros: i64) -> Result<bool> {
        if self.bytes < min_bytes || self.records < 2 * self.entries.len().max(1) {
            return Ok(false);
        }
        let horizon = now_micros().saturating_sub(keep_delivered_micros);
        self.entries
            .retain(|_, e| e.state != State::Delivered || e.updated >= horizon);
        let path = self.dir.join(LOG);
        let temporary = self.dir.join(format!("{LOG}.compacting"));
        let mut out = Vec::new();
        let mut records = 0;
        for entry in self.entries.values() {
            for record in snapshot(entry) {
                out.extend(encode(&record));
                records += 1;
            }
        }
        let io = Error::io(&temporary);
        let mut file = File::create(&temporary).map_err(Error::io(&temporary))?;
        file.write_all(&out)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(Error::io(&path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(Error::io(&self.dir))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        tracing::info!(
            before_bytes = self.bytes,
            after_bytes = out.len(),
            entries = self.entries.len(),
            "compacted the outbox"
        );
        (self.records, self.bytes) = (records, out.len() as u64);
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
