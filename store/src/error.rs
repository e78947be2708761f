//! The store's error type.

use std::path::PathBuf;

/// What can go wrong writing or recovering the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o on `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building record batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("manifest `{log}` record {line}: {message}")]
    Manifest {
        log: String,
        line: usize,
        message: String,
    },
    #[error("manifest signing key: {0}")]
    Key(String),
    #[error("lake maintenance: {0}")]
    Maintenance(String),
    #[error("object store, `{path}`: {message}")]
    Store { path: String, message: String },
    #[error("{0}")]
    Location(String),
    /// Another writer appended record `seq` of the log first: this one no longer owns it
    /// (a member whose partition moved while it was paused), and must not write on.
    #[error(
        "manifest `{log}`: record {seq} was written by another writer first; this process \
         no longer owns the log and its uncommitted files are garbage for `authtrail maintain`"
    )]
    Conflict { log: String, seq: u64 },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
