//! Alert latency: event consumed → webhook request received, on loopback, while the
//! pipeline ingests a steady background load (issue 4's target: p99 ≤ 20 ms at 50k
//! events/s).
//!
//! A source thread plays the Kafka source: every millisecond it hands the real pipeline
//! (decode, detectors, lake flushes every 100k rows, alerts table, checkpoints) a batch of
//! background events, and every `TRIGGER_EVERY_MS` a token revoke followed, one batch
//! later, by a use of that token, which `revoked_token_use` turns into an alert. The
//! responder records it in the outbox and POSTs it, signed, to an axum receiver in this
//! process. Latency is from just before the batch holding the use is handed to the pipeline
//! to the receiver's handler running for that alert, into an HDR histogram.
//!
//! `cargo bench --bench webhook_latency`; env `BENCH_SECONDS` (default 30, after 2 s of warm-up),
//! `RATE` (background events/s, default 50000), `TRIGGER_EVERY_MS` (default 5),
//! `FLUSH_ROWS` (default: the pipeline's, 100000), `RUST_LOG` (e.g. `authtrail_ingest=debug`:
//! each flush's write time and detector checkpoint cut, on stderr).
//! Results: `docs/benchmarks.md`.

#[path = "common/env.rs"]
mod env;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authtrail_detect::DetectConfig;
use authtrail_ingest::{
    AlertSink, BoxError, Detection, IngestStats, Input, Pipeline, PipelineConfig, RawMessage,
};
use authtrail_model::Alert;
use authtrail_respond::{Action, RespondConfig, Responder, WebhookConfig};
use authtrail_store::{EncodeOptions, Lake};
use axum::body::Bytes;
use hdrhistogram::Histogram;

use env::env_number;

const SECRET: &str = "whsec_YmVuY2htYXJrLXNpZ25pbmcta2V5LTAxMjM0NTY3";

/// The responder as the pipeline's sink, noting when each alert reached it.
struct Sink(Arc<Responder>, Arc<Measure>);

impl AlertSink for Sink {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        if let Some(token) = &alert.token_id {
            let mut raised = self.1.raised.lock().unwrap();
            raised.insert(token.clone(), Instant::now());
        }
        Ok(self.0.record(alert)?)
    }
    fn sync(&self) -> Result<(), BoxError> {
        Ok(self.0.sync()?)
    }
}

/// When each trigger's completing event was handed over, and the measured latencies.
#[derive(Default)]
struct Measure {
    consumed: Mutex<HashMap<String, Instant>>,
    raised: Mutex<HashMap<String, Instant>>,
    histogram: Mutex<Option<Histogram<u64>>>,
    /// From the alert reaching the responder to the request arriving.
    responder: Mutex<Option<Histogram<u64>>>,
    received: AtomicU64,
    recording: AtomicBool,
}

fn start_receiver(measure: Arc<Measure>) -> std::net::SocketAddr {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            let handler = move |body: Bytes| {
                let arrived = Instant::now();
                let measure = measure.clone();
                async move {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let token = body["alert"]["token_id"].as_str().unwrap_or_default();
                    let consumed = measure.consumed.lock().unwrap().remove(token);
                    let raised = measure.raised.lock().unwrap().remove(token);
                    measure.received.fetch_add(1, Ordering::Relaxed);
                    let recording = measure.recording.load(Ordering::Relaxed);
                    let samples = [(consumed, &measure.histogram), (raised, &measure.responder)];
                    for (at, histogram) in samples {
                        if let (Some(at), true) = (at, recording) {
                            let micros = arrived.duration_since(at).as_micros() as u64;
                            if let Some(h) = histogram.lock().unwrap().as_mut() {
                                h.record(micros.max(1)).unwrap();
                            }
                        }
                    }
                    "ok"
                }
            };
            let app = axum::Router::new().route("/hook", axum::routing::post(handler));
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready.recv().unwrap()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn message(offset: &mut i64, json: String) -> RawMessage {
    *offset += 1;
    RawMessage {
        source: Arc::from("auth-events"),
        partition: 0,
        offset: *offset - 1,
        timestamp: None,
        size: json.len(),
        payload: Some(json.into_bytes()),
    }
}

fn main() {
    let seconds = env_number("BENCH_SECONDS", 30);
    let rate = env_number("RATE", 50_000);
    let trigger_every = env_number("TRIGGER_EVERY_MS", 5);
    let dir = tempfile::tempdir().unwrap();
    let measure = Arc::new(Measure::default());
    let new_histogram = || Some(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap());
    *measure.histogram.lock().unwrap() = new_histogram();
    *measure.responder.lock().unwrap() = new_histogram();
    let addr = start_receiver(measure.clone());

    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let mut hook = WebhookConfig::new("idp", &format!("http://{addr}/hook"), Action::RevokeToken);
    hook.secret_file = Some(dir.path().join("secret"));
    hook.detectors = vec!["revoked_token_use".into()];
    hook.rate_limit = 0;
    let respond = RespondConfig {
        webhooks: vec![hook],
        ..RespondConfig::default()
    };
    // `RUST_LOG=authtrail_ingest=debug` shows each flush's write time and checkpoint cut.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let lake_root = dir.path().join("lake");
    let lake = Lake::open(&lake_root, EncodeOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("authtrail-respond")
        .enable_all()
        .build()
        .unwrap();
    let responder =
        Arc::new(Responder::start(&lake_root, &respond, runtime.handle().clone()).unwrap());
    let stats = Arc::new(IngestStats::default());
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone())
        .unwrap()
        .with_sink(Box::new(Sink(responder.clone(), measure.clone())));
    let mut config = PipelineConfig::default();
    config.flush_rows = env_number("FLUSH_ROWS", config.flush_rows as u64) as usize;
    let (sender, receiver) = sync_channel(config.queue_batches);
    let pipeline = Pipeline::new(
        lake,
        config,
        stats.clone(),
        Box::new(|_| {}),
        Some(detection),
    );
    let worker = std::thread::spawn(move || pipeline.run(receiver));

    let per_tick = (rate / 1000).max(1);
    let (warmup, total) = (Duration::from_secs(2), Duration::from_secs(2 + seconds));
    let started = Instant::now();
    let (mut offset, mut tick, mut background, mut triggers) = (0i64, 0u64, 0u64, 0u64);
    let mut pending_use: Option<String> = None;
    while started.elapsed() < total {
        let due = started + Duration::from_millis(tick);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = now_millis();
        let mut batch = Vec::with_capacity(per_tick as usize + 2);
        for _ in 0..per_tick {
            let n = background;
            background += 1;
            batch.push(message(&mut offset, format!(
                r#"{{"id":"b-{n}","time":{now},"kind":"authn","principal":"user:u{}","service":"idp","outcome":"success","auth_method":"password","source_ip":"198.51.100.{}","user_agent":"Mozilla/5.0"}}"#,
                n % 5_000, n % 200
            )));
        }
        let mut used = None;
        if let Some(token) = pending_use.take() {
            batch.push(message(&mut offset, format!(
                r#"{{"id":"use-{token}","time":{now},"kind":"authz","principal":"svc:bench","service":"payments","outcome":"allow","token_id":"{token}","source_ip":"10.0.0.1","resource":"/x","action":"GET"}}"#
            )));
            used = Some(token);
        } else if tick % trigger_every == 0 {
            let token = format!("jti-{triggers}");
            triggers += 1;
            batch.push(message(&mut offset, format!(
                r#"{{"id":"rev-{token}","time":{now},"kind":"token_revoke","principal":"svc:bench","service":"idp","token_id":"{token}","reason":"bench"}}"#
            )));
            pending_use = Some(token);
        }
        measure
            .recording
            .store(started.elapsed() >= warmup, Ordering::Relaxed);
        if let Some(token) = used {
            measure
                .consumed
                .lock()
                .unwrap()
                .insert(token, Instant::now());
        }
        sender.send(Input::Messages(batch)).unwrap();
        tick += 1;
    }
    let elapsed = started.elapsed();
    drop(sender);
    worker.join().unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while measure.received.load(Ordering::Relaxed) < triggers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    responder.shutdown().unwrap();

    let totals = stats.snapshot();
    println!(
        "background {:.0} events/s ({} events in {:.1} s, {} flushes); {} alerts raised, {} delivered",
        background as f64 / elapsed.as_secs_f64(),
        totals.accepted,
        elapsed.as_secs_f64(),
        totals.flushes,
        totals.alerts,
        measure.received.load(Ordering::Relaxed)
    );
    for (what, histogram) in [
        ("event consumed -> webhook received", &measure.histogram),
        ("alert raised -> webhook received", &measure.responder),
    ] {
        let histogram = histogram.lock().unwrap().take().unwrap();
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{what}, {} samples after warm-up: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            histogram.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            histogram.max() as f64 / 1000.0
        );
    }
}
