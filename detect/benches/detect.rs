//! All detectors on a realistic mix of identity events from 100k active principals, one
//! core: events/s through `Detectors::observe`, event-in -> alerts-out latency
//! quantiles, and the memory the detector state takes per active principal.
//!
//! Memory is measured by a counting global allocator: the heap bytes the detectors hold
//! at the end of the run (requested sizes, live allocations only; events are made in
//! batches and dropped, alerts are drained, so neither counts). The growth of the
//! process's resident set is printed next to it (it includes the allocator's own
//! overhead and pages freed but not returned), and the checkpoint size.
//!
//! The run ends with a digest of every alert (id, detector, severity, evidence) and of
//! every table's live / expired / evicted counts: an optimisation must leave it
//! unchanged. With `EXPECT_DIGEST` set the bench exits non-zero when it differs.
//!
//! Throughput is printed twice: per wall-clock second, and per second the thread was
//! on a CPU (the scheduler's accounting), which stays comparable when other processes
//! share the cores.
//!
//! `cargo bench -p authtrail-detect` (env `EVENTS` overrides the event count).

use std::borrow::Cow;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use authtrail_detect::{DetectConfig, Detectors};
use authtrail_model::{Event, Kind, Micros, Outcome, PrincipalType};
use cap::Cap;
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};

/// mimalloc, the allocator the `authtrail` binary ships with, counting the bytes it
/// holds (requested sizes, so mimalloc's own overhead is not included).
#[global_allocator]
static ALLOCATOR: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Heap bytes held now (requested sizes of live allocations).
fn held_bytes() -> isize {
    ALLOCATOR.allocated() as isize
}

const PRINCIPALS: usize = 100_000;
const SERVICES: usize = 1_000;
const BACKENDS: usize = 200;
const FRONTS: [&str; 3] = ["web", "api", "mobile-bff"];
const T0: Micros = 1_795_456_800_000_000;
/// Event time between two events: 10k events/s of event time, so a run of millions of
/// events spans many windows and TTLs, and expiry and sweeps are exercised.
const STEP: Micros = 100;

/// xorshift64*: a fast deterministic source of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct World {
    names: Vec<String>,
    backends: Vec<String>,
    /// Current token generation per principal.
    tokens: Vec<u32>,
    rng: Rng,
    seq: u64,
}

fn text(value: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(value))
}

impl World {
    fn new() -> Self {
        let names = (0..PRINCIPALS)
            .map(|i| {
                if i < SERVICES {
                    format!("svc:s{i}")
                } else {
                    format!("user:u{i}")
                }
            })
            .collect();
        World {
            names,
            backends: (0..BACKENDS).map(|i| format!("backend-{i}")).collect(),
            tokens: vec![0; PRINCIPALS],
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            seq: 0,
        }
    }

    /// The next event of the mix: 56% authz allow, 3% authz deny, 34% authn success,
    /// 5% authn failure (a fifth of them MFA), 1% token issue, 1% token revoke (of the
    /// previous token: rotation), plus one token issue per principal at the start.
    /// Services call ten backends each within their token's audience-less grant; users
    /// reach front services within their token's audience.
    fn next(&mut self) -> Event<'_> {
        let seq = self.seq;
        self.seq += 1;
        let time = T0 + seq as Micros * STEP;
        let p = if (seq as usize) < PRINCIPALS {
            seq as usize
        } else {
            self.rng.below(PRINCIPALS)
        };
        let service = p < SERVICES;
        let roll = if (seq as usize) < PRINCIPALS {
            0
        } else {
            self.rng.below(100)
        };
        let kind = match roll {
            0 => Kind::TokenIssue,
            1 => Kind::TokenRevoke,
            2..=40 => Kind::Authn,
            _ => Kind::Authz,
        };
        if kind == Kind::TokenIssue {
            self.tokens[p] += 1;
        }
        let generation = self.tokens[p];
        let choice = self.rng.below(100);
        let ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + p as u32));
        let principal = self.names[p].as_str();
        let id = Cow::Owned(format!("e{seq}"));
        let mut event = Event {
            principal_type: if service {
                PrincipalType::Service
            } else {
                PrincipalType::User
            },
            source_ip: Some(ip),
            token_id: Some(Cow::Owned(format!("t{p}-{generation}"))),
            ..Event::new(id, time, kind, Cow::Borrowed(principal))
        };
        match kind {
            Kind::TokenIssue => {
                event.outcome = Some(Outcome::Success);
                event.token_expires = Some(time + 3_600_000_000);
                // client_credentials tokens of this mix carry no audience.
                event.token_audience =
                    (!service).then(|| FRONTS.iter().map(|f| Cow::Borrowed(*f)).collect());
                event.auth_method = text(if service {
                    "client_credentials"
                } else {
                    "authorization_code"
                });
            }
            Kind::TokenRevoke => {
                // Rotation: the previous token goes.
                event.token_id = Some(Cow::Owned(format!("t{p}-{}", generation.saturating_sub(1))));
            }
            Kind::Authn => {
                let failed = roll >= 36;
                event.outcome = Some(if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                });
                event.token_id = None;
                event.auth_method = text(match (service, choice) {
                    (true, _) => "mtls",
                    (false, 0..=19) => "mfa_push",
                    _ => "password",
                });
                event.user_agent = text(if service {
                    "okhttp/4.12"
                } else {
                    "Mozilla/5.0"
                });
            }
            Kind::Authz => {
                let denied = roll >= 97;
                event.outcome = Some(if denied {
                    Outcome::Deny
                } else {
                    Outcome::Allow
                });
                let target: &str = if service {
                    // Each service calls ten backends of its own.
                    &self.backends[(p * 13 + choice % 10) % BACKENDS]
                } else {
                    FRONTS[choice % 3]
                };
                event.target_service = text(target);
                if service {
                    event.source_service = Some(Cow::Borrowed(&principal[4..]));
                }
            }
        }
        event
    }
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Time this thread has spent on a CPU, from the scheduler's own accounting
/// (`/proc/thread-self/schedstat`, first field, in ns): unlike wall-clock time it does
/// not count the time other processes had the core, so runs on a shared, busy machine
/// can be compared. `None` where the kernel does not provide it.
fn on_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn main() {
    let events: u64 = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let config = DetectConfig::default();
    let mut world = World::new();
    let mut detectors = Detectors::new(&config).expect("default config is valid");
    let mut alerts = Vec::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut raised = 0u64;
    let mut by_detector = std::collections::BTreeMap::<String, u64>::new();
    let mut busy = Duration::ZERO;
    let mut busy_on_cpu = Some(Duration::ZERO);

    // Throughput: time batches of observe calls; latency: time every 16th call on its
    // own (an `Instant::now` pair per event would distort the throughput figure).
    let mut digest = Sha256::new();
    let resident_before = resident_bytes();
    let held_before = held_bytes();
    let mut batch = Vec::with_capacity(4_096);
    let mut done = 0u64;
    while done < events {
        batch.clear();
        let n = 4_096.min(events - done);
        for _ in 0..n {
            batch.push(world.next().into_owned());
        }
        let start = Instant::now();
        let start_on_cpu = on_cpu();
        for (i, event) in batch.iter().enumerate() {
            if i % 16 == 0 {
                let one = Instant::now();
                detectors.observe(event, &mut alerts);
                latency
                    .record(one.elapsed().as_nanos().max(1) as u64)
                    .unwrap();
            } else {
                detectors.observe(event, &mut alerts);
            }
            raised += alerts.len() as u64;
            for alert in alerts.drain(..) {
                for field in [
                    alert.id.as_str(),
                    alert.detector.as_str(),
                    alert.severity.as_str(),
                ] {
                    digest.update(field.as_bytes());
                    digest.update([0]);
                }
                for id in &alert.evidence_ids {
                    digest.update(id.as_bytes());
                    digest.update([1]);
                }
                *by_detector.entry(alert.detector).or_default() += 1;
            }
        }
        busy += start.elapsed();
        busy_on_cpu = match (busy_on_cpu, start_on_cpu, on_cpu()) {
            (Some(total), Some(start), Some(end)) => Some(total + end.saturating_sub(start)),
            _ => None,
        };
        done += n;
    }
    drop(batch);
    let held = (held_bytes() - held_before).max(0) as usize;
    let resident_after = resident_bytes();
    let stats = detectors.stats();
    let checkpoint = black_box(detectors.checkpoint());
    for table in &stats.tables {
        let state = table.state;
        digest.update(table.name.as_bytes());
        for count in [state.live_keys as u64, state.expired, state.evicted] {
            digest.update(count.to_le_bytes());
        }
    }
    for count in [
        stats.events,
        stats.late_events,
        stats.alerts,
        stats.suppressed,
    ] {
        digest.update(count.to_le_bytes());
    }
    let digest = hex::encode(&digest.finalize()[..8]);

    let state = resident_after.saturating_sub(resident_before);
    println!("events:              {done}");
    println!(
        "alerts raised:       {raised} (suppressed {})",
        stats.suppressed
    );
    println!(
        "throughput:          {:.0} events/s (one core)",
        done as f64 / busy.as_secs_f64()
    );
    if let Some(on_cpu) = busy_on_cpu {
        println!(
            "throughput on-CPU:   {:.0} events/s (per second this thread ran)",
            done as f64 / on_cpu.as_secs_f64()
        );
    }
    for q in [0.5, 0.99, 0.999] {
        println!(
            "latency p{:<5}       {:.2} µs",
            q * 100.0,
            latency.value_at_quantile(q) as f64 / 1_000.0
        );
    }
    println!(
        "latency max:         {:.2} µs",
        latency.max() as f64 / 1_000.0
    );
    println!(
        "state (heap held):   {:.1} MiB = {:.0} bytes per active principal",
        held as f64 / (1 << 20) as f64,
        held as f64 / PRINCIPALS as f64
    );
    println!(
        "state (RSS growth):  {:.1} MiB = {:.0} bytes per active principal",
        state as f64 / (1 << 20) as f64,
        state as f64 / PRINCIPALS as f64
    );
    println!(
        "checkpoint:          {:.1} MiB = {:.0} bytes per active principal",
        checkpoint.len() as f64 / (1 << 20) as f64,
        checkpoint.len() as f64 / PRINCIPALS as f64
    );
    for table in &stats.tables {
        println!(
            "  {:<26} live {:>8}  expired {:>8}  evicted {:>3}",
            table.name, table.state.live_keys, table.state.expired, table.state.evicted
        );
    }
    println!("alerts by detector:  {by_detector:?}");
    println!("digest:              {digest} (alerts and table counts)");
    if let Ok(expected) = std::env::var("EXPECT_DIGEST") {
        if expected != digest {
            eprintln!("digest {digest} differs from the expected {expected}");
            std::process::exit(1);
        }
    }
}
