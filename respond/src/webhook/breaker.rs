//! A circuit breaker per endpoint: after `failures` consecutive failed attempts it opens
//! and no request is sent for `cooldown`; then one probe goes out (half-open): success
//! closes it, failure opens it again. Deliveries wait instead of failing, so nothing is
//! dropped while it is open.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; the rest wait for its outcome.
    HalfOpen,
}

/// The breaker of one endpoint.
#[derive(Debug)]
pub struct Breaker {
    mode: Mutex<Mode>,
    changed: Notify,
    failures: u32,
    cooldown: Duration,
    webhook: String,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(webhook: &str, failures: u32, cooldown: Duration) -> Self {
        Breaker {
            mode: Mutex::new(Mode::Closed { failures: 0 }),
            changed: Notify::new(),
            failures,
            cooldown,
            webhook: webhook.to_owned(),
        }
    }

    /// Waits until a request may be sent.
    pub async fn admit(&self) {
        loop {
            let notified = self.changed.notified();
            let wait_until = {
                let mut mode = self.mode.lock().expect("breaker lock");
                match *mode {
                    Mode::Closed { .. } => return,
                    Mode::Open { until } if Instant::now() >= until => {
                        *mode = Mode::HalfOpen;
                        tracing::info!(
                            webhook = self.webhook,
                            "circuit half-open: sending a probe"
                        );
                        return;
                    }
                    Mode::Open { until } => until,
                    // If the probe's task goes away without an outcome, try again later.
                    Mode::HalfOpen => Instant::now() + self.cooldown,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wait_until) => {
                    let mut mode = self.mode.lock().expect("breaker lock");
                    if *mode == Mode::HalfOpen {
                        *mode = Mode::Open { until: Instant::now() };
                    }
                }
            }
        }
    }

    /// The endpoint answered (any answer but a retryable failure).
    pub fn succeeded(&self) {
        let mut mode = self.mode.lock().expect("breaker lock");
        if !matches!(*mode, Mode::Closed { .. }) {
            tracing::info!(webhook = self.webhook, "circuit closed");
        }
        *mode = Mode::Closed { failures: 0 };
        drop(mode);
        self.changed.notify_waiters();
    }

    /// An attempt failed in a retryable way.
    pub fn failed(&self) {
        let mut mode = self.mode.lock().expect("breaker lock");
        let open = match *mode {
            Mode::Closed { failures } if failures + 1 < self.failures => {
                *mode = Mode::Closed {
                    failures: failures + 1,
                };
                false
            }
            Mode::Closed { .. } | Mode::HalfOpen => true,
            Mode::Open { .. } => false,
        };
        if open {
            *mode = Mode::Open {
                until: Instant::now() + self.cooldown,
            };
            tracing::warn!(webhook = self.webhook, cooldown = ?self.cooldown, "circuit open: pausing requests to this endpoint");
        }
        drop(mode);
        self.changed.notify_waiters();
    }

    /// Whether requests are paused.
    pub fn is_open(&self) -> bool {
        matches!(*self.mode.lock().expect("breaker lock"), Mode::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_after_the_cooldown() {
        let breaker = Breaker::new("t", 3, Duration::from_secs(10));
        breaker.failed();
        breaker.failed();
        breaker.succeeded();
        breaker.failed();
        breaker.failed();
        assert!(!breaker.is_open(), "a success resets the count");
        breaker.failed();
        assert!(breaker.is_open());
        let started = Instant::now();
        breaker.admit().await;
        assert!(started.elapsed() >= Duration::from_secs(10));
        breaker.failed();
        assert!(breaker.is_open(), "a failed probe opens it again");
        breaker.admit().await;
        breaker.succeeded();
        let before = Instant::now();
        breaker.admit().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
