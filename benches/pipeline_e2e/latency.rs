//! Produce → alert and produce → webhook latency through the broker, at a fixed rate of
//! realistic background traffic with a trigger (a token revoke, then a use of that token,
//! which `revoked_token_use` turns into an alert) every few milliseconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authtrail_ingest::{AlertSink, BoxError};
use authtrail_model::time::format_micros;
use authtrail_model::Alert;
use authtrail_respond::Responder;
use axum::body::Bytes;
use hdrhistogram::Histogram;

use crate::broker::{send, Broker};

/// When each trigger was produced, and what was measured.
pub struct Measure {
    produced: Mutex<HashMap<String, Instant>>,
    pub to_alert: Mutex<Histogram<u64>>,
    pub to_webhook: Mutex<Histogram<u64>>,
    pub received: AtomicU64,
    recording: AtomicBool,
    /// When measuring started, and each produce → webhook sample's production time since
    /// then with its latency in µs: when the slowest happened tells what delayed them.
    started: Instant,
    webhook_samples: Mutex<Vec<(Duration, u64)>>,
}

impl Default for Measure {
    fn default() -> Self {
        let histogram = || Mutex::new(Histogram::new_with_bounds(1, 120_000_000, 3).unwrap());
        Measure {
            produced: Mutex::default(),
            to_alert: histogram(),
            to_webhook: histogram(),
            received: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            started: Instant::now(),
            webhook_samples: Mutex::default(),
        }
    }
}

impl Measure {
    fn record(&self, histogram: &Mutex<Histogram<u64>>, token: &str, remove: bool) {
        let now = Instant::now();
        let produced = self.produced.lock().unwrap();
        let Some(at) = produced.get(token).copied() else {
            return;
        };
        drop(produced);
        if remove {
            self.produced.lock().unwrap().remove(token);
        }
        if self.recording.load(Ordering::Relaxed) {
            let micros = now.duration_since(at).as_micros() as u64;
            histogram.lock().unwrap().record(micros.max(1)).unwrap();
            if std::ptr::eq(histogram, &self.to_webhook) {
                let produced = at.duration_since(self.started);
                self.webhook_samples
                    .lock()
                    .unwrap()
                    .push((produced, micros));
            }
        }
    }

    /// The `n` slowest produce → webhook samples: when each was produced (seconds since
    /// the measure began) and its latency.
    pub fn slowest(&self, n: usize) -> String {
        let mut samples = self.webhook_samples.lock().unwrap().clone();
        samples.sort_by_key(|&(_, micros)| std::cmp::Reverse(micros));
        samples
            .iter()
            .take(n)
            .map(|(at, micros)| {
                format!(
                    "{:.2} ms at {:.3} s",
                    *micros as f64 / 1e3,
                    at.as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The responder as the pipeline's sink, noting when each alert was raised.
pub struct Sink(pub Arc<Responder>, pub Arc<Measure>);

impl AlertSink for Sink {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        if let Some(token) = &alert.token_id {
            self.1.record(&self.1.to_alert, token, false);
        }
        Ok(self.0.record(alert)?)
    }
    fn sync(&self) -> Result<(), BoxError> {
        Ok(self.0.sync()?)
    }
}

/// An HTTP receiver for the webhooks on loopback; returns its address.
pub fn start_receiver(measure: Arc<Measure>) -> std::net::SocketAddr {
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
                let measure = measure.clone();
                async move {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let token = body["alert"]["token_id"].as_str().unwrap_or_default();
                    measure.record(&measure.to_webhook, token, true);
                    measure.received.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            };
            let app = axum::Router::new().route("/hook", axum::routing::post(handler));
            axum::serve(listener, app).await.unwrap();
        });
    });
    ready.recv().unwrap()
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `json` with its `time` replaced by `time` and any `token_expires` by `expires` (the
/// generator writes both as 24-character RFC 3339 strings), so background events are
/// current and their tokens valid.
fn retimed(json: &str, time: &str, expires: &str) -> String {
    let mut out = json.to_owned();
    for (field, value) in [("\"time\":\"", time), ("\"token_expires\":\"", expires)] {
        if let Some(at) = out.find(field) {
            let at = at + field.len();
            out.replace_range(at..at + 24, value);
        }
    }
    out
}

/// RFC 3339 with milliseconds of a Unix time in microseconds.
fn millis_text(micros: i64) -> String {
    let text = format_micros(micros - micros % 1000);
    // `format_micros` leaves out a zero fraction; the generator's width has it.
    match text.len() {
        20 => format!("{}.000Z", &text[..19]),
        _ => text,
    }
}

/// Produces `background` (cycled, retimed to now) at `rate` events/s for `warmup` plus
/// `seconds`, with a trigger every `trigger_ms`; returns the triggers sent.
#[allow(clippy::too_many_arguments)]
pub fn produce_at_rate(
    broker: &Broker,
    topic: &str,
    background: &[(String, String)],
    rate: u64,
    warmup: Duration,
    seconds: Duration,
    trigger_ms: u64,
    measure: &Measure,
) -> u64 {
    let producer = broker.producer();
    let per_tick = (rate / 1000).max(1) as usize;
    let started = Instant::now();
    let (mut tick, mut next, mut triggers) = (0u64, 0usize, 0u64);
    // The token of the last revoke, and its time: the use must come strictly later.
    let mut pending: Option<(String, i64)> = None;
    while started.elapsed() < warmup + seconds {
        let due = started + Duration::from_millis(tick);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        measure
            .recording
            .store(started.elapsed() >= warmup, Ordering::Relaxed);
        let now_us = now_micros();
        let now = millis_text(now_us);
        let expires = millis_text(now_us + 3_600_000_000);
        for _ in 0..per_tick {
            assert!(
                next < background.len(),
                "background exhausted: lower LATENCY_RATE or LATENCY_SECONDS"
            );
            let (key, json) = &background[next];
            next += 1;
            send(&producer, topic, key, &retimed(json, &now, &expires));
        }
        if let Some((token, revoked)) = pending.take() {
            let now = millis_text(now_us.max(revoked + 1_000));
            let use_ = format!(
                r#"{{"id":"use-{token}","time":"{now}","kind":"authz","principal":"svc:bench","service":"payments","outcome":"allow","token_id":"{token}","source_ip":"10.0.0.1","resource":"/x","action":"GET"}}"#
            );
            measure
                .produced
                .lock()
                .unwrap()
                .insert(token.clone(), Instant::now());
            send(&producer, topic, "svc:bench", &use_);
        } else if tick % trigger_ms == 0 {
            let token = format!("jti-bench-{triggers}");
            triggers += 1;
            let revoke = format!(
                r#"{{"id":"rev-{token}","time":"{now}","kind":"token_revoke","principal":"svc:bench","service":"idp","token_id":"{token}","reason":"bench"}}"#
            );
            send(&producer, topic, "svc:bench", &revoke);
            pending = Some((token, now_us - now_us % 1_000));
        }
        tick += 1;
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(60)).unwrap();
    triggers
}

/// p50 / p90 / p99 / p99.9 / max in milliseconds.
pub fn quantiles(histogram: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.max()),
        histogram.len()
    )
}
