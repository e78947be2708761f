//! `GET /metrics`: composes one Prometheus exposition from what each stage writes of its
//! own (`IngestStats::expose`: source, lake, detection; `Responder::expose`: deliveries
//! and outbox), plus the process's build info and readiness and the HTTP API's own
//! request latency (the server is the binary's). The stages name their families; this file
//! names only its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use authtrail_collect::Collector;
use authtrail_ingest::IngestStats;
use authtrail_metrics::{lock, Exposition, Histogram, Kind, CONTENT_TYPE};
use authtrail_respond::Responder;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What `/metrics` reads.
pub struct Sources {
    pub ingest: Arc<IngestStats>,
    pub responder: Option<Arc<Responder>>,
    /// The HTTP collector, when `authtrail run` serves one.
    pub collect: Option<Arc<Collector>>,
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

    /// Writes the request latency family.
    fn expose(&self, out: &mut Exposition) {
        out.family(
            "authtrail_http_request_duration_seconds",
            Kind::Histogram,
            "Time to answer an HTTP API request (SQL queries, forensic endpoints, UI), by route pattern and status class.",
        );
        for ((route, class), histogram) in lock(&self.routes).iter() {
            out.histogram(&[("route", route), ("code", class)], &histogram.snapshot());
        }
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
    sources.ingest.expose(&mut out);
    if let Some(responder) = &sources.responder {
        responder.expose(&mut out);
    }
    if let Some(collector) = &sources.collect {
        collector.expose(&mut out);
    }
    sources.http.expose(&mut out);
    out.finish()
}
