//! The collector's metric families, per format: requests by status, records received and
//! acknowledged, request latency. Written into the scrape's `Exposition` by
//! [`Collector::expose`](crate::Collector::expose).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use authtrail_metrics::{lock, Exposition, Histogram, Kind};

/// One format's counters.
pub(crate) struct FormatMetrics {
    /// Records in bodies that split (before the rate check and the broker).
    pub received: AtomicU64,
    /// Records the broker acknowledged (in requests answered 200).
    pub acknowledged: AtomicU64,
    /// Request latency, in microseconds.
    pub latency: Histogram,
    /// Requests by status code.
    pub requests: Mutex<BTreeMap<u16, u64>>,
}

impl FormatMetrics {
    fn new() -> FormatMetrics {
        FormatMetrics {
            received: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            latency: Histogram::seconds(),
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn answered(&self, status: u16, micros: u64) {
        *lock(&self.requests).entry(status).or_default() += 1;
        self.latency.observe(micros);
    }
}

/// Every known format's counters (a fixed set: labels stay bounded whatever is posted).
pub(crate) struct CollectMetrics(BTreeMap<&'static str, FormatMetrics>);

impl CollectMetrics {
    pub fn new(formats: impl Iterator<Item = &'static str>) -> CollectMetrics {
        CollectMetrics(formats.map(|name| (name, FormatMetrics::new())).collect())
    }

    pub fn format(&self, name: &str) -> Option<&FormatMetrics> {
        self.0.get(name)
    }

    pub fn expose(&self, out: &mut Exposition) {
        out.family(
            "authtrail_collect_requests_total",
            Kind::Counter,
            "Requests to the HTTP collector, by format and status code.",
        );
        for (format, metrics) in &self.0 {
            for (status, count) in lock(&metrics.requests).iter() {
                let code = status.to_string();
                out.sample(&[("format", format), ("code", &code)], *count as f64);
            }
        }
        out.family(
            "authtrail_collect_records_total",
            Kind::Counter,
            "Records posted to the collector, by format: received (in bodies that parsed) and acknowledged (by the broker, in requests answered 200).",
        );
        for (format, metrics) in &self.0 {
            for (stage, counter) in [
                ("received", &metrics.received),
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
            "Time to answer a collector request (read, split, produce, await the broker's acknowledgement), by format.",
        );
        for (format, metrics) in &self.0 {
            out.histogram(&[("format", format)], &metrics.latency.snapshot());
        }
    }
}
