//! What the per-principal detectors keep on each principal, in one entry:
//! `service_fan_out`'s reaches, `brute_force`'s failures, `authz_probing`'s denies and
//! `mfa_fatigue`'s prompts. An event probes the principal's entry once for all of them
//! instead of once per detector; each part expires and is counted on its own, as its
//! own table would be.

use authtrail_model::Micros;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::detectors::{Account, Deny, Reaches};
use crate::state::id::EventId;
use crate::state::packed::{Sections, Unpacked};
use crate::state::part::{Part, PartCounts};
use crate::state::window::Timed;
use crate::state::{Parts, PartsState};

/// Everything kept on one principal: four parts, each with its own expiry, from which
/// the table reads when a sweep has something to do with the principal (see `Parts`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PrincipalEntry {
    pub fan_out: Part<Reaches>,
    /// The failures are in `windows`.
    pub brute_force: Part<Account>,
    /// The denies are in `windows`: the part is their expiry and count.
    pub authz_probing: Part<()>,
    /// The MFA prompts are in `windows`: the part is their expiry and count.
    pub mfa_fatigue: Part<()>,
    pub windows: Windows,
}

/// A principal's failures (`brute_force`), denies (`authz_probing`) and MFA prompts
/// (`mfa_fatigue`): windows that usually hold several entries or none, packed in one
/// block ([`Sections`]; 16 bytes in the entry and at most one allocation, where a
/// `Packed` each took 48 bytes and up to three). Each window goes with its detector's
/// part: emptied when the part expires or is dropped. Encoded in checkpoints as the
/// three sequences of entries.
#[derive(Default)]
pub(crate) struct Windows(Sections<3>);

const FAILURES: usize = 0;
const DENIES: usize = 1;
const PROMPTS: usize = 2;

impl Windows {
    /// Edits `brute_force`'s failure ids by time.
    pub fn failures<R>(&mut self, f: impl FnOnce(&mut Unpacked<EventId>) -> R) -> R {
        self.0.edit(FAILURES, f)
    }

    /// Edits `authz_probing`'s denies by time.
    pub fn denies<R>(&mut self, f: impl FnOnce(&mut Unpacked<Deny>) -> R) -> R {
        self.0.edit(DENIES, f)
    }

    /// `mfa_fatigue`'s MFA failure ids by time, to read.
    pub fn prompts_now(&self) -> Unpacked<EventId> {
        self.0.entries(PROMPTS)
    }

    /// Edits `mfa_fatigue`'s MFA failure ids by time.
    pub fn prompts<R>(&mut self, f: impl FnOnce(&mut Unpacked<EventId>) -> R) -> R {
        self.0.edit(PROMPTS, f)
    }

    /// The windows' entries as they are encoded in checkpoints.
    #[allow(clippy::type_complexity)]
    fn unpacked(&self) -> (Unpacked<EventId>, Unpacked<Deny>, Unpacked<EventId>) {
        (
            self.0.entries(FAILURES),
            self.0.entries(DENIES),
            self.0.entries(PROMPTS),
        )
    }
}

impl std::fmt::Debug for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (failures, denies, prompts) = self.unpacked();
        f.debug_struct("Windows")
            .field("failures", &failures)
            .field("denies", &denies)
            .field("prompts", &prompts)
            .finish()
    }
}

impl Serialize for Windows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.unpacked().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Windows {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        type Entries<T> = Vec<Timed<T>>;
        let (failures, denies, prompts) =
            <(Entries<EventId>, Entries<Deny>, Entries<EventId>)>::deserialize(deserializer)?;
        let mut windows = Windows::default();
        windows.failures(|entries| entries.extend(failures));
        windows.denies(|entries| entries.extend(denies));
        windows.prompts(|entries| entries.extend(prompts));
        Ok(windows)
    }
}

impl PrincipalEntry {
    /// Empties the windows of the parts that are not live (expired or dropped).
    fn clear_windows(&mut self) {
        let windows = [
            (FAILURES, self.brute_force.is_live()),
            (DENIES, self.authz_probing.is_live()),
            (PROMPTS, self.mfa_fatigue.is_live()),
        ];
        for (at, live) in windows {
            if !live {
                self.windows.0.clear(at);
            }
        }
    }

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

    fn next_expiry(&self) -> Micros {
        crate::state::part::next_expiry(self.untils())
    }

    fn sweep(&mut self, now: Micros, counts: &mut PrincipalCounts) -> bool {
        self.fan_out.sweep(now, &mut counts.fan_out);
        self.brute_force.sweep(now, &mut counts.brute_force);
        self.authz_probing.sweep(now, &mut counts.authz_probing);
        self.mfa_fatigue.sweep(now, &mut counts.mfa_fatigue);
        self.clear_windows();
        self.live() != [false; 4]
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
    principals: PartsState<PrincipalEntry>,
    counts: PrincipalCounts,
}

/// A principal's entry, opened once for an event; [`close`](OpenPrincipal::close)
/// counts the parts the detectors created.
pub(crate) struct OpenPrincipal<'a> {
    key: u64,
    entry: &'a mut PrincipalEntry,
    counts: &'a mut PrincipalCounts,
    was_live: [bool; 4],
}

impl PrincipalTable {
    pub fn new(max_keys: usize) -> Self {
        PrincipalTable {
            principals: PartsState::new(max_keys),
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
        for entry in table.principals.values_mut() {
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
            entry.clear_windows();
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
        let entry =
            self.principals
                .upsert(principal, now, PrincipalEntry::default, &mut self.counts);
        OpenPrincipal {
            key: principal,
            was_live: entry.live(),
            entry,
            counts: &mut self.counts,
        }
    }

    /// Forgets a principal that an event opened but left with nothing in it.
    pub fn remove(&mut self, principal: u64) {
        self.principals.remove(principal);
    }

    pub fn sweep(&mut self, now: Micros) {
        self.principals.sweep(now, &mut self.counts);
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
        self.entry
    }

    /// Counts the parts the event created; returns the principal's key when nothing is
    /// kept on it (the caller removes it).
    pub fn close(self) -> Option<u64> {
        let live = self.entry.live();
        let (was, counts) = (self.was_live, self.counts);
        counts.fan_out.created(was[0], live[0]);
        counts.brute_force.created(was[1], live[1]);
        counts.authz_probing.created(was[2], live[2]);
        counts.mfa_fatigue.created(was[3], live[3]);
        (live == [false; 4]).then_some(self.key)
    }
}
