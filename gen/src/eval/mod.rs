//! Scores the detectors against a labelled stream: every event goes through
//! [`Detectors::observe`] in stream order; each alert is matched to the scenario its
//! evidence belongs to. An alert on an attack's events is a true alert; one on a
//! look-alike's or on background events is a false alert.

mod report;

use std::collections::{BTreeMap, HashMap};

use authtrail_detect::{DetectConfig, Detectors};
use authtrail_model::{parse_event, Alert, ContractLimits, Micros};

pub use report::{DetectorScore, Report, ScenarioOutcome};

use crate::truth::{Label, Truth};
use crate::Result;

/// Replays events through the detectors and keeps the score.
pub struct Evaluator {
    truth: Truth,
    detectors: Detectors,
    limits: ContractLimits,
    /// Event id to the scenario it belongs to.
    owner: HashMap<String, usize>,
    alerts: Vec<Alert>,
    events: u64,
    rejected: u64,
    /// Events of the stream that belong to an attack.
    attack_events: u64,
}

impl Evaluator {
    /// An evaluator of `truth` with fresh detectors configured by `config`.
    pub fn new(truth: Truth, config: &DetectConfig) -> Result<Self> {
        let detectors = Detectors::new(config)?;
        let mut owner = HashMap::new();
        for (at, scenario) in truth.scenarios.iter().enumerate() {
            for id in &scenario.event_ids {
                owner.insert(id.clone(), at);
            }
        }
        Ok(Evaluator {
            truth,
            detectors,
            // The stream's times are simulated: no ingest clock to be ahead of.
            limits: ContractLimits {
                max_future_skew: Micros::MAX / 4,
                ..ContractLimits::default()
            },
            owner,
            alerts: Vec::new(),
            events: 0,
            rejected: 0,
            attack_events: 0,
        })
    }

    /// Takes one JSON line of the stream; lines that break the contract are counted and
    /// skipped, as the pipeline would reject them.
    pub fn observe_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let event = match parse_event(line, 0, &self.limits) {
            Ok(event) => event,
            Err(_) => {
                self.rejected += 1;
                return;
            }
        };
        self.events += 1;
        if let Some(&at) = self.owner.get(event.id.as_ref()) {
            if self.truth.scenarios[at].label == Label::Attack {
                self.attack_events += 1;
            }
        }
        self.detectors.observe(&event, &mut self.alerts);
    }

    /// The scores, per detector and per scenario.
    pub fn finish(self) -> Report {
        let scenarios = &self.truth.scenarios;
        // Per alert: the scenario it belongs to (an attack before a look-alike).
        let matched: Vec<Option<usize>> = self
            .alerts
            .iter()
            .map(|alert| {
                let owners = alert
                    .evidence_ids
                    .iter()
                    .filter_map(|id| self.owner.get(id).copied());
                owners.min_by_key(|&at| (scenarios[at].label != Label::Attack, at))
            })
            .collect();
        let benign_events = self.events - self.attack_events;
        let mut scores: BTreeMap<String, DetectorScore> = BTreeMap::new();
        for scenario in scenarios.iter().filter(|s| s.start.is_some()) {
            for detector in &scenario.expect {
                scores.entry(detector.clone()).or_default().attacks += 1;
            }
        }
        for (alert, owner) in self.alerts.iter().zip(&matched) {
            let score = scores.entry(alert.detector.clone()).or_default();
            score.alerts += 1;
            match owner.map(|at| scenarios[at].label) {
                Some(Label::Attack) => score.true_alerts += 1,
                Some(Label::Benign) => score.lookalike_alerts += 1,
                None => score.background_alerts += 1,
            }
        }
        let mut outcomes = Vec::new();
        for (at, scenario) in scenarios.iter().enumerate() {
            let fired: Vec<&Alert> = self
                .alerts
                .iter()
                .zip(&matched)
                .filter(|(_, owner)| **owner == Some(at))
                .map(|(alert, _)| alert)
                .collect();
            for detector in &scenario.expect {
                let first = fired.iter().find(|a| &a.detector == detector);
                if let (Some(alert), Some(start)) = (first, scenario.start) {
                    let score = scores.entry(detector.clone()).or_default();
                    score.detected += 1;
                    score.time_to_detect.push(alert.time - start);
                }
            }
            let mut detectors: Vec<String> = fired.iter().map(|a| a.detector.clone()).collect();
            detectors.sort();
            detectors.dedup();
            outcomes.push(ScenarioOutcome {
                scenario: scenario.scenario,
                label: scenario.label,
                expect: scenario.expect.clone(),
                alerted: detectors,
                events: scenario.event_ids.len(),
            });
        }
        for score in scores.values_mut() {
            score.benign_events = benign_events;
        }
        Report {
            events: self.events,
            rejected: self.rejected,
            benign_events,
            detectors: scores,
            scenarios: outcomes,
            alerts: self.alerts,
        }
    }
}

#[cfg(test)]
mod tests;
