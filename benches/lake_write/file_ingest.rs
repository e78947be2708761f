//! The lake_write bench's last phase: the whole file path (`ingest_lines`: read, decode,
//! all ten detectors, Arrow, Parquet, durable commits) with every core, next to DuckDB's
//! JSON lines → zstd Parquet with as many threads, on the same file (issue 20's target:
//! ≥ 1.5× DuckDB's events/s).

use std::io::BufReader;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_detect::DetectConfig;
use authtrail_ingest::{Detection, IngestStats, PipelineConfig};
use authtrail_model::adapt::Format;
use authtrail_store::{EncodeOptions, Lake};
use tokio_util::sync::CancellationToken;

use crate::env;
use crate::process::cpu_seconds;

/// One conversion of the file: how long it took on the wall and on the CPU (every
/// thread), and what came out.
pub struct FileRun {
    pub wall: Duration,
    pub cpu: f64,
    pub events: u64,
    pub alerts: u64,
}

/// `ingest_lines` of `input` into a fresh lake at `root` with all detectors and
/// `decode_threads` decoders (0: decoding and detection on the pipeline thread).
pub fn authtrail(input: &Path, root: &Path, decode_threads: usize) -> FileRun {
    let lake = Lake::open(root, EncodeOptions::default()).expect("open lake");
    let stats = Arc::new(IngestStats::default());
    let detection =
        Detection::open(&lake, &DetectConfig::default(), stats.clone()).expect("detectors");
    let config = PipelineConfig {
        decode_threads: Some(decode_threads),
        ..PipelineConfig::default()
    };
    let cpu = cpu_seconds();
    let started = Instant::now();
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(input).expect("input"));
    authtrail_ingest::ingest_lines(
        lake,
        &config,
        reader,
        "events.jsonl",
        "events.jsonl",
        0,
        Format::contract(),
        Some(detection),
        stats.clone(),
        &CancellationToken::new(),
    )
    .expect("ingest the file");
    let wall = started.elapsed();
    let totals = stats.snapshot();
    FileRun {
        wall,
        cpu: cpu_seconds() - cpu,
        events: totals.accepted,
        alerts: totals.alerts,
    }
}

/// DuckDB's `COPY (SELECT * FROM read_json(...)) TO ... (FORMAT parquet, COMPRESSION
/// zstd)` of `input` with `threads` threads (`benches/pipeline_e2e/duckdb_convert.py`).
pub fn duckdb(input: &Path, output: &Path, threads: usize) -> FileRun {
    let result = Command::new(env::python())
        .arg(env::repo_file("benches/pipeline_e2e/duckdb_convert.py"))
        .arg(input)
        .arg(output)
        .arg(threads.to_string())
        .output()
        .expect("run python (set AUTHTRAIL_PYTHON to an interpreter that has duckdb)");
    assert!(
        result.status.success(),
        "duckdb_convert.py failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_slice(&result.stdout).expect("duckdb_convert.py prints JSON");
    let _ = std::fs::remove_file(output);
    FileRun {
        wall: Duration::from_secs_f64(out["seconds"].as_f64().expect("seconds")),
        cpu: out["cpu_seconds"].as_f64().expect("cpu_seconds"),
        events: out["rows"].as_u64().expect("rows"),
        alerts: 0,
    }
}

/// Runs the three sides `runs` times, alternating, and prints each run and the ratio.
pub fn compare(input: &Path, dir: &Path, runs: usize) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\nfile -> lake with all detectors, {cores} cores ({runs} runs, alternating; \
         DuckDB with {cores} threads; load {}):",
        load_average()
    );
    println!(
        "  {:<44} {:>10} {:>8} {:>12} {:>7}",
        "", "events/s", "wall s", "CPU s/M ev", "alerts"
    );
    let row = |name: &str, run: &FileRun| {
        println!(
            "  {name:<44} {:>10.0} {:>8.2} {:>12.2} {:>7}",
            run.events as f64 / run.wall.as_secs_f64(),
            run.wall.as_secs_f64(),
            run.cpu / (run.events as f64 / 1e6),
            run.alerts
        );
    };
    for run in 1..=runs {
        let lake = |name: &str| dir.join(format!("file-lake-{name}-{run}"));
        let serial = authtrail(input, &lake("serial"), 0);
        let _ = std::fs::remove_dir_all(lake("serial"));
        let parallel = authtrail(input, &lake("parallel"), cores);
        let _ = std::fs::remove_dir_all(lake("parallel"));
        let duck = duckdb(input, &dir.join("duckdb-file.parquet"), cores);
        assert_eq!(serial.alerts, parallel.alerts, "the same alerts either way");
        println!("  run {run}:");
        row("authtrail, decode_threads = 0 (one thread)", &serial);
        row(&format!("authtrail, decode_threads = {cores}"), &parallel);
        row(&format!("DuckDB, {cores} threads"), &duck);
        let rate = |run: &FileRun| run.events as f64 / run.wall.as_secs_f64();
        let per_cpu = |run: &FileRun| run.events as f64 / run.cpu;
        println!(
            "  {:<44} {:>10.2}   (one thread {:.2}; per CPU second {:.2})",
            format!("authtrail ({cores} decoders) x DuckDB, events/s"),
            rate(&parallel) / rate(&duck),
            rate(&serial) / rate(&duck),
            per_cpu(&parallel) / per_cpu(&duck),
        );
    }
    println!("  load after: {}", load_average());
}

/// The 1, 5 and 15 minute load averages (other work on the machine).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}
