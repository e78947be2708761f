//! The revocation rate limit of one endpoint: at most `limit` admissions in any sliding
//! `window`. Over it, alerts are held for an operator rather than delayed, because a burst
//! of revocations is more likely a detector misfiring than an attack of that size.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admission times within the window.
#[derive(Debug)]
pub struct RateLimit {
    limit: u32,
    window: Duration,
    admitted: Mutex<VecDeque<Instant>>,
}

impl RateLimit {
    /// `limit` per `window`; 0 admits everything.
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimit {
            limit,
            window,
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits one more if the window has room.
    pub fn try_admit(&self) -> bool {
        if self.limit == 0 {
            return true;
        }
        let now = Instant::now();
        let mut admitted = self.admitted.lock().expect("rate limit lock");
        while admitted
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.window)
        {
            admitted.pop_front();
        }
        if admitted.len() >= self.limit as usize {
            return false;
        }
        admitted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_per_window() {
        let rate = RateLimit::new(3, Duration::from_secs(3_600));
        assert_eq!((0..5).filter(|_| rate.try_admit()).count(), 3);
        let rate = RateLimit::new(1, Duration::from_millis(1));
        assert!(rate.try_admit());
        std::thread::sleep(Duration::from_millis(5));
        assert!(rate.try_admit(), "the window slides");
        assert!((0..100).all(|_| RateLimit::new(0, Duration::ZERO).try_admit()));
    }
}
