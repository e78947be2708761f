//! The attacks: one scenario (at least) for every detector of `detectors.md`, each
//! past the detector's threshold by a margin a real attacker would leave.

use authtrail_model::Micros;

use crate::event::ISSUER;
use crate::scenario::ScenarioKind;
use crate::sim::{Generator, MINUTE, MS, SECOND};
use crate::topology::{BROWSERS, SERVICE_AGENT};
use crate::traffic::Decision;

const SCRIPT_AGENT: &str = "python-requests/2.32.3";

pub(crate) fn play(g: &mut Generator, kind: ScenarioKind, time: Micros) {
    use ScenarioKind::*;
    match kind {
        ServiceNewEdge => service_sweep(g, time, "search", &["ledger"]),
        ServiceFanOut => service_sweep(
            g,
            time,
            "notifications",
            &[
                "email",
                "customers",
                "payments",
                "ledger",
                "orders",
                "warehouse",
            ],
        ),
        UserNewEdge => user_new_edge(g, time),
        AuthzProbing => authz_probing(g, time),
        BruteForce => brute_force(g, time),
        PasswordSpray => password_spray(g, time),
        TokenReplayAddresses => token_replay_addresses(g, time),
        TokenReplayForeign => token_replay_foreign(g, time),
        RevokedTokenUse => revoked_token_use(g, time),
        ExpiredTokenUse => expired_token_use(g, time),
        AudienceMismatch => audience_mismatch(g, time),
        MfaFatigue => mfa_fatigue(g, time),
        ServiceInteractiveLogin => service_interactive_login(g, time),
        _ => {}
    }
}

/// A compromised service asks the IdP for a token with a wider audience (client
/// credentials allow it) and calls `targets`, a few times each, within three minutes.
fn service_sweep(g: &mut Generator, time: Micros, service: &str, targets: &[&'static str]) {
    let at = g.topo.service(service);
    let (principal, name, pod) = {
        let s = &g.topo.services[at];
        (s.principal.clone(), s.name, s.pods[0])
    };
    let login = g.login(
        time,
        &principal,
        pod,
        SERVICE_AGENT,
        "client_credentials",
        true,
    );
    g.emit(login);
    let token = g.id("jti-", 24);
    let mut issue = g.ev(time + 5 * MS, "token_issue", &principal);
    issue.service = Some("idp");
    issue.outcome = Some("success");
    issue.token_id = Some(token.clone());
    issue.token_issuer = Some(ISSUER);
    issue.client_id = Some(name);
    issue.auth_method = Some("client_credentials");
    issue.token_audience = Some(targets.to_vec());
    issue.token_expires = Some(time + 60 * MINUTE);
    g.emit(issue);
    let mut t = time + 10 * SECOND;
    for &target in targets {
        let callee = g.topo.service(target);
        let resources = g.topo.services[callee].resources;
        for _ in 0..2 {
            let (resource, action) = resources[g.rng.usize(..resources.len())];
            let mut ev = g.ev(t, "authz", &principal);
            ev.service = Some(target);
            ev.target_service = Some(target);
            ev.source_service = Some(name);
            ev.resource = Some(resource);
            ev.action = Some(action);
            ev.outcome = Some("allow");
            ev.token_id = Some(token.clone());
            ev.source_ip = Some(pod);
            ev.trace_id = Some(g.id("", 32));
            g.emit(ev);
            t += g.between(3 * SECOND, 12 * SECOND);
        }
    }
}

/// A user's token, taken from their browser, used straight against the customers API.
fn user_new_edge(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (session, t) = g.open_session(user, time, home);
    let catalog = g.topo.service("catalog");
    g.request(t + 5 * SECOND, &session, catalog, Decision::Allow);
    let principal = g.topo.users[user].principal.clone();
    let ip = g.attacker_ip();
    let mut t = t + 2 * MINUTE;
    for _ in 0..3 {
        let mut ev = g.ev(t, "authz", &principal);
        ev.service = Some("customers");
        ev.target_service = Some("customers");
        ev.resource = Some("/customers");
        ev.action = Some("GET");
        ev.outcome = Some("allow");
        ev.token_id = Some(session.token.id.clone());
        ev.source_ip = Some(ip);
        ev.user_agent = Some(SCRIPT_AGENT);
        g.emit(ev);
        t += g.between(5 * SECOND, 20 * SECOND);
    }
}

/// A stolen account (no MFA) tries the admin endpoints of every front service.
fn authz_probing(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let ip = g.attacker_ip();
    let (session, mut t) = g.open_session(user, time, ip);
    let fronts = g.topo.fronts();
    for at in 0..12 {
        t += g.between(3 * SECOND, 10 * SECOND);
        g.request(
            t,
            &session,
            fronts[at % fronts.len()],
            Decision::Deny("forbidden"),
        );
    }
}

/// Fourteen wrong passwords in about three minutes from one address, then the right one.
fn brute_force(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let principal = g.topo.users[user].principal.clone();
    let ip = g.attacker_ip();
    let mut t = time;
    for _ in 0..14 {
        let mut ev = g.login(t, &principal, ip, SCRIPT_AGENT, "password", false);
        ev.reason = Some("bad_password");
        g.emit(ev);
        t += g.between(5 * SECOND, 15 * SECOND);
    }
    let ev = g.login(
        t + 20 * SECOND,
        &principal,
        ip,
        SCRIPT_AGENT,
        "password",
        true,
    );
    g.emit(ev);
}

/// One address, one common password, twelve accounts of the population, in 8 minutes.
fn password_spray(g: &mut Generator, time: Micros) {
    let ip = g.attacker_ip();
    let mut users: Vec<usize> = Vec::new();
    while users.len() < 12 {
        let user = g.rng.usize(..g.config.users);
        if !users.contains(&user) {
            users.push(user);
        }
    }
    let mut t = time;
    for user in users {
        let principal = g.topo.users[user].principal.clone();
        let mut ev = g.login(t, &principal, ip, SCRIPT_AGENT, "password", false);
        ev.reason = Some("bad_password");
        g.emit(ev);
        t += g.between(10 * SECOND, 40 * SECOND);
    }
}

/// A user's token shows up from three other addresses within five minutes.
fn token_replay_addresses(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (mut session, mut t) = g.open_session(user, time, home);
    let fronts = g.topo.fronts();
    for &front in &fronts[..2] {
        t += g.between(5 * SECOND, 30 * SECOND);
        g.request(t, &session, front, Decision::Allow);
    }
    for at in 0..3 {
        session.ip = g.attacker_ip();
        session.agent = SCRIPT_AGENT;
        t += g.between(20 * SECOND, 80 * SECOND);
        g.request(
            t,
            &session,
            fronts[(at + 2) % fronts.len()],
            Decision::Allow,
        );
    }
}

/// The fraud service presents the orders service's token to the customers API.
fn token_replay_foreign(g: &mut Generator, time: Micros) {
    let orders = g.topo.service("orders");
    let token = g.service_token(orders, time);
    let fraud = g.topo.service("fraud");
    let (principal, pod) = {
        let s = &g.topo.services[fraud];
        (s.principal.clone(), s.pods[1])
    };
    let mut ev = g.ev(time.max(token.issued) + 30 * SECOND, "authz", &principal);
    ev.service = Some("customers");
    ev.target_service = Some("customers");
    ev.source_service = Some("fraud");
    ev.resource = Some("/customers");
    ev.action = Some("GET");
    ev.outcome = Some("allow");
    ev.token_id = Some(token.id);
    ev.source_ip = Some(pod);
    g.emit(ev);
}

/// The user logs out (the IdP revokes the token); three minutes later someone uses it.
fn revoked_token_use(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (mut session, mut t) = g.open_session(user, time, home);
    let fronts = g.topo.fronts();
    for &front in &fronts[..2] {
        t += g.between(5 * SECOND, 30 * SECOND);
        g.request(t, &session, front, Decision::Allow);
    }
    t += 30 * SECOND;
    let principal = g.topo.users[user].principal.clone();
    let mut revoke = g.ev(t, "token_revoke", &principal);
    revoke.service = Some("idp");
    revoke.token_id = Some(session.token.id.clone());
    revoke.reason = Some("logout");
    revoke.session_id = Some(session.id.clone());
    g.emit(revoke);
    session.ip = g.attacker_ip();
    session.agent = SCRIPT_AGENT;
    g.request(t + 3 * MINUTE, &session, fronts[2], Decision::Allow);
}

/// A token copied from a log is used twenty minutes after it was issued (five after expiry).
fn expired_token_use(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (mut session, t) = g.open_session(user, time, home);
    let fronts = g.topo.fronts();
    g.request(t + 10 * SECOND, &session, fronts[0], Decision::Allow);
    session.ip = g.attacker_ip();
    session.agent = SCRIPT_AGENT;
    g.request(
        session.token.expires + 5 * MINUTE,
        &session,
        fronts[1],
        Decision::Allow,
    );
}

/// A shopper's token relayed to the admin console, which (misconfigured) accepts it.
fn audience_mismatch(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (session, t) = g.open_session(user, time, home);
    let catalog = g.topo.service("catalog");
    g.request(t + 5 * SECOND, &session, catalog, Decision::Allow);
    let admin = g.topo.service("admin-console");
    g.request(t + 40 * SECOND, &session, admin, Decision::Allow);
}

/// A stolen password, then push after push until the user approves one.
fn mfa_fatigue(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, true);
    let principal = g.topo.users[user].principal.clone();
    let ip = g.attacker_ip();
    let agent = BROWSERS[0];
    let ev = g.login(time, &principal, ip, agent, "password", true);
    g.emit(ev);
    let mut t = time + 5 * SECOND;
    for at in 0..7 {
        let mut ev = g.login(t, &principal, ip, agent, "mfa_push", false);
        ev.reason = Some(if at % 2 == 0 {
            "mfa_denied"
        } else {
            "mfa_timeout"
        });
        g.emit(ev);
        t += g.between(30 * SECOND, 50 * SECOND);
    }
    let mut ev = g.login(t, &principal, ip, agent, "mfa_push", true);
    ev.mfa = Some(true);
    g.emit(ev);
}

/// Someone logs in as the payments service with its password, from a browser.
fn service_interactive_login(g: &mut Generator, time: Micros) {
    let payments = g.topo.service("payments");
    let principal = g.topo.services[payments].principal.clone();
    let ip = g.attacker_ip();
    let ev = g.login(time, &principal, ip, BROWSERS[1], "password", true);
    g.emit(ev);
}
