//! Crash-safe file writes: a file becomes visible under its final name only once its bytes
//! and its directory entry are on disk.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::Result;

/// Writes `bytes` to `path` via `path.tmp`: write, fsync, rename, fsync the directory.
/// Writing the same bytes to the same path again (a replay) leaves one file.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_staged(path, bytes)?;
    publish(path)
}

/// Writes `bytes` durably under `path`'s temporary name, for [`publish`] to rename later.
pub(crate) fn write_file_staged(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp).map_err(Error::io(&tmp))?;
    let written = crate::fault::check(&tmp)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        drop(file);
        // Leave no half-written temporary behind to fill the disk further.
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp)(error));
    }
    Ok(())
}

/// Renames a staged file into place and makes the rename durable.
pub(crate) fn publish(path: &Path) -> Result<()> {
    fs::rename(temp_path(path), path).map_err(Error::io(path))?;
    sync_dir(path.parent().expect("lake files live in a directory"))
}

/// What a file's temporary name adds to its final name.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// The temporary name a file is written under before it is renamed into place.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Makes a directory's entries (renames, new files, new subdirectories) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir_handle| dir_handle.sync_all())
        .map_err(Error::io(dir))
}

/// Appends `bytes` to an open file and makes them durable before returning.
/// On failure (a full disk) the file is cut back to where it was, so a retried append
/// does not follow a torn line.
pub(crate) fn append_durably(file: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    let before = file.metadata().map_err(Error::io(path))?.len();
    let written = crate::fault::check(path)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_data());
    written.map_err(|error| {
        if let Err(truncate) = file.set_len(before) {
            tracing::warn!(path = %path.display(), error = %truncate, "could not cut back a failed manifest append");
        }
        Error::io(path)(error)
    })
}

/// Opens a file for appending, creating it (durably) when it does not exist yet.
pub(crate) fn open_for_append(path: &Path) -> Result<File> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(Error::io(path))?;
    if !existed {
        sync_dir(path.parent().expect("manifests live in a directory"))?;
    }
    Ok(file)
}

/// Directories known to exist durably, so each is created and fsynced once per process.
#[derive(Default)]
pub(crate) struct DurableDirs {
    known: HashSet<PathBuf>,
}

impl DurableDirs {
    /// Creates `dir` and any missing parents below `root`, fsyncing each new entry's parent.
    pub(crate) fn ensure(&mut self, root: &Path, dir: &Path) -> Result<()> {
        if self.known.contains(dir) {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cursor = dir;
        while !cursor.exists() {
            missing.push(cursor.to_path_buf());
            match cursor.parent() {
                Some(parent) if parent.starts_with(root) => cursor = parent,
                _ => break,
            }
        }
        for new_dir in missing.iter().rev() {
            match fs::create_dir(new_dir) {
                Ok(()) => {}
                // Another process sharing the lake created it first: fine.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(Error::io(new_dir)(error)),
            }
            sync_dir(new_dir.parent().expect("created below the lake root"))?;
        }
        self.known.insert(dir.to_path_buf());
        Ok(())
    }
}
