//! The evaluation's figures and how they are printed.

use std::collections::BTreeMap;
use std::fmt;

use authtrail_model::{Alert, Micros};

use crate::scenario::ScenarioKind;
use crate::truth::Label;

/// One detector's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectorScore {
    /// Attack scenarios that expect this detector.
    pub attacks: u64,
    /// Of those, the ones it raised an alert on.
    pub detected: u64,
    /// Alerts it raised.
    pub alerts: u64,
    /// Alerts on an attack's events.
    pub true_alerts: u64,
    /// Alerts on a look-alike's events.
    pub lookalike_alerts: u64,
    /// Alerts on background events (no scenario).
    pub background_alerts: u64,
    /// Per detected attack: event time from its first event to the detector's first
    /// alert on it, microseconds.
    pub time_to_detect: Vec<Micros>,
    /// Events not part of any attack (background and look-alikes).
    pub benign_events: u64,
}

impl DetectorScore {
    /// True alerts over all alerts; `None` without alerts.
    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.true_alerts as f64 / self.alerts as f64)
    }

    /// Detected attacks over expected attacks; `None` when no attack expects it.
    pub fn recall(&self) -> Option<f64> {
        (self.attacks > 0).then(|| self.detected as f64 / self.attacks as f64)
    }

    /// False alerts (look-alike and background) per million benign events.
    pub fn false_per_million(&self) -> f64 {
        let false_alerts = (self.lookalike_alerts + self.background_alerts) as f64;
        false_alerts * 1e6 / self.benign_events.max(1) as f64
    }

    /// Mean and largest time to detect, microseconds.
    pub fn time_to_detect_mean_max(&self) -> Option<(Micros, Micros)> {
        let n = self.time_to_detect.len() as Micros;
        let max = *self.time_to_detect.iter().max()?;
        Some((self.time_to_detect.iter().sum::<Micros>() / n, max))
    }
}

/// How one scenario went.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioOutcome {
    pub scenario: ScenarioKind,
    pub label: Label,
    pub expect: Vec<String>,
    /// Detectors that raised an alert on its events.
    pub alerted: Vec<String>,
    pub events: usize,
}

impl ScenarioOutcome {
    /// An attack every expected detector caught, or a look-alike without alerts.
    pub fn passed(&self) -> bool {
        match self.label {
            Label::Attack => self.expect.iter().all(|d| self.alerted.contains(d)),
            Label::Benign => self.alerted.is_empty(),
        }
    }
}

/// The result of an evaluation.
#[derive(Debug, Clone)]
pub struct Report {
    /// Events accepted and observed.
    pub events: u64,
    /// Lines that broke the contract.
    pub rejected: u64,
    /// Events not part of any attack.
    pub benign_events: u64,
    pub detectors: BTreeMap<String, DetectorScore>,
    pub scenarios: Vec<ScenarioOutcome>,
    /// Every alert raised, in order.
    pub alerts: Vec<Alert>,
}

impl Report {
    /// Recall over all expected detections (1.0 when there are none).
    pub fn recall(&self) -> f64 {
        let (attacks, detected) = self
            .detectors
            .values()
            .fold((0, 0), |(a, d), s| (a + s.attacks, d + s.detected));
        if attacks == 0 {
            1.0
        } else {
            detected as f64 / attacks as f64
        }
    }

    /// Alerts on look-alikes, over all detectors.
    pub fn lookalike_alerts(&self) -> u64 {
        self.detectors.values().map(|s| s.lookalike_alerts).sum()
    }

    /// Alerts on background events, over all detectors.
    pub fn background_alerts(&self) -> u64 {
        self.detectors.values().map(|s| s.background_alerts).sum()
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn seconds(micros: Micros) -> String {
    format!("{:.1}s", micros as f64 / 1e6)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} events ({} benign, {} rejected), {} alerts",
            self.events,
            self.benign_events,
            self.rejected,
            self.alerts.len()
        )?;
        writeln!(
            f,
            "{:<26} {:>7} {:>8} {:>6} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "detector",
            "attacks",
            "detected",
            "recall",
            "alerts",
            "true",
            "precision",
            "ttd mean",
            "ttd max",
            "false",
            "false/M benign"
        )?;
        for (name, s) in &self.detectors {
            let (mean, max) = s
                .time_to_detect_mean_max()
                .map_or(("-".into(), "-".into()), |(m, x)| (seconds(m), seconds(x)));
            writeln!(
                f,
                "{:<26} {:>7} {:>8} {:>6} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12.2}",
                name,
                s.attacks,
                s.detected,
                ratio(s.recall()),
                s.alerts,
                s.true_alerts,
                ratio(s.precision()),
                mean,
                max,
                s.lookalike_alerts + s.background_alerts,
                s.false_per_million()
            )?;
        }
        writeln!(f, "\nscenarios:")?;
        for outcome in &self.scenarios {
            let label = match outcome.label {
                Label::Attack => "attack",
                Label::Benign => "benign",
            };
            writeln!(
                f,
                "  {:<4} {:<6} {:<26} {:>5} events  expected [{}]  alerted [{}]",
                if outcome.passed() { "ok" } else { "FAIL" },
                label,
                outcome.scenario.name(),
                outcome.events,
                outcome.expect.join(", "),
                outcome.alerted.join(", ")
            )?;
        }
        Ok(())
    }
}
