//! The simulation: a clock, a queue of what happens next, and the state of sessions and
//! tokens. Actions run in event-time order and schedule events and further actions;
//! events leave the queue in event-time order, so the stream is ordered like one
//! reporter's (the detectors' lateness is for real-world disorder, not ours).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use authtrail_model::Micros;

use crate::config::{micros, GenConfig};
use crate::event::Ev;
use crate::scenario::{self, Scenario, ScenarioKind};
use crate::topology::Topology;
use crate::traffic::Session;
use crate::truth::{Truth, TruthMeta};
use crate::Result;

pub(crate) const MS: Micros = 1_000;
pub(crate) const SECOND: Micros = 1_000_000;
pub(crate) const MINUTE: Micros = 60 * SECOND;
pub(crate) const HOUR: Micros = 60 * MINUTE;

/// One generated event, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Event time, Unix microseconds.
    pub time: Micros,
    /// The Kafka message key the contract recommends: the principal.
    pub key: String,
    /// The event as one JSON object (no trailing newline).
    pub json: String,
    /// The event itself, for the native formats ([`Format`](crate::Format)).
    pub(crate) event: Box<Ev>,
}

/// What happens at a point of the simulated clock.
pub(crate) enum Action {
    /// An event leaves the simulation.
    Emit(Box<Ev>),
    /// The next user session of the arrival process starts.
    NextSession,
    /// The session in this slot takes its next step.
    Session(usize),
    /// A service makes its next call.
    ServiceTick(usize),
    /// The scheduled batch job runs.
    BatchJob,
    /// A scenario (attack or look-alike) plays out.
    Scenario(usize),
}

struct Task {
    time: Micros,
    seq: u64,
    action: Action,
}

impl PartialEq for Task {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Task {}
impl PartialOrd for Task {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Task {
    // Reversed: `BinaryHeap` is a max-heap and the earliest task goes first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A token the model tracks: its id and expiry.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub id: String,
    pub issued: Micros,
    pub expires: Micros,
}

/// The traffic model of a microservice system, as an iterator of events in event-time
/// order. Deterministic: the same [`GenConfig`] gives the same events, byte for byte.
pub struct Generator {
    pub(crate) config: GenConfig,
    pub(crate) rng: fastrand::Rng,
    pub(crate) topo: Topology,
    queue: BinaryHeap<Task>,
    seq: u64,
    pub(crate) end: Micros,
    /// Sessions in progress, by slot; `free` holds the empty slots.
    pub(crate) sessions: Vec<Option<Session>>,
    pub(crate) free: Vec<usize>,
    /// Per user: busy in a session until then (one session per user at a time, so a
    /// logout's revoke never cuts off another device's session).
    pub(crate) user_busy: Vec<Micros>,
    /// Per service: its current client-credential token.
    pub(crate) service_tokens: Vec<Option<Token>>,
    /// Per service: calls made, for its round-robin over its callees.
    pub(crate) service_calls: Vec<u64>,
    /// The scenario whose action is running: its events are labelled with it.
    pub(crate) tag: Option<usize>,
    pub(crate) scenarios: Vec<Scenario>,
    /// Addresses handed to attackers so far (each scenario gets fresh ones).
    pub(crate) attacker_ips: u32,
    /// People created for scenarios, outside the population the background uses.
    pub(crate) extra_users: usize,
    events: u64,
}

impl Generator {
    /// A generator for `config`, with the background traffic and scenarios scheduled.
    pub fn new(config: GenConfig) -> Result<Self> {
        config.validate()?;
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let topo = Topology::new(config.users, &mut rng);
        let services = topo.services.len();
        let mut generator = Generator {
            end: config.end(),
            user_busy: vec![Micros::MIN; topo.users.len()],
            topo,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            sessions: Vec::new(),
            free: Vec::new(),
            service_tokens: vec![None; services],
            service_calls: vec![0; services],
            tag: None,
            scenarios: Vec::new(),
            attacker_ips: 0,
            extra_users: 0,
            events: 0,
            config,
        };
        generator.schedule_background();
        generator.schedule_scenarios();
        Ok(generator)
    }

    /// The next event in event-time order, or `None` once the simulated period is over.
    pub fn next_event(&mut self) -> Option<Generated> {
        while let Some(task) = self.queue.pop() {
            if task.time >= self.end {
                self.queue.clear();
                return None;
            }
            match task.action {
                Action::Emit(ev) => {
                    self.events += 1;
                    if let Some(at) = ev.scenario {
                        self.scenarios[at].record(&ev);
                    }
                    return Some(Generated {
                        time: ev.time,
                        json: ev.to_json(),
                        key: ev.principal.clone(),
                        event: ev,
                    });
                }
                Action::NextSession => self.next_session(task.time),
                Action::Session(slot) => self.session_step(slot, task.time),
                Action::ServiceTick(service) => self.service_tick(service, task.time),
                Action::BatchJob => self.batch_job(task.time),
                Action::Scenario(at) => {
                    self.tag = Some(at);
                    scenario::play(self, at, task.time);
                    self.tag = None;
                }
            }
        }
        None
    }

    /// The ground truth of what was generated so far: complete once
    /// [`next_event`](Generator::next_event) returned `None`.
    pub fn truth(&self) -> Truth {
        Truth {
            meta: TruthMeta {
                seed: self.config.seed,
                start: self.config.start,
                end: self.end,
                learning: self.config.learning,
                events: self.events,
            },
            scenarios: self.scenarios.iter().map(Scenario::record_out).collect(),
        }
    }

    /// Schedules `action` at `time` (rounded to the millisecond reporters write).
    pub(crate) fn at(&mut self, time: Micros, action: Action) {
        self.seq += 1;
        let time = time - time.rem_euclid(MS);
        self.queue.push(Task {
            time,
            seq: self.seq,
            action,
        });
    }

    /// Sends `ev` at its time, labelled with the running scenario if any.
    pub(crate) fn emit(&mut self, mut ev: Ev) {
        ev.time -= ev.time.rem_euclid(MS);
        if ev.scenario.is_none() {
            ev.scenario = self.tag;
        }
        self.at(ev.time, Action::Emit(Box::new(ev)));
    }

    /// A fresh random id: `prefix` and `hex` random hex digits.
    pub(crate) fn id(&mut self, prefix: &str, hex: usize) -> String {
        let mut id = String::with_capacity(prefix.len() + hex);
        id.push_str(prefix);
        while id.len() < prefix.len() + hex {
            id.push_str(&format!("{:016x}", self.rng.u64(..)));
        }
        id.truncate(prefix.len() + hex);
        id
    }

    /// A new event with a random id.
    pub(crate) fn ev(&mut self, time: Micros, kind: &'static str, principal: &str) -> Ev {
        let id = self.id("ev-", 20);
        Ev::new(id, time, kind, principal)
    }

    /// A random duration between `low` and `high` microseconds.
    pub(crate) fn between(&mut self, low: Micros, high: Micros) -> Micros {
        self.rng.i64(low..=high)
    }

    /// An exponential gap with the given mean, in microseconds.
    pub(crate) fn exp_gap(&mut self, mean: f64) -> Micros {
        let u = 1.0 - self.rng.f64();
        (-u.ln() * mean) as Micros
    }

    /// The daily rate curve: 0.2 of the peak at 04:00 UTC, the peak at 16:00 UTC.
    pub(crate) fn daily(time: Micros) -> f64 {
        let hours = time.rem_euclid(24 * HOUR) as f64 / HOUR as f64;
        let phase = (hours - 4.0) / 24.0 * std::f64::consts::TAU;
        0.2 + 0.8 * (0.5 - 0.5 * phase.cos())
    }

    /// The next time of a process with rate `peak` per second at the daily peak, shaped
    /// by the daily curve (thinning).
    pub(crate) fn next_arrival(&mut self, from: Micros, peak: f64) -> Micros {
        let mut time = from;
        loop {
            time += self.exp_gap(SECOND as f64 / peak).max(MS);
            if self.rng.f64() < Self::daily(time) || time >= self.end {
                return time;
            }
        }
    }

    /// The learning period in microseconds.
    pub(crate) fn learning(&self) -> Micros {
        micros(self.config.learning)
    }

    fn schedule_scenarios(&mut self) {
        let mut kinds: Vec<ScenarioKind> = Vec::new();
        let lookalikes: &[ScenarioKind] = if self.config.lookalikes {
            ScenarioKind::LOOKALIKES
        } else {
            &[]
        };
        // Interleaved, so look-alikes sit between attacks as they would in a real day.
        let attacks = self.config.attacks.clone();
        for at in 0..attacks.len().max(lookalikes.len()) {
            kinds.extend(attacks.get(at));
            kinds.extend(lookalikes.get(at));
        }
        let from = self.config.start + self.learning() + 10 * MINUTE;
        // The longest scenario spans 25 minutes of event time.
        let until = self.end - 30 * MINUTE;
        let step = (until - from).max(0) / kinds.len().max(1) as Micros;
        for (at, kind) in kinds.into_iter().enumerate() {
            let time = from + step * at as Micros + self.between(0, step / 4);
            self.scenarios.push(Scenario::new(kind));
            self.at(time, Action::Scenario(at));
        }
        if self.config.lookalikes {
            // The batch job's runs after learning: every run is a benign fan-out.
            self.scenarios
                .push(Scenario::new(ScenarioKind::BatchFanOut));
        }
    }

    /// The scenario collecting the batch job's runs after learning, if look-alikes are on.
    pub(crate) fn batch_scenario(&self) -> Option<usize> {
        self.scenarios
            .iter()
            .position(|s| s.kind == ScenarioKind::BatchFanOut)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(seed: u64) -> GenConfig {
        GenConfig {
            seed,
            users: 100,
            learning: Duration::from_secs(3_600),
            duration: Duration::from_secs(2 * 3_600 + 600),
            service_calls_per_second: 0.05,
            ..GenConfig::default()
        }
    }

    fn bytes(config: GenConfig) -> Vec<u8> {
        let mut generator = Generator::new(config).unwrap();
        let mut out = Vec::new();
        for event in generator.by_ref() {
            out.extend_from_slice(event.json.as_bytes());
            out.push(b'\n');
        }
        generator.truth().write_jsonl(&mut out).unwrap();
        out
    }

    #[test]
    fn same_seed_gives_byte_identical_events_and_truth() {
        let first = bytes(config(42));
        assert!(first.len() > 100_000);
        assert_eq!(first, bytes(config(42)));
        assert_ne!(first, bytes(config(43)));
    }

    #[test]
    fn events_come_in_event_time_order_within_the_period() {
        let config = config(5);
        let (start, end) = (config.start, config.end());
        let mut previous = start;
        for event in Generator::new(config).unwrap() {
            assert!(event.time >= previous && event.time < end);
            assert_eq!(event.time % MS, 0);
            previous = event.time;
        }
    }

    #[test]
    fn rejects_a_period_too_short_for_the_scenarios() {
        let mut config = config(1);
        config.duration = Duration::from_secs(3_600);
        assert!(Generator::new(config).is_err());
    }
}
