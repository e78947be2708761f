//! What the embedded broker is started with.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The embedded broker's settings (composed by the caller from its own config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// The data directory: logs, committed group offsets, the port last used, a lock.
    pub dir: PathBuf,
    /// The port on 127.0.0.1; 0 reuses the port of the directory's last run if it is free,
    /// else any free port.
    pub port: u16,
    /// Topics to create (or keep) and their partition counts; topics already on disk stay.
    pub topics: Vec<(String, i32)>,
    /// The bound on all partitions' bytes; past it, produce requests are refused.
    pub max_bytes: u64,
    /// Bytes at which a partition's log starts a new segment file (the unit of deletion).
    pub segment_bytes: u64,
    /// Where the log of a partition that has none on disk yet starts (default 0). authtrail
    /// passes where its lake ends, so a lost broker directory never numbers new messages
    /// with offsets the lake already holds (they would be skipped as already stored).
    pub first_offsets: BTreeMap<(String, i32), i64>,
}

impl BrokerConfig {
    /// One topic of `partitions` partitions in `dir`, the default bound (1 GiB).
    pub fn new(dir: impl Into<PathBuf>, topic: &str, partitions: i32) -> BrokerConfig {
        BrokerConfig {
            dir: dir.into(),
            port: 0,
            topics: vec![(topic.to_owned(), partitions)],
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            first_offsets: BTreeMap::new(),
        }
    }
}
