//! The respond crate's error type.

use std::path::PathBuf;

/// What stops the responder from starting or from recording an alert.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("webhook `{webhook}`: {message}")]
    Config { webhook: String, message: String },
    #[error("outbox `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox `{path}` line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no outbox entry `{0}`")]
    NoSuchEntry(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn config(webhook: &str, message: impl Into<String>) -> Error {
        Error::Config {
            webhook: webhook.to_owned(),
            message: message.into(),
        }
    }
}
