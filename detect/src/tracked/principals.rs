//! What the per-principal detectors keep on each principal, in one entry:
//! `service_fan_out`'s reaches, `brute_force`'s failures, `authz_probing`'s denies and
//! `mfa_fatigue`'s prompts. An event probes the principal's entry once for all of them
//! instead of once per detector; each part expires and is counted on its own, as its
//! own table would be.

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::detectors::{Account, Deny, Reaches};
use crate::state::id::EventId;
use crate::state::packed::Packed;
use crate::state::part::{Part, PartCounts};
use crate::state::{KeyedState, Parts, Slot};

/// Everything kept on one principal. The slot's `expires_at` is the earliest expiry of
/// a live part (see `Slot`), so a sweep reads one field of most principals instead of
/// four parts; the latest is computed from the parts when an eviction needs it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PrincipalEntry {
    pub fan_out: Part<Reaches>,
    pub brute_force: Part<Account>,
    /// Packed in one block of its entries' size while live (24 bytes inline): a
    /// principal that is denied at all is usually denied several times, and a boxed
    /// `Window` (16 bytes inline) then paid for a 40-byte block besides its spilled
    /// entries.
    pub authz_probing: Part<Packed<Deny>>,
    // Packed (16 bytes, no block while empty): MFA failures come from a minority of
    // principals, who mostly hold one or two.
    pub mfa_fatigue: Part<Packed<EventId>>,
}

impl PrincipalEntry {
    fn live(&self) -> [bool; 4] {
        [
            self.fan_out.is_live(),
            self.brute_force.is_live(),
            self.authz_probing.is_live(),
            self.mfa_fatigue.is_live(),
        ]
    }

    fn untils(&self) -> [Micros; 4] {
        [
            self.fan_out.until(),
            self.brute_force.until(),
            self.authz_probing.until(),
            self.mfa_fatigue.until(),
        ]
    }

    /// Sets the slot's `expires_at` to the earliest expiry of a live part (see
    /// `Slot`), or to the past when none is live, so the next sweep drops the entry.
    fn set_expiries(slot: &mut Slot<PrincipalEntry>) {
        let (latest, next) = crate::state::part::latest_and_next(slot.value.untils());
        slot.expires_at = if latest == Micros::MIN {
            Micros::MIN
        } else {
            next
        };
    }
}

/// Per-part counts, reported as the four detectors' tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PrincipalCounts {
    pub fan_out: PartCounts,
    pub brute_force: PartCounts,
    pub authz_probing: PartCounts,
    pub mfa_fatigue: PartCounts,
}

impl PrincipalCounts {
    fn each(&mut self) -> [&mut PartCounts; 4] {
        [
            &mut self.fan_out,
            &mut self.brute_force,
            &mut self.authz_probing,
            &mut self.mfa_fatigue,
        ]
    }
}

impl Parts for PrincipalEntry {
    type Counts = PrincipalCounts;

    fn sweep(slot: &mut Slot<Self>, now: Micros, counts: &mut PrincipalCounts) -> bool {
        if slot.expires_at >= now {
            return true;
        }
        let entry = &mut slot.value;
        entry.fan_out.sweep(now, &mut counts.fan_out);
        entry.brute_force.sweep(now, &mut counts.brute_force);
        entry.authz_probing.sweep(now, &mut counts.authz_probing);
        entry.mfa_fatigue.sweep(now, &mut counts.mfa_fatigue);
        PrincipalEntry::set_expiries(slot);
        slot.value.live() != [false; 4]
    }

    fn latest(&self) -> Micros {
        crate::state::part::latest_and_next(self.untils()).0
    }

    fn evicted(&self, counts: &mut PrincipalCounts) {
        self.fan_out.evicted(&mut counts.fan_out);
        self.brute_force.evicted(&mut counts.brute_force);
        self.authz_probing.evicted(&mut counts.authz_probing);
        self.mfa_fatigue.evicted(&mut counts.mfa_fatigue);
    }
}

/// Which of the four detectors run (their parts are dropped on restore otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrincipalDetectors {
    pub fan_out: bool,
    pub brute_force: bool,
    pub authz_probing: bool,
    pub mfa_fatigue: bool,
}

impl PrincipalDetectors {
    pub fn any(&self) -> bool {
        self.fan_out || self.brute_force || self.authz_probing || self.mfa_fatigue
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PrincipalTable {
    principals: KeyedState<PrincipalEntry>,
    counts: PrincipalCounts,
}

/// A principal's entry, opened once for an event; [`close`](OpenPrincipal::close)
/// counts the parts the detectors created.
pub(crate) struct OpenPrincipal<'a> {
    key: u64,
    slot: &'a mut Slot<PrincipalEntry>,
    counts: &'a mut PrincipalCounts,
    was_live: [bool; 4],
}

impl PrincipalTable {
    pub fn new(max_keys: usize) -> Self {
        PrincipalTable {
            principals: KeyedState::new(max_keys),
            counts: PrincipalCounts::default(),
        }
    }

    /// Restores `saved` under this config, dropping the parts of detectors it does not
    /// run (a principal left with no part goes at the next sweep).
    pub fn restored(saved: PrincipalTable, max_keys: usize, runs: PrincipalDetectors) -> Self {
        let mut table = PrincipalTable {
            principals: saved.principals.with_cap(max_keys),
            counts: saved.counts,
        };
        let counts = &mut table.counts;
        for slot in table.principals.values_mut() {
            let entry = &mut slot.value;
            if !runs.fan_out {
                entry.fan_out.clear(&mut counts.fan_out);
            }
            if !runs.brute_force {
                entry.brute_force.clear(&mut counts.brute_force);
            }
            if !runs.authz_probing {
                entry.authz_probing.clear(&mut counts.authz_probing);
            }
            if !runs.mfa_fatigue {
                entry.mfa_fatigue.clear(&mut counts.mfa_fatigue);
            }
            PrincipalEntry::set_expiries(slot);
        }
        let runs = [
            runs.fan_out,
            runs.brute_force,
            runs.authz_probing,
            runs.mfa_fatigue,
        ];
        for (counts, runs) in counts.each().into_iter().zip(runs) {
            if !runs {
                *counts = PartCounts::default();
            }
        }
        table
    }

    /// The entry of `principal`, created empty when absent.
    pub fn open(&mut self, principal: u64, now: Micros) -> OpenPrincipal<'_> {
        let slot =
            self.principals
                .upsert_parts(principal, now, PrincipalEntry::default, &mut self.counts);
        OpenPrincipal {
            key: principal,
            was_live: slot.value.live(),
            slot,
            counts: &mut self.counts,
        }
    }

    /// Forgets a principal that an event opened but left with nothing in it.
    pub fn remove(&mut self, principal: u64) {
        self.principals.remove(principal);
    }

    pub fn sweep(&mut self, now: Micros) {
        self.principals.sweep_parts(now, &mut self.counts);
    }

    pub fn counts(&self) -> &PrincipalCounts {
        &self.counts
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.principals.len()
    }
}

impl OpenPrincipal<'_> {
    /// The detectors' view of the entry.
    pub fn entry(&mut self) -> &mut PrincipalEntry {
        &mut self.slot.value
    }

    /// Counts the parts the event created; returns the principal's key when nothing is
    /// kept on it (the caller removes it).
    pub fn close(self) -> Option<u64> {
        let live = self.slot.value.live();
        let (was, counts) = (self.was_live, self.counts);
        counts.fan_out.created(was[0], live[0]);
        counts.brute_force.created(was[1], live[1]);
        counts.authz_probing.created(was[2], live[2]);
        counts.mfa_fatigue.created(was[3], live[3]);
        PrincipalEntry::set_expiries(self.slot);
        (live == [false; 4]).then_some(self.key)
    }
}
