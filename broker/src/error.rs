//! The broker's one error type.

use std::path::PathBuf;

/// Why the broker could not start, or a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the broker's data directory.
    #[error("embedded broker storage `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("the embedded broker's directory `{0}` is in use by another process")]
    Locked(PathBuf),
    /// The listening socket.
    #[error("embedded broker cannot listen on `{address}`: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("embedded broker: {0}")]
    Config(String),
    /// The committed group offsets file is unreadable.
    #[error("embedded broker group offsets `{path}` are corrupt: {source}")]
    Offsets {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The runtime serving connections did not start.
    #[error("embedded broker runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
