//! The benign look-alikes: what real systems do every day that resembles an attack
//! (`detectors.md`, Evaluation) and must raise no alert.

use authtrail_model::Micros;

use crate::scenario::ScenarioKind;
use crate::sim::{Generator, MINUTE, MS, SECOND};
use crate::topology::{MOBILE_APP, OFFICE_IP};
use crate::traffic::{Decision, USER_TOKEN_LIFE};

pub(crate) fn play(g: &mut Generator, kind: ScenarioKind, time: Micros) {
    use ScenarioKind::*;
    match kind {
        TypoLogins => typo_logins(g, time),
        OfficeTypos => office_typos(g, time),
        RoamingToken => roaming_token(g, time),
        RelogAfterLogoutAll => relog_after_logout_all(g, time),
        MissedPushes => missed_pushes(g, time),
        RetryingDeniedCall => retrying_denied_call(g, time),
        NewUser => new_user(g, time),
        AdminAudience => admin_audience(g, time),
        ServiceMachineLogin => service_machine_login(g, time),
        _ => {}
    }
}

/// Caps lock: three wrong passwords within a minute, then the right one.
fn typo_logins(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let (principal, home, agent) = {
        let u = &g.topo.users[user];
        (u.principal.clone(), u.home, u.browser)
    };
    let mut t = time;
    for _ in 0..3 {
        let mut ev = g.login(t, &principal, home, agent, "password", false);
        ev.reason = Some("bad_password");
        g.emit(ev);
        t += g.between(8 * SECOND, 20 * SECOND);
    }
    let (session, t) = g.open_session(user, t, home);
    g.request(
        t + 5 * SECOND,
        &session,
        g.topo.fronts()[0],
        Decision::Allow,
    );
}

/// After a password change, six people at the office mistype once each, then log in;
/// they all come from the office's egress address.
fn office_typos(g: &mut Generator, time: Micros) {
    let mut t = time;
    for _ in 0..6 {
        let user = g.extra_user(false, false);
        let (principal, agent) = (
            g.topo.users[user].principal.clone(),
            g.topo.users[user].browser,
        );
        let mut ev = g.login(t, &principal, OFFICE_IP, agent, "password", false);
        ev.reason = Some("bad_password");
        g.emit(ev);
        let retry = t + g.between(5 * SECOND, 15 * SECOND);
        let (session, after) = g.open_session(user, retry, OFFICE_IP);
        g.request(
            after + 3 * SECOND,
            &session,
            g.topo.fronts()[1],
            Decision::Allow,
        );
        t += g.between(30 * SECOND, 80 * SECOND);
    }
}

/// A phone leaves the home wifi: the app's token comes from the carrier's address next.
fn roaming_token(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (mut session, mut t) = g.open_session(user, time, home);
    session.agent = MOBILE_APP;
    let fronts = g.topo.fronts();
    for at in 0..6 {
        if at == 3 {
            session.ip = std::net::Ipv4Addr::new(100, 64, 9, 17);
        }
        t += g.between(10 * SECOND, 40 * SECOND);
        g.request(t, &session, fronts[at % fronts.len()], Decision::Allow);
    }
}

/// "Log out everywhere" revokes every token of the user; they log in again two seconds
/// later, and use the new token until ten seconds before it expires, then refresh.
fn relog_after_logout_all(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let principal = g.topo.users[user].principal.clone();
    let (session, t) = g.open_session(user, time, home);
    let fronts = g.topo.fronts();
    g.request(t + 5 * SECOND, &session, fronts[0], Decision::Allow);
    let out = t + 30 * SECOND;
    let mut revoke = g.ev(out, "token_revoke", &principal);
    revoke.service = Some("idp");
    revoke.reason = Some("logout_all");
    g.emit(revoke);
    let (mut session, t) = g.open_session(user, out + 2 * SECOND, home);
    g.request(t + 200 * MS, &session, fronts[1], Decision::Allow);
    let late = t + USER_TOKEN_LIFE - 10 * SECOND;
    g.request(late, &session, fronts[2], Decision::Allow);
    let id = session.id.clone();
    session.token = g.issue_user_token(
        late + SECOND,
        &principal,
        "web",
        false,
        &id,
        "refresh_token",
    );
    g.request(late + 2 * SECOND, &session, fronts[3], Decision::Allow);
}

/// The phone was in another room: two pushes time out, the third is approved.
fn missed_pushes(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, true);
    let (principal, home, agent) = {
        let u = &g.topo.users[user];
        (u.principal.clone(), u.home, u.browser)
    };
    let ev = g.login(time, &principal, home, agent, "password", true);
    g.emit(ev);
    let mut t = time + 3 * SECOND;
    for _ in 0..2 {
        let mut ev = g.login(t, &principal, home, agent, "mfa_push", false);
        ev.reason = Some("mfa_timeout");
        g.emit(ev);
        t += 60 * SECOND;
    }
    let mut ev = g.login(t, &principal, home, agent, "mfa_push", true);
    ev.mfa = Some(true);
    g.emit(ev);
}

/// After a policy change, the fraud service retries a denied call fifteen times in two
/// minutes: many denies, one target.
fn retrying_denied_call(g: &mut Generator, time: Micros) {
    let fraud = g.topo.service("fraud");
    let token = g.service_token(fraud, time);
    let (principal, pod) = (
        g.topo.services[fraud].principal.clone(),
        g.topo.services[fraud].pods[2],
    );
    let mut t = time.max(token.issued) + 100 * MS;
    for _ in 0..15 {
        let mut ev = g.ev(t, "authz", &principal);
        ev.service = Some("customers");
        ev.target_service = Some("customers");
        ev.source_service = Some("fraud");
        ev.resource = Some("db:customers");
        ev.action = Some("read");
        ev.outcome = Some("deny");
        ev.reason = Some("policy: missing role customers:read");
        ev.token_id = Some(token.id.clone());
        ev.source_ip = Some(pod);
        g.emit(ev);
        t += g.between(4 * SECOND, 8 * SECOND);
    }
}

/// A new employee's first login, after learning: every front service, none new to users.
fn new_user(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, true);
    let home = g.topo.users[user].home;
    let (session, mut t) = g.open_session(user, time, home);
    for front in g.topo.fronts() {
        t += g.between(5 * SECOND, 30 * SECOND);
        g.request(t, &session, front, Decision::Allow);
    }
}

/// An administrator's token, whose audience includes the admin console, used there and
/// on the shop.
fn admin_audience(g: &mut Generator, time: Micros) {
    let user = g.extra_user(true, true);
    let home = g.topo.users[user].home;
    let (session, t) = g.open_session(user, time, home);
    let admin = g.topo.service("admin-console");
    let orders = g.topo.service("orders");
    g.request(t + 5 * SECOND, &session, admin, Decision::Allow);
    g.request(t + 20 * SECOND, &session, orders, Decision::Allow);
    g.request(t + 50 * SECOND, &session, admin, Decision::Allow);
}

/// Services authenticating as machines do: mTLS from a Go client, client credentials
/// from a maintenance script's curl.
fn service_machine_login(g: &mut Generator, time: Micros) {
    let warehouse = g.topo.service("warehouse");
    let (principal, pod) = (
        g.topo.services[warehouse].principal.clone(),
        g.topo.services[warehouse].pods[0],
    );
    let ev = g.login(time, &principal, pod, "Go-http-client/1.1", "mtls", true);
    g.emit(ev);
    let ev = g.login(
        time + MINUTE,
        &principal,
        pod,
        "curl/8.5.0",
        "client_credentials",
        true,
    );
    g.emit(ev);
}
