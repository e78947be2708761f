//! Flush-to-commit latency of the lake on a local disk and on an S3-compatible server
//! (moto on this machine), and the requests each flush sends to the object store.
//!
//! Each flush is one source partition's segment of `EVENTS_PER_FLUSH` events spread over
//! two hours, so it writes two Parquet files: a pending record, two files, a committed
//! record. The latency is `Lake::commit` from call to return (encoding included), which is
//! what a flush waits before the source may commit its offsets.
//!
//! ```text
//! cargo bench -p authtrail-store --bench lake_commit            # 200 flushes each
//! AUTHTRAIL_BENCH_FLUSHES=1000 cargo bench -p authtrail-store --bench lake_commit
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use authtrail_model::{parse_event, ContractLimits, IngestMeta};
use authtrail_store::{EncodeOptions, Lake, LakeLocation, Segment, SegmentBuilder};
use authtrail_testkit::S3Server;
use hdrhistogram::Histogram;

const EVENTS_PER_FLUSH: i64 = 1_000;
const NOW: i64 = 1_795_464_000_000_000;

fn segment(flush: i64) -> Segment {
    let mut builder = SegmentBuilder::new("auth-events", 0, 1024);
    for offset in flush * EVENTS_PER_FLUSH..(flush + 1) * EVENTS_PER_FLUSH {
        let message = format!(
            r#"{{"id":"e-{offset}","time":"2026-11-23T{}:{:02}:00Z","kind":"authn","principal":"user:u{}","outcome":"success","source_ip":"10.0.{}.{}"}}"#,
            17 + offset % 2,
            offset % 60,
            offset % 997,
            offset % 7,
            offset % 250
        );
        let event = parse_event(message.as_bytes(), NOW, &ContractLimits::default()).unwrap();
        let meta = IngestMeta {
            topic: "auth-events",
            partition: 0,
            offset,
            ingest_time: NOW,
        };
        builder.push_event(&event, &meta);
    }
    builder.finish().unwrap().unwrap()
}

/// Commits `flushes` segments and prints the latency quantiles (and, on an object store,
/// the requests per flush).
fn run(name: &str, location: LakeLocation, flushes: i64) {
    let mut lake = Lake::open_at(location.clone(), EncodeOptions::default()).unwrap();
    let requests = || location.remote().map_or(0, |remote| remote.requests_sent());
    let before_open = requests();
    let opened = Instant::now();
    let mut log = lake.open_partition("auth-events", 0).unwrap();
    let open_micros = opened.elapsed().as_micros();
    let open_requests = requests() - before_open;
    let segments: Vec<Segment> = (0..flushes).map(segment).collect();
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let before = requests();
    for segment in segments {
        let started = Instant::now();
        lake.commit(&mut log, segment).unwrap();
        latency
            .record(started.elapsed().as_micros() as u64)
            .unwrap();
    }
    let per_flush = (requests() - before) as f64 / flushes as f64;
    let ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "{name:>6}: {flushes} flushes of {EVENTS_PER_FLUSH} events (2 files each): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {per_flush:.1} requests per flush; \
         opening the partition's log: {:.1} ms, {open_requests} requests",
        ms(0.5),
        ms(0.99),
        latency.max() as f64 / 1000.0,
        open_micros as f64 / 1000.0,
    );
    // Reopening a log with `flushes` commits reads only its tail.
    let before = requests();
    let reopened = Instant::now();
    lake.open_partition("auth-events", 0).unwrap();
    println!(
        "{name:>6}: reopening after {flushes} flushes: {:.1} ms, {} requests",
        reopened.elapsed().as_secs_f64() * 1000.0,
        requests() - before
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let flushes: i64 = std::env::var("AUTHTRAIL_BENCH_FLUSHES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    run(
        "local",
        LakeLocation::Local(dir.path().join("lake")),
        flushes,
    );

    let server = S3Server::start("lake");
    let options: BTreeMap<String, String> = server
        .options()
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let location = LakeLocation::parse(&server.url("bench"), &options).unwrap();
    run("moto", location, flushes);
}
