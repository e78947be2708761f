//! The services' own traffic: calls along the call graph with client-credential tokens
//! fetched when due, and the reconciliation job that reaches seven services every few
//! hours.

use authtrail_model::Micros;

use crate::event::ISSUER;
use crate::sim::{Action, Generator, Token, HOUR, MINUTE, MS, SECOND};
use crate::topology::SERVICE_AGENT;

/// A client-credential token lives this long; services fetch a new one 5 minutes before.
const SERVICE_TOKEN_LIFE: Micros = HOUR;

impl Generator {
    pub(crate) fn service_tick(&mut self, service: usize, time: Micros) {
        let callees = &self.topo.services[service].callees;
        let callee = callees[self.service_calls[service] as usize % callees.len()];
        self.service_calls[service] += 1;
        self.call(time, service, callee, None);
        let next = self.next_arrival(time, self.config.service_calls_per_second);
        self.at(next, Action::ServiceTick(service));
    }

    /// `caller` calls `callee` with its own token (fetching a new one when it is due);
    /// the callee reports the decision.
    pub(crate) fn call(
        &mut self,
        time: Micros,
        caller: usize,
        callee: usize,
        trace: Option<String>,
    ) -> String {
        let token = self.service_token(caller, time);
        let trace = trace.unwrap_or_else(|| self.id("", 32));
        let from = &self.topo.services[caller];
        let to = &self.topo.services[callee];
        let (resource, action) = to.resources[self.rng.usize(..to.resources.len())];
        let (principal, source, pod, name) = (
            from.principal.clone(),
            from.name,
            from.pods[self.rng.usize(..3)],
            to.name,
        );
        // After the token's issue, when the call had to fetch one first.
        let time = time.max(token.issued) + self.between(MS, 5 * MS);
        let mut ev = self.ev(time, "authz", &principal);
        ev.service = Some(name);
        ev.target_service = Some(name);
        ev.source_service = Some(source);
        ev.resource = Some(resource);
        ev.action = Some(action);
        ev.token_id = Some(token.id);
        ev.source_ip = Some(pod);
        ev.trace_id = Some(trace);
        let deny = self.rng.f64() < 0.0005;
        ev.outcome = Some(if deny { "deny" } else { "allow" });
        ev.reason = deny.then_some("policy");
        let id = ev.id.clone();
        self.emit(ev);
        id
    }

    /// The service's current token, after fetching a new one (client credentials) when
    /// it has less than 5 minutes left. Old tokens simply expire, unused.
    pub(crate) fn service_token(&mut self, service: usize, time: Micros) -> Token {
        if let Some(token) = &self.service_tokens[service] {
            if time < token.expires - 5 * MINUTE {
                return token.clone();
            }
        }
        let s = &self.topo.services[service];
        let (principal, name, pod) = (s.principal.clone(), s.name, s.pods[self.rng.usize(..3)]);
        let audience: Vec<&'static str> = s
            .callees
            .iter()
            .map(|&c| self.topo.services[c].name)
            .collect();
        let mut t = time;
        if self.rng.f64() < 0.002 {
            // Mid secret rotation: one failure, then the new secret works.
            let mut failure = self.login(
                t,
                &principal,
                pod,
                SERVICE_AGENT,
                "client_credentials",
                false,
            );
            failure.reason = Some("invalid_client");
            self.emit(failure);
            t += SECOND;
        }
        let login = self.login(
            t,
            &principal,
            pod,
            SERVICE_AGENT,
            "client_credentials",
            true,
        );
        self.emit(login);
        let token = Token {
            id: self.id("jti-", 24),
            issued: t + 5 * MS,
            expires: t + SERVICE_TOKEN_LIFE,
        };
        let mut ev = self.ev(t + 5 * MS, "token_issue", &principal);
        ev.service = Some("idp");
        ev.outcome = Some("success");
        ev.token_id = Some(token.id.clone());
        ev.token_issuer = Some(ISSUER);
        ev.client_id = Some(name);
        ev.auth_method = Some("client_credentials");
        ev.token_audience = Some(audience);
        ev.token_expires = Some(token.expires);
        self.emit(ev);
        self.service_tokens[service] = Some(token.clone());
        token
    }

    /// The reconciliation job: every 6 hours (twice per learning period when that is
    /// shorter) it reads from each of its seven dependencies within a couple of minutes.
    pub(crate) fn batch_job(&mut self, time: Micros) {
        let job = self.topo.service("reconcile");
        if time >= self.config.start + self.learning() {
            self.tag = self.batch_scenario();
        }
        let mut t = time;
        for callee in self.topo.services[job].callees.clone() {
            for _ in 0..self.rng.usize(2..6) {
                t += self.between(200 * MS, 3 * SECOND);
                self.call(t, job, callee, None);
            }
        }
        self.tag = None;
        let period = (6 * HOUR).min(self.learning() / 2).max(10 * MINUTE);
        self.at(time + period, Action::BatchJob);
    }
}
