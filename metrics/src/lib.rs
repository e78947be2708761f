//! authtrail's metric primitives and their Prometheus text exposition.
//!
//! The stages count on their hot paths with plain atomics and these primitives, and never
//! take a lock per event: [`Histogram`] is a fixed set of atomic buckets (flush latency,
//! file sizes, HTTP latency), [`LatencyRecorder`] is an hdrhistogram owned by one thread
//! (the decode thread records detector latency into it without synchronisation) that it
//! publishes now and then into a [`LatencyWindow`], whose quantiles cover the last one to
//! two minutes. At scrape time each stage writes its own families into one [`Exposition`]
//! (`IngestStats::expose`, `Responder::expose`, the binary's HTTP timings), which writes the
//! Prometheus text format (version 0.0.4) that `promtool check metrics` accepts; the binary
//! only composes them. Adding a metric touches the stage that counts it, nothing else.
//!
//! Hand-written rather than `prometheus-client`: that crate has no summary type (needed for
//! hdrhistogram quantiles) and its label families take a lock per lookup; here every value
//! already lives in an atomic or a snapshot, so only the text encoding is left.

mod exposition;
mod histogram;
mod latency;

pub use exposition::{Exposition, Kind, CONTENT_TYPE};
pub use histogram::Histogram;
pub use latency::{LatencyRecorder, LatencySnapshot, LatencyWindow};

use std::sync::{Mutex, MutexGuard};

/// Locks a metrics map; values stay meaningful whatever panicked while it was held.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
