//! `GET /metrics`: every stage's counters in the Prometheus text format, read at scrape
//! time from the atomics and snapshots the stages keep (see `authtrail-metrics`), and the
//! HTTP API's own request latency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use authtrail_ingest::{lock, IngestStats};
use authtrail_metrics::{Exposition, Histogram, Kind, CONTENT_TYPE};
use authtrail_respond::Responder;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Detector latency quantiles exposed.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// What `/metrics` reads.
pub struct Sources {
    pub ingest: Arc<IngestStats>,
    pub responder: Option<Arc<Responder>>,
    pub http: HttpMetrics,
    /// Largest silence of the source before `/readyz` fails, in ms.
    pub ready_silence_ms: u64,
}

/// Latency per route and status class of the HTTP API (queries, forensics, UI).
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<(String, &'static str), Arc<Histogram>>>,
}

impl HttpMetrics {
    fn histogram(&self, route: &str, class: &'static str) -> Arc<Histogram> {
        let mut routes = lock(&self.routes);
        routes
            .entry((route.to_owned(), class))
            .or_insert_with(|| Arc::new(Histogram::seconds()))
            .clone()
    }
}

/// Middleware timing every request by its route pattern (not its path: bounded labels).
pub async fn time_requests(
    State(sources): State<Arc<Sources>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    sources.http.histogram(&route, class).observe(micros);
    response
}

/// `GET /metrics`.
pub async fn handler(State(sources): State<Arc<Sources>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&sources))
}

/// The whole exposition.
pub fn render(sources: &Sources) -> String {
    let mut out = Exposition::default();
    out.family(
        "authtrail_build_info",
        Kind::Gauge,
        "Always 1; labelled with the version.",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let ready = sources.ingest.readiness(sources.ready_silence_ms).is_ok();
    out.family(
        "authtrail_ready",
        Kind::Gauge,
        "1 while consuming and writing (what /readyz answers).",
    )
    .sample(&[], f64::from(u8::from(ready)));
    ingest(&mut out, &sources.ingest);
    detect(&mut out, &sources.ingest);
    if let Some(responder) = &sources.responder {
        respond(&mut out, responder);
    }
    out.family(
        "authtrail_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer an HTTP API request (SQL queries, forensic endpoints, UI), by route pattern and status class.",
    );
    for ((route, class), histogram) in lock(&sources.http.routes).iter() {
        out.histogram(&[("route", route), ("code", class)], &histogram.snapshot());
    }
    out.finish()
}

fn ingest(out: &mut Exposition, stats: &IngestStats) {
    let partitions = lock(&stats.partitions).clone();
    let per_partition =
        |out: &mut Exposition, name, help, pick: fn(&authtrail_ingest::PartitionStats) -> u64| {
            out.family(name, Kind::Counter, help);
            for p in &partitions {
                let partition = p.partition.to_string();
                out.sample(
                    &[("topic", &p.source), ("partition", &partition)],
                    pick(p) as f64,
                );
            }
        };
    use std::sync::atomic::Ordering::Relaxed;
    per_partition(
        out,
        "authtrail_events_consumed_total",
        "Messages received from the source, per topic (or file source) and partition.",
        |p| p.received.load(Relaxed),
    );
    per_partition(
        out,
        "authtrail_events_accepted_total",
        "Messages that met the event contract and went to the `events` table.",
        |p| p.accepted.load(Relaxed),
    );
    per_partition(
        out,
        "authtrail_events_rejected_total",
        "Messages that broke the event contract and went to the `rejects` table.",
        |p| p.rejected.load(Relaxed),
    );
    per_partition(
        out,
        "authtrail_events_lost_total",
        "Messages the source had deleted (retention, a truncated log) before authtrail read them: never in the lake, recorded in its manifest for `authtrail verify`. Alert on any increase.",
        |p| p.lost.load(Relaxed),
    );
    let totals = stats.snapshot();
    out.family("authtrail_events_skipped_total", Kind::Counter, "Messages skipped because they were already handled: in the lake (a re-read after a restart) or delivered twice.")
        .sample(&[("reason", "already_in_lake")], totals.already_in_lake as f64)
        .sample(&[("reason", "redelivered")], totals.redelivered as f64);
    out.family(
        "authtrail_offset_gaps_total",
        Kind::Counter,
        "Places where a partition's offsets jumped forward: transaction markers, compaction, or lost messages (authtrail_events_lost_total).",
    )
    .sample(&[], totals.offset_gaps as f64);
    out.family(
        "authtrail_kafka_assigned_partitions",
        Kind::Gauge,
        "Kafka partitions assigned to this consumer.",
    )
    .sample(&[], totals.assigned_partitions as f64);
    out.family("authtrail_kafka_consumer_lag", Kind::Gauge, "Messages in a partition's log past this group's committed offset (librdkafka statistics, every 5 s).");
    for ((topic, partition), lag) in lock(&stats.consumer_lag).iter() {
        out.sample(
            &[("topic", topic), ("partition", &partition.to_string())],
            *lag as f64,
        );
    }
    out.family(
        "authtrail_lake_flushes_total",
        Kind::Counter,
        "Flushes that wrote at least one Parquet file.",
    )
    .sample(&[], totals.flushes as f64);
    out.family(
        "authtrail_lake_files_total",
        Kind::Counter,
        "Parquet files written to the lake.",
    )
    .sample(&[], totals.files as f64);
    out.family(
        "authtrail_lake_written_bytes_total",
        Kind::Counter,
        "Bytes of Parquet written to the lake.",
    )
    .sample(&[], totals.bytes as f64);
    out.family(
        "authtrail_lake_write_retries_total",
        Kind::Counter,
        "Lake writes that failed with an I/O error (a full disk) and are retried; offsets are not committed meanwhile.",
    )
    .sample(&[], totals.lake_write_retries as f64);
    out.family("authtrail_lake_flush_duration_seconds", Kind::Histogram, "Time one flush took on the writer thread: encode, fsync and commit the Parquet files, save the detector checkpoint, sync the alert outbox.")
        .histogram(&[], &stats.flush_micros.snapshot());
    out.family(
        "authtrail_lake_file_size_bytes",
        Kind::Histogram,
        "Size of each Parquet file written.",
    )
    .histogram(&[], &stats.file_bytes.snapshot());
}

fn detect(out: &mut Exposition, stats: &IngestStats) {
    out.family("authtrail_detector_latency_seconds", Kind::Summary, "Time the detectors take per event (hdrhistogram; quantiles over the last 1-2 minutes, sum and count since start).")
        .summary(&[], &stats.detect_latency.snapshot(&QUANTILES));
    out.family(
        "authtrail_alerts_total",
        Kind::Counter,
        "Alerts raised, per detector and severity.",
    );
    for ((detector, severity), count) in lock(&stats.alerts_by).iter() {
        out.sample(
            &[("detector", detector), ("severity", severity)],
            *count as f64,
        );
    }
    let state = lock(&stats.detect_state).clone().unwrap_or_default();
    out.family("authtrail_detector_events_total", Kind::Counter, "Events the detectors observed since their state was first created (survives restarts through checkpoints).")
        .sample(&[], state.events as f64);
    out.family(
        "authtrail_detector_late_events_total",
        Kind::Counter,
        "Events older than the allowed lateness when they arrived.",
    )
    .sample(&[], state.late_events as f64);
    out.family(
        "authtrail_detector_suppressed_alerts_total",
        Kind::Counter,
        "Alerts suppressed as repeats of one already raised.",
    )
    .sample(&[], state.suppressed as f64);
    out.family(
        "authtrail_detector_active_sources",
        Kind::Gauge,
        "Sources (Kafka partitions) whose watermark holds the detectors' clock: assigned, neither idle nor revoked.",
    )
    .sample(&[], state.active_sources as f64);
    out.family("authtrail_detector_clock_seconds", Kind::Gauge, "Event time (Unix seconds) state expires on: the oldest watermark of the active sources. `time() - authtrail_detector_clock_seconds` is how far detection lags behind. No sample until every active source has shown an event.");
    if let Some(clock) = state.clock {
        out.sample(&[], clock as f64 / 1e6);
    }
    out.family(
        "authtrail_detector_state_keys",
        Kind::Gauge,
        "Keys held in a detector's (or shared table's) state.",
    );
    for table in &state.tables {
        out.sample(&[("table", table.name)], table.state.live_keys as f64);
    }
    out.family(
        "authtrail_detector_state_evictions_total",
        Kind::Counter,
        "Keys dropped early because a state table was at its cap (`detect.max_keys`).",
    );
    for table in &state.tables {
        out.sample(&[("table", table.name)], table.state.evicted as f64);
    }
    out.family(
        "authtrail_detector_state_expirations_total",
        Kind::Counter,
        "Keys dropped because their window ran out.",
    );
    for table in &state.tables {
        out.sample(&[("table", table.name)], table.state.expired as f64);
    }
}

fn respond(out: &mut Exposition, responder: &Responder) {
    let sinks = responder.delivery_stats();
    out.family("authtrail_webhook_deliveries_total", Kind::Counter, "Alert deliveries that ended, per webhook and outcome: delivered, dead (dead letter) or held (over the revocation rate limit).");
    for (name, [delivered, _, dead, held], _) in &sinks {
        for (outcome, count) in [("delivered", delivered), ("dead", dead), ("held", held)] {
            out.sample(&[("webhook", name), ("outcome", outcome)], *count as f64);
        }
    }
    out.family("authtrail_webhook_retries_total", Kind::Counter, "Delivery attempts that failed and are retried (5xx, 408, 429, timeouts, connection errors).");
    for (name, [_, retries, _, _], _) in &sinks {
        out.sample(&[("webhook", name)], *retries as f64);
    }
    out.family(
        "authtrail_webhook_circuit_open",
        Kind::Gauge,
        "1 while a webhook's circuit breaker pauses requests to it.",
    );
    for (name, _, open) in &sinks {
        out.sample(&[("webhook", name)], f64::from(u8::from(*open)));
    }
    let counts = responder.counts();
    out.family(
        "authtrail_outbox_entries",
        Kind::Gauge,
        "Entries in the alert outbox per state (pending, retrying, delivered, dead, held).",
    );
    for state in ["pending", "retrying", "delivered", "dead", "held"] {
        let n = counts
            .iter()
            .find(|(s, _)| s.as_str() == state)
            .map_or(0, |(_, n)| *n);
        out.sample(&[("state", state)], n as f64);
    }
}
