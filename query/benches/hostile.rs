//! What the query limits cost and how fast they act (issue 22), printed, not asserted:
//! - the largest operator chain that plans (one below the depth bound) and its planning
//!   time, and the first refused;
//! - time to cancel: from a query's 408 until its place in the pool is free again, over
//!   repeated cross joins of `range` (no lake needed), p50/p99/max;
//! - resident memory before and after refused amplifying queries.
//!
//! `cargo bench -p authtrail-query --bench hostile`

use std::time::{Duration, Instant};

use authtrail_query::{Error, QueryConfig, QueryEngine, MAX_EXPRESSION_DEPTH};
use hdrhistogram::Histogram;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let lake = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(300);
    let engine = QueryEngine::open(
        lake.path(),
        QueryConfig {
            timeout,
            concurrency: 1,
            queue: 0,
            memory_limit_mib: 256,
            ..QueryConfig::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
    let patient = QueryEngine::open(lake.path(), QueryConfig::default()).unwrap();
    for n in [16, 64, 128, 192] {
        let started = Instant::now();
        let planned = runtime.block_on(patient.query(&chain(n), None));
        println!("{n} terms: {:?} ({})", started.elapsed(), planned.is_ok());
    }
    let started = Instant::now();
    let planned = runtime.block_on(patient.query(&chain(MAX_EXPRESSION_DEPTH - 1), None));
    println!(
        "largest chain that plans: {} terms, answered in {:?} ({})",
        MAX_EXPRESSION_DEPTH - 1,
        started.elapsed(),
        if planned.is_ok() { "ok" } else { "FAILED" }
    );
    let started = Instant::now();
    let refused = runtime.block_on(engine.query(&chain(10_000), None));
    println!(
        "10,000 terms: {} in {:?}",
        match refused {
            Err(Error::TooComplex(_)) => "refused (too complex)".to_owned(),
            other => format!("{other:?}"),
        },
        started.elapsed()
    );

    let mut cancel = Histogram::<u64>::new(3).unwrap();
    let cross = "SELECT sum(a.value * b.value) FROM range(1000000) a, range(1000000) b";
    for _ in 0..40 {
        let result = runtime.block_on(engine.query(cross, None));
        assert!(
            matches!(result, Err(Error::Timeout(_))),
            "{} {result:?}",
            cancel.len()
        );
        let timed_out = Instant::now();
        // With one place and no queue, `SELECT 1` is refused until the cancelled join stops.
        loop {
            match runtime.block_on(engine.query("SELECT 1", None)) {
                Ok(_) => break,
                Err(Error::Busy) => std::thread::sleep(Duration::from_micros(200)),
                Err(other) => panic!("{other}"),
            }
        }
        cancel
            .record(timed_out.elapsed().as_micros() as u64)
            .unwrap();
    }
    println!(
        "time to cancel after the 408 ({} cross joins): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        cancel.len(),
        cancel.value_at_quantile(0.5) as f64 / 1000.0,
        cancel.value_at_quantile(0.99) as f64 / 1000.0,
        cancel.max() as f64 / 1000.0
    );

    let before = rss_kib();
    for sql in [
        "SELECT cardinality(range(1, 200000001))",
        "SELECT length(repeat('x', 1000000000))",
        "SELECT levenshtein(repeat('a', 180000), repeat('b', 180000))",
    ] {
        let started = Instant::now();
        let result = runtime.block_on(engine.query(sql, None));
        println!(
            "{sql}: {} in {:?}, RSS {} KiB",
            if result.is_err() {
                "refused"
            } else {
                "ANSWERED"
            },
            started.elapsed(),
            rss_kib()
        );
    }
    println!(
        "RSS before the refused queries {before} KiB, after {} KiB",
        rss_kib()
    );
}
