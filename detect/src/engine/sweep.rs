//! Sweeping expired state, one table at a time.
//!
//! Every table is swept once per `SWEEP_INTERVAL` of event time, as before, but each at
//! its own phase within the interval: an event pays for the sweep of at most one table
//! (unless event time jumps), not of all of them, which was the largest latency of any
//! event.

use authtrail_model::{Alert, Micros};

use super::{Detectors, Raise};

/// Expired state is swept once per this much event time; sweeping is O(keys), so it is
/// amortised over many events rather than paid on each.
pub(super) const SWEEP_INTERVAL: Micros = 5_000_000;
/// Shared tables swept before the detectors' own: the edge baseline, tokens,
/// principals, suppression, revocations.
pub(super) const TABLES: usize = 5;

impl Detectors {
    /// Sweeps the tables due at `now`; a detector's sweep may complete findings (a
    /// presentation held until no event could change its verdict), raised to `alerts`.
    pub(super) fn sweep(&mut self, now: Micros, alerts: &mut Vec<Alert>) {
        let tables = self.next_sweeps.len() as Micros;
        for table in 0..self.next_sweeps.len() {
            if self.next_sweeps[table] > now {
                continue;
            }
            self.sweep_table(table, now, alerts);
            // The next point of this table's phase on a grid of the interval.
            let phase = SWEEP_INTERVAL * table as Micros / tables;
            let period = (now - phase).div_euclid(SWEEP_INTERVAL);
            self.next_sweeps[table] = (period + 1) * SWEEP_INTERVAL + phase;
        }
        self.next_sweep = self
            .next_sweeps
            .iter()
            .copied()
            .min()
            .unwrap_or(Micros::MAX);
    }

    fn sweep_table(&mut self, table: usize, now: Micros, alerts: &mut Vec<Alert>) {
        // State stays until the allowed lateness has passed its expiry, so a late event
        // still finds it.
        let horizon = now - self.lateness;
        match table {
            0 => {
                if let Some(baseline) = &mut self.baseline {
                    baseline.sweep(horizon);
                }
            }
            1 => {
                if let Some(tokens) = &mut self.tokens {
                    tokens.sweep(horizon);
                }
            }
            2 => {
                if let Some(principals) = &mut self.principals {
                    principals.sweep(horizon);
                }
            }
            3 => self.suppressor.sweep(horizon),
            4 => {
                if let Some(revocations) = &mut self.revocations {
                    revocations.sweep(horizon);
                }
            }
            detector => {
                let enabled = &mut self.detectors[detector - TABLES];
                let findings = &mut self.findings;
                enabled.detector.sweep(horizon, &enabled.rule, findings);
                if !findings.is_empty() {
                    let raise = Raise {
                        hasher: &self.hasher,
                        suppressor: &mut self.suppressor,
                        counters: &mut self.counters,
                        now,
                    };
                    raise.all(&enabled.rule, findings, alerts);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::detectors::testkit::{authn, feed, table};
    use crate::{DetectConfig, Detectors};

    #[test]
    fn tables_are_swept_within_the_interval_but_not_at_the_same_event() {
        let mut failure = authn("f", 0.0, "user:alice", false, "password");
        failure.source_ip = Some("198.51.100.9".parse().unwrap());
        let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
        feed(&mut detectors, &[failure]);
        let live = |d: &Detectors, name: &str| table(d, name).live_keys;
        // Both keep the failure 10 min; it may go once the lateness (30 s) has passed.
        let (mut brute_gone, mut spray_gone) = (None, None);
        for tick in 0..60 {
            let seconds = 625.0 + tick as f64 * 0.25;
            feed(
                &mut detectors,
                &[authn("x", seconds, "user:bob", true, "password")],
            );
            if brute_gone.is_none() && live(&detectors, "brute_force") == 0 {
                brute_gone = Some(seconds);
            }
            if spray_gone.is_none() && live(&detectors, "password_spray") == 0 {
                spray_gone = Some(seconds);
            }
        }
        let (brute, spray) = (brute_gone.unwrap(), spray_gone.unwrap());
        for gone in [brute, spray] {
            assert!((630.0..=635.25).contains(&gone), "{gone}");
        }
        assert_ne!(brute, spray, "swept at the same event");
    }
}
