//! The lake's layout on disk: its tables, their Hive partition columns, the reserved
//! directories beside them, and how paths are built and read back.
//!
//! ```text
//! <root>/<table>/date=YYYY-MM-DD/hour=HH/<source>-<partition>-<first_offset>-<last_offset>.parquet
//! <root>/alerts/date=YYYY-MM-DD/hour=HH/alerts-<checkpoint>.parquet
//! <root>/_manifest/<source>-<partition>.jsonl, _alerts.jsonl, _maintenance.jsonl
//! <root>/_checkpoint/<stage>          (detector state with the offsets it covers)
//! <root>/_outbox/                     (the webhook outbox)
//! <root>/_demo/                       (`authtrail demo`'s config, API key, secret)
//! ```
//!
//! The store writes these paths, the query engine reads them, and other tools (DuckDB,
//! Spark) find them by the same names, so every crate takes them from here. Reserved
//! directories start with `_`, which no table name does; the query engine lists only
//! tables, so none of them is ever scanned.

use std::fmt;
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, SchemaRef};
use chrono::{DateTime, Timelike, Utc};

use crate::event::Micros;
use crate::time::MICROS_PER_HOUR;

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Events,
    Rejects,
    Alerts,
}

impl Table {
    /// Every table, in the order `verify` and maintenance walk them.
    pub const ALL: [Table; 3] = [Table::Events, Table::Rejects, Table::Alerts];

    /// The table's directory name under the lake root, and its SQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Rejects => "rejects",
            Table::Alerts => "alerts",
        }
    }

    /// The table of a directory or SQL name.
    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|table| table.as_str() == name)
    }

    /// The Arrow schema of the table's files (without the partition columns).
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Events => crate::events_schema(),
            Table::Rejects => crate::rejects_schema(),
            Table::Alerts => crate::alerts_schema(),
        }
    }

    /// The timestamp column whose hour names a row's partition: event time for events
    /// and alerts; for rejects, which may have no valid time, when the broker got them.
    pub fn partition_time_column(self) -> &'static str {
        match self {
            Table::Events | Table::Alerts => "time",
            Table::Rejects => "ingest_time",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The partition column holding the UTC day (`2026-11-23`), text.
pub const DATE_COLUMN: &str = "date";
/// The partition column holding the UTC hour of the day (`hour=09` read as 9), a number.
pub const HOUR_COLUMN: &str = "hour";

/// The Hive partition columns every table has, outermost first, with the types a reader
/// declares for them.
pub fn partition_columns() -> [(&'static str, DataType); 2] {
    [
        (DATE_COLUMN, DataType::Utf8),
        (HOUR_COLUMN, DataType::Int32),
    ]
}

/// The directory holding the hash-chained commit manifests.
pub const MANIFEST_DIR: &str = "_manifest";
/// The alerts files' manifest under [`MANIFEST_DIR`] (partition manifests always end in
/// `-<partition>.jsonl`, so no topic's manifest can take this name).
pub const ALERTS_MANIFEST: &str = "_alerts.jsonl";
/// The retention and compaction log under [`MANIFEST_DIR`].
pub const MAINTENANCE_MANIFEST: &str = "_maintenance.jsonl";
/// The directory holding stage checkpoints (detector state with the offsets it covers).
pub const CHECKPOINT_DIR: &str = "_checkpoint";
/// The directory holding the webhook outbox.
pub const OUTBOX_DIR: &str = "_outbox";
/// The directory where `authtrail demo` keeps its config, API key and webhook secret.
pub const DEMO_DIR: &str = "_demo";

/// The UTC day (`2026-11-23`) and hour of the day of an hour counted from the epoch;
/// `None` past chrono's range (no accepted event's time is).
pub fn partition_values(hour: i64) -> Option<(String, i32)> {
    let start = DateTime::<Utc>::from_timestamp_micros(hour.checked_mul(MICROS_PER_HOUR)?)?;
    Some((start.format("%Y-%m-%d").to_string(), start.hour() as i32))
}

/// The Hive partition path of an hour: `date=YYYY-MM-DD/hour=HH`.
pub fn partition_path(hour: i64) -> String {
    match partition_values(hour) {
        Some((date, hour)) => format!("{DATE_COLUMN}={date}/{HOUR_COLUMN}={hour:02}"),
        // Unreachable for accepted events (their time is bounded); kept total for rejects.
        None => format!("{DATE_COLUMN}=unknown/{HOUR_COLUMN}=00"),
    }
}

/// The start of the hour a partition's directories name (`date=2026-11-23`, `hour=09`);
/// `None` for any other directory.
pub fn parse_partition(date_dir: &str, hour_dir: &str) -> Option<Micros> {
    let date = date_dir.strip_prefix(DATE_COLUMN)?.strip_prefix('=')?;
    let hour = hour_dir.strip_prefix(HOUR_COLUMN)?.strip_prefix('=')?;
    crate::time::parse_rfc3339(&format!("{date}T{hour}:00:00Z"))
}

/// A source name safe to use in file names: Kafka's topic alphabet (`[A-Za-z0-9._-]`),
/// anything else replaced by `_`.
pub fn safe_source_name(source: &str) -> String {
    let name: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.as_str() {
        "" | "." | ".." => format!("_{name}"),
        _ => name,
    }
}

/// The lake-relative path of the file holding `table`'s rows of one offset range in one hour.
/// The same range always gets the same name, so rewriting it after a crash replaces it.
pub fn data_file_path(
    table: Table,
    hour: i64,
    source: &str,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
) -> PathBuf {
    Path::new(table.as_str())
        .join(partition_path(hour))
        .join(format!(
            "{}-{partition}-{first_offset}-{last_offset}.parquet",
            safe_source_name(source)
        ))
}

/// The lake-relative path of the alerts written with detector checkpoint `checkpoint` in
/// one hour; a crashed pipeline writes the same checkpoint again under the same name.
pub fn alerts_file_path(hour: i64, checkpoint: u64) -> PathBuf {
    Path::new(Table::Alerts.as_str())
        .join(partition_path(hour))
        .join(format!("alerts-{checkpoint}.parquet"))
}

/// The lake-relative path of one source partition's commit manifest.
pub fn manifest_path(source: &str, partition: i32) -> PathBuf {
    Path::new(MANIFEST_DIR).join(format!("{}-{partition}.jsonl", safe_source_name(source)))
}

/// The lake-relative path of the checkpoint `name` (`detect`).
pub fn checkpoint_path(name: &str) -> PathBuf {
    Path::new(CHECKPOINT_DIR).join(safe_source_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{hour_of, parse_rfc3339};

    #[test]
    fn names_partitions_by_utc_hour() {
        let time = parse_rfc3339("2026-11-23T18:59:59.999Z").unwrap();
        assert_eq!(partition_path(hour_of(time)), "date=2026-11-23/hour=18");
        assert_eq!(partition_path(hour_of(0)), "date=1970-01-01/hour=00");
        assert_eq!(partition_path(i64::MAX), "date=unknown/hour=00");
    }

    #[test]
    fn partition_directories_read_back_as_their_hour() {
        let hour = hour_of(parse_rfc3339("2026-11-23T09:30:00Z").unwrap());
        let path = partition_path(hour);
        let (date, hour_dir) = path.split_once('/').unwrap();
        assert_eq!(
            parse_partition(date, hour_dir),
            Some(hour * MICROS_PER_HOUR)
        );
        assert_eq!(partition_values(hour), Some(("2026-11-23".to_owned(), 9)));
        assert_eq!(parse_partition("date=2026-11-23", "hour=9"), None);
        assert_eq!(parse_partition("_manifest", "hour=09"), None);
    }

    #[test]
    fn file_name_is_derived_from_source_partition_and_offsets() {
        let hour = 1_795_456_800_000_000 / MICROS_PER_HOUR;
        assert_eq!(
            data_file_path(Table::Events, hour, "auth-events", 3, 100, 199),
            Path::new("events/date=2026-11-23/hour=18/auth-events-3-100-199.parquet")
        );
        assert_eq!(
            alerts_file_path(hour, 7),
            Path::new("alerts/date=2026-11-23/hour=18/alerts-7.parquet")
        );
    }

    #[test]
    fn source_names_cannot_escape_the_lake() {
        assert_eq!(safe_source_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_source_name(".."), "_..");
        assert_eq!(safe_source_name(""), "_");
        assert_eq!(safe_source_name("file.events"), "file.events");
    }

    #[test]
    fn tables_round_trip_their_names_and_none_is_reserved() {
        for table in Table::ALL {
            assert_eq!(Table::parse(table.as_str()), Some(table));
            assert!(!table.as_str().starts_with('_'));
        }
        assert_eq!(Table::parse(MANIFEST_DIR), None);
    }
}
