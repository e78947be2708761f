//! Replaying the log into entries, and the records that recreate an entry (compaction).

use std::collections::HashMap;
use std::path::Path;

use super::record::{decode, Record};
use super::{Entry, Key, State};
use crate::error::Error;
use crate::Result;

/// The records that recreate `entry`.
pub(super) fn snapshot(entry: &Entry) -> Vec<Record> {
    let mut records = Vec::with_capacity(2);
    if let Some(alert) = &entry.alert {
        records.push(Record::Alert {
            webhook: entry.webhook.clone(),
            at: entry.created,
            alert: alert.clone(),
        });
    }
    records.push(Record::State {
        id: entry.alert_id.clone(),
        webhook: entry.webhook.clone(),
        at: entry.updated,
        state: entry.state,
        attempts: entry.attempts,
        error: entry.last_error.clone(),
        since: entry.since,
        released: entry.released,
        created: entry.created,
    });
    records
}

pub(super) fn apply(entries: &mut HashMap<Key, Entry>, record: Record) {
    match record {
        Record::Alert { webhook, at, alert } => {
            let key = (alert.id.clone(), webhook.clone());
            entries.entry(key).or_insert(Entry {
                alert_id: alert.id.clone(),
                webhook,
                alert: Some(alert),
                state: State::Pending,
                attempts: 0,
                last_error: None,
                created: at,
                updated: at,
                since: at,
                released: false,
            });
        }
        Record::State {
            id,
            webhook,
            at,
            state,
            attempts,
            error,
            since,
            released,
            created,
        } => {
            let key = (id.clone(), webhook.clone());
            let entry = entries.entry(key).or_insert_with(|| Entry {
                alert_id: id,
                webhook,
                alert: None,
                state,
                attempts,
                last_error: None,
                created,
                updated: at,
                since,
                released,
            });
            if state == State::Delivered {
                entry.alert = None;
            }
            (entry.state, entry.attempts, entry.last_error) = (state, attempts, error);
            (entry.updated, entry.since, entry.released) = (at, since, released);
        }
    }
}

/// Replays the log: the entries, the number of records, and the length of its valid
/// prefix (a torn last line is not part of it).
pub(super) fn load(path: &Path) -> Result<(HashMap<Key, Entry>, usize, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(Error::io(path)(error)),
    };
    let mut entries = HashMap::new();
    let (mut records, mut good_len, mut at) = (0, 0, 0);
    for (number, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        at += line.len();
        let Some(line) = line.strip_suffix(b"\n") else {
            break; // torn: no newline, so the write never completed
        };
        match decode(line) {
            Ok(record) => {
                apply(&mut entries, record);
                records += 1;
            }
            Err(message) if at == bytes.len() => {
                tracing::warn!(outbox = %path.display(), line = number + 1, message, "ignoring a damaged last line of the outbox");
                break;
            }
            Err(message) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line: number + 1,
                    message,
                })
            }
        }
        good_len = at as u64;
    }
    Ok((entries, records, good_len))
}
