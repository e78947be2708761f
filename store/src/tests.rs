use std::fs;

use authtrail_model::{parse_event, ContractError, ContractLimits, IngestMeta, RejectKind};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::*;

const NOW: i64 = 1_795_458_600_000_000;

fn meta(offset: i64) -> IngestMeta<'static> {
    IngestMeta {
        topic: "auth-events",
        partition: 2,
        offset,
        ingest_time: NOW,
    }
}

fn segment_with(
    offsets: std::ops::Range<i64>,
    hour_of_offset: impl Fn(i64) -> u32,
) -> SegmentBuilder {
    let mut builder = SegmentBuilder::new("auth-events", 2, 1024);
    for offset in offsets {
        let message = format!(
            r#"{{"id":"e-{offset}","time":"2026-11-23T{:02}:00:00Z","kind":"authn","principal":"user:{}","outcome":"success","source_ip":"10.0.0.{}"}}"#,
            hour_of_offset(offset),
            offset % 7,
            offset % 250
        );
        let event = parse_event(message.as_bytes(), NOW, &ContractLimits::default()).unwrap();
        builder.push_event(&event, &meta(offset));
    }
    builder
}

fn read_ids(path: &Path) -> Vec<String> {
    let file = fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch.column_by_name("id").unwrap();
        let strings = arrow_array::cast::AsArray::as_string::<i32>(column);
        ids.extend(strings.iter().map(|id| id.unwrap().to_owned()));
    }
    ids
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    authtrail_testkit::parquet_files(root)
}

/// A lake in a fresh directory, with partition 2 of `auth-events` open.
fn lake_with_partition() -> (tempfile::TempDir, Lake, PartitionLog) {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open(dir.path(), EncodeOptions::default()).unwrap();
    let log = lake.open_partition("auth-events", 2).unwrap();
    (dir, lake, log)
}

/// Commits the events at `offsets`, all in hour 18.
fn commit(lake: &mut Lake, log: &mut PartitionLog, offsets: std::ops::Range<i64>) {
    let segment = segment_with(offsets, |_| 18).finish().unwrap().unwrap();
    lake.commit(log, segment).unwrap();
}

/// The records of `log`'s manifest, in order.
fn manifest_records(lake: &Lake, log: &PartitionLog) -> Vec<ManifestRecord> {
    let manifest = fs::read_to_string(lake.local_root().unwrap().join(log.name())).unwrap();
    let lines = manifest.lines();
    lines
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn commit_writes_one_file_per_table_and_hour_and_advances_the_manifest() {
    let (dir, mut lake, mut log) = lake_with_partition();
    assert_eq!(log.next_offset(), None);

    let mut builder = segment_with(10..20, |offset| if offset < 15 { 17 } else { 18 });
    let error = ContractError::new(RejectKind::InvalidJson, "expected value");
    builder.push_reject(b"{oops", 5, &error, &meta(20), NOW);
    let summary = lake
        .commit(&mut log, builder.finish().unwrap().unwrap())
        .unwrap();

    assert_eq!(summary.rows, 11);
    assert_eq!(log.next_offset(), Some(21));
    let files = parquet_files(dir.path());
    let relative: Vec<_> = files
        .iter()
        .map(|path| {
            path.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        relative,
        [
            "events/date=2026-11-23/hour=17/auth-events-2-10-20.parquet",
            "events/date=2026-11-23/hour=18/auth-events-2-10-20.parquet",
            "rejects/date=2026-11-23/hour=18/auth-events-2-10-20.parquet",
        ]
    );
    assert_eq!(
        read_ids(&files[0]),
        ["e-10", "e-11", "e-12", "e-13", "e-14"]
    );
    assert_eq!(read_ids(&files[1]).len(), 5);

    let reopened = lake.open_partition("auth-events", 2).unwrap();
    assert_eq!(reopened.next_offset(), Some(21));
}

#[test]
fn files_carry_bloom_filters_on_lookup_columns_and_a_page_index() {
    let (dir, mut lake, mut log) = lake_with_partition();
    let mut builder = segment_with(0..100, |_| 18);
    lake.commit(&mut log, builder.finish().unwrap().unwrap())
        .unwrap();

    let file = fs::File::open(&parquet_files(dir.path())[0]).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let row_group = reader.metadata().row_group(0);
    let columns: Vec<_> = row_group
        .columns()
        .iter()
        .filter(|column| column.bloom_filter_offset().is_some())
        .map(|column| column.column_path().string())
        .collect();
    assert_eq!(columns, ["principal", "source_ip", "token_id"]);
    assert!(
        row_group.column(0).column_index_offset().is_some(),
        "page index written"
    );
    assert!(matches!(
        row_group.column(0).compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
}

#[test]
fn interrupted_flush_is_rolled_back_on_open() {
    let (dir, mut lake, mut log) = lake_with_partition();
    commit(&mut lake, &mut log, 0..5);

    // A crash after the pending record and one file, before the committed record.
    let orphan = data_file_path(Table::Events, 0, "auth-events", 2, 5, 9);
    log.append(
        RecordState::Pending,
        5,
        9,
        vec![FileEntry {
            path: orphan.to_string_lossy().into_owned(),
            rows: None,
            bytes: None,
            sha256: None,
            time_range: None,
        }],
    )
    .unwrap();
    let orphan = dir.path().join(orphan);
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, b"half a parquet file").unwrap();
    drop(log);

    let log = lake.open_partition("auth-events", 2).unwrap();
    assert_eq!(
        log.next_offset(),
        Some(5),
        "the interrupted range is not in the lake"
    );
    assert!(!orphan.exists(), "the interrupted flush's file is deleted");
    let records = manifest_records(&lake, &log);
    let states: Vec<RecordState> = records.iter().map(|record| record.state).collect();
    assert_eq!(
        states,
        [
            RecordState::Pending,
            RecordState::Committed,
            RecordState::Pending,
            RecordState::Aborted
        ]
    );
}

#[test]
fn rewriting_the_same_range_replaces_the_file_instead_of_adding_one() {
    let (dir, mut lake, mut log) = lake_with_partition();
    commit(&mut lake, &mut log, 0..5);
    // A second process that never saw the first commit writes the same range again.
    let mut stale_log = {
        let mut other = Lake::open(dir.path(), EncodeOptions::default()).unwrap();
        fs::remove_file(dir.path().join(manifest_path("auth-events", 2))).unwrap();
        other.open_partition("auth-events", 2).unwrap()
    };
    commit(&mut lake, &mut stale_log, 0..5);
    assert_eq!(parquet_files(dir.path()).len(), 1);
}

#[test]
fn torn_manifest_line_is_dropped() {
    let (_dir, mut lake, mut log) = lake_with_partition();
    commit(&mut lake, &mut log, 0..5);
    let path = lake.local_root().unwrap().join(log.name());
    drop(log);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"seq":2,"state":"pend"#);
    fs::write(&path, text).unwrap();

    let mut log = lake.open_partition("auth-events", 2).unwrap();
    assert_eq!(log.next_offset(), Some(5));
    commit(&mut lake, &mut log, 5..8);
    let log = lake.open_partition("auth-events", 2).unwrap();
    assert_eq!(log.next_offset(), Some(8));
}

#[test]
fn manifest_records_chain_to_their_predecessor() {
    let (dir, mut lake, mut log) = lake_with_partition();
    for range in [0..3, 3..6] {
        commit(&mut lake, &mut log, range);
    }
    let manifest = fs::read_to_string(dir.path().join(log.name())).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    for pair in lines.windows(2) {
        let next: ManifestRecord = serde_json::from_str(pair[1]).unwrap();
        assert_eq!(next.prev, hex::encode(Sha256::digest(pair[0].as_bytes())));
    }
    let committed: ManifestRecord = serde_json::from_str(lines[1]).unwrap();
    let file = &committed.files[0];
    let bytes = fs::read(dir.path().join(&file.path)).unwrap();
    assert_eq!(
        file.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
    assert_eq!(file.rows, Some(3));
}

#[test]
fn unused_partition_skips_partitions_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open(dir.path(), EncodeOptions::default()).unwrap();
    assert_eq!(lake.unused_partition("stdin").unwrap(), 0);
    lake.open_partition("stdin", 0).unwrap();
    assert_eq!(lake.unused_partition("stdin").unwrap(), 1);
}

#[test]
fn checkpoints_are_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open(dir.path(), EncodeOptions::default()).unwrap();
    assert_eq!(lake.load_checkpoint("detect").unwrap(), None);
    lake.save_checkpoint("detect", b"first").unwrap();
    lake.save_checkpoint("detect", b"second").unwrap();
    assert_eq!(
        lake.load_checkpoint("detect").unwrap().as_deref(),
        Some(&b"second"[..])
    );
}

#[test]
fn a_loss_is_recorded_with_the_data_after_it_and_old_records_keep_their_bytes() {
    let (_dir, mut lake, mut log) = lake_with_partition();
    commit(&mut lake, &mut log, 0..3);
    // Offsets 3..=9 were gone from the broker: the next data starts at 10.
    let mut segment = segment_with(10..12, |_| 18).finish().unwrap().unwrap();
    segment.lost.push(LostRange {
        first_offset: 3,
        last_offset: 9,
    });
    lake.commit(&mut log, segment).unwrap();
    assert_eq!(log.next_offset(), Some(12));

    let records = manifest_records(&lake, &log);
    let states: Vec<_> = records.iter().map(|r| (r.state, r.lost.len())).collect();
    use RecordState::{Committed, Pending};
    assert_eq!(
        states,
        [(Pending, 0), (Committed, 0), (Pending, 0), (Committed, 1)]
    );
    assert_eq!(records[3].lost[0].len(), 7);
    // A record without a loss serializes exactly as before the field existed, so lines
    // written by older builds parse and keep their hashes and signatures.
    let manifest = fs::read_to_string(lake.local_root().unwrap().join(log.name())).unwrap();
    let first = manifest.lines().nth(1).unwrap();
    assert!(!first.contains("lost"), "{first}");
    let reparsed: ManifestRecord = serde_json::from_str(first).unwrap();
    assert_eq!(serde_json::to_string(&reparsed).unwrap(), first);
    // Reopening the log resumes after the data, not inside the loss.
    drop(log);
    let log = lake.open_partition("auth-events", 2).unwrap();
    assert_eq!(log.next_offset(), Some(12));
}
