//! End to end (issue 7): `authtrail gen` traffic through a real broker (a tansu process)
//! into the whole pipeline (decode, all detectors, the Parquet lake, the webhook
//! responder), side by side in one run with what the transport alone does and with what
//! users would script instead.
//!
//! Phases, in this order, on the same events:
//! 1. generate a day and two hours of traffic (`authtrail_gen`, seeded) to JSON lines;
//! 2. produce them to a topic, keyed by principal;
//! 3. a plain librdkafka consumer drains the topic (the transport's ceiling);
//! 4. the pipeline consumes the same topic with all detectors, the lake and the responder
//!    on: events/s, CPU seconds per million events, bytes per event on disk, peak RSS;
//! 5. at half of phase 4's rate, produce → alert and produce → webhook latency, with a
//!    trigger (revoke, then use of the token) every `TRIGGER_EVERY_MS`;
//! 6. the pipeline from the JSON-lines file, all detectors on;
//! 7. DuckDB converts the file to zstd Parquet (`DUCKDB_THREADS`, default 2: the same
//!    cores the pipeline has).
//!
//! `cargo bench --bench pipeline_e2e`; env `USERS` (default 4000) and `SERVICE_CALLS`
//! (calls/s per service at the daily peak, default 1.0) size the traffic, `PARTITIONS`
//! (default 4), `LATENCY_SECONDS` (default 20, after 3 s of warm-up), `LATENCY_RATE`
//! (default half of phase 4's rate), `TRIGGER_EVERY_MS` (default 10), `AUTHTRAIL_PYTHON`,
//! `FETCH_WAIT_MS` (the latency run's `fetch.wait.max.ms`, default the Kafka source's),
//! `AUTHTRAIL_TANSU`, `BROKER=embedded` (authtrail's embedded broker in this process
//! instead of a tansu process). Results: `docs/benchmarks.md`.

#[path = "pipeline_e2e/broker.rs"]
mod broker;
#[path = "common/env.rs"]
mod env;
#[path = "pipeline_e2e/latency.rs"]
mod latency;
#[path = "pipeline_e2e/process.rs"]
mod process;
#[path = "pipeline_e2e/runs.rs"]
mod runs;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authtrail_detect::DetectConfig;
use authtrail_gen::{GenConfig, Generator};
use authtrail_ingest::{Detection, IngestStats, PipelineConfig};
use authtrail_store::{EncodeOptions, Lake};
use tokio_util::sync::CancellationToken;

use broker::Broker;
use env::{env_number, python};
use latency::{Measure, Sink};
use runs::{from_file, kafka_config, responder, through_broker};

fn generate(path: &Path) -> (Vec<(String, String)>, f64) {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let hour = 3_600_000_000;
    let config = GenConfig {
        seed: 7,
        // Whole hours, ending an hour ago: every event passes the future-skew check.
        start: start - start % hour - 27 * hour,
        users: env_number("USERS", 4_000),
        service_calls_per_second: env_number("SERVICE_CALLS", 1.0),
        ..GenConfig::default()
    };
    let started = Instant::now();
    let events: Vec<(String, String)> = Generator::new(config)
        .unwrap()
        .map(|e| (e.key, e.json))
        .collect();
    let rate = events.len() as f64 / started.elapsed().as_secs_f64();
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    for (_, json) in &events {
        out.write_all(json.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    (events, rate)
}

fn duckdb(path: &Path, out: &Path, threads: u32) -> (f64, u64) {
    let script = env::repo_file("benches/pipeline_e2e/duckdb_convert.py");
    let output = std::process::Command::new(python())
        .arg(script)
        .arg(path)
        .arg(out)
        .arg(threads.to_string())
        .output()
        .expect("run python with duckdb (scripts/install-test-deps.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let _ = std::fs::remove_file(out);
    (
        report["seconds"].as_f64().unwrap(),
        report["bytes"].as_u64().unwrap(),
    )
}

fn main() {
    // The pipeline's debug lines (flush cuts, hand-overs) when asked for, to place stalls.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let partitions = env_number("PARTITIONS", 4);
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");

    let (events, gen_rate) = generate(&events_path);
    let n = events.len() as u64;
    let json_bytes = std::fs::metadata(&events_path).unwrap().len();
    println!(
        "1. generated {n} events ({:.0} bytes each) at {gen_rate:.0} events/s",
        json_bytes as f64 / n as f64
    );

    let broker = Broker::start(dir.path(), partitions);
    broker.create_topic("e2e", partitions);
    let produced = broker::produce_all(&broker, "e2e", &events);
    println!(
        "2. produced to {} ({partitions} partitions) at {:.0} events/s",
        broker.name(),
        n as f64 / produced.as_secs_f64()
    );
    // Latency background: the same events, retimed to now as they are sent (never
    // cycled: a replayed token would be presented after its logout's revoke).
    let background = events;

    let drained = broker::drain(&broker, "e2e", n);
    let plain_rate = n as f64 / drained.streaming.as_secs_f64();
    println!(
        "3. plain consumer: {plain_rate:.0} events/s first to last message ({:.1} s; {:.1} s with the group join), {:.0} MB",
        drained.streaming.as_secs_f64(),
        drained.total.as_secs_f64(),
        drained.bytes as f64 / 1e6
    );

    let sink = Arc::new(Measure::default());
    let addr = latency::start_receiver(sink.clone());
    let url = format!("http://{addr}/hook");
    let e2e = through_broker(&broker, "e2e", n, &dir.path().join("lake-kafka"), &url);
    println!(
        "4. authtrail through the broker: {:.0} events/s first to last event ({:.1} s; {:.1} s with the group join and the final flush), {:.2} CPU s per million events, {:.1} bytes/event in the lake, peak RSS {:.0} MiB ({:.0} MiB at the start, the bench's own data), {} alerts; {:.2} x the plain consumer",
        e2e.rate(),
        e2e.streaming.as_secs_f64(),
        e2e.total.as_secs_f64(),
        e2e.cpu_per_million(),
        e2e.lake_bytes as f64 / e2e.events as f64,
        e2e.peak_rss,
        e2e.start_rss,
        e2e.alerts,
        e2e.rate() / plain_rate
    );

    let rate = env_number("LATENCY_RATE", (e2e.rate() / 2.0) as u64);
    let seconds = Duration::from_secs(env_number("LATENCY_SECONDS", 20));
    let trigger_ms = env_number("TRIGGER_EVERY_MS", 10);
    broker.create_topic("latency", partitions);
    let measure = Arc::new(Measure::default());
    let addr = latency::start_receiver(measure.clone());
    let root = dir.path().join("lake-latency");
    let lake = Lake::open(&root, EncodeOptions::default()).unwrap();
    let stats = Arc::new(IngestStats::default());
    let responder = responder(
        &root,
        &format!("http://{addr}/hook"),
        vec!["revoked_token_use".into()],
    );
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone())
        .unwrap()
        .with_sink(Box::new(Sink(responder.clone(), measure.clone())));
    let stop = CancellationToken::new();
    let worker = {
        let (stats, stop, brokers) = (stats.clone(), stop.clone(), broker.address.clone());
        let mut kafka = kafka_config("latency", "authtrail-latency");
        // The source's own default unless the run asks for another.
        if let Ok(wait) = std::env::var("FETCH_WAIT_MS") {
            kafka.settings.insert("fetch.wait.max.ms".into(), wait);
        }
        std::thread::spawn(move || {
            let config = PipelineConfig::default();
            authtrail_ingest::ingest_kafka(
                lake,
                &config,
                &kafka,
                &brokers,
                Some(detection),
                stats,
                &stop,
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.assigned_partitions.load(Ordering::Relaxed) < partitions as u64 {
        assert!(
            Instant::now() < deadline,
            "the pipeline got no partitions of `latency`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let triggers = latency::produce_at_rate(
        &broker,
        "latency",
        &background,
        rate,
        Duration::from_secs(3),
        seconds,
        trigger_ms,
        &measure,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while measure.received.load(Ordering::Relaxed) < triggers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.cancel();
    worker.join().unwrap().unwrap();
    responder.shutdown().unwrap();
    println!(
        "5. at {rate} events/s for {} s (fetch.wait.max.ms {}), {triggers} triggers, {} webhooks received, {} alerts:",
        seconds.as_secs(),
        std::env::var("FETCH_WAIT_MS").unwrap_or_else(|_| format!(
            "{} (the source's default)",
            authtrail_ingest::kafka::DEFAULT_FETCH_WAIT_MAX_MS
        )),
        measure.received.load(Ordering::Relaxed),
        stats.alerts.load(Ordering::Relaxed)
    );
    println!(
        "   produce -> alert:   {}",
        latency::quantiles(&measure.to_alert.lock().unwrap())
    );
    println!(
        "   produce -> webhook: {}",
        latency::quantiles(&measure.to_webhook.lock().unwrap())
    );
    println!("   slowest: {}", measure.slowest(10));
    for family in [
        "authtrail_kafka_record_age_seconds",
        "authtrail_kafka_source_blocked_seconds",
        "authtrail_detector_flush_pause_seconds",
        "authtrail_lake_flush_duration_seconds",
    ] {
        println!("   {family}: {}", histogram_summary(&stats, family));
    }
    drop(broker);
    drop(background);

    let file = from_file(&events_path, &dir.path().join("lake-file"));
    println!(
        "6. authtrail from the file: {:.0} events/s ({:.1} s), {:.2} CPU s per million events, peak RSS {:.0} MiB ({:.0} MiB at the start), {} alerts",
        file.rate(),
        file.total.as_secs_f64(),
        file.cpu_per_million(),
        file.peak_rss,
        file.start_rss,
        file.alerts
    );

    let threads = env_number("DUCKDB_THREADS", 2);
    let (seconds, bytes) = duckdb(&events_path, &dir.path().join("duckdb.parquet"), threads);
    let duck_rate = n as f64 / seconds;
    println!(
        "7. DuckDB JSON lines -> zstd Parquet ({threads} threads): {duck_rate:.0} events/s ({seconds:.1} s), {:.1} bytes/event; authtrail from the file is {:.2} x DuckDB",
        bytes as f64 / n as f64,
        file.rate() / duck_rate
    );
}

/// `family`'s histogram from the pipeline's metrics: its count, sum and how many
/// observations fell in each bucket that has any (`<= bound: n`).
fn histogram_summary(stats: &IngestStats, family: &str) -> String {
    let mut out = authtrail_metrics::Exposition::default();
    stats.expose(&mut out);
    let text = out.finish();
    let (mut below, mut parts) = (0u64, Vec::new());
    let (mut count, mut sum) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{family}_bucket{{le=\"")) {
            let (bound, cumulative) = rest.split_once("\"} ").unwrap();
            let cumulative: u64 = cumulative.parse().unwrap();
            if cumulative > below {
                parts.push(format!("<= {bound} s: {}", cumulative - below));
            }
            below = cumulative;
        } else if let Some(value) = line.strip_prefix(&format!("{family}_count ")) {
            count = value.to_owned();
        } else if let Some(value) = line.strip_prefix(&format!("{family}_sum ")) {
            sum = value.to_owned();
        }
    }
    format!("{count} observed, {sum} s in all; {}", parts.join(", "))
}
