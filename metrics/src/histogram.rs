//! A Prometheus histogram on atomics: observing is a few relaxed `fetch_add`s.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of observations per bucket, their sum and count. Values are integers in a base
/// unit (microseconds, bytes); `scale` converts them to the exposed unit (seconds: 1e6).
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in the base unit, ascending; `+Inf` is implied.
    bounds: Vec<u64>,
    /// One counter per bound, plus one for `+Inf` (not cumulative; summed at exposition).
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    /// A histogram with these upper bounds (base unit, ascending) exposed divided by `scale`.
    pub fn new(bounds: &[u64], scale: f64) -> Histogram {
        debug_assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]));
        Histogram {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Seconds from 1 ms to 60 s, observed in microseconds.
    pub fn seconds() -> Histogram {
        const MS: u64 = 1_000;
        let bounds = [
            MS,
            5 * MS,
            10 * MS,
            25 * MS,
            50 * MS,
            100 * MS,
            250 * MS,
            500 * MS,
            1_000 * MS,
            2_500 * MS,
            5_000 * MS,
            10_000 * MS,
            60_000 * MS,
        ];
        Histogram::new(&bounds, 1e6)
    }

    /// Bytes from 64 KiB to 1 GiB, by powers of four.
    pub fn bytes() -> Histogram {
        let bounds: Vec<u64> = (0..8).map(|i| (64 << 10) << (2 * i)).collect();
        Histogram::new(&bounds, 1.0)
    }

    /// Records one value in the base unit.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// `(upper bound, cumulative count)` per bucket in the exposed unit, the last one
    /// `+Inf`; then the sum (exposed unit) and the count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self
                .bounds
                .get(i)
                .map_or(f64::INFINITY, |&bound| bound as f64 / self.scale);
            buckets.push((bound, cumulative));
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.scale;
        (buckets, sum, cumulative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let histogram = Histogram::new(&[10, 100], 10.0);
        for value in [5, 10, 11, 100, 1_000] {
            histogram.observe(value);
        }
        let (buckets, sum, count) = histogram.snapshot();
        assert_eq!(buckets, vec![(1.0, 2), (10.0, 4), (f64::INFINITY, 5)]);
        assert_eq!(sum, 112.6);
        assert_eq!(count, 5);
    }

    #[test]
    fn byte_buckets_reach_a_gibibyte() {
        let (buckets, _, _) = Histogram::bytes().snapshot();
        assert_eq!(buckets[0].0, 65_536.0);
        assert_eq!(buckets[buckets.len() - 2].0, (1u64 << 30) as f64);
    }
}
