//! What to generate: the simulated clock, the size of the system and which scenarios.

use std::time::Duration;

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::scenario::ScenarioKind;

/// Settings of one generated stream. The same settings and seed give the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Event time of the first event, Unix microseconds (simulated clock).
    pub start: Micros,
    /// Event time the stream covers.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// The detectors' learning period (`new_service_edge.learning`): attacks and
    /// look-alikes are placed after it, so they meet a learnt baseline.
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    /// People with an account.
    pub users: usize,
    /// Sessions a user starts per day on average (shaped by the daily rate curve).
    pub sessions_per_user_day: f64,
    /// Service-to-service calls per second each calling service makes at the daily peak.
    pub service_calls_per_second: f64,
    /// The attack scenarios to inject; empty for none.
    pub attacks: Vec<ScenarioKind>,
    /// Inject the benign look-alikes of every detector too.
    pub lookalikes: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            // 2026-11-23T00:00:00Z.
            start: 1_795_392_000_000_000,
            duration: Duration::from_secs(26 * 3_600),
            learning: Duration::from_secs(24 * 3_600),
            users: 1_000,
            sessions_per_user_day: 3.0,
            service_calls_per_second: 0.2,
            attacks: ScenarioKind::ATTACKS.to_vec(),
            lookalikes: true,
        }
    }
}

impl GenConfig {
    /// Checks values the model cannot run with.
    pub fn validate(&self) -> Result<(), Error> {
        // The population is held in memory (about 100 bytes a person).
        if !(50..=10_000_000).contains(&self.users) {
            return Err(Error::Config(
                "`users` must be between 50 and 10000000".into(),
            ));
        }
        if self.duration.is_zero() {
            return Err(Error::Config("`duration` must be longer than zero".into()));
        }
        if !(self.sessions_per_user_day > 0.0 && self.sessions_per_user_day <= 1_000.0) {
            return Err(Error::Config(
                "`sessions_per_user_day` must be in (0, 1000]".into(),
            ));
        }
        if !(self.service_calls_per_second > 0.0 && self.service_calls_per_second <= 10_000.0) {
            return Err(Error::Config(
                "`service_calls_per_second` must be in (0, 10000]".into(),
            ));
        }
        let scenarios = self.attacks.len() + if self.lookalikes { 10 } else { 0 };
        if scenarios > 0 && self.duration < self.learning + Duration::from_secs(3_600) {
            return Err(Error::Config(format!(
                "`duration` ({}) must exceed `learning` ({}) by at least 1h to place scenarios after learning",
                humantime::format_duration(self.duration),
                humantime::format_duration(self.learning)
            )));
        }
        Ok(())
    }

    /// Event time of the end of the stream.
    pub fn end(&self) -> Micros {
        self.start + micros(self.duration)
    }
}

/// A duration in microseconds.
pub(crate) fn micros(duration: Duration) -> Micros {
    Micros::try_from(duration.as_micros()).unwrap_or(Micros::MAX / 4)
}
