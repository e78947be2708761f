//! `[lake.maintenance]`: retention and compaction settings.

use std::time::Duration;

use serde::Deserialize;

use authtrail_model::lake::Table;

/// Retention and compaction of the lake.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Days each table is kept; whole hour partitions older than that are deleted (and the
    /// deletion recorded in the manifest). A table left out is kept forever.
    pub retention_days: RetentionDays,
    /// Compact an hour partition once it holds at least this many files (one per flush).
    pub compact_min_files: usize,
    /// An hour counts as closed, and may be compacted, this long after it ends (late
    /// events still arriving for it would otherwise start a new small file at once).
    #[serde(with = "humantime_serde")]
    pub compact_after: Duration,
    /// How often `authtrail ingest` runs retention and compaction in the background;
    /// `0s` turns that off (run `authtrail maintain` instead).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Files in no manifest record (left by a writer that lost its partition, or by a
    /// crash) are deleted once last written this long ago.
    #[serde(with = "humantime_serde")]
    pub garbage_after: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            retention_days: RetentionDays::default(),
            compact_min_files: 8,
            compact_after: Duration::from_secs(2 * 3600),
            interval: Duration::ZERO,
            garbage_after: Duration::from_secs(3600),
        }
    }
}

/// `retention_days` per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionDays {
    /// Days of `events` kept.
    pub events: Option<u32>,
    /// Days of `rejects` kept.
    pub rejects: Option<u32>,
    /// Days of `alerts` kept.
    pub alerts: Option<u32>,
}

impl RetentionDays {
    /// The retention of `table`, if it has one.
    pub fn of(&self, table: Table) -> Option<u32> {
        match table {
            Table::Events => self.events,
            Table::Rejects => self.rejects,
            Table::Alerts => self.alerts,
        }
    }
}
