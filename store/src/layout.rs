//! Where things live in the lake (see architecture.md, "Lake layout").
//!
//! ```text
//! <root>/<table>/date=YYYY-MM-DD/hour=HH/<source>-<partition>-<first_offset>-<last_offset>.parquet
//! <root>/_manifest/<source>-<partition>.jsonl
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use authtrail_model::time::partition_path;

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Events,
    Rejects,
    Alerts,
}

impl Table {
    /// The table's directory name under the lake root.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Rejects => "rejects",
            Table::Alerts => "alerts",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The directory holding the commit manifests.
pub const MANIFEST_DIR: &str = "_manifest";

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

/// The lake-relative path of one source partition's commit manifest.
pub fn manifest_path(source: &str, partition: i32) -> PathBuf {
    Path::new(MANIFEST_DIR).join(format!("{}-{partition}.jsonl", safe_source_name(source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_is_derived_from_source_partition_and_offsets() {
        let hour = 1_795_456_800_000_000 / authtrail_model::time::MICROS_PER_HOUR;
        assert_eq!(
            data_file_path(Table::Events, hour, "auth-events", 3, 100, 199),
            Path::new("events/date=2026-11-23/hour=18/auth-events-3-100-199.parquet")
        );
    }

    #[test]
    fn source_names_cannot_escape_the_lake() {
        assert_eq!(safe_source_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_source_name(".."), "_..");
        assert_eq!(safe_source_name(""), "_");
        assert_eq!(safe_source_name("file.events"), "file.events");
    }
}
