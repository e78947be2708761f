//! The baseline of who reaches which service, that decides whether an edge is new.
//!
//! A service principal has its own baseline: the targets it reached, learnt during its
//! first `learning` of event time. Users share one: the targets any user reached during
//! the `learning` that starts at the first user event (users normally reach only front
//! services, and each user alone is too sparse to learn from).

use authtrail_model::{Event, Kind, Micros, PrincipalType};
use serde::{Deserialize, Serialize};

use crate::state::hash::HashedSet;
use crate::state::{KeyedState, TableStats};

/// Whether an `authz` event's edge `principal -> target` is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeFact {
    /// New in the sense of `new_service_edge`.
    pub new: bool,
    /// The principal is a service (its own baseline) rather than a user (the population's).
    pub service: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceBaseline {
    first_seen: Micros,
    /// Sorted, for binary search; services reach tens of targets, not thousands.
    targets: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Baseline {
    #[serde(skip)]
    learning: Micros,
    #[serde(skip)]
    ttl: Micros,
    #[serde(skip)]
    max_user_targets: usize,
    services: KeyedState<ServiceBaseline>,
    user_first: Option<Micros>,
    user_targets: HashedSet,
}

impl Baseline {
    /// `learning` as in `new_service_edge`; a service's baseline is forgotten after
    /// `ttl` without events (it then learns again, silently).
    pub fn new(learning: Micros, ttl: Micros, max_keys: usize) -> Self {
        Baseline {
            learning,
            ttl,
            max_user_targets: max_keys,
            services: KeyedState::new(max_keys),
            user_first: None,
            user_targets: HashedSet::default(),
        }
    }

    /// Restores the learnt part of `saved` under this config.
    pub fn restored(self, saved: Baseline) -> Self {
        Baseline {
            services: saved.services.with_cap(self.max_user_targets),
            user_first: saved.user_first,
            user_targets: saved.user_targets,
            ..self
        }
    }

    /// Takes in one event; for an `authz` event with a target, says whether its edge
    /// was new before this event.
    pub fn observe(
        &mut self,
        event: &Event<'_>,
        principal: u64,
        target: Option<u64>,
        now: Micros,
    ) -> Option<EdgeFact> {
        let time = event.time;
        let target = target.filter(|_| event.kind == Kind::Authz);
        match event.principal_type {
            PrincipalType::Service => {
                let slot =
                    self.services
                        .upsert(principal, now, time + self.ttl, || ServiceBaseline {
                            first_seen: time,
                            targets: Vec::new(),
                        });
                let baseline = &mut slot.value;
                baseline.first_seen = baseline.first_seen.min(time);
                let target = target?;
                let learnt = time >= baseline.first_seen + self.learning;
                let new = match baseline.targets.binary_search(&target) {
                    Ok(_) => false,
                    Err(at) => {
                        baseline.targets.insert(at, target);
                        learnt
                    }
                };
                Some(EdgeFact { new, service: true })
            }
            PrincipalType::User => {
                let first = *self.user_first.get_or_insert(time);
                let first = first.min(time);
                self.user_first = Some(first);
                let target = target?;
                let new = if time < first + self.learning {
                    if self.user_targets.len() < self.max_user_targets {
                        self.user_targets.insert(target);
                    }
                    false
                } else {
                    !self.user_targets.contains(&target)
                };
                Some(EdgeFact {
                    new,
                    service: false,
                })
            }
        }
    }

    pub fn sweep(&mut self, now: Micros) {
        self.services.sweep(now);
    }

    pub fn stats(&self) -> TableStats {
        let mut stats = self.services.stats();
        stats.live_keys += self.user_targets.len();
        stats
    }
}
