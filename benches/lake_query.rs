//! The forensic query suite over a ≥10M-event lake, authtrail (DataFusion) next to DuckDB
//! on the same files with the same thread count (issue 5's performance target).
//!
//! The lake is the lake_write mix spread over three days, written through the real store
//! and cached under `~/.cache/authtrail-bench` (or `LAKE_CACHE`), keyed by the mix's and
//! the lake's versions and the event count. Each query runs once to warm up, then `RUNS`
//! times; the best time is reported. DuckDB's side is `benches/lake_query/duckdb_suite.py`
//! (`SET threads` = authtrail's threads; results fetched as Arrow).
//!
//! `cargo bench --bench lake_query`; env `EVENTS` (default 10000000), `RUNS` (default 5),
//! `THREADS` (default: one per CPU), `ONLY` (comma-separated query names),
//! `AUTHTRAIL_PYTHON` (an interpreter with duckdb). Results: `docs/benchmarks.md`.

#[path = "common/env.rs"]
mod env;
#[path = "lake_query/lake.rs"]
mod lake;
#[path = "lake_write/mix.rs"]
mod mix;
#[path = "lake_query/queries.rs"]
mod queries;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use authtrail_query::{QueryConfig, QueryEngine};

use env::{env_number, python};

/// The allocator the `authtrail` binary runs with (src/main.rs), so the bench measures the
/// engine as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Best time and row count of each query on authtrail's engine.
fn run_authtrail(
    root: &Path,
    suite: &[queries::Query],
    threads: usize,
    runs: usize,
) -> Vec<(Duration, usize)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    let config = QueryConfig {
        threads,
        timeout: Duration::from_secs(600),
        ..QueryConfig::default()
    };
    let engine = QueryEngine::open(root, config).expect("open the lake");
    runtime.block_on(async {
        let mut results = Vec::new();
        for query in suite {
            let run = || async {
                let start = Instant::now();
                let output = engine
                    .query(&query.authtrail, None)
                    .await
                    .unwrap_or_else(|error| panic!("{}: {error}", query.name));
                (start.elapsed(), output.rows())
            };
            let (_, rows) = run().await;
            let mut best = Duration::MAX;
            for _ in 0..runs {
                best = best.min(run().await.0);
            }
            results.push((best, rows));
        }
        results
    })
}

/// Best time and row count of each query on DuckDB.
fn run_duckdb(
    root: &Path,
    suite: &[queries::Query],
    threads: usize,
    runs: usize,
) -> (String, Vec<(Duration, usize)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("queries.json");
    let list: Vec<_> = suite
        .iter()
        .map(|query| serde_json::json!({"name": query.name, "sql": query.duckdb}))
        .collect();
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = env::repo_file("benches/lake_query/duckdb_suite.py");
    let output = Command::new(python())
        .arg(script)
        .arg(root)
        .arg(&file)
        .arg(threads.to_string())
        .arg(runs.to_string())
        .output()
        .expect("run python (set AUTHTRAIL_PYTHON to an interpreter that has duckdb)");
    assert!(
        output.status.success(),
        "duckdb_suite.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let results = suite
        .iter()
        .map(|query| {
            let result = &report["results"][query.name];
            (
                Duration::from_secs_f64(result["best_seconds"].as_f64().expect("seconds")),
                result["rows"].as_u64().expect("rows") as usize,
            )
        })
        .collect();
    (
        report["version"].as_str().unwrap_or("?").to_owned(),
        results,
    )
}

fn geomean(times: impl Iterator<Item = Duration>) -> Duration {
    let (sum, n) = times.fold((0.0, 0), |(sum, n), time| {
        (sum + time.as_secs_f64().ln(), n + 1)
    });
    Duration::from_secs_f64((sum / n as f64).exp())
}

fn ms(time: Duration) -> String {
    format!("{:.1}", time.as_secs_f64() * 1e3)
}

fn main() {
    let events = env_number("EVENTS", 10_000_000);
    let runs = env_number("RUNS", 5).max(1);
    let threads = env_number(
        "THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let (root, picks) = lake::lake(events);
    let only = std::env::var("ONLY").ok();
    let suite: Vec<_> = queries::suite(&picks)
        .into_iter()
        .filter(|query| {
            only.as_deref()
                .is_none_or(|only| only.split(',').any(|name| name == query.name))
        })
        .collect();
    println!(
        "lake: {} events, {} files, {:.0} MiB at {}; {threads} threads, best of {runs}",
        picks.events,
        picks.files,
        picks.bytes as f64 / (1 << 20) as f64,
        root.display()
    );
    let ours = run_authtrail(&root, &suite, threads, runs);
    let (version, theirs) = run_duckdb(&root, &suite, threads, runs);
    println!();
    println!("| query | authtrail ms | DuckDB {version} ms | ratio | rows |");
    println!("|---|---:|---:|---:|---:|");
    let mut mismatches = Vec::new();
    let mut worst: f64 = 0.0;
    for ((query, (our_time, our_rows)), (their_time, their_rows)) in
        suite.iter().zip(&ours).zip(&theirs)
    {
        let ratio = our_time.as_secs_f64() / their_time.as_secs_f64();
        worst = worst.max(ratio);
        let rows = if our_rows == their_rows {
            our_rows.to_string()
        } else {
            mismatches.push(query.name);
            format!("{our_rows} vs {their_rows} MISMATCH")
        };
        println!(
            "| {} | {} | {} | {ratio:.2} | {rows} |",
            query.name,
            ms(*our_time),
            ms(*their_time)
        );
    }
    let (our_mean, their_mean) = (
        geomean(ours.iter().map(|(time, _)| *time)),
        geomean(theirs.iter().map(|(time, _)| *time)),
    );
    println!(
        "| **geometric mean** | **{}** | **{}** | **{:.2}** | |",
        ms(our_mean),
        ms(their_mean),
        our_mean.as_secs_f64() / their_mean.as_secs_f64()
    );
    println!();
    println!(
        "target: geometric mean <= DuckDB's ({}), no query slower than 2x ({}; worst {worst:.2}x)",
        if our_mean <= their_mean {
            "met"
        } else {
            "MISSED"
        },
        if worst <= 2.0 { "met" } else { "MISSED" },
    );
    assert!(mismatches.is_empty(), "row counts differ: {mismatches:?}");
}
