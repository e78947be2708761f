//! Events and configs for the detectors' tests.

use std::borrow::Cow;

use authtrail_model::{Alert, Event, Kind, Micros, Outcome};

use crate::state::TableStats;
use crate::{DetectConfig, Detectors, SourceId};

/// 2026-11-23T18:00:00Z, the contract's example day.
pub const T0: Micros = 1_795_456_800_000_000;

/// `T0` plus some seconds.
pub fn at(seconds: f64) -> Micros {
    T0 + (seconds * 1e6) as Micros
}

/// An event with only the required fields.
pub fn event(id: &str, seconds: f64, kind: Kind, principal: &str) -> Event<'static> {
    let (id, principal) = (Cow::Owned(id.to_owned()), Cow::Owned(principal.to_owned()));
    Event::new(id, at(seconds), kind, principal)
}

pub fn text(value: &str) -> Option<Cow<'static, str>> {
    Some(Cow::Owned(value.to_owned()))
}

/// An `authn` with an outcome and `auth_method`.
pub fn authn(id: &str, seconds: f64, principal: &str, ok: bool, method: &str) -> Event<'static> {
    let mut event = event(id, seconds, Kind::Authn, principal);
    event.outcome = Some(if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    });
    event.auth_method = text(method);
    event
}

/// An `authz` of `principal` against `target`.
pub fn authz(id: &str, seconds: f64, principal: &str, target: &str, allow: bool) -> Event<'static> {
    let mut event = event(id, seconds, Kind::Authz, principal);
    event.outcome = Some(if allow { Outcome::Allow } else { Outcome::Deny });
    event.service = text(target);
    event.target_service = text(target);
    event
}

/// `n` allowed `authz` events of `principal`, each to another target (`{target}{i}`),
/// `every` seconds apart from `start`; ids `{id}{i}`.
pub fn reaches(
    id: &str,
    principal: &str,
    target: &str,
    n: usize,
    start: f64,
    every: f64,
) -> Vec<Event<'static>> {
    let reach = |i| {
        let time = start + i as f64 * every;
        authz(
            &format!("{id}{i}"),
            time,
            principal,
            &format!("{target}{i}"),
            true,
        )
    };
    (0..n).map(reach).collect()
}

/// `svc:gateway` calling the same `targets` services (`s0`, `s1`, ...) `every` seconds
/// apart on each of three days: nothing in it is new after the first day.
pub fn same_calls_every_day(targets: usize, every: f64) -> Vec<Event<'static>> {
    const DAY: f64 = 24.0 * 3_600.0;
    let day = |day| {
        let start = day as f64 * DAY;
        reaches(
            &format!("d{day}-"),
            "svc:gateway",
            "s",
            targets,
            start,
            every,
        )
    };
    (0..3).flat_map(day).collect()
}

/// A config with only the named detector enabled.
pub fn only(name: &str) -> DetectConfig {
    let mut config = DetectConfig::default();
    config.new_service_edge.enabled = name == "new_service_edge";
    config.service_fan_out.enabled = name == "service_fan_out";
    config.authz_probing.enabled = name == "authz_probing";
    config.brute_force.enabled = name == "brute_force";
    config.password_spray.enabled = name == "password_spray";
    config.token_replay.enabled = name == "token_replay";
    config.revoked_token_use.enabled = name == "revoked_token_use";
    config.audience_mismatch.enabled = name == "audience_mismatch";
    config.validation_gap.enabled = name == "validation_gap";
    config.mfa_fatigue.enabled = name == "mfa_fatigue";
    config.service_interactive_login.enabled = name == "service_interactive_login";
    config
}

/// The alerts `events` raise, fed in order to fresh detectors.
pub fn run(config: &DetectConfig, events: &[Event<'_>]) -> Vec<Alert> {
    let mut detectors = Detectors::new(config).unwrap();
    feed(&mut detectors, events)
}

/// Feeds `events` and returns the alerts they raise.
pub fn feed(detectors: &mut Detectors, events: &[Event<'_>]) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for event in events {
        detectors.observe(event, &mut alerts);
    }
    alerts
}

/// Feeds `events` from `source` (a partition) and returns the alerts they raise.
pub fn feed_from(detectors: &mut Detectors, source: SourceId, events: &[Event<'_>]) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for event in events {
        detectors.observe_from(source, event, &mut alerts);
    }
    alerts
}

/// Stats of one detector's (or shared table's) state, by name.
pub fn table(detectors: &Detectors, name: &str) -> TableStats {
    let stats = detectors.stats();
    stats.tables.iter().find(|t| t.name == name).unwrap().state
}
