//! Latency quantiles from hdrhistogram: one thread records into its own histogram without
//! synchronisation and publishes it now and then; scrapes read the published window.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram as Hdr;

/// Highest latency tracked, in nanoseconds (larger values are clamped): 60 s.
const MAX_NANOS: u64 = 60_000_000_000;
/// How long one window half lasts; quantiles cover the last one to two of them.
const WINDOW: Duration = Duration::from_secs(60);

fn hdr() -> Hdr<u64> {
    Hdr::new_with_bounds(1, MAX_NANOS, 2).expect("valid bounds")
}

/// Recorded by one thread; [`LatencyWindow::publish`] drains it.
pub struct LatencyRecorder {
    histogram: Hdr<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder { histogram: hdr() }
    }
}

impl LatencyRecorder {
    /// Records one latency.
    pub fn record(&mut self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(MAX_NANOS);
        self.histogram.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    /// Observations recorded since the last publish.
    pub fn pending(&self) -> u64 {
        self.histogram.len()
    }
}

struct Window {
    current: Hdr<u64>,
    previous: Hdr<u64>,
    rotated: Instant,
    count: u64,
    sum_nanos: u128,
}

/// Quantiles over the last one to two minutes, plus a count and sum since start.
pub struct LatencyWindow {
    window: Mutex<Window>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            window: Mutex::new(Window {
                current: hdr(),
                previous: hdr(),
                rotated: Instant::now(),
                count: 0,
                sum_nanos: 0,
            }),
        }
    }
}

/// Quantiles (seconds) with the count and sum (seconds) of all observations.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    pub quantiles: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: u64,
}

impl std::fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyWindow").finish_non_exhaustive()
    }
}

impl LatencyWindow {
    /// Moves what `recorder` holds into the window (one lock per publish, not per event).
    pub fn publish(&self, recorder: &mut LatencyRecorder) {
        if recorder.histogram.is_empty() {
            return;
        }
        let mut window = self.lock();
        window.rotate();
        window.count += recorder.histogram.len();
        window.sum_nanos += recorder
            .histogram
            .iter_recorded()
            .map(|value| u128::from(value.value_iterated_to()) * u128::from(value.count_at_value()))
            .sum::<u128>();
        // Same bounds on both sides, so adding cannot fail.
        let _ = window.current.add(&recorder.histogram);
        recorder.histogram.reset();
    }

    /// The given quantiles over the window (0 while it is empty).
    pub fn snapshot(&self, quantiles: &[f64]) -> LatencySnapshot {
        let mut window = self.lock();
        window.rotate();
        let mut merged = window.previous.clone();
        let _ = merged.add(&window.current);
        LatencySnapshot {
            quantiles: quantiles
                .iter()
                .map(|&q| (q, merged.value_at_quantile(q) as f64 / 1e9))
                .collect(),
            sum: window.sum_nanos as f64 / 1e9,
            count: window.count,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Histograms stay consistent whatever panicked while one was held.
        crate::lock(&self.window)
    }
}

impl Window {
    fn rotate(&mut self) {
        let elapsed = self.rotated.elapsed();
        if elapsed < WINDOW {
            return;
        }
        if elapsed >= 2 * WINDOW {
            self.previous.reset();
        } else {
            std::mem::swap(&mut self.previous, &mut self.current);
        }
        self.current.reset();
        self.rotated = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_latencies_give_quantiles_count_and_sum() {
        let window = LatencyWindow::default();
        let mut recorder = LatencyRecorder::default();
        for micros in 1..=100 {
            recorder.record(Duration::from_micros(micros));
        }
        assert_eq!(recorder.pending(), 100);
        window.publish(&mut recorder);
        assert_eq!(recorder.pending(), 0);
        let snapshot = window.snapshot(&[0.5, 0.99]);
        assert_eq!(snapshot.count, 100);
        let median = snapshot.quantiles[0].1;
        assert!((49e-6..=51e-6).contains(&median), "{median}");
        assert!(
            (snapshot.sum - 5050e-6).abs() < 5050e-6 * 0.01,
            "{}",
            snapshot.sum
        );
    }

    #[test]
    fn an_empty_window_reports_zero() {
        let snapshot = LatencyWindow::default().snapshot(&[0.5]);
        assert_eq!(snapshot.quantiles, vec![(0.5, 0.0)]);
        assert_eq!(snapshot.count, 0);
    }
}
