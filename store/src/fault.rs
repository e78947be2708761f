//! A fault hook for tests of a full disk: when the environment variable
//! `AUTHTRAIL_FAULT_LAKE_FULL` names a file and that file exists, every lake write fails
//! with "no space left on device" until the file is removed. A test turns the fault on and
//! off by creating and deleting the file while the real binary runs; without the variable
//! the hook costs one cached lookup.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable naming the flag file.
pub const FAULT_LAKE_FULL_ENV: &str = "AUTHTRAIL_FAULT_LAKE_FULL";

/// Fails like a full disk while the flag file exists.
pub(crate) fn check(_path: &Path) -> io::Result<()> {
    static FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| std::env::var_os(FAULT_LAKE_FULL_ENV).map(PathBuf::from));
    match flag {
        Some(flag) if flag.exists() => Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("no space left on device (injected by `{FAULT_LAKE_FULL_ENV}`)"),
        )),
        _ => Ok(()),
    }
}
