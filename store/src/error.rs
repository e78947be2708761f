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
    #[error("manifest `{path}` line {line}: {message}")]
    Manifest {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("manifest signing key: {0}")]
    Key(String),
    #[error("lake maintenance: {0}")]
    Maintenance(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
