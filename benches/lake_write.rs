//! Lake write, one core: JSON lines -> contract parser -> Arrow -> Parquet, next to DuckDB
//! writing its own zstd Parquet of the same file (issue 2's performance target).
//!
//! authtrail's side runs the pipeline's hot path on this thread: `parse_event` on every
//! line, `SegmentBuilder::push_event` with the wall clock as ingest time, and a flush every
//! 100k rows, either encoded in memory (`store::encode`, default options) or written by
//! `Lake::commit` (encode plus temp file, fsync, rename, directory fsync, manifest).
//! DuckDB's side is `benches/lake_write/duckdb_copy.py`: `SET threads=1`, then
//! `COPY (SELECT * FROM read_json(...)) TO ... (FORMAT parquet, COMPRESSION zstd)`.
//! Last, the whole file path with all detectors on every core, single-threaded and with
//! its decoders, next to DuckDB's COPY with as many threads (`lake_write/file_ingest.rs`).
//!
//! `cargo bench --bench lake_write`; env `EVENTS` (default 1000000) sets the event count,
//! `RUNS` (default 3) how often each in-memory stage runs (the best run is reported),
//! `AUTHTRAIL_PYTHON` the interpreter that has duckdb, `COLUMNS_DETAIL=1` prints both
//! sides' bytes per column, `KEEP_EVENTS=PATH` keeps a copy of the generated JSON lines,
//! `GEN_USERS=N` replaces the mix with `authtrail gen` traffic of N users (seed 7, every
//! attack; `GEN_SERVICE_CALLS`, default 1.0, sets service calls per second), so the
//! detectors have attacks to find.
//! Results and what they mean: `docs/benchmarks.md`.

#[path = "common/env.rs"]
mod env;
#[path = "lake_write/file_ingest.rs"]
mod file_ingest;
#[path = "lake_write/mix.rs"]
mod mix;
#[allow(dead_code)] // only its CPU clock is used here
#[path = "pipeline_e2e/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authtrail_model::{parse_event, ContractLimits, IngestMeta, Micros};
use authtrail_store::{encode, EncodeOptions, Lake, SegmentBuilder};
use parquet::file::reader::{FileReader, SerializedFileReader};

use env::{env_number, python};

/// The pipeline's default flush size.
const SEGMENT_ROWS: usize = 100_000;
const TOPIC: &str = "auth-events";
const INGEST_COLUMNS: [&str; 4] = [
    "ingest_topic",
    "ingest_partition",
    "ingest_offset",
    "ingest_time",
];

fn wall_clock_micros() -> Micros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as Micros
}

/// How far one pass goes.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Parse,
    Arrow,
    Encode,
}

/// One pass over all lines on this thread; returns the Parquet bytes produced (0 for the
/// stages that stop earlier) and how many files they made.
fn pass(lines: &[&[u8]], stage: Stage, mut lake: Option<&mut Lake>) -> (u64, usize) {
    let limits = ContractLimits::default();
    let options = EncodeOptions::default();
    let mut log = lake
        .as_deref_mut()
        .map(|lake| lake.open_partition(TOPIC, 0).expect("open partition"));
    let mut segment = SegmentBuilder::new(TOPIC, 0, 64 * 1024);
    let (mut bytes, mut files) = (0u64, 0usize);
    let mut flush = |segment: &mut SegmentBuilder| {
        let Some(finished) = segment.finish().expect("finish segment") else {
            return;
        };
        match (&mut lake, &mut log) {
            (Some(lake), Some(log)) => {
                let summary = lake.commit(log, finished).expect("commit");
                bytes += summary.bytes;
                files += summary.files.len();
            }
            _ if stage == Stage::Encode => {
                for (table, _, batch) in &finished.batches {
                    bytes += encode(*table, batch, &options).expect("encode").bytes.len() as u64;
                    files += 1;
                }
            }
            _ => {
                black_box(&finished.batches);
            }
        }
    };
    for (offset, line) in lines.iter().enumerate() {
        let now = wall_clock_micros();
        let event = parse_event(line, now, &limits).expect("the mix holds only good events");
        if stage == Stage::Parse {
            black_box(&event);
            continue;
        }
        let meta = IngestMeta {
            topic: TOPIC,
            partition: 0,
            offset: offset as i64,
            ingest_time: now,
        };
        segment.push_event(&event, &meta);
        if segment.rows() >= SEGMENT_ROWS {
            flush(&mut segment);
        }
    }
    flush(&mut segment);
    (bytes, files)
}

/// Runs `stage` `runs` times and keeps the fastest run.
fn best(lines: &[&[u8]], stage: Stage, runs: usize) -> (Duration, u64, usize) {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let (bytes, files) = pass(lines, stage, None);
            (start.elapsed(), bytes, files)
        })
        .min_by_key(|(elapsed, _, _)| *elapsed)
        .expect("at least one run")
}

/// Compressed bytes and bloom filter bytes per column over every Parquet file under `dir`.
fn column_sizes(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut sizes = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read lake dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "parquet") {
                continue;
            }
            let file = std::fs::File::open(&path).expect("open parquet");
            let reader = SerializedFileReader::new(file).expect("parquet footer");
            for group in reader.metadata().row_groups() {
                for column in group.columns() {
                    let name = column.column_path().parts()[0].clone();
                    let entry: &mut (u64, u64) = sizes.entry(name).or_default();
                    entry.0 += column.compressed_size() as u64;
                    entry.1 += column.bloom_filter_length().unwrap_or(0) as u64;
                }
            }
        }
    }
    sizes
}

fn duckdb(input: &Path, output: &Path, lake: &Path) -> serde_json::Value {
    let script = env::repo_file("benches/lake_write/duckdb_copy.py");
    let result = Command::new(python())
        .arg(script)
        .arg(input)
        .arg(output)
        .arg(lake)
        .output()
        .expect("run python (set AUTHTRAIL_PYTHON to an interpreter that has duckdb)");
    assert!(
        result.status.success(),
        "duckdb_copy.py failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).expect("duckdb_copy.py prints JSON")
}

fn main() {
    let events = env_number("EVENTS", 1_000_000);
    let runs = env_number("RUNS", 3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("events.jsonl");

    let (events, text) = match std::env::var("GEN_USERS") {
        Ok(_) => generated_traffic(),
        Err(_) => {
            let mut text = String::with_capacity(events * 330);
            let mut generator = mix::Mix::new();
            for _ in 0..events {
                generator.next_line(&mut text);
            }
            (events, text)
        }
    };
    std::fs::write(&input, &text).expect("write events");
    if let Some(copy) = std::env::var_os("KEEP_EVENTS") {
        std::fs::write(copy, &text).expect("keep a copy of the events");
    }
    drop(text);
    let data = std::fs::read(&input).expect("read events");
    let lines: Vec<&[u8]> = data
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), events);
    let input_mb = data.len() as f64 / 1e6;
    println!(
        "lake_write: {events} events, {:.1} MB of JSON lines ({:.0} bytes/event), {} rows per segment, best of {runs}",
        input_mb,
        data.len() as f64 / events as f64,
        SEGMENT_ROWS
    );

    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    let (parse, _, _) = best(&lines, Stage::Parse, runs);
    let (arrow, _, _) = best(&lines, Stage::Arrow, runs);
    let (encoded, encoded_bytes, encoded_files) = best(&lines, Stage::Encode, runs);
    println!("\nauthtrail, one thread (cumulative stages):");
    for (name, elapsed) in [
        ("decode (parse_event)", parse),
        ("decode -> Arrow (SegmentBuilder)", arrow),
        ("decode -> Arrow -> Parquet (encode)", encoded),
    ] {
        println!(
            "  {name:<40} {:>9.0} events/s  {:>6.1} MB/s  {:>6.2} s",
            rate(elapsed),
            input_mb / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
    }

    let lake_dir = dir.path().join("lake");
    let mut lake = Lake::open(&lake_dir, EncodeOptions::default()).expect("open lake");
    let start = Instant::now();
    let (committed_bytes, committed_files) = pass(&lines, Stage::Encode, Some(&mut lake));
    let committed = start.elapsed();
    println!(
        "  {:<40} {:>9.0} events/s  {:>6.1} MB/s  {:>6.2} s  (one run, {committed_files} files)",
        "... -> Lake::commit (fsync, manifest)",
        rate(committed),
        input_mb / committed.as_secs_f64(),
        committed.as_secs_f64()
    );
    // Not byte-equal to the encode pass: ingest_time is the wall clock of each run.
    let _ = committed_bytes;

    let columns = column_sizes(&lake_dir);
    let bloom: u64 = columns.values().map(|(_, bloom)| bloom).sum();
    let ingest: u64 = INGEST_COLUMNS
        .iter()
        .map(|name| columns.get(*name).map_or(0, |(size, _)| *size))
        .sum();

    let duck_out = dir.path().join("duckdb.parquet");
    let duck = duckdb(&input, &duck_out, &lake_dir);
    assert_eq!(
        (duck["lake_rows"].as_u64(), duck["lake_ids"].as_u64()),
        (Some(events as u64), Some(events as u64)),
        "DuckDB reads every event back from authtrail's lake"
    );
    let duck_seconds = duck["seconds"].as_f64().expect("seconds");
    let duck_bytes = duck["bytes"].as_u64().expect("bytes");
    assert_eq!(duck["rows"].as_u64(), Some(events as u64));

    let per_event = |bytes: u64| bytes as f64 / events as f64;
    println!(
        "\nside by side ({events} events, one thread each; DuckDB {}):",
        duck["version"].as_str().unwrap_or("?")
    );
    println!("  {:<34} {:>12} {:>12}", "", "authtrail", "DuckDB");
    println!(
        "  {:<34} {:>12.0} {:>12.0}",
        "events/s (JSON -> Parquet bytes)",
        rate(encoded),
        events as f64 / duck_seconds
    );
    println!(
        "  {:<34} {:>12.1} {:>12.1}",
        "MB/s of JSON",
        input_mb / encoded.as_secs_f64(),
        input_mb / duck_seconds
    );
    println!(
        "  {:<34} {:>12} {:>12}",
        "files",
        encoded_files,
        format!("1 ({} row groups)", duck["row_groups"])
    );
    println!(
        "  {:<34} {:>12.1} {:>12.1}",
        "bytes/event on disk",
        per_event(encoded_bytes),
        per_event(duck_bytes)
    );
    println!(
        "  {:<34} {:>12.1} {:>12}",
        "  of which ingest_* columns",
        per_event(ingest),
        "-"
    );
    println!(
        "  {:<34} {:>12.1} {:>12}",
        "  of which bloom filters",
        per_event(bloom),
        "-"
    );
    println!(
        "  {:<34} {:>12.1} {:>12.1}",
        "  contract columns + footers",
        per_event(encoded_bytes - ingest - bloom),
        per_event(duck_bytes)
    );
    println!(
        "  {:<34} {:>12.3} {:>12.3}",
        "size vs DuckDB",
        encoded_bytes as f64 / duck_bytes as f64,
        1.0
    );
    println!(
        "\nauthtrail files also carry the ingest_* columns (topic, partition, offset, ingest \
         time), bloom filters on principal/token_id/source_ip and a page index; DuckDB's \
         carry only the JSON's own fields, with the types read_json inferred."
    );
    if std::env::var_os("COLUMNS_DETAIL").is_some() {
        println!("\nauthtrail bytes/event per column (compressed, bloom):");
        for (name, (size, bloom)) in &columns {
            println!(
                "  {name:<20} {:>7.2} {:>7.2}",
                per_event(*size),
                per_event(*bloom)
            );
        }
        println!("DuckDB bytes/event per column:");
        if let Some(map) = duck["columns"].as_object() {
            for (name, size) in map {
                println!(
                    "  {name:<20} {:>7.2}",
                    per_event(size.as_u64().unwrap_or(0))
                );
            }
        }
    }
    file_ingest::compare(&input, dir.path(), runs);
}

/// `authtrail gen` traffic of `GEN_USERS` users as JSON lines, and how many events.
fn generated_traffic() -> (usize, String) {
    let config = authtrail_gen::GenConfig {
        seed: 7,
        users: env_number("GEN_USERS", 4_000),
        service_calls_per_second: env_number("GEN_SERVICE_CALLS", 1.0),
        ..authtrail_gen::GenConfig::default()
    };
    let mut text = String::new();
    let mut events = 0;
    for event in authtrail_gen::Generator::new(config).expect("generator settings") {
        text.push_str(&event.json);
        text.push('\n');
        events += 1;
    }
    (events, text)
}
