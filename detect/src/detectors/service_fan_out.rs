//! `service_fan_out`: a principal reaches at least N distinct target services within W,
//! at least K of which are new in the sense of `new_service_edge` (so a principal still
//! in its learning period never fires).

use std::time::Duration;

use authtrail_model::{Event, Severity};
use serde::{Deserialize, Serialize};

use super::{show, Windowed};
use crate::config::default_suppression;
use crate::detector::{Context, Detector};
use crate::state::id::EventId;
use crate::state::window::{self, Timed, Window};

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

/// A principal's reaches: the latest reach of each target (its hash) and, aside, the
/// event ids of the reaches that were new edges. Only new edges keep their id (they are
/// the evidence) and most principals reach only old ones, so the ids sit in a boxed
/// list by target rather than a pointer in every reach (8 bytes a reach, 24 for a user
/// with three). A user reaches about three front services, which fit inline. Kept in
/// the principal's entry of the shared principal table.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Reaches {
    targets: Window<u64, 3>,
    // Boxed: 8 bytes in every principal's entry instead of a `Vec`'s 24, for a list
    // that nearly all principals leave empty.
    #[allow(clippy::box_collection)]
    new: Option<Box<Vec<(u64, EventId)>>>,
}

impl Reaches {
    /// The id of the reach of `target` that was a new edge, if any.
    fn new_id(&self, target: u64) -> Option<&EventId> {
        let new = self.new.as_deref()?;
        new.iter().find(|(t, _)| *t == target).map(|(_, id)| id)
    }

    /// Records `id` as `target`'s new-edge reach unless one is recorded (a target once
    /// new stays new for the window, with its first new reach as the evidence).
    fn keep_new(&mut self, target: u64, id: EventId) {
        if self.new_id(target).is_none() {
            self.new.get_or_insert_with(Box::default).push((target, id));
        }
    }

    /// Forgets the ids of targets that left the window, so that a target reached again
    /// later does not inherit them (each id lived and went with its reach).
    fn forget_gone(&mut self) {
        let Reaches { targets, new } = self;
        if let Some(list) = new {
            list.retain(|(t, _)| targets.iter().any(|r| r.item == *t));
            if list.is_empty() {
                *new = None;
            }
        }
    }
}

/// Its state is a part of each principal's entry in the shared principal table.
pub(crate) type ServiceFanOut = Windowed<ServiceFanOutConfig>;

impl Detector for ServiceFanOut {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let (Some(edge), Some(target), Some(entry)) = (
            cx.facts.edge,
            cx.facts.target,
            cx.shared.principal.as_deref_mut(),
        ) else {
            return;
        };
        if cx.facts.late {
            return;
        }
        let time = event.time;
        let reaches = entry.fan_out.touch(time + self.span.width);
        window::prune(&mut reaches.targets, self.span.horizon(cx.facts.now));
        reaches.forget_gone();
        // One entry per target, at its latest reach; a target once new stays new for
        // the window (its second reach is no longer new to the baseline).
        let at = match reaches.targets.iter().position(|r| r.item == target) {
            Some(seen) => {
                if reaches.targets[seen].time >= time && !edge.new {
                    return;
                }
                if edge.new {
                    reaches.keep_new(target, EventId::new(&event.id));
                }
                window::replace(&mut reaches.targets, seen, time, target)
            }
            None => {
                if edge.new {
                    reaches.keep_new(target, EventId::new(&event.id));
                }
                window::insert(&mut reaches.targets, time, target)
            }
        };
        let (n, k) = (self.config.min_targets, self.config.min_new);
        let hit = |w: &[Timed<u64>]| {
            w.len() >= n
                && w.iter()
                    .filter(|r| reaches.new_id(r.item).is_some())
                    .count()
                    >= k
        };
        let Some(range) = window::find_min(&reaches.targets, at, self.span.width, n, hit) else {
            window::trim(&mut reaches.targets, 4 * n + 16, |_| ());
            reaches.forget_gone();
            return;
        };
        let new: Vec<String> = reaches.targets[range.clone()]
            .iter()
            .filter_map(|r| reaches.new_id(r.item).map(EventId::to_string))
            .collect();
        let count = range.len();
        let mut evidence = new.clone();
        if !evidence.iter().any(|id| *id == *event.id) {
            evidence.push(event.id.to_string());
        }
        reaches.targets.drain(..range.end);
        reaches.forget_gone();
        let summary = format!(
            "{} reached {count} services within {}, {} of them new",
            event.principal,
            show(self.config.window),
            new.len()
        );
        let principal = event.principal.to_string();
        cx.findings
            .push(cx.rule.finding(event, principal, summary, evidence));
    }
}

#[cfg(test)]
mod tests {
    use crate::detectors::testkit::{authz, only, reaches, run, same_calls_every_day};
    use authtrail_model::Event;

    const DAY: f64 = 24.0 * 3_600.0;

    /// `svc:worker` learns `old` targets on day 0, then on day 1 reaches `old_then`
    /// of them and `new` unseen ones, `every` seconds apart.
    fn scenario(old_then: usize, new: usize, every: f64) -> Vec<Event<'static>> {
        let mut events = reaches("l", "svc:worker", "old-", 5, 0.0, 1.0);
        events.extend(reaches("o", "svc:worker", "old-", old_then, DAY, every));
        let start = DAY + old_then as f64 * every;
        events.extend(reaches("n", "svc:worker", "new-", new, start, every));
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
        let events = same_calls_every_day(20, 1.0);
        assert!(run(&only("service_fan_out"), &events).is_empty());
    }

    #[test]
    fn silent_for_a_brand_new_service_in_its_learning_period() {
        let events = reaches("e", "svc:fresh", "s", 20, 0.0, 1.0);
        assert!(run(&only("service_fan_out"), &events).is_empty());
    }

    #[test]
    fn a_new_edge_that_left_the_window_is_not_new_when_reached_again() {
        // Learned on day 0: old-0..old-4. Day 1: new-0 is new, then 11 minutes later
        // (past W and the lateness) it is reached again, no longer new, with two new
        // and two old targets: 5 targets, only 2 of them new in the window.
        let mut events = scenario(0, 0, 1.0);
        let at = |minutes: f64| DAY + minutes * 60.0;
        events.push(authz("a0", at(0.0), "svc:worker", "new-0", true));
        let mut later = vec![("a1", "new-0"), ("b1", "new-1"), ("b2", "new-2")];
        later.extend([("c0", "old-0"), ("c1", "old-1")]);
        for (i, (id, target)) in later.into_iter().enumerate() {
            events.push(authz(id, at(11.0) + i as f64, "svc:worker", target, true));
        }
        assert!(run(&only("service_fan_out"), &events).is_empty());
        // A third new target completes it; the evidence is the new reaches in the
        // window's order, not the forgotten first reach of new-0.
        events.push(authz("b3", at(12.0), "svc:worker", "new-3", true));
        let alerts = run(&only("service_fan_out"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].evidence_ids, ["b1", "b2", "b3"]);
    }
}
