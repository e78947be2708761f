//! The background: people logging in through the gateway and using the shop (sessions,
//! typos, missed MFA pushes, refreshes, logouts, benign denies). Everything here is
//! benign, and built so that no detector should fire on it.

use std::net::Ipv4Addr;

use authtrail_model::Micros;

use crate::event::{Ev, ISSUER};
use crate::sim::{Action, Generator, Token, MINUTE, MS, SECOND};
use crate::topology::{Role, MOBILE_APP};

/// A user token lives this long; the app refreshes it a minute before.
pub(crate) const USER_TOKEN_LIFE: Micros = 15 * MINUTE;
/// Warm-up sessions at the start, so the users' baseline covers every front service and
/// the admin console early even with a short learning period.
const WARM_UP_SESSIONS: usize = 12;

/// How the target of a request decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Allowed, with the background's 1% of benign denies.
    Usual,
    Allow,
    Deny(&'static str),
}

/// A user's session in progress.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: usize,
    pub ip: Ipv4Addr,
    pub agent: &'static str,
    pub client: &'static str,
    pub id: String,
    pub token: Token,
    pub requests_left: u32,
    /// Requests made, for the round-robin over the front services.
    pub requests: u32,
}

impl Generator {
    pub(crate) fn schedule_background(&mut self) {
        let start = self.config.start;
        for at in 0..WARM_UP_SESSIONS.min(self.topo.users.len()) {
            self.start_session(at, start + at as Micros * 20 * SECOND + SECOND);
        }
        self.at(start + 5 * MINUTE, Action::NextSession);
        for service in 0..self.topo.services.len() {
            let calls = &self.topo.services[service];
            if !calls.callees.is_empty() && calls.role != Role::Batch {
                let first = start + self.between(0, 10 * SECOND);
                self.at(first, Action::ServiceTick(service));
            }
        }
        self.at(start + 2 * MINUTE, Action::BatchJob);
    }

    pub(crate) fn next_session(&mut self, time: Micros) {
        let peak =
            self.topo.users.len() as f64 * self.config.sessions_per_user_day / 86_400.0 / 0.6;
        let user = self.rng.usize(..self.topo.users.len());
        if self.user_busy[user] < time {
            self.start_session(user, time);
        }
        let next = self.next_arrival(time, peak);
        self.at(next, Action::NextSession);
    }

    /// Logs `user` in at `time` (with the occasional typo and missed MFA push) and
    /// schedules the session's requests.
    pub(crate) fn start_session(&mut self, user: usize, time: Micros) {
        let mobile = self.topo.users[user].mobile.filter(|_| self.rng.bool());
        let (ip, agent, client) = match mobile {
            Some(ip) => (ip, MOBILE_APP, "mobile-app"),
            None => (
                self.topo.users[user].home,
                self.topo.users[user].browser,
                "web",
            ),
        };
        let session_id = self.id("s-", 16);
        let mut t = time;
        let principal = self.topo.users[user].principal.clone();
        let typos = match self.rng.f64() {
            x if x < 0.01 => 2,
            x if x < 0.05 => 1,
            _ => 0,
        };
        for _ in 0..typos {
            let mut failure = self.login(t, &principal, ip, agent, "password", false);
            failure.reason = Some("bad_password");
            self.emit(failure);
            t += self.between(3 * SECOND, 12 * SECOND);
        }
        let mfa = self.topo.users[user].mfa;
        let mut login = self.login(t, &principal, ip, agent, "password", true);
        login.session_id = Some(session_id.clone());
        self.emit(login);
        if mfa {
            t += self.between(2 * SECOND, 10 * SECOND);
            if self.rng.f64() < 0.05 {
                let mut missed = self.login(t, &principal, ip, agent, "mfa_push", false);
                missed.reason = Some("mfa_timeout");
                self.emit(missed);
                t += self.between(30 * SECOND, 60 * SECOND);
            }
            let mut push = self.login(t, &principal, ip, agent, "mfa_push", true);
            push.mfa = Some(true);
            push.session_id = Some(session_id.clone());
            self.emit(push);
        }
        t += self.between(50 * MS, 300 * MS);
        let admin = self.topo.users[user].admin;
        let token = self.issue_user_token(
            t,
            &principal,
            client,
            admin,
            &session_id,
            "authorization_code",
        );
        let requests_left = self.rng.u32(3..30);
        let session = Session {
            user,
            ip,
            agent,
            client,
            id: session_id,
            token,
            requests_left,
            requests: self.rng.u32(..8),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.sessions[slot] = Some(session);
                slot
            }
            None => {
                self.sessions.push(Some(session));
                self.sessions.len() - 1
            }
        };
        self.user_busy[user] = Micros::MAX;
        let first = t + self.between(SECOND, 20 * SECOND);
        self.at(first, Action::Session(slot));
    }

    /// An `authn` at the IdP.
    pub(crate) fn login(
        &mut self,
        time: Micros,
        principal: &str,
        ip: Ipv4Addr,
        agent: &'static str,
        method: &'static str,
        success: bool,
    ) -> Ev {
        let mut ev = self.ev(time, "authn", principal);
        ev.service = Some("idp");
        ev.outcome = Some(if success { "success" } else { "failure" });
        ev.auth_method = Some(method);
        ev.source_ip = Some(ip);
        ev.user_agent = Some(agent);
        ev
    }

    /// Issues a user token (emits the `token_issue`) and returns it.
    pub(crate) fn issue_user_token(
        &mut self,
        time: Micros,
        principal: &str,
        client: &'static str,
        admin: bool,
        session: &str,
        grant: &'static str,
    ) -> Token {
        let token = Token {
            id: self.id("jti-", 24),
            issued: time,
            expires: time + USER_TOKEN_LIFE,
        };
        let mut ev = self.ev(time, "token_issue", principal);
        ev.service = Some("idp");
        ev.outcome = Some("success");
        ev.token_id = Some(token.id.clone());
        ev.token_issuer = Some(ISSUER);
        ev.client_id = Some(client);
        ev.auth_method = Some(grant);
        ev.session_id = Some(session.to_owned());
        ev.token_expires = Some(token.expires);
        if admin {
            ev.token_audience = Some(vec![
                "gateway",
                "catalog",
                "cart",
                "orders",
                "accounts",
                "search",
                "admin-console",
            ]);
            ev.token_scopes = Some("openid profile orders:read orders:write admin");
        } else {
            ev.token_audience = Some(vec![
                "gateway", "catalog", "cart", "orders", "accounts", "search",
            ]);
            ev.token_scopes = Some("openid profile orders:read orders:write");
        }
        self.emit(ev);
        token
    }

    pub(crate) fn session_step(&mut self, slot: usize, time: Micros) {
        let Some(mut session) = self.sessions[slot].take() else {
            return;
        };
        let user = session.user;
        if session.requests_left == 0 {
            // Most people log out (the IdP revokes the session's token); the rest just
            // leave and the token expires.
            if self.rng.f64() < 0.6 {
                let mut revoke = self.ev(
                    time,
                    "token_revoke",
                    &self.topo.users[user].principal.clone(),
                );
                revoke.service = Some("idp");
                revoke.token_id = Some(session.token.id.clone());
                revoke.reason = Some("logout");
                revoke.session_id = Some(session.id.clone());
                self.emit(revoke);
            }
            self.user_busy[user] = time + SECOND;
            self.free.push(slot);
            return;
        }
        if time > session.token.expires - MINUTE {
            let principal = self.topo.users[user].principal.clone();
            let admin = self.topo.users[user].admin;
            session.token = self.issue_user_token(
                time,
                &principal,
                session.client,
                admin,
                &session.id.clone(),
                "refresh_token",
            );
        }
        let target = self.pick_front(&session);
        self.request(time + 20 * MS, &session, target, Decision::Usual);
        session.requests_left -= 1;
        session.requests += 1;
        let gap = self
            .exp_gap(40.0 * SECOND as f64)
            .clamp(2 * SECOND, 5 * MINUTE);
        // Seconds after the last request before the logout, so no relay of it trails the
        // revoke.
        let gap = if session.requests_left == 0 {
            gap + 5 * SECOND
        } else {
            gap
        };
        self.sessions[slot] = Some(session);
        self.at(time + gap, Action::Session(slot));
    }

    /// The front service a session's next request goes to: round-robin, and every other
    /// request of an administrator to the admin console.
    fn pick_front(&mut self, session: &Session) -> usize {
        if self.topo.users[session.user].admin && session.requests.is_multiple_of(2) {
            return self.topo.service("admin-console");
        }
        let fronts = self.topo.fronts();
        fronts[session.requests as usize % fronts.len()]
    }

    /// One user request: the gateway checks the token, relays it to `target`, which may
    /// call one of its own dependencies with its service token.
    pub(crate) fn request(
        &mut self,
        time: Micros,
        session: &Session,
        target: usize,
        decision: Decision,
    ) {
        let principal = self.topo.users[session.user].principal.clone();
        let trace = self.id("", 32);
        let mut edge = self.ev(time, "authz", &principal);
        edge.service = Some("gateway");
        edge.target_service = Some("gateway");
        edge.resource = Some("/");
        edge.action = Some("GET");
        edge.outcome = Some("allow");
        edge.token_id = Some(session.token.id.clone());
        edge.source_ip = Some(session.ip);
        edge.user_agent = Some(session.agent);
        edge.session_id = Some(session.id.clone());
        edge.trace_id = Some(trace.clone());
        self.emit(edge);

        let service = &self.topo.services[target];
        let (resource, action) = service.resources[self.rng.usize(..service.resources.len())];
        let name = service.name;
        let gateway = self.topo.service("gateway");
        let pod = self.topo.services[gateway].pods[self.rng.usize(..3)];
        let t = time + self.between(2 * MS, 15 * MS);
        let mut relay = self.ev(t, "authz", &principal);
        relay.service = Some(name);
        relay.target_service = Some(name);
        relay.source_service = Some("gateway");
        relay.resource = Some(resource);
        relay.action = Some(action);
        relay.token_id = Some(session.token.id.clone());
        relay.source_ip = Some(pod);
        relay.session_id = Some(session.id.clone());
        relay.trace_id = Some(trace.clone());
        let denied = match decision {
            Decision::Usual => (self.rng.f64() < 0.01).then_some("insufficient_scope"),
            Decision::Allow => None,
            Decision::Deny(reason) => Some(reason),
        };
        relay.outcome = Some(if denied.is_some() { "deny" } else { "allow" });
        relay.reason = denied;
        self.emit(relay);
        if denied.is_none() && !self.topo.services[target].callees.is_empty() && self.rng.bool() {
            let callees = &self.topo.services[target].callees;
            let callee = callees[self.rng.usize(..callees.len())];
            let at = t + self.between(2 * MS, 20 * MS);
            self.call(at, target, callee, Some(trace));
        }
    }
}
