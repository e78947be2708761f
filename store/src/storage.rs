//! The lake's files, wherever they live: every read, write, listing and deletion of the
//! store goes through [`Storage`], with lake-relative paths (`events/date=…/x.parquet`).
//!
//! On a local filesystem a write is durable when it returns (temporary name, fsync,
//! rename, directory fsync; see `durable.rs`). On an object store a write is one PUT,
//! atomic and durable by the store's own guarantee, under its final name: there is no
//! rename, so a file of an unfinished flush is visible until the manifest's rollback (or
//! `maintain`) deletes it. Readers only trust what a committed manifest record names.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use authtrail_model::Micros;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::durable::{self, DurableDirs};
use crate::error::Error;
use crate::manifest::PartitionLog;
use crate::remote::{Listed, RemoteLake};
use crate::{LakeLocation, Result};

/// A lake's files: a local directory or an object store prefix.
pub(crate) enum Storage {
    Local { root: PathBuf, dirs: DurableDirs },
    Remote(Arc<RemoteLake>),
}

impl Storage {
    pub(crate) fn new(location: &LakeLocation) -> Storage {
        match location {
            LakeLocation::Local(root) => Storage::Local {
                root: root.clone(),
                dirs: DurableDirs::default(),
            },
            LakeLocation::Remote(remote) => Storage::Remote(remote.clone()),
        }
    }

    /// Writes `bytes` at `relative` durably, replacing any file of that name.
    pub(crate) fn put(&mut self, relative: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Storage::Local { root, dirs } => {
                let path = root.join(relative);
                dirs.ensure(root, path.parent().expect("lake files live in a directory"))?;
                durable::write_file_atomically(&path, bytes)
            }
            Storage::Remote(remote) => remote.put(relative, bytes),
        }
    }

    /// Writes a file of a flush `log` is recording, durably, only while `log` is still
    /// held: a writer that lost its partition must not replace a file the new owner
    /// committed under the same name (same offset range). Locally the check comes between
    /// the staged write and the rename; on an object store the file is created only if
    /// absent, and one already there (a retry of the same flush, a lost writer's garbage)
    /// is replaced only after the check.
    pub(crate) fn put_for(
        &mut self,
        log: &PartitionLog,
        relative: &str,
        bytes: &[u8],
    ) -> Result<()> {
        match self {
            Storage::Local { .. } => {
                self.put_staged(relative, bytes)?;
                if !log.still_held()? {
                    self.remove(&[format!("{relative}{}", durable::TEMP_SUFFIX)])?;
                    return Err(log.lost());
                }
                self.publish(relative)
            }
            Storage::Remote(remote) => {
                if remote.create(relative, bytes)? {
                    return Ok(());
                }
                if !log.still_held()? {
                    return Err(log.lost());
                }
                remote.put(relative, bytes)
            }
        }
    }

    /// Writes `bytes` for `relative` where readers do not see it yet, until
    /// [`publish`](Self::publish). An object store cannot rename: the object is written
    /// under its final name at once, which compaction's manifest records allow for.
    pub(crate) fn put_staged(&mut self, relative: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Storage::Local { root, dirs } => {
                let path = root.join(relative);
                dirs.ensure(root, path.parent().expect("lake files live in a directory"))?;
                durable::write_file_staged(&path, bytes)
            }
            Storage::Remote(remote) => remote.put(relative, bytes),
        }
    }

    /// Moves a file written by [`put_staged`](Self::put_staged) into place.
    pub(crate) fn publish(&mut self, relative: &str) -> Result<()> {
        match self {
            Storage::Local { root, .. } => durable::publish(&root.join(relative)),
            Storage::Remote(_) => Ok(()),
        }
    }

    /// Finishes a [`publish`](Self::publish) a crash cut short: a staged file whose final
    /// name is missing is moved into place.
    pub(crate) fn finish_publish(&mut self, relative: &str) -> Result<()> {
        match self {
            Storage::Local { root, .. } => {
                let path = root.join(relative);
                if !path.exists() && durable::temp_path(&path).exists() {
                    durable::publish(&path)?;
                }
                Ok(())
            }
            Storage::Remote(_) => Ok(()),
        }
    }

    /// The file at `relative`, or `None` when there is none.
    pub(crate) fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        match self {
            Storage::Local { root, .. } => {
                let path = root.join(relative);
                match fs::read(&path) {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(error) => Err(Error::io(&path)(error)),
                }
            }
            Storage::Remote(remote) => remote.get(relative),
        }
    }

    /// Whether a file is at `relative`.
    pub(crate) fn exists(&self, relative: &str) -> Result<bool> {
        match self {
            Storage::Local { root, .. } => Ok(root.join(relative).exists()),
            Storage::Remote(remote) => remote.exists(relative),
        }
    }

    /// The sha256 (hex) of the file at `relative`, or `None` when there is none.
    pub(crate) fn sha256(&self, relative: &str) -> Result<Option<String>> {
        match self {
            Storage::Local { root, .. } => sha256_file(&root.join(relative)),
            Storage::Remote(remote) => Ok(remote
                .get(relative)?
                .map(|bytes| hex::encode(Sha256::digest(&bytes)))),
        }
    }

    /// Deletes the files at `relatives` (and, locally, their temporary twins) that may or
    /// may not exist, durably.
    pub(crate) fn remove(&mut self, relatives: &[String]) -> Result<()> {
        match self {
            Storage::Local { root, .. } => remove_local(root, relatives),
            Storage::Remote(remote) => remote.delete(relatives),
        }
    }

    /// Every file below the directory `relative`, all levels, sorted by path. Locally
    /// this includes files still under their temporary names (`….tmp`).
    pub(crate) fn list(&self, relative: &str) -> Result<Vec<Listed>> {
        match self {
            Storage::Local { root, .. } => list_local(root, relative),
            Storage::Remote(remote) => remote.list(relative),
        }
    }

    /// Removes the directory `relative` if it is empty (an object store has none).
    pub(crate) fn remove_empty_dir(&self, relative: &str) {
        if let Storage::Local { root, .. } = self {
            // Only an empty directory goes; one a writer added a file to meanwhile stays.
            let _ = fs::remove_dir(root.join(relative));
        }
    }

    /// The local directory, for what only a local lake has (the maintenance lock, the
    /// manifests' JSON-lines files).
    pub(crate) fn local_root(&self) -> Option<&Path> {
        match self {
            Storage::Local { root, .. } => Some(root),
            Storage::Remote(_) => None,
        }
    }

    /// The object store, for the manifests' one-object-per-record logs.
    pub(crate) fn remote(&self) -> Option<&Arc<RemoteLake>> {
        match self {
            Storage::Local { .. } => None,
            Storage::Remote(remote) => Some(remote),
        }
    }

    /// Creates the local directory `relative` durably (no-op on an object store).
    pub(crate) fn ensure_dir(&mut self, relative: &str) -> Result<()> {
        match self {
            Storage::Local { root, dirs } => {
                let dir = root.join(relative);
                dirs.ensure(root, &dir)
            }
            Storage::Remote(_) => Ok(()),
        }
    }
}

fn sha256_file(path: &Path) -> Result<Option<String>> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(path)(error)),
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(Error::io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

fn remove_local(root: &Path, relatives: &[String]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for relative in relatives {
        let path = root.join(relative);
        for candidate in [durable::temp_path(&path), path.clone()] {
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
        durable::sync_dir(&dir).or_else(|error| match error {
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => Err(other),
        })?;
    }
    Ok(())
}

fn list_local(root: &Path, relative: &str) -> Result<Vec<Listed>> {
    let mut found = Vec::new();
    let mut stack = vec![root.join(relative)];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(Error::io(&dir)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(Error::io(&path))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let metadata = entry.metadata().map_err(Error::io(&path))?;
            let modified = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_micros() as Micros);
            found.push(Listed {
                path: crate::path_text(path.strip_prefix(root).expect("below the root")),
                size: metadata.len(),
                modified,
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}
