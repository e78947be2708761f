//! The detection bench's mix of identity events (100k active principals, a realistic
//! share of each kind), shared by the detector bench and the rules bench
//! (`rules/benches/rules.rs` includes this file) so both measure the same events; and the
//! thread's on-CPU time, which keeps runs on a shared machine comparable.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use authtrail_model::{Event, Kind, Micros, Outcome, PrincipalType};

pub const PRINCIPALS: usize = 100_000;
pub const SERVICES: usize = 1_000;
pub const BACKENDS: usize = 200;
pub const FRONTS: [&str; 3] = ["web", "api", "mobile-bff"];
pub const T0: Micros = 1_795_456_800_000_000;
/// Event time between two events: 10k events/s of event time, so a run of millions of
/// events spans many windows and TTLs, and expiry and sweeps are exercised.
pub const STEP: Micros = 100;

/// xorshift64*: a fast deterministic source of choices.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub struct World {
    names: Vec<String>,
    backends: Vec<String>,
    /// Current token generation per principal.
    tokens: Vec<u32>,
    rng: Rng,
    seq: u64,
}

pub fn text(value: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(value))
}

impl World {
    pub fn new() -> Self {
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
    pub fn next(&mut self) -> Event<'_> {
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

/// Time this thread has spent on a CPU, from the scheduler's own accounting
/// (`/proc/thread-self/schedstat`, first field, in ns): unlike wall-clock time it does
/// not count the time other processes had the core, so runs on a shared, busy machine
/// can be compared. `None` where the kernel does not provide it.
pub fn on_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}
