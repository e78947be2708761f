//! Scenarios: the attacks each detector exists for, and the benign look-alikes that must
//! not set them off. Each one is played at a point after the learning period and
//! recorded, with the ids of its events, in the ground truth.

use std::net::Ipv4Addr;

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};

use crate::event::Ev;
use crate::sim::Generator;
use crate::topology::User;
use crate::traffic::Session;
use crate::truth::{Label, TruthScenario};

/// A scenario the generator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// Attack: a compromised service gets a token for, and calls, a service it never called.
    ServiceNewEdge,
    /// Attack: a user's token is used straight against an internal API.
    UserNewEdge,
    /// Attack: a compromised service sweeps six services in three minutes.
    ServiceFanOut,
    /// Attack: a stolen account tries admin endpoints on every front service.
    AuthzProbing,
    /// Attack: fourteen wrong passwords for one account, then the right one.
    BruteForce,
    /// Attack: one address tries a password against twelve accounts.
    PasswordSpray,
    /// Attack: a user's token is replayed from three other addresses.
    TokenReplayAddresses,
    /// Attack: one service presents another service's token.
    TokenReplayForeign,
    /// Attack: a token is used after the logout that revoked it.
    RevokedTokenUse,
    /// Attack: a leaked token is used twenty minutes after it expired.
    ExpiredTokenUse,
    /// Attack: a shopper's token is accepted by the admin console, outside its audience.
    AudienceMismatch,
    /// Attack: push after push until the user gives in.
    MfaFatigue,
    /// Attack: someone logs in as a service with a password, from a browser.
    ServiceInteractiveLogin,
    /// Look-alike of `brute_force`: three typos, then the right password.
    TypoLogins,
    /// Look-alike of `password_spray`: six people at the office mistype after a
    /// password change, all behind the office's one egress address.
    OfficeTypos,
    /// Look-alike of `token_replay`: a phone moves from wifi to the carrier network.
    RoamingToken,
    /// Look-alike of `revoked_token_use`: "log out everywhere", log in again at once,
    /// and use a token until just before it expires.
    RelogAfterLogoutAll,
    /// Look-alike of `mfa_fatigue`: two missed pushes, then approved.
    MissedPushes,
    /// Look-alike of `authz_probing`: a service retrying one denied call.
    RetryingDeniedCall,
    /// Look-alike of `new_service_edge`: a new employee's first day on the front services.
    NewUser,
    /// Look-alike of `audience_mismatch`: an administrator's wide-audience token.
    AdminAudience,
    /// Look-alike of `service_interactive_login`: services authenticating with mTLS and
    /// client credentials from command-line tools.
    ServiceMachineLogin,
    /// Look-alike of `service_fan_out`: the reconciliation job's runs after learning.
    BatchFanOut,
    /// Attack (trust): the ledger allows a token that expired ten minutes before; the
    /// fraud service denies it.
    ExpiredTokenAccepted,
    /// Situation (trust): the accounts service allows calls without any credential when
    /// they come through the gateway.
    TokenlessFromGateway,
    /// Situation (trust): the orders service allows one person's `POST /orders` through
    /// the gateway and denies it through the search service and directly.
    OriginDependentDecision,
    /// Situation (trust): in one trace, the orders service calls payments under another
    /// identity than the person's, with no token exchange.
    DroppedIdentity,
    /// Situation (privilege): the reports client is granted four scopes and uses one.
    OverScopedClient,
    /// Situation (privilege): the exports client gets tokens and never presents one.
    DormantClient,
    /// Look-alike of `validation_gap`: a token used ten seconds after its expiry, inside
    /// the skew.
    TokenJustAfterExpiry,
    /// Look-alike of tokenless calls (`report trust`): health checks on an open route.
    OpenHealthCheck,
}

impl ScenarioKind {
    /// Every attack, in the order of `detectors.md`.
    pub const ATTACKS: &'static [ScenarioKind] = &[
        ScenarioKind::ServiceNewEdge,
        ScenarioKind::UserNewEdge,
        ScenarioKind::ServiceFanOut,
        ScenarioKind::AuthzProbing,
        ScenarioKind::BruteForce,
        ScenarioKind::PasswordSpray,
        ScenarioKind::TokenReplayAddresses,
        ScenarioKind::TokenReplayForeign,
        ScenarioKind::RevokedTokenUse,
        ScenarioKind::ExpiredTokenUse,
        ScenarioKind::AudienceMismatch,
        ScenarioKind::MfaFatigue,
        ScenarioKind::ServiceInteractiveLogin,
        ScenarioKind::ExpiredTokenAccepted,
        ScenarioKind::TokenlessFromGateway,
        ScenarioKind::OriginDependentDecision,
        ScenarioKind::DroppedIdentity,
        ScenarioKind::OverScopedClient,
        ScenarioKind::DormantClient,
    ];

    /// The look-alikes played at a point in time (the batch job's runs come on their own).
    pub const LOOKALIKES: &'static [ScenarioKind] = &[
        ScenarioKind::TypoLogins,
        ScenarioKind::OfficeTypos,
        ScenarioKind::RoamingToken,
        ScenarioKind::RelogAfterLogoutAll,
        ScenarioKind::MissedPushes,
        ScenarioKind::RetryingDeniedCall,
        ScenarioKind::NewUser,
        ScenarioKind::AdminAudience,
        ScenarioKind::ServiceMachineLogin,
        ScenarioKind::TokenJustAfterExpiry,
        ScenarioKind::OpenHealthCheck,
    ];

    /// The scenario's name in the ground truth and on the command line.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// For an attack, the detectors that should fire on it; empty for a look-alike.
    pub fn expect(self) -> &'static [&'static str] {
        use ScenarioKind::*;
        match self {
            ServiceNewEdge => &["new_service_edge"],
            // The customers API allowed the token outside its audience.
            UserNewEdge => &["new_service_edge", "audience_mismatch", "validation_gap"],
            ServiceFanOut => &["service_fan_out", "new_service_edge"],
            AuthzProbing => &["authz_probing"],
            BruteForce => &["brute_force"],
            PasswordSpray => &["password_spray"],
            TokenReplayAddresses | TokenReplayForeign => &["token_replay"],
            // The front service allowed the token: its validation is broken too.
            RevokedTokenUse | ExpiredTokenUse => &["revoked_token_use", "validation_gap"],
            AudienceMismatch => &["audience_mismatch", "validation_gap"],
            ExpiredTokenAccepted => &["validation_gap", "revoked_token_use"],
            MfaFatigue => &["mfa_fatigue"],
            ServiceInteractiveLogin => &["service_interactive_login"],
            _ => &[],
        }
    }

    /// For a look-alike, the detector it resembles.
    pub fn lookalike_of(self) -> Option<&'static str> {
        use ScenarioKind::*;
        Some(match self {
            TypoLogins => "brute_force",
            OfficeTypos => "password_spray",
            RoamingToken => "token_replay",
            RelogAfterLogoutAll => "revoked_token_use",
            MissedPushes => "mfa_fatigue",
            RetryingDeniedCall => "authz_probing",
            NewUser => "new_service_edge",
            AdminAudience => "audience_mismatch",
            ServiceMachineLogin => "service_interactive_login",
            BatchFanOut => "service_fan_out",
            TokenJustAfterExpiry => "validation_gap",
            OpenHealthCheck => "trust.tokenless",
            _ => return None,
        })
    }

    /// The report sections (`report trust`, `report privilege`) that must list the
    /// situation; empty for the rest.
    pub fn reports(self) -> &'static [&'static str] {
        use ScenarioKind::*;
        match self {
            ExpiredTokenAccepted => &["trust.accepted_invalid", "trust.rejected_elsewhere"],
            TokenlessFromGateway => &["trust.tokenless"],
            OriginDependentDecision => &["trust.origin"],
            DroppedIdentity => &["trust.propagation"],
            OverScopedClient => &["privilege.unused_scopes"],
            DormantClient => &["privilege.dormant"],
            _ => &[],
        }
    }

    /// Attack when a detector should fire or a report list it; benign otherwise.
    pub fn label(self) -> Label {
        if self.expect().is_empty() && self.reports().is_empty() {
            Label::Benign
        } else {
            Label::Attack
        }
    }
}

impl std::str::FromStr for ScenarioKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| format!("unknown scenario `{name}`"))
    }
}

/// A scenario being played: what the ground truth will say about it.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub kind: ScenarioKind,
    pub principal: Option<String>,
    start: Option<Micros>,
    end: Micros,
    event_ids: Vec<String>,
}

impl Scenario {
    pub fn new(kind: ScenarioKind) -> Self {
        Scenario {
            kind,
            principal: None,
            start: None,
            end: Micros::MIN,
            event_ids: Vec::new(),
        }
    }

    /// Takes an emitted event of the scenario into its record.
    pub fn record(&mut self, ev: &Ev) {
        self.start = Some(self.start.map_or(ev.time, |start| start.min(ev.time)));
        self.end = self.end.max(ev.time);
        self.event_ids.push(ev.id.clone());
        self.principal.get_or_insert_with(|| ev.principal.clone());
    }

    pub fn record_out(&self) -> TruthScenario {
        TruthScenario {
            scenario: self.kind,
            label: self.kind.label(),
            expect: self.kind.expect().iter().map(|d| (*d).to_owned()).collect(),
            reports: self
                .kind
                .reports()
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            subject: crate::situations::subject(self.kind).map(str::to_owned),
            lookalike_of: self.kind.lookalike_of().map(str::to_owned),
            principal: self.principal.clone(),
            start: self.start,
            end: self.start.map(|_| self.end),
            event_ids: self.event_ids.clone(),
        }
    }
}

/// Plays scenario `at` at `time`.
pub(crate) fn play(generator: &mut Generator, at: usize, time: Micros) {
    let kind = generator.scenarios[at].kind;
    if crate::situations::subject(kind).is_some() {
        crate::situations::play(generator, kind, time);
    } else if kind.expect().is_empty() {
        crate::lookalikes::play(generator, kind, time);
    } else {
        crate::attacks::play(generator, kind, time);
    }
}

impl Generator {
    /// A person outside the background population, so nothing else touches their account.
    pub(crate) fn extra_user(&mut self, admin: bool, mfa: bool) -> usize {
        let at = self.topo.users.len();
        let mut user = User::new(at, &mut self.rng);
        user.admin = admin;
        user.mfa = mfa;
        self.topo.users.push(user);
        self.user_busy.push(Micros::MAX);
        self.extra_users += 1;
        at
    }

    /// A fresh attacker address (TEST-NET-3, then TEST-NET-2).
    pub(crate) fn attacker_ip(&mut self) -> Ipv4Addr {
        let n = self.attacker_ips;
        self.attacker_ips += 1;
        match n {
            0..=249 => Ipv4Addr::new(203, 0, 113, 5 + n as u8),
            _ => Ipv4Addr::new(198, 51, 100, 5 + (n % 250) as u8),
        }
    }

    /// `user` logs in from `ip` with the browser (password, and MFA if enrolled) and gets
    /// a token; returns the session and the time its token was issued.
    pub(crate) fn open_session(
        &mut self,
        user: usize,
        time: Micros,
        ip: Ipv4Addr,
    ) -> (Session, Micros) {
        let principal = self.topo.users[user].principal.clone();
        let agent = self.topo.users[user].browser;
        let session_id = self.id("s-", 16);
        let mut t = time;
        let mut login = self.login(t, &principal, ip, agent, "password", true);
        login.session_id = Some(session_id.clone());
        self.emit(login);
        if self.topo.users[user].mfa {
            t += self.between(2 * crate::sim::SECOND, 8 * crate::sim::SECOND);
            let mut push = self.login(t, &principal, ip, agent, "mfa_push", true);
            push.mfa = Some(true);
            self.emit(push);
        }
        t += 100 * crate::sim::MS;
        let admin = self.topo.users[user].admin;
        let token = self.issue_user_token(
            t,
            &principal,
            "web",
            admin,
            &session_id,
            "authorization_code",
        );
        let session = Session {
            user,
            ip,
            agent,
            client: "web",
            id: session_id,
            token,
            requests_left: 0,
            requests: 0,
        };
        (session, t)
    }
}
