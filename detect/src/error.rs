//! The crate's one error type.

/// What can go wrong building or restoring the detectors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config value that cannot work (a zero threshold, a zero-length window).
    #[error("invalid detector config: {0}")]
    Config(String),
    /// A checkpoint that does not decode.
    #[error("checkpoint does not decode: {0}")]
    Checkpoint(#[from] postcard::Error),
    /// A checkpoint that decodes but contradicts itself (damaged, or not ours).
    #[error("checkpoint is corrupt: {0}")]
    CheckpointCorrupt(String),
    /// A checkpoint written by an incompatible version.
    #[error("checkpoint version {found} is not supported (expected {expected})")]
    CheckpointVersion { found: u32, expected: u32 },
}
