use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use arrow_array::cast::AsArray;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::storage_tests::segment;
use crate::{verify, EncodeOptions, VerifyOptions};

/// 2026-11-23T20:00Z.
const NOW: Micros = 1_795_464_000_000_000;

/// A lake with `flushes` flushes of 10 events each, every flush spread over hours 17 and 18
/// of 2026-11-23, and one older flush on 2026-11-13.
fn lake_with(dir: &Path, flushes: i64) -> Lake {
    let mut lake = Lake::open(dir, EncodeOptions::default()).unwrap();
    let mut log = lake.open_partition("auth-events", 1).unwrap();
    for flush in 0..=flushes {
        let offsets = flush * 10..flush * 10 + 10;
        lake.commit(&mut log, segment(offsets, flush == flushes))
            .unwrap();
    }
    lake
}

/// How many times each event id occurs across the lake's files.
fn id_counts(root: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut stack = vec![root.join("events")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                let file = File::open(&path).unwrap();
                for batch in ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap()
                {
                    let batch = batch.unwrap();
                    for id in batch.column_by_name("id").unwrap().as_string::<i32>() {
                        *counts.entry(id.unwrap().to_owned()).or_default() += 1;
                    }
                }
            }
        }
    }
    counts
}

fn assert_exactly_once(root: &Path, events: usize) {
    let counts = id_counts(root);
    assert_eq!(counts.len(), events, "every event is in the lake");
    assert!(counts.values().all(|&count| count == 1), "{counts:?}");
}

fn assert_verifies(root: &Path) {
    let report = verify(root, &VerifyOptions::default()).unwrap();
    assert_eq!(report.findings, [], "{:?}", report.notes);
}

fn parquet_count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            let path = entry.as_ref().unwrap().path();
            path.extension().is_some_and(|ext| ext == "parquet")
        })
        .count()
}

fn config(retention: Option<u32>) -> MaintenanceConfig {
    MaintenanceConfig {
        retention_days: RetentionDays {
            events: retention,
            ..RetentionDays::default()
        },
        compact_min_files: 3,
        compact_after: Duration::from_secs(3600),
        interval: Duration::ZERO,
        garbage_after: Duration::from_secs(3600),
    }
}

#[test]
fn retention_deletes_expired_hours_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake_with(dir.path(), 2);
    let report = lake.maintain(&config(Some(7)), NOW).unwrap();
    assert_eq!(report.partitions_expired, 1);
    assert_eq!(report.files_expired, 1);
    assert!(!dir.path().join("events/date=2026-11-13").exists());
    assert_exactly_once(dir.path(), 20);
    assert_verifies(dir.path());
    // A second run finds nothing more to delete.
    let again = lake.maintain(&config(Some(7)), NOW).unwrap();
    assert_eq!(again.partitions_expired, 0);
}

#[test]
fn compaction_replaces_a_closed_hours_small_files_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake_with(dir.path(), 4);
    let hour_17 = dir.path().join("events/date=2026-11-23/hour=17");
    assert_eq!(parquet_count(&hour_17), 4);
    let report = lake.maintain(&config(None), NOW).unwrap();
    assert_eq!(report.files_compacted, 2, "hours 17 and 18");
    assert_eq!(report.files_replaced, 8);
    assert_eq!(parquet_count(&hour_17), 1);
    assert!(hour_17.join("auth-events-1-0-39.parquet").exists());
    assert_exactly_once(dir.path(), 50);
    assert_verifies(dir.path());

    // Hour 18 ends at 19:00; with a two-hour grace it is not closed yet at 20:00.
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake_with(dir.path(), 4);
    let grace = MaintenanceConfig {
        compact_after: Duration::from_secs(2 * 3600),
        ..config(None)
    };
    assert_eq!(lake.maintain(&grace, NOW).unwrap().files_compacted, 1);
}

#[test]
fn a_crash_at_any_compaction_step_loses_and_duplicates_nothing() {
    for step in [Step::Pending, Step::Written, Step::Committed, Step::Renamed] {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = lake_with(dir.path(), 4);
        {
            let mut run = Maintenance::open(&mut lake).unwrap();
            run.fail_after = Some(step);
            let mut report = MaintenanceReport::default();
            let error = run.compact(&config(None), NOW, &mut report).unwrap_err();
            assert!(error.to_string().contains("injected"), "{error}");
        }
        // Reopening the log rolls back or finishes the interrupted step.
        drop(Maintenance::open(&mut lake).unwrap());
        assert_exactly_once(dir.path(), 50);
        assert_verifies(dir.path());
        let hour_17 = dir.path().join("events/date=2026-11-23/hour=17");
        let expected = if step == Step::Committed || step == Step::Renamed {
            1
        } else {
            4
        };
        assert_eq!(parquet_count(&hour_17), expected, "after {step:?}");

        // The next run completes the compaction.
        lake.maintain(&config(None), NOW).unwrap();
        assert_eq!(parquet_count(&hour_17), 1, "after {step:?}");
        assert_exactly_once(dir.path(), 50);
        assert_verifies(dir.path());
    }
}

#[test]
fn only_one_maintenance_run_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake_with(dir.path(), 1);
    let mut other = lake.handle();
    let _run = Maintenance::open(&mut lake).unwrap();
    let error = other.maintain(&config(None), NOW).unwrap_err();
    assert!(error.to_string().contains("lock"), "{error}");
}
