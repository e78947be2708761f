//! Records per second per key: a token bucket per key, refilled at `rate_per_key` up to
//! `rate_burst`. A request takes all its records' tokens or none.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use authtrail_metrics::lock;

use crate::keys::KeyIndex;

/// The buckets of every key (one per accepted key at most: bounded).
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<KeyIndex, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_second` records per second on average, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `records` tokens from `key`'s bucket at `now`; if it holds fewer, takes none
    /// and says when it will hold enough.
    pub fn take(&self, key: KeyIndex, records: usize, now: Instant) -> Result<(), Duration> {
        let wanted = records as f64;
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (wanted - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_spends_its_burst_then_waits_for_its_rate() {
        let limiter = RateLimiter::new(100, 200);
        let start = Instant::now();
        let key = KeyIndex(0);
        assert_eq!(limiter.take(key, 150, start), Ok(()));
        let wait = limiter.take(key, 100, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "50 tokens short at 100/s");
        // Refused requests take nothing: half a second later the 100 fit.
        assert_eq!(limiter.take(key, 100, start + wait), Ok(()));
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let limiter = RateLimiter::new(10, 10);
        let now = Instant::now();
        assert_eq!(limiter.take(KeyIndex(0), 10, now), Ok(()));
        assert!(limiter.take(KeyIndex(0), 1, now).is_err());
        assert_eq!(limiter.take(KeyIndex(1), 10, now), Ok(()));
    }
}
