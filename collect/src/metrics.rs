//! The collector's metric families, per format: requests by status, records by what the
//! adapter made of them and whether the broker acknowledged them, request latency.
//! Written into the scrape's `Exposition` by [`Collector::expose`](crate::Collector::expose).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use authtrail_metrics::{lock, Exposition, Histogram, Kind};

use crate::formats::Route;

/// One format's counters.
pub(crate) struct FormatMetrics {
    /// Records in bodies that split (before the rate check and the broker).
    pub received: AtomicU64,
    /// Of those, what the format's adapter made of them.
    pub mapped: AtomicU64,
    pub unmapped: AtomicU64,
    pub rejected: AtomicU64,
    pub skipped: AtomicU64,
    /// Records the broker acknowledged (in requests answered 200).
    pub acknowledged: AtomicU64,
    /// Request latency, in microseconds.
    latency: Histogram,
    /// Requests by status code.
    requests: Mutex<BTreeMap<u16, u64>>,
}

impl FormatMetrics {
    pub fn new() -> FormatMetrics {
        FormatMetrics {
            received: AtomicU64::new(0),
            mapped: AtomicU64::new(0),
            unmapped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            latency: Histogram::seconds(),
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts a request answered `status` after `micros`.
    pub fn answered(&self, status: u16, micros: u64) {
        *lock(&self.requests).entry(status).or_default() += 1;
        self.latency.observe(micros);
    }
}

/// Writes every format's families (the formats are a fixed set: labels stay bounded
/// whatever is posted).
pub(crate) fn expose(routes: &BTreeMap<&'static str, Route>, out: &mut Exposition) {
    out.family(
        "authtrail_collect_requests_total",
        Kind::Counter,
        "Requests to the HTTP collector, by format and status code.",
    );
    for (format, route) in routes {
        for (status, count) in lock(&route.metrics.requests).iter() {
            let code = status.to_string();
            out.sample(&[("format", format), ("code", &code)], *count as f64);
        }
    }
    out.family(
        "authtrail_collect_records_total",
        Kind::Counter,
        "Records posted to the collector, by format: received (in bodies that parsed), what the adapter made of them (mapped, unmapped, rejected, skipped; all are produced) and acknowledged (by the broker, in requests answered 200).",
    );
    for (format, route) in routes {
        let metrics = &route.metrics;
        for (stage, counter) in [
            ("received", &metrics.received),
            ("mapped", &metrics.mapped),
            ("unmapped", &metrics.unmapped),
            ("rejected", &metrics.rejected),
            ("skipped", &metrics.skipped),
            ("acknowledged", &metrics.acknowledged),
        ] {
            out.sample(
                &[("format", format), ("stage", stage)],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
    }
    out.family(
        "authtrail_collect_request_duration_seconds",
        Kind::Histogram,
        "Time to answer a collector request (read, split, check, produce, await the broker's acknowledgement), by format.",
    );
    for (format, route) in routes {
        out.histogram(&[("format", format)], &route.metrics.latency.snapshot());
    }
}
