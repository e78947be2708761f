//! A deterministic, realistic mix of the contract's four kinds as JSON lines.
//!
//! 100k users and 300 services (a fifth named by SPIFFE id). Services are busier than
//! users (service-to-service authz dominates real traffic); users log in from one or two
//! home addresses with a browser, get tokens for a few audiences and call the front
//! services through a gateway that reports epoch milliseconds. Ids, token ids, session ids
//! and trace ids are random, as they are in production, so neither writer gets free
//! compression from counters.

use std::fmt::Write as _;

const USERS: usize = 100_000;
const SERVICES: usize = 300;
/// 2026-11-23T08:00:00Z: in the past of any ingest clock this bench runs under, so the
/// contract's future-skew check passes.
const T0_MILLIS: i64 = 1_795_420_800_000;
/// Event time advances by 0.5 ms per event (2k events/s) unless [`Mix::with_step`] says
/// otherwise; a jitter of up to 2 s makes arrival order differ from event-time order, as
/// it does between reporters.
#[allow(dead_code)] // each bench compiles this file; lake_query sets its own step
const STEP_MICROS: i64 = 500;

/// Bumped whenever the generated lines change, so cached lakes built from them are rebuilt.
#[allow(dead_code)]
pub const VERSION: u32 = 1;

const FIRST: [&str; 24] = [
    "maria", "james", "li", "fatima", "olga", "david", "aiko", "carlos", "emma", "noah", "sofia",
    "lucas", "amir", "chen", "anna", "mohammed", "julia", "pierre", "ines", "raj", "sara", "tom",
    "yuki", "elena",
];
const LAST: [&str; 20] = [
    "garcia", "smith", "wang", "khan", "ivanova", "mueller", "tanaka", "silva", "brown", "kim",
    "rossi", "nguyen", "haddad", "dubois", "patel", "novak", "larsen", "okafor", "costa", "berg",
];
const DOMAINS: [&str; 4] = [
    "example.com",
    "corp.example.com",
    "example.com",
    "example.org",
];
const SERVICE_STEMS: [&str; 30] = [
    "payments",
    "orders",
    "checkout",
    "inventory",
    "billing",
    "ledger",
    "shipping",
    "catalog",
    "search",
    "pricing",
    "cart",
    "accounts",
    "profile",
    "notifications",
    "email",
    "fraud",
    "risk",
    "reporting",
    "analytics",
    "recommendations",
    "reviews",
    "media",
    "auth-proxy",
    "audit",
    "tax",
    "refunds",
    "loyalty",
    "support",
    "warehouse",
    "returns",
];
const SERVICE_ROLES: [&str; 10] = [
    "api",
    "worker",
    "gateway",
    "consumer",
    "scheduler",
    "grpc",
    "batch",
    "sync",
    "web",
    "cron",
];
const FRONTS: [&str; 4] = ["web-gateway", "api-gateway", "mobile-bff", "graphql"];
const BROWSERS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
];
const APP_AGENTS: [&str; 4] = [
    "ExampleShop/5.12.1 (iPhone; iOS 18.1)",
    "ExampleShop/5.12.0 (Android 14; Pixel 8)",
    "ExampleShop/5.11.4 (Android 13; SM-S911B)",
    "ExampleShop/5.12.1 (iPad; iPadOS 18.1)",
];
const SERVICE_AGENTS: [&str; 5] = [
    "okhttp/4.12.0",
    "Go-http-client/2.0",
    "grpc-java-netty/1.62.2",
    "python-requests/2.32.3",
    "Envoy/1.31.2",
];
const USER_PATHS: [&str; 8] = [
    "/v1/orders",
    "/v1/cart/items",
    "/v1/profile",
    "/v1/payments/methods",
    "/v2/search",
    "/v1/notifications",
    "/v1/orders/{}/returns",
    "/graphql",
];
const VERBS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const SCOPES: [&str; 8] = [
    "openid",
    "profile",
    "email",
    "orders:read",
    "orders:write",
    "payments:read",
    "payments:charge",
    "offline_access",
];

/// xorshift64*: fast, deterministic, good enough to pick from pools.
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

    /// A skewed pick: low indices are much more likely (activity is never uniform).
    fn skewed(&mut self, n: usize) -> usize {
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((x * x * x) * n as f64) as usize
    }

    /// A ULID (Crockford base32 of 48 bits of milliseconds and 80 random bits), the id
    /// format many reporters use because it sorts by time.
    fn ulid(&mut self, millis: i64, out: &mut String) {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let value = (u128::from(millis as u64) << 80)
            | u128::from(self.next()) << 16 ^ u128::from(self.next() & 0xffff);
        for i in (0..26).rev() {
            out.push(ALPHABET[((value >> (i * 5)) & 31) as usize] as char);
        }
    }

    /// An opaque access token's id: `at_` and 22 base64url characters (128 random bits).
    fn token_id(&mut self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = u128::from(self.next()) << 64 | u128::from(self.next());
        let mut id = String::with_capacity(25);
        id.push_str("at_");
        for _ in 0..22 {
            id.push(ALPHABET[(bits & 63) as usize] as char);
            bits >>= 6;
        }
        id
    }
}

struct Principal {
    name: String,
    is_service: bool,
    /// The service's short name (its client id and `source_service`).
    short: String,
    ips: [String; 2],
    agent: &'static str,
    token: String,
    previous_token: String,
}

/// Generates the mix; `next_line` appends one event.
pub struct Mix {
    principals: Vec<Principal>,
    rng: Rng,
    seq: i64,
    step_micros: i64,
}

impl Mix {
    /// The world of principals, seeded the same way every run.
    #[allow(dead_code)] // lake_query uses `with_step`
    pub fn new() -> Mix {
        Mix::with_step(STEP_MICROS)
    }

    /// The same world, with event time advancing `step_micros` per event (a slower
    /// stream spreads the same number of events over more hours).
    pub fn with_step(step_micros: i64) -> Mix {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut principals = Vec::with_capacity(SERVICES + USERS);
        for i in 0..SERVICES {
            let short = format!(
                "{}-{}",
                SERVICE_STEMS[i % SERVICE_STEMS.len()],
                SERVICE_ROLES[(i / SERVICE_STEMS.len()) % SERVICE_ROLES.len()]
            );
            let name = if i % 5 == 0 {
                let ns = SERVICE_STEMS[i % SERVICE_STEMS.len()];
                format!("spiffe://prod.example.com/ns/{ns}/sa/{short}")
            } else {
                format!("svc:{short}")
            };
            let pod = |rng: &mut Rng| {
                format!(
                    "10.{}.{}.{}",
                    16 + i % 8,
                    rng.below(256),
                    2 + rng.below(250)
                )
            };
            let ips = [pod(&mut rng), pod(&mut rng)];
            principals.push(Principal {
                name,
                is_service: true,
                short,
                ips,
                agent: SERVICE_AGENTS[i % SERVICE_AGENTS.len()],
                token: String::new(),
                previous_token: String::new(),
            });
        }
        for i in 0..USERS {
            let first = FIRST[rng.below(FIRST.len())];
            let last = LAST[rng.below(LAST.len())];
            let domain = DOMAINS[rng.below(DOMAINS.len())];
            // Most IdPs name users by login; partner accounts by email.
            let name = if i % 5 == 0 {
                format!("user:{first}.{last}{i}@{domain}")
            } else {
                format!("user:{first}.{last}{i}")
            };
            let home = |rng: &mut Rng| {
                if rng.below(10) == 0 {
                    let (a, b) = (rng.next(), rng.next());
                    format!(
                        "2a02:{:x}:{:x}:{:x}::{:x}",
                        a & 0xffff,
                        (a >> 16) & 0xffff,
                        (a >> 32) & 0xffff,
                        b & 0xffff
                    )
                } else {
                    format!(
                        "{}.{}.{}.{}",
                        [81, 92, 176, 185, 203, 213, 24, 73][rng.below(8)],
                        rng.below(256),
                        rng.below(256),
                        1 + rng.below(254)
                    )
                }
            };
            let ips = [home(&mut rng), home(&mut rng)];
            principals.push(Principal {
                name,
                is_service: false,
                short: String::new(),
                ips,
                agent: if rng.below(2) == 0 {
                    BROWSERS[rng.below(BROWSERS.len())]
                } else {
                    APP_AGENTS[rng.below(APP_AGENTS.len())]
                },
                token: String::new(),
                previous_token: String::new(),
            });
        }
        for principal in &mut principals {
            principal.token = rng.token_id();
        }
        Mix {
            principals,
            rng,
            seq: 0,
            step_micros,
        }
    }

    /// Appends the next event as one JSON line (with its newline) to `out`.
    ///
    /// The mix: 55% authz (3% of them deny), 30% authn (6% of them fail), 12% token issue,
    /// 3% token revoke; 45% of events come from services.
    pub fn next_line(&mut self, out: &mut String) {
        let rng = &mut self.rng;
        let seq = self.seq;
        self.seq += 1;
        let time_micros = T0_MILLIS * 1_000 + seq * self.step_micros + rng.below(2_000_000) as i64;
        let millis = time_micros / 1_000;
        let p = if rng.below(100) < 45 {
            rng.skewed(SERVICES)
        } else {
            SERVICES + rng.skewed(USERS)
        };
        let roll = rng.below(100);
        let kind = match roll {
            0..=54 => "authz",
            55..=84 => "authn",
            85..=96 => "token_issue",
            _ => "token_revoke",
        };
        if kind == "token_issue" {
            let token = rng.token_id();
            let principal = &mut self.principals[p];
            principal.previous_token = std::mem::replace(&mut principal.token, token);
        }
        let principal = &self.principals[p];

        out.push_str("{\"id\":\"");
        rng.ulid(millis, out);
        // Gateways report epoch milliseconds; everyone else RFC 3339 (a few with an offset).
        if kind == "authz" && !principal.is_service {
            let _ = write!(out, "\",\"time\":{millis}");
        } else if rng.below(50) == 0 {
            let _ = write!(
                out,
                "\",\"time\":\"{}\"",
                rfc3339(millis + 3_600_000, "+01:00")
            );
        } else {
            let _ = write!(out, "\",\"time\":\"{}\"", rfc3339(millis, "Z"));
        }
        let _ = write!(
            out,
            ",\"kind\":\"{kind}\",\"principal\":\"{}\"",
            principal.name
        );
        let ip = &principal.ips[rng.below(4).min(1)];
        match kind {
            "authz" => {
                let (target, resource): (&str, String) = if principal.is_service {
                    let target = &self.principals[(p * 7 + rng.below(6)) % SERVICES].short;
                    let resource = format!(
                        "/v1/{}/{}",
                        SERVICE_STEMS[(p + target.len()) % SERVICE_STEMS.len()],
                        rng.below(100_000)
                    );
                    (target, resource)
                } else {
                    let path = USER_PATHS[rng.below(USER_PATHS.len())];
                    (
                        FRONTS[rng.below(FRONTS.len())],
                        path.replace("{}", &rng.below(1_000_000).to_string()),
                    )
                };
                let _ = write!(out, ",\"service\":\"{target}\"");
                if principal.is_service {
                    let _ = write!(out, ",\"source_service\":\"{}\"", principal.short);
                }
                let deny = rng.below(100) < 3;
                let _ = write!(
                    out,
                    ",\"resource\":\"{resource}\",\"action\":\"{}\",\"outcome\":\"{}\"",
                    VERBS[rng.below(VERBS.len())],
                    if deny { "deny" } else { "allow" }
                );
                if deny {
                    out.push_str(",\"reason\":\"missing_scope\"");
                }
                let _ = write!(
                    out,
                    ",\"token_id\":\"{}\",\"source_ip\":\"{ip}\"",
                    principal.token
                );
                // The mesh propagates trace context between services; gateways add none.
                if principal.is_service {
                    let _ = write!(
                        out,
                        ",\"trace_id\":\"{:016x}{:016x}\"",
                        rng.next(),
                        rng.next()
                    );
                }
            }
            "authn" => {
                let fail = rng.below(100) < 6;
                let (service, method) = if principal.is_service {
                    ("mesh-ca", "mtls")
                } else {
                    (
                        "idp",
                        ["password", "mfa_push", "webauthn", "sso"][rng.skewed(4)],
                    )
                };
                let _ = write!(
                    out,
                    ",\"service\":\"{service}\",\"outcome\":\"{}\"",
                    if fail { "failure" } else { "success" }
                );
                if fail {
                    let reason = ["bad_password", "mfa_timeout", "account_locked"][rng.skewed(3)];
                    let _ = write!(out, ",\"reason\":\"{reason}\"");
                }
                let _ = write!(out, ",\"auth_method\":\"{method}\"");
                if !principal.is_service {
                    let _ = write!(out, ",\"mfa\":{}", method != "password");
                }
                let _ = write!(
                    out,
                    ",\"source_ip\":\"{ip}\",\"user_agent\":\"{}\"",
                    principal.agent
                );
                if !principal.is_service {
                    let _ = write!(out, ",\"session_id\":\"s_{:016x}\"", rng.next());
                }
                if !principal.is_service && p % 3 == 0 {
                    let _ = write!(
                        out,
                        ",\"attributes\":{{\"tenant\":\"t{}\",\"geo\":\"{}\"}}",
                        p % 40,
                        ["DE", "US", "FR", "JP", "BR", "IN"][p % 6]
                    );
                }
            }
            "token_issue" => {
                let (client, grant, ttl) = if principal.is_service {
                    (principal.short.as_str(), "client_credentials", 900_000)
                } else {
                    (
                        FRONTS[p % FRONTS.len()],
                        ["authorization_code", "refresh_token"][rng.below(2)],
                        3_600_000,
                    )
                };
                let _ = write!(
                    out,
                    ",\"service\":\"idp\",\"outcome\":\"success\",\"token_id\":\"{}\",\"token_issuer\":\"https://idp.example.com\",\"client_id\":\"{client}\",\"auth_method\":\"{grant}\"",
                    principal.token
                );
                out.push_str(",\"token_audience\":[");
                let audiences = 1 + rng.below(2);
                for a in 0..audiences {
                    if a > 0 {
                        out.push(',');
                    }
                    let audience = if principal.is_service {
                        &self.principals[(p * 7 + a) % SERVICES].short
                    } else {
                        FRONTS[(p + a) % FRONTS.len()]
                    };
                    let _ = write!(out, "\"{audience}\"");
                }
                out.push_str("],\"token_scopes\":\"");
                let first = rng.below(SCOPES.len() - 3);
                out.push_str(&SCOPES[first..first + 1 + rng.below(3)].join(" "));
                let _ = write!(
                    out,
                    "\",\"token_expires\":\"{}\"",
                    rfc3339(millis - millis % 1000 + ttl, "Z")
                );
            }
            _ => {
                let reason = ["rotated", "logout", "admin_revoke"][rng.skewed(3)];
                let token = if principal.previous_token.is_empty() {
                    &principal.token
                } else {
                    &principal.previous_token
                };
                let _ = write!(
                    out,
                    ",\"service\":\"idp\",\"token_id\":\"{token}\",\"reason\":\"{reason}\""
                );
            }
        }
        out.push_str("}\n");
    }
}

/// `2026-11-23T08:00:00.123Z`-style text of epoch milliseconds, in the zone `offset`
/// names (the caller has already shifted `millis` into it).
fn rfc3339(millis: i64, offset: &str) -> String {
    let (days, ms) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, f) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{f:03}{offset}")
}

/// Howard Hinnant's days-to-civil: (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
