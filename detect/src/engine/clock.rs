//! Event-time clocks: a watermark per source (a Kafka partition, a file) and the clock
//! state expires on.
//!
//! Lateness is judged against the event's own source: catching up on a backlog, one
//! partition may run hours of event time ahead of another, and the lagging partition's
//! events are in order within it. State is shared across partitions (a source IP sprays
//! principals on every partition, tokens are presented by services on others), so what
//! expires and what windows forget follows the *slowest* active source: the clock is
//! the minimum of the active sources' watermarks. A source that delivers nothing for
//! `source_idle_after` (wall-clock time, reported through [`Detectors::tick`], each gap
//! between ticks counted up to 1 s) stops holding the clock back until its next event;
//! a released source (revoked in a rebalance) is forgotten.

use std::time::{Duration, Instant};

use authtrail_model::{Alert, Event, Micros};
use serde::{Deserialize, Serialize};

use super::Detectors;

/// What the expiry clock reads before every active source has shown an event time:
/// far in the past, so nothing expires, yet far enough from `Micros::MIN` that the
/// detectors' `now - lateness - window` cannot overflow (durations are capped at
/// `Micros::MAX / 4`).
pub(super) const FLOOR: Micros = Micros::MIN / 4;

/// A gap between two ticks counts at most this much toward a source's idleness: while
/// the pipeline stalls (a slow disk, backpressure) no partition delivers, and the first
/// batch after the stall must not find every partition but its own idle.
const MAX_TICK_GAP: Duration = Duration::from_secs(1);

/// A source of events with its own watermark, from [`Detectors::source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(u32);

impl SourceId {
    /// The source [`Detectors::observe`] uses: for a single stream (a file, stdin,
    /// tests), it need not be registered.
    pub const DEFAULT: SourceId = SourceId(0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Holds the clock at its watermark (at `FLOOR` before its first event).
    Active,
    /// Delivered nothing for `source_idle_after`: keeps its watermark for lateness, but
    /// does not hold the clock until its next event.
    Idle,
    /// A free slot (released, or restored and never claimed before it went idle).
    Vacant,
}

#[derive(Debug)]
struct Source {
    /// `""` for the default source.
    name: Box<str>,
    partition: i32,
    /// The newest event time seen from this source; `Micros::MIN` before its first.
    watermark: Micros,
    state: State,
    /// Registered through `Detectors::source` in this process (restored sources are not
    /// until then, and leave when idle).
    claimed: bool,
    /// Had an event since the last tick.
    seen: bool,
    /// `Clocks::running` at the last tick that found it had events (or its first tick).
    last_seen: Option<Duration>,
}

impl Source {
    fn new(name: &str, partition: i32, watermark: Micros, state: State) -> Self {
        Source {
            name: name.into(),
            partition,
            watermark,
            state,
            claimed: false,
            seen: false,
            last_seen: None,
        }
    }
}

/// A source's watermark as a checkpoint keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SavedSource {
    name: String,
    partition: i32,
    watermark: Micros,
}

/// The per-source watermarks and the expiry clock over them.
#[derive(Debug)]
pub(super) struct Clocks {
    sources: Vec<Source>,
    /// The minimum watermark of the active sources; `Micros::MIN` while one of them has
    /// none yet (or none was ever active).
    clock: Micros,
    idle_after: Duration,
    /// Wall-clock time between ticks, each gap counted up to `MAX_TICK_GAP`.
    running: Duration,
    last_tick: Option<Instant>,
    /// Whether the last event observed was late for its source.
    last_late: bool,
}

/// How the clocks stood after an event: whether it was late for its own source, and the
/// clock state expires on. State kept next to the detectors (the Sigma rules') reads it
/// so that it follows the same watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// Older than the allowed lateness behind its source's watermark.
    pub late: bool,
    /// The oldest watermark of the active sources (far in the past before each has
    /// shown an event time), as [`Facts::now`](crate::Facts::now).
    pub now: Micros,
}

impl Clocks {
    pub fn new(idle_after: Duration) -> Self {
        Clocks {
            // The default source waits idle: it holds nothing back until it is used.
            sources: vec![Source::new("", 0, Micros::MIN, State::Idle)],
            clock: Micros::MIN,
            idle_after,
            running: Duration::ZERO,
            last_tick: None,
            last_late: false,
        }
    }

    /// Takes in an event time from `source`; true when it is late for that source.
    #[inline]
    pub fn observe(&mut self, source: SourceId, time: Micros, lateness: Micros) -> bool {
        let source = &mut self.sources[source.0 as usize];
        source.seen = true;
        let late = source.watermark != Micros::MIN && time < source.watermark - lateness;
        let mut moved = source.state != State::Active;
        source.state = State::Active;
        if time > source.watermark {
            // Only the source(s) at the minimum move the clock.
            moved |= source.watermark <= self.clock;
            source.watermark = time;
        }
        if moved {
            if self.sources.len() == 1 {
                // One stream (files, the bench): its watermark is the clock.
                self.clock = self.sources[0].watermark;
            } else {
                self.recompute();
            }
        }
        self.last_late = late;
        late
    }

    /// The clock state expires on, floored (see `FLOOR`).
    #[inline]
    pub fn now(&self) -> Micros {
        self.clock.max(FLOOR)
    }

    fn recompute(&mut self) {
        let active = self.sources.iter().filter(|s| s.state == State::Active);
        // With no source active (all idle), nothing arrives to expire state for.
        if let Some(min) = active.map(|s| s.watermark).min() {
            self.clock = min;
        }
    }

    /// Sources holding the clock.
    pub fn active(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| s.state == State::Active)
            .count()
    }

    pub fn register(&mut self, name: &str, partition: i32) -> SourceId {
        let known =
            |s: &Source| s.state != State::Vacant && s.partition == partition && *s.name == *name;
        if let Some(at) = self.sources.iter().skip(1).position(known) {
            self.sources[at + 1].claimed = true;
            return SourceId(at as u32 + 1);
        }
        let mut source = Source::new(name, partition, Micros::MIN, State::Active);
        source.claimed = true;
        let vacant = self.sources.iter().position(|s| s.state == State::Vacant);
        let at = match vacant {
            Some(at) => {
                self.sources[at] = source;
                at
            }
            None => {
                self.sources.push(source);
                self.sources.len() - 1
            }
        };
        self.recompute();
        SourceId(at as u32)
    }

    pub fn release(&mut self, source: SourceId) {
        if source == SourceId::DEFAULT {
            self.sources[0] = Source::new("", 0, Micros::MIN, State::Idle);
        } else if let Some(slot) = self.sources.get_mut(source.0 as usize) {
            *slot = Source::new("", 0, Micros::MIN, State::Vacant);
        }
        self.recompute();
    }

    pub fn tick(&mut self, now: Instant) {
        if let Some(last) = self.last_tick {
            self.running += now.saturating_duration_since(last).min(MAX_TICK_GAP);
        }
        self.last_tick = Some(now);
        let running = self.running;
        let mut changed = false;
        for (at, source) in self.sources.iter_mut().enumerate() {
            if source.state != State::Active {
                continue;
            }
            if std::mem::take(&mut source.seen) {
                source.last_seen = Some(running);
                continue;
            }
            let since = *source.last_seen.get_or_insert(running);
            if running - since < self.idle_after {
                continue;
            }
            changed = true;
            source.state = State::Idle;
            // A restored source nobody registered again is not coming back to this
            // process (or will be registered anew): its slot is freed.
            if !source.claimed && at != 0 {
                *source = Source::new("", 0, Micros::MIN, State::Vacant);
            }
        }
        if changed {
            self.recompute();
        }
    }

    /// The watermarks worth keeping: every source that saw an event.
    pub fn save(&self) -> Vec<SavedSource> {
        self.sources
            .iter()
            .filter(|s| s.state != State::Vacant && s.watermark != Micros::MIN)
            .map(|s| SavedSource {
                name: s.name.to_string(),
                partition: s.partition,
                watermark: s.watermark,
            })
            .collect()
    }

    /// Restored sources hold the clock (they may have a backlog now) until they idle;
    /// they are claimed again by registering them.
    pub fn restore(&mut self, saved: Vec<SavedSource>) {
        for saved in saved {
            let source = Source::new(&saved.name, saved.partition, saved.watermark, State::Active);
            if saved.name.is_empty() && saved.partition == 0 {
                self.sources[0] = source;
            } else {
                self.sources.push(source);
            }
        }
        self.recompute();
    }
}

impl Detectors {
    /// Registers a source of events (a Kafka topic partition, a file) with its own
    /// watermark, or finds the one of that name; [`observe_from`](Self::observe_from)
    /// takes the id. Until its first event a registered source holds expiry back, so
    /// registering every assigned partition up front keeps one that is read last from
    /// finding its shared state expired.
    pub fn source(&mut self, name: &str, partition: i32) -> SourceId {
        self.clocks.register(name, partition)
    }

    /// Forgets a source's watermark (its partition was revoked); its id must not be used
    /// again (register it anew).
    pub fn release(&mut self, source: SourceId) {
        self.clocks.release(source);
    }

    /// Reports the wall-clock time: active sources that delivered nothing for
    /// `source_idle_after` stop holding expiry back. Call it regularly (the pipeline
    /// does per batch and when idle); without ticks no source is ever idle. A gap between
    /// two ticks counts at most 1 s, so a stall of the caller idles nobody.
    pub fn tick(&mut self, now: Instant) {
        self.clocks.tick(now);
    }

    /// [`observe_from`](Self::observe_from) the default source, for a single stream.
    pub fn observe(&mut self, event: &Event<'_>, alerts: &mut Vec<Alert>) {
        self.observe_from(SourceId::DEFAULT, event, alerts);
    }

    /// How the last event observed stood: late for its source or not, and the clock.
    pub fn last_reading(&self) -> ClockReading {
        ClockReading {
            late: self.clocks.last_late,
            now: self.clocks.now(),
        }
    }

    /// The clock state expires on: the oldest watermark of the active sources.
    pub fn clock(&self) -> Option<Micros> {
        Some(self.clocks.now()).filter(|&now| now != FLOOR)
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
