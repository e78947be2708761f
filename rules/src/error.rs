//! The crate's errors.

use std::fmt;
use std::path::PathBuf;

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProblem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What can go wrong loading rules or their state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found in the rule files, one per line.
    #[error("{} problem(s) in the rules:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FileProblem>),
    #[error("rules checkpoint of version {found}, expected {expected}")]
    CheckpointVersion { found: u32, expected: u32 },
    #[error("rules checkpoint does not decode: {0}")]
    Checkpoint(#[from] postcard::Error),
}
