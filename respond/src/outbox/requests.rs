//! Operator requests (`authtrail alerts retry|release`), applied by whoever holds the
//! outbox: directly by the command when no authtrail runs, else by the running process,
//! which polls `requests/` for files the command drops there.
//!
//! A request file is written under a temporary name and renamed into place, so the
//! writer never sees half a file; each file has one writer (its name holds the pid and a
//! timestamp), and only the lock holder appends to the log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Key, Outbox, State};
use crate::error::Error;
use crate::Result;

pub(crate) const REQUESTS: &str = "requests";

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Dead letters back to pending.
    Retry,
    /// Held alerts to pending, exempt from the rate limit.
    Release,
}

impl Operation {
    /// The state the operation applies to.
    pub fn from_state(self) -> State {
        match self {
            Operation::Retry => State::Dead,
            Operation::Release => State::Held,
        }
    }
}

/// One operator request: an operation on one alert id (every webhook of it) or on all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub operation: Operation,
    /// `None`: every entry in the operation's state.
    pub alert_id: Option<String>,
}

/// What `authtrail alerts retry|release` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No authtrail was running; this many entries were moved to pending.
    Applied(usize),
    /// A running authtrail picked the request up.
    HandedOver,
    /// A running authtrail holds the outbox but has not picked the request up yet; it
    /// will be applied when it does (or at the next start).
    Queued(PathBuf),
}

/// Applies `request` to `outbox`: returns the keys moved to pending.
pub fn apply(outbox: &mut Outbox, request: &Request) -> Result<Vec<Key>> {
    let from = request.operation.from_state();
    let keys: Vec<Key> = outbox
        .entries()
        .filter(|e| e.state == from)
        .filter(|e| request.alert_id.as_ref().is_none_or(|id| *id == e.alert_id))
        .map(|e| (e.alert_id.clone(), e.webhook.clone()))
        .collect();
    if keys.is_empty() {
        if let Some(id) = &request.alert_id {
            return Err(Error::NoSuchEntry(format!(
                "{id}` in state `{}",
                from.as_str()
            )));
        }
    }
    let release = request.operation == Operation::Release;
    for key in &keys {
        let attempts = outbox.get(key).map_or(0, |e| e.attempts);
        outbox.transition(key, State::Pending, attempts, None, true, release)?;
    }
    tracing::info!(operation = ?request.operation, alert_id = request.alert_id.as_deref(), entries = keys.len(), "operator request applied");
    Ok(keys)
}

/// Request files waiting in `dir`'s `requests/`, oldest first.
pub fn waiting(dir: &Path) -> Result<Vec<(PathBuf, Request)>> {
    let folder = dir.join(REQUESTS);
    let mut found = Vec::new();
    let listing = match std::fs::read_dir(&folder) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(Error::io(&folder)(error)),
    };
    for item in listing {
        let path = item.map_err(Error::io(&folder))?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Request>(&bytes).ok());
        match parsed {
            Some(request) => found.push((path, request)),
            None => {
                tracing::warn!(file = %path.display(), "ignoring an unreadable operator request");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Applies every waiting request file to `outbox` and removes it; returns the keys moved
/// to pending.
pub fn apply_waiting(outbox: &mut Outbox) -> Result<Vec<Key>> {
    let mut moved = Vec::new();
    for (path, request) in waiting(outbox.dir())? {
        match apply(outbox, &request) {
            Ok(keys) => moved.extend(keys),
            Err(Error::NoSuchEntry(what)) => {
                tracing::warn!(entry = what, "operator request matched no entry")
            }
            Err(error) => return Err(error),
        }
        std::fs::remove_file(&path).map_err(Error::io(&path))?;
    }
    Ok(moved)
}

/// Carries out `request` on the outbox in `dir`: directly when no process holds it,
/// otherwise by handing a request file to the one that does and waiting up to `wait`.
pub fn submit(dir: &Path, request: &Request, wait: Duration) -> Result<Outcome> {
    if let Some(mut outbox) = Outbox::open(dir)? {
        let mut moved = apply_waiting(&mut outbox)?.len();
        moved += apply(&mut outbox, request)?.len();
        outbox.sync()?;
        return Ok(Outcome::Applied(moved));
    }
    let folder = dir.join(REQUESTS);
    let stamp = authtrail_model::time::now_micros();
    let name = format!("{stamp:020}-{}", std::process::id());
    let temporary = folder.join(format!("{name}.tmp"));
    let path = folder.join(format!("{name}.json"));
    let bytes = serde_json::to_vec(request).expect("requests serialize");
    std::fs::write(&temporary, bytes).map_err(Error::io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(Error::io(&path))?;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if !path.exists() {
            return Ok(Outcome::HandedOver);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Outcome::Queued(path))
}
