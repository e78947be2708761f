//! The simulated system: services with a stable call graph, the people who use it, and
//! where their requests come from.

use std::net::Ipv4Addr;

/// A service's place in the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The edge every user request passes; it relays the user's token.
    Gateway,
    /// Reached by users through the gateway.
    Front,
    /// Reached only by other services.
    Internal,
    /// Reached by administrators through the gateway.
    Admin,
    /// A scheduled job that calls many services every few hours (a benign fan-out).
    Batch,
}

/// One service of the system.
#[derive(Debug)]
pub(crate) struct Service {
    /// Name used in `service`, `source_service`, `target_service`, `client_id`.
    pub name: &'static str,
    /// The identity it authenticates as.
    pub principal: String,
    pub role: Role,
    /// Indexes of the services it calls with its own client-credential token.
    pub callees: Vec<usize>,
    /// Resources it serves, with the usual action on each.
    pub resources: &'static [(&'static str, &'static str)],
    /// Addresses of its pods (the source of its calls and of the user requests it relays).
    pub pods: Vec<Ipv4Addr>,
}

/// A service of the model: name, role, callees and resources.
type ServiceSpec = (
    &'static str,
    Role,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// `(name, role, callees, resources)`; SPIFFE ids for the payment core, `svc:` names
/// elsewhere, as in a system halfway through a migration.
const SERVICES: &[ServiceSpec] = &[
    ("gateway", Role::Gateway, &[], &[("/", "GET")]),
    (
        "catalog",
        Role::Front,
        &["pricing", "inventory"],
        &[("/products", "GET"), ("/products/search", "GET")],
    ),
    (
        "cart",
        Role::Front,
        &["catalog", "pricing"],
        &[("/cart", "GET"), ("/cart/items", "POST")],
    ),
    (
        "orders",
        Role::Front,
        &[
            "payments",
            "inventory",
            "pricing",
            "customers",
            "notifications",
        ],
        &[("/orders", "GET"), ("/orders", "POST")],
    ),
    (
        "accounts",
        Role::Front,
        &["customers", "notifications"],
        &[("/me", "GET"), ("/me/settings", "PUT")],
    ),
    ("search", Role::Front, &["catalog"], &[("/search", "GET")]),
    ("pricing", Role::Internal, &[], &[("/quotes", "POST")]),
    (
        "inventory",
        Role::Internal,
        &["warehouse"],
        &[("/stock", "GET"), ("/reservations", "POST")],
    ),
    (
        "payments",
        Role::Internal,
        &["ledger", "fraud"],
        &[("/charges", "POST"), ("/refunds", "POST")],
    ),
    (
        "customers",
        Role::Internal,
        &[],
        &[("/customers", "GET"), ("db:customers", "read")],
    ),
    (
        "notifications",
        Role::Internal,
        &["email"],
        &[("/notify", "POST")],
    ),
    (
        "ledger",
        Role::Internal,
        &[],
        &[("/entries", "POST"), ("/balances", "GET")],
    ),
    (
        "fraud",
        Role::Internal,
        &["customers"],
        &[("/score", "POST")],
    ),
    ("warehouse", Role::Internal, &[], &[("/picks", "POST")]),
    ("email", Role::Internal, &[], &[("/send", "POST")]),
    (
        "admin-console",
        Role::Admin,
        &["customers", "orders"],
        &[("/admin/users", "GET"), ("/admin/refunds", "POST")],
    ),
    (
        "reconcile",
        Role::Batch,
        &[
            "orders",
            "payments",
            "ledger",
            "customers",
            "inventory",
            "warehouse",
            "fraud",
        ],
        &[],
    ),
];

/// One person with an account.
#[derive(Debug)]
pub(crate) struct User {
    pub principal: String,
    /// Where they usually log in from (home, or the office's egress NAT).
    pub home: Ipv4Addr,
    /// Their phone's carrier address, if they also use the mobile app.
    pub mobile: Option<Ipv4Addr>,
    pub mfa: bool,
    pub admin: bool,
    pub browser: &'static str,
}

/// The office's egress NAT: many users share it.
pub(crate) const OFFICE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

pub(crate) const BROWSERS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
];
pub(crate) const MOBILE_APP: &str = "ShopApp/4.12.0 (Android 14)";
pub(crate) const SERVICE_AGENT: &str = "grpc-go/1.68.0";

const FIRST: [&str; 16] = [
    "maria", "james", "li", "fatima", "olga", "david", "aiko", "carlos", "emma", "noah", "sofia",
    "amir", "chen", "anna", "raj", "yuki",
];
const LAST: [&str; 12] = [
    "garcia", "smith", "wang", "khan", "ivanova", "mueller", "tanaka", "silva", "brown", "kim",
    "rossi", "okafor",
];

/// The whole system.
#[derive(Debug)]
pub(crate) struct Topology {
    pub services: Vec<Service>,
    pub users: Vec<User>,
}

impl Topology {
    /// `users` people (plus the services, always the same), drawn from `rng`.
    pub fn new(users: usize, rng: &mut fastrand::Rng) -> Self {
        let index = |name: &str| {
            SERVICES
                .iter()
                .position(|s| s.0 == name)
                .expect("known service")
        };
        let services = SERVICES
            .iter()
            .enumerate()
            .map(|(at, &(name, role, callees, resources))| Service {
                name,
                principal: match name {
                    "payments" | "ledger" => format!("spiffe://prod.example.com/ns/pay/sa/{name}"),
                    _ => format!("svc:{name}"),
                },
                role,
                callees: callees.iter().map(|callee| index(callee)).collect(),
                resources,
                pods: (0..3)
                    .map(|pod| Ipv4Addr::new(10, 4, at as u8, 10 + pod))
                    .collect(),
            })
            .collect();
        let users = (0..users).map(|at| User::new(at, rng)).collect();
        Topology { services, users }
    }

    /// The index of the service called `name`.
    pub fn service(&self, name: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == name)
            .expect("known service")
    }

    /// The services users reach through the gateway.
    pub fn fronts(&self) -> Vec<usize> {
        (0..self.services.len())
            .filter(|&at| self.services[at].role == Role::Front)
            .collect()
    }
}

impl User {
    /// User number `at`: a stable, readable name and habits drawn from `rng`.
    pub fn new(at: usize, rng: &mut fastrand::Rng) -> Self {
        let first = FIRST[at % FIRST.len()];
        let last = LAST[(at / FIRST.len()) % LAST.len()];
        let office = rng.f64() < 0.15;
        // 198.18.0.0/15 (benchmarking range): addresses that route nowhere real.
        let home = if office {
            OFFICE_IP
        } else {
            Ipv4Addr::new(198, 18 + rng.u8(0..2), rng.u8(..), rng.u8(1..255))
        };
        User {
            principal: format!("user:{first}.{last}{at}"),
            home,
            mobile: (rng.f64() < 0.3)
                .then(|| Ipv4Addr::new(100, 64 + rng.u8(0..64), rng.u8(..), rng.u8(1..255))),
            mfa: rng.f64() < 0.6,
            admin: at.is_multiple_of(20),
            browser: BROWSERS[rng.usize(..BROWSERS.len())],
        }
    }
}
