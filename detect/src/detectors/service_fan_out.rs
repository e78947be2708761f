//! `service_fan_out`: a principal reaches at least N distinct target services within W,
//! at least K of which are new in the sense of `new_service_edge` (so a principal still
//! in its learning period never fires).

use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Severity};
use serde::{Deserialize, Serialize};

use super::show;
use crate::config::{at_least_one, default_suppression, micros, positive};
use crate::detector::{Detector, Facts, Finding, Shared};
use crate::error::Error;
use crate::id::EventId;
use crate::state::TableStats;
use crate::window::{self, Timed, Window};
use crate::Result;

const TECHNIQUE: &str = "T1021";

/// `service_fan_out`: one principal spreading to many services, several new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceFanOutConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Distinct target services (N) reached.
    pub min_targets: usize,
    /// How many of them (K) must be new edges.
    pub min_new: usize,
    /// Window (W) the reaches fall in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub severity: Severity,
    /// Repeats for the same principal within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for ServiceFanOutConfig {
    fn default() -> Self {
        ServiceFanOutConfig {
            enabled: true,
            min_targets: 5,
            min_new: 3,
            window: Duration::from_secs(600),
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

impl ServiceFanOutConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        at_least_one("service_fan_out", "min_targets", self.min_targets)?;
        positive("service_fan_out", "window", self.window)
    }
}

/// The latest reach of one target. Only new edges keep their event id: they are the
/// evidence, and most principals reach only old ones, which then cost 24 bytes with
/// the time (the id is boxed so that they do not pay for its room).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reach {
    target: u64,
    new_id: Option<Box<EventId>>,
}

/// Reaches of one principal: a user reaches about three front services, which fit inline.
/// Kept in the principal's entry of the shared principal table.
pub(crate) type Reaches = Window<Reach, 3>;

pub(crate) struct ServiceFanOut {
    config: ServiceFanOutConfig,
    window: Micros,
    lateness: Micros,
    suppression: Micros,
}

impl ServiceFanOut {
    pub fn new(config: &ServiceFanOutConfig, lateness: Micros) -> Self {
        ServiceFanOut {
            config: config.clone(),
            window: micros(config.window),
            lateness,
            suppression: micros(config.suppression),
        }
    }
}

impl Detector for ServiceFanOut {
    fn name(&self) -> &'static str {
        "service_fan_out"
    }

    fn kinds(&self) -> &'static [Kind] {
        &[Kind::Authz]
    }

    fn suppression(&self) -> Micros {
        self.suppression
    }

    fn observe(
        &mut self,
        event: &Event<'_>,
        facts: &Facts,
        shared: &mut Shared<'_>,
        findings: &mut Vec<Finding>,
    ) {
        let (Some(edge), Some(target)) = (facts.edge, facts.target) else {
            return;
        };
        if event.kind != Kind::Authz || facts.late {
            return;
        }
        let Some(entry) = shared.principal.as_deref_mut() else {
            return;
        };
        let time = event.time;
        let reaches = entry.fan_out.touch(time + self.window);
        window::prune(reaches, facts.now - self.lateness - self.window);
        let mut new_id = edge.new.then(|| Box::new(EventId::new(&event.id)));
        // One entry per target, at its latest reach; a target once new stays new for
        // the window (its second reach is no longer new to the baseline).
        let at = match reaches.iter().position(|r| r.item.target == target) {
            Some(seen) => {
                if reaches[seen].time >= time && new_id.is_none() {
                    return;
                }
                new_id = reaches[seen].item.new_id.take().or(new_id);
                window::replace(reaches, seen, time, Reach { target, new_id })
            }
            None => window::insert(reaches, time, Reach { target, new_id }),
        };
        let (n, k) = (self.config.min_targets, self.config.min_new);
        let hit = |w: &[Timed<Reach>]| {
            w.len() >= n && w.iter().filter(|r| r.item.new_id.is_some()).count() >= k
        };
        let Some(range) = window::find_min(reaches, at, self.window, n, hit) else {
            window::trim(reaches, 4 * n + 16, |_| ());
            return;
        };
        let new: Vec<String> = reaches[range.clone()]
            .iter()
            .filter_map(|r| r.item.new_id.as_deref().map(EventId::to_string))
            .collect();
        let count = range.len();
        let mut evidence = new.clone();
        if !evidence.iter().any(|id| *id == *event.id) {
            evidence.push(event.id.to_string());
        }
        reaches.drain(..range.end);
        let summary = format!(
            "{} reached {count} services within {}, {} of them new",
            event.principal,
            show(self.config.window),
            new.len()
        );
        findings.push(Finding::completed_by(
            event,
            event.principal.to_string(),
            self.config.severity,
            TECHNIQUE,
            summary,
            evidence,
        ));
    }

    fn sweep(&mut self, _now: Micros) {}

    fn stats(&self) -> TableStats {
        // Its state is a part of the shared principal table; the engine reports it here.
        TableStats::default()
    }

    fn save(&self) -> Vec<u8> {
        Vec::new()
    }

    fn load(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{authz, only, run};

    const DAY: f64 = 24.0 * 3_600.0;

    /// `svc:worker` learns `old` targets on day 0, then on day 1 reaches `old_then`
    /// of them and `new` unseen ones, `every` seconds apart.
    fn scenario(old_then: usize, new: usize, every: f64) -> Vec<Event<'static>> {
        let mut events = Vec::new();
        for i in 0..5 {
            events.push(authz(
                &format!("l{i}"),
                i as f64,
                "svc:worker",
                &format!("old-{i}"),
                true,
            ));
        }
        let mut time = DAY;
        for i in 0..old_then {
            events.push(authz(
                &format!("o{i}"),
                time,
                "svc:worker",
                &format!("old-{i}"),
                true,
            ));
            time += every;
        }
        for i in 0..new {
            events.push(authz(
                &format!("n{i}"),
                time,
                "svc:worker",
                &format!("new-{i}"),
                true,
            ));
            time += every;
        }
        events
    }

    #[test]
    fn fires_on_five_services_three_of_them_new() {
        let alerts = run(&only("service_fan_out"), &scenario(2, 3, 10.0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["n0", "n1", "n2"]);
        assert_eq!(alerts[0].attack_technique, "T1021");
    }

    #[test]
    fn silent_at_four_services_or_two_new() {
        assert!(run(&only("service_fan_out"), &scenario(1, 3, 10.0)).is_empty());
        assert!(run(&only("service_fan_out"), &scenario(3, 2, 10.0)).is_empty());
    }

    #[test]
    fn silent_when_the_reaches_span_more_than_ten_minutes() {
        assert!(run(&only("service_fan_out"), &scenario(2, 3, 150.5)).is_empty());
        assert_eq!(
            run(&only("service_fan_out"), &scenario(2, 3, 150.0)).len(),
            1
        );
    }

    #[test]
    fn silent_for_a_service_that_calls_many_services_every_day() {
        let mut events = Vec::new();
        for day in 0..3 {
            for i in 0..20 {
                let time = day as f64 * DAY + i as f64;
                events.push(authz(
                    &format!("d{day}-{i}"),
                    time,
                    "svc:gateway",
                    &format!("s{i}"),
                    true,
                ));
            }
        }
        assert!(run(&only("service_fan_out"), &events).is_empty());
    }

    #[test]
    fn silent_for_a_brand_new_service_in_its_learning_period() {
        let events: Vec<_> = (0..20)
            .map(|i| {
                authz(
                    &format!("e{i}"),
                    i as f64,
                    "svc:fresh",
                    &format!("s{i}"),
                    true,
                )
            })
            .collect();
        assert!(run(&only("service_fan_out"), &events).is_empty());
    }
}
