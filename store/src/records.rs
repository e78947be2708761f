//! Where a manifest's records are kept, one layout per kind of storage under one
//! [`Records`] interface, so the log's logic (chain, signatures, rollback) is written once.
//!
//! - **Local filesystem: one JSON-lines file** (`_manifest/<log>.jsonl`), each record
//!   appended and `fdatasync`ed. One sync per record, where a file per record would need
//!   two (the file and its directory) and leave a small file per flush. A torn final line
//!   (a crash mid-append) was never acknowledged and is cut off on open. Lakes written
//!   before object storage was supported are read as they are. An append checks, under
//!   `flock`, that the file still ends where this handle last saw it, so a second process
//!   writing the same log fails the same way as on an object store.
//! - **Object store: one object per record** (`_manifest/<log>/<seq>.json`, the sequence
//!   number zero-padded to 20 digits so names sort in log order). There is no append on an
//!   object store; each record is created only if its name is free (`PutMode::Create`,
//!   S3's `If-None-Match: *`), so two writers can never both write record `seq`: the
//!   second gets [`Error::Conflict`] and stops.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{flock, FlockOperation};

use crate::durable::{append_durably, open_for_append};
use crate::error::Error;
use crate::remote::RemoteLake;
use crate::storage::Storage;
use crate::Result;

/// The suffix of a local log's file name.
const LINES_SUFFIX: &str = ".jsonl";
/// The suffix of one record's object.
const RECORD_SUFFIX: &str = ".json";

/// An open log's records.
pub(crate) enum Records {
    /// A local JSON-lines file, read whole on open.
    Lines {
        name: String,
        path: PathBuf,
        file: File,
        lines: Vec<String>,
        /// The file's length after the last record this handle read or wrote: another
        /// length at the next append means another writer appended meanwhile.
        len: u64,
    },
    /// Objects on a store, listed on open and read on demand.
    Objects {
        name: String,
        remote: Arc<RemoteLake>,
        dir: String,
        seqs: Vec<u64>,
    },
}

/// Everything a log holds, for `verify`.
pub(crate) struct LogText {
    pub(crate) lines: Vec<String>,
    /// A local log ended in a torn line (a crash mid-append), left out of `lines`.
    pub(crate) torn: bool,
}

impl Records {
    /// Opens the log `name` (lake-relative, `_manifest/<log>.jsonl`), creating a local one
    /// and cutting off a torn final line.
    pub(crate) fn open(storage: &mut Storage, name: &str) -> Result<Records> {
        if let Some(remote) = storage.remote() {
            let dir = objects_dir(name);
            let seqs = record_seqs(remote, &dir)?;
            return Ok(Records::Objects {
                name: name.to_owned(),
                remote: remote.clone(),
                dir,
                seqs,
            });
        }
        let parent = name.rsplit_once('/').map_or("", |(dir, _)| dir);
        storage.ensure_dir(parent)?;
        let path = storage.local_root().expect("local").join(name);
        let mut file = open_for_append(&path)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(Error::io(&path))?;
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        if complete < text.len() {
            // A torn final line: the crash hit mid-append, so it was never acknowledged.
            tracing::warn!(path = %path.display(), bytes = text.len() - complete, "dropping torn manifest line");
            file.set_len(complete as u64).map_err(Error::io(&path))?;
            file.sync_data().map_err(Error::io(&path))?;
        }
        let lines = text[..complete].lines().map(str::to_owned).collect();
        Ok(Records::Lines {
            name: name.to_owned(),
            path,
            file,
            lines,
            len: complete as u64,
        })
    }

    /// The log's lake-relative name (`_manifest/<log>.jsonl`), for messages.
    pub(crate) fn name(&self) -> &str {
        match self {
            Records::Lines { name, .. } | Records::Objects { name, .. } => name,
        }
    }

    /// How many records the log held when opened, plus those appended since.
    pub(crate) fn len(&self) -> usize {
        match self {
            Records::Lines { lines, .. } => lines.len(),
            Records::Objects { seqs, .. } => seqs.len(),
        }
    }

    /// The text of the record at `index` (0 is the first).
    pub(crate) fn line(&self, index: usize) -> Result<String> {
        match self {
            Records::Lines { lines, .. } => Ok(lines[index].clone()),
            Records::Objects {
                remote, dir, seqs, ..
            } => {
                let object = record_object(dir, seqs[index]);
                let bytes = remote.get(&object)?.ok_or_else(|| Error::Store {
                    path: object.clone(),
                    message: "the manifest record vanished while the log was read".to_owned(),
                })?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    /// Appends record `seq` durably; [`Error::Conflict`] if another writer wrote a record
    /// with that number first.
    pub(crate) fn append(&mut self, seq: u64, line: &str) -> Result<()> {
        match self {
            Records::Lines {
                name,
                path,
                file,
                lines,
                len,
            } => {
                let mut bytes = Vec::with_capacity(line.len() + 1);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                // The lock keeps the length check and the append of two processes apart.
                flock(&*file, FlockOperation::LockExclusive)
                    .map_err(|error| Error::io(path.as_path())(std::io::Error::from(error)))?;
                let appended = match file.metadata() {
                    Ok(metadata) if metadata.len() != *len => Err(Error::Conflict {
                        log: name.clone(),
                        seq,
                    }),
                    Ok(_) => append_durably(file, path, &bytes),
                    Err(error) => Err(Error::io(path.as_path())(error)),
                };
                let _ = flock(&*file, FlockOperation::Unlock);
                appended?;
                *len += bytes.len() as u64;
                lines.push(line.to_owned());
                Ok(())
            }
            Records::Objects {
                name,
                remote,
                dir,
                seqs,
            } => {
                let object = record_object(dir, seq);
                if !remote.create(&object, line.as_bytes())? {
                    // A request retried after a lost answer finds its own record: written.
                    let there = remote.get(&object)?;
                    if there.as_deref() != Some(line.as_bytes()) {
                        return Err(Error::Conflict {
                            log: name.clone(),
                            seq,
                        });
                    }
                }
                seqs.push(seq);
                Ok(())
            }
        }
    }
}

impl Records {
    /// Whether no other writer has appended since this handle's last record, whose
    /// successor would be record `next_seq`.
    pub(crate) fn unchanged(&self, next_seq: u64) -> Result<bool> {
        match self {
            Records::Lines {
                path, file, len, ..
            } => Ok(file.metadata().map_err(Error::io(path.as_path()))?.len() == *len),
            Records::Objects { remote, dir, .. } => {
                Ok(!remote.exists(&record_object(dir, next_seq))?)
            }
        }
    }
}

/// Whether the log `name` has any record.
pub(crate) fn exists(storage: &Storage, name: &str) -> Result<bool> {
    match storage.remote() {
        Some(remote) => Ok(!record_seqs(remote, &objects_dir(name))?.is_empty()),
        None => Ok(storage.local_root().expect("local").join(name).exists()),
    }
}

/// The lake-relative names of every log under `dir` (`_manifest`), as
/// `_manifest/<log>.jsonl` whatever the layout.
pub(crate) fn list_logs(storage: &Storage, dir: &str) -> Result<Vec<String>> {
    let mut logs = std::collections::BTreeSet::new();
    for listed in storage.list(dir)? {
        let Some(rest) = listed
            .path
            .strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        match storage.remote() {
            Some(_) => {
                if let Some((log, record)) = rest.split_once('/') {
                    if parse_seq(record).is_some() {
                        logs.insert(format!("{dir}/{log}{LINES_SUFFIX}"));
                    }
                }
            }
            None => {
                if !rest.contains('/') && rest.ends_with(LINES_SUFFIX) {
                    logs.insert(listed.path.clone());
                }
            }
        }
    }
    Ok(logs.into_iter().collect())
}

/// Every record of the log `name`, for `verify` (read only: nothing is created or cut).
pub(crate) fn read_all(storage: &Storage, name: &str) -> Result<LogText> {
    if let Some(remote) = storage.remote() {
        let dir = objects_dir(name);
        let objects: Vec<String> = record_seqs(remote, &dir)?
            .into_iter()
            .map(|seq| record_object(&dir, seq))
            .collect();
        let lines = remote
            .get_many(&objects)?
            .into_iter()
            .flatten()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect();
        return Ok(LogText { lines, torn: false });
    }
    let bytes = storage.get(name)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.rfind('\n').map_or(0, |end| end + 1);
    Ok(LogText {
        lines: text[..complete].lines().map(str::to_owned).collect(),
        torn: complete < text.len(),
    })
}

/// `_manifest/<log>.jsonl` → `_manifest/<log>`, the directory of its record objects.
fn objects_dir(name: &str) -> String {
    name.strip_suffix(LINES_SUFFIX).unwrap_or(name).to_owned()
}

fn record_object(dir: &str, seq: u64) -> String {
    format!("{dir}/{seq:020}{RECORD_SUFFIX}")
}

fn parse_seq(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(RECORD_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The sequence numbers of the record objects under `dir`, ascending.
fn record_seqs(remote: &RemoteLake, dir: &str) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = remote
        .list(dir)?
        .into_iter()
        .filter_map(|listed| {
            let rest = listed.path.strip_prefix(dir)?.strip_prefix('/')?;
            parse_seq(rest)
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_objects_sort_in_log_order_and_parse_back() {
        let names: Vec<String> = [9, 10, 100]
            .iter()
            .map(|&seq| record_object("_manifest/auth-events-2", seq))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(
            names[1],
            "_manifest/auth-events-2/00000000000000000010.json"
        );
        assert_eq!(parse_seq("00000000000000000010.json"), Some(10));
        assert_eq!(parse_seq("10.json"), None);
        assert_eq!(parse_seq("0000000000000000001x.json"), None);
        assert_eq!(objects_dir("_manifest/_alerts.jsonl"), "_manifest/_alerts");
    }
}
