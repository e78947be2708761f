//! The trust and privilege situations (issue 18): services whose validation or
//! authorization is broken, and clients holding more than they use; with the look-alikes
//! that must not be reported. `validation_gap` raises the first live; the others are
//! what `authtrail report trust` and `authtrail report privilege` find over the lake.
//! Each names its subject (the service or client it is about) in the ground truth.

use authtrail_model::Micros;

use crate::event::ISSUER;
use crate::scenario::ScenarioKind;
use crate::sim::{Generator, MINUTE, MS, SECOND};
use crate::traffic::Decision;

/// The principal a service reports for a call that carried no credential at all.
const ANONYMOUS: &str = "anonymous";

pub(crate) fn play(g: &mut Generator, kind: ScenarioKind, time: Micros) {
    use ScenarioKind::*;
    match kind {
        ExpiredTokenAccepted => expired_token_accepted(g, time),
        TokenlessFromGateway => tokenless_from_gateway(g, time),
        OriginDependentDecision => origin_dependent_decision(g, time),
        DroppedIdentity => dropped_identity(g, time),
        OverScopedClient => over_scoped_client(g, time),
        DormantClient => dormant_client(g, time),
        TokenJustAfterExpiry => token_just_after_expiry(g, time),
        OpenHealthCheck => open_health_check(g, time),
        _ => {}
    }
}

/// The service or client a situation is about, as the ground truth names it.
pub(crate) fn subject(kind: ScenarioKind) -> Option<&'static str> {
    use ScenarioKind::*;
    Some(match kind {
        ExpiredTokenAccepted => "ledger",
        TokenlessFromGateway => "accounts",
        OriginDependentDecision => "orders",
        DroppedIdentity => "orders",
        OverScopedClient => "reports",
        DormantClient => "exports",
        TokenJustAfterExpiry => "catalog",
        OpenHealthCheck => "search",
        _ => return None,
    })
}

/// The ledger accepts expired tokens: the payments service calls it three times with a
/// token that expired ten minutes before, and the ledger allows each call; the fraud
/// service rejects the same token (one service trusts what another rejects).
fn expired_token_accepted(g: &mut Generator, time: Micros) {
    let payments = g.topo.service("payments");
    let (principal, pod) = {
        let s = &g.topo.services[payments];
        (s.principal.clone(), s.pods[0])
    };
    let token = g.id("jti-", 24);
    let expires = time + 5 * MINUTE;
    let mut issue = g.ev(time, "token_issue", &principal);
    issue.service = Some("idp");
    issue.outcome = Some("success");
    issue.token_id = Some(token.clone());
    issue.token_issuer = Some(ISSUER);
    issue.client_id = Some("payments");
    issue.auth_method = Some("client_credentials");
    issue.token_audience = Some(vec!["ledger", "fraud"]);
    issue.token_expires = Some(expires);
    g.emit(issue);
    let mut t = expires + 10 * MINUTE;
    for (target, resource, allowed) in [
        ("ledger", "/entries", true),
        ("fraud", "/score", false),
        ("ledger", "/entries", true),
        ("ledger", "/balances", true),
    ] {
        let mut ev = g.ev(t, "authz", &principal);
        ev.service = Some(target);
        ev.target_service = Some(target);
        ev.source_service = Some("payments");
        ev.resource = Some(resource);
        ev.action = Some(if resource == "/balances" {
            "GET"
        } else {
            "POST"
        });
        ev.outcome = Some(if allowed { "allow" } else { "deny" });
        ev.reason = (!allowed).then_some("token_expired");
        ev.token_id = Some(token.clone());
        ev.source_ip = Some(pod);
        ev.trace_id = Some(g.id("", 32));
        g.emit(ev);
        t += g.between(20 * SECOND, 60 * SECOND);
    }
}

/// The accounts service lets calls in without any credential when they come through the
/// gateway, and refuses them from anywhere else.
fn tokenless_from_gateway(g: &mut Generator, time: Micros) {
    let gateway = g.topo.service("gateway");
    let search = g.topo.service("search");
    let mut t = time;
    for at in 0..6 {
        let (source, pod, allowed) = match at {
            3 => ("search", g.topo.services[search].pods[0], false),
            _ => ("gateway", g.topo.services[gateway].pods[at % 3], true),
        };
        let mut ev = g.ev(t, "authz", ANONYMOUS);
        ev.service = Some("accounts");
        ev.target_service = Some("accounts");
        ev.source_service = Some(source);
        ev.resource = Some("/me");
        ev.action = Some("GET");
        ev.outcome = Some(if allowed { "allow" } else { "deny" });
        ev.reason = (!allowed).then_some("unauthenticated");
        ev.source_ip = Some(pod);
        ev.trace_id = Some(g.id("", 32));
        g.emit(ev);
        t += g.between(10 * SECOND, 40 * SECOND);
    }
}

/// The orders service decides `POST /orders` for one person by the path the request
/// took: allowed through the gateway, denied through the search service and directly.
fn origin_dependent_decision(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (session, mut t) = g.open_session(user, time, home);
    let principal = g.topo.users[user].principal.clone();
    let gateway = g.topo.service("gateway");
    let search = g.topo.service("search");
    for (source, allowed) in [
        (Some("gateway"), true),
        (Some("search"), false),
        (Some("gateway"), true),
        (None, false),
    ] {
        t += g.between(15 * SECOND, 45 * SECOND);
        let ip = match source {
            Some("gateway") => g.topo.services[gateway].pods[0],
            Some(_) => g.topo.services[search].pods[1],
            None => home,
        };
        let mut ev = g.ev(t, "authz", &principal);
        ev.service = Some("orders");
        ev.target_service = Some("orders");
        ev.source_service = source;
        ev.resource = Some("/orders");
        ev.action = Some("POST");
        ev.outcome = Some(if allowed { "allow" } else { "deny" });
        ev.reason = (!allowed).then_some("forbidden");
        ev.token_id = Some(session.token.id.clone());
        ev.session_id = Some(session.id.clone());
        ev.source_ip = Some(ip);
        ev.trace_id = Some(g.id("", 32));
        g.emit(ev);
    }
}

/// A person's request reaches the orders service through the gateway; within the same
/// trace the orders service calls payments under the reconciliation job's identity (a
/// credential it should not hold), with no token exchange: the person's identity is
/// swapped on the way. (The background's calls a front service makes under its own
/// identity in a person's trace are the service acting as itself, not this.)
fn dropped_identity(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (session, t) = g.open_session(user, time, home);
    let principal = g.topo.users[user].principal.clone();
    let trace = g.id("", 32);
    let gateway = g.topo.service("gateway");
    let orders = g.topo.service("orders");
    let t = t + 20 * SECOND;
    let mut relay = g.ev(t, "authz", &principal);
    relay.service = Some("orders");
    relay.target_service = Some("orders");
    relay.source_service = Some("gateway");
    relay.resource = Some("/orders");
    relay.action = Some("POST");
    relay.outcome = Some("allow");
    relay.token_id = Some(session.token.id.clone());
    relay.session_id = Some(session.id.clone());
    relay.source_ip = Some(g.topo.services[gateway].pods[1]);
    relay.trace_id = Some(trace.clone());
    g.emit(relay);
    let reconcile = g.topo.service("reconcile");
    let borrowed = g.service_token(reconcile, t);
    let job = g.topo.services[reconcile].principal.clone();
    let mut call = g.ev(t.max(borrowed.issued) + 12 * MS, "authz", &job);
    call.service = Some("payments");
    call.target_service = Some("payments");
    call.source_service = Some("orders");
    call.resource = Some("/charges");
    call.action = Some("POST");
    call.outcome = Some("allow");
    call.token_id = Some(borrowed.id);
    call.source_ip = Some(g.topo.services[orders].pods[0]);
    call.trace_id = Some(trace);
    g.emit(call);
}

/// The reports client is granted four scopes and audiences of two services, and in
/// twenty minutes of work exercises one scope against one service.
fn over_scoped_client(g: &mut Generator, time: Micros) {
    let principal = "svc:reports";
    let token = g.id("jti-", 24);
    let mut issue = g.ev(time, "token_issue", principal);
    issue.service = Some("idp");
    issue.outcome = Some("success");
    issue.token_id = Some(token.clone());
    issue.token_issuer = Some(ISSUER);
    issue.client_id = Some("reports");
    issue.auth_method = Some("client_credentials");
    issue.token_audience = Some(vec!["orders", "payments"]);
    issue.token_scopes = Some("orders:read orders:write payments:refund customers:read");
    issue.token_expires = Some(time + 60 * MINUTE);
    g.emit(issue);
    let mut t = time + 30 * SECOND;
    for _ in 0..8 {
        let mut ev = g.ev(t, "authz", principal);
        ev.service = Some("orders");
        ev.target_service = Some("orders");
        ev.source_service = Some("reports");
        ev.resource = Some("/orders");
        ev.action = Some("GET");
        ev.required_scopes = Some("orders:read");
        ev.outcome = Some("allow");
        ev.token_id = Some(token.clone());
        ev.trace_id = Some(g.id("", 32));
        g.emit(ev);
        t += g.between(90 * SECOND, 150 * SECOND);
    }
}

/// The exports client fetches a token every ten minutes and never presents one.
fn dormant_client(g: &mut Generator, time: Micros) {
    let principal = "svc:exports";
    for at in 0..3 {
        let t = time + at * 10 * MINUTE;
        let mut issue = g.ev(t, "token_issue", principal);
        issue.service = Some("idp");
        issue.outcome = Some("success");
        issue.token_id = Some(g.id("jti-", 24));
        issue.token_issuer = Some(ISSUER);
        issue.client_id = Some("exports");
        issue.auth_method = Some("client_credentials");
        issue.token_audience = Some(vec!["orders"]);
        issue.token_scopes = Some("orders:read");
        issue.token_expires = Some(t + 15 * MINUTE);
        g.emit(issue);
    }
}

/// Look-alike of an expired token accepted: a slow request reaches the catalog ten
/// seconds after the person's token expired, inside the clock skew services allow.
fn token_just_after_expiry(g: &mut Generator, time: Micros) {
    let user = g.extra_user(false, false);
    let home = g.topo.users[user].home;
    let (session, t) = g.open_session(user, time, home);
    let catalog = g.topo.service("catalog");
    g.request(t + 30 * SECOND, &session, catalog, Decision::Allow);
    let late = session.token.expires + 10 * SECOND;
    g.request(late, &session, catalog, Decision::Allow);
}

/// Look-alike of tokenless calls: the node's kubelet probes the search service's
/// `GET /healthz` every ten seconds without a credential, a route meant to be open and
/// configured as such (`[report.trust] open_routes`).
fn open_health_check(g: &mut Generator, time: Micros) {
    let node = std::net::Ipv4Addr::new(10, 0, 0, 17);
    for at in 0..12 {
        let mut ev = g.ev(time + at * 10 * SECOND, "authz", ANONYMOUS);
        ev.service = Some("search");
        ev.target_service = Some("search");
        ev.resource = Some("/healthz");
        ev.action = Some("GET");
        ev.outcome = Some("allow");
        ev.source_ip = Some(node);
        ev.user_agent = Some("kube-probe/1.31");
        g.emit(ev);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::event::Ev;
    use crate::truth::Label;
    use crate::GenConfig;

    /// The events of each situation, by scenario, from a small stream that plays only
    /// them and their look-alikes.
    fn played() -> HashMap<ScenarioKind, Vec<Ev>> {
        use ScenarioKind::*;
        let config = GenConfig {
            seed: 3,
            users: 60,
            learning: Duration::from_secs(3_600),
            duration: Duration::from_secs(3 * 3_600),
            service_calls_per_second: 0.02,
            attacks: vec![
                ExpiredTokenAccepted,
                TokenlessFromGateway,
                OriginDependentDecision,
                DroppedIdentity,
                OverScopedClient,
                DormantClient,
            ],
            lookalikes: true,
            ..GenConfig::default()
        };
        let mut generator = Generator::new(config).unwrap();
        let events: Vec<Box<Ev>> = generator.by_ref().map(|g| g.event).collect();
        let truth = generator.truth();
        let mut by_kind = HashMap::new();
        for scenario in &truth.scenarios {
            if subject(scenario.scenario).is_none() {
                continue;
            }
            assert_eq!(scenario.subject.as_deref(), subject(scenario.scenario));
            assert_eq!(
                scenario.label == Label::Attack,
                !scenario.reports.is_empty(),
                "{:?}",
                scenario.scenario
            );
            let ids: Vec<&String> = scenario.event_ids.iter().collect();
            let of_it: Vec<Ev> = events
                .iter()
                .filter(|ev| ids.contains(&&ev.id))
                .map(|ev| (**ev).clone())
                .collect();
            assert_eq!(of_it.len(), ids.len(), "{:?}", scenario.scenario);
            by_kind.insert(scenario.scenario, of_it);
        }
        by_kind
    }

    fn decisions<'a>(events: &'a [Ev], service: &str) -> Vec<&'a Ev> {
        let decided = |ev: &&Ev| ev.kind == "authz" && ev.service == Some(service);
        events.iter().filter(decided).collect()
    }

    #[test]
    fn each_situation_is_played_as_its_truth_says() {
        use ScenarioKind::*;
        let played = played();
        assert_eq!(played.len(), 8, "{:?}", played.keys());

        // Expired tokens: the ledger allows every call, ten minutes past the expiry; the
        // fraud service denies the same token.
        let expired = &played[&ExpiredTokenAccepted];
        let expiry = expired[0].token_expires.unwrap();
        let ledger = decisions(expired, "ledger");
        assert_eq!(ledger.len(), 3);
        assert!(ledger
            .iter()
            .all(|ev| ev.outcome == Some("allow") && ev.time >= expiry + 10 * MINUTE));
        assert_eq!(decisions(expired, "fraud")[0].outcome, Some("deny"));

        // Tokenless: allowed only from the gateway, never with a token or a SPIFFE id.
        let tokenless = &played[&TokenlessFromGateway];
        assert!(tokenless
            .iter()
            .all(|ev| ev.token_id.is_none() && !ev.principal.starts_with("spiffe://")));
        for ev in tokenless {
            let from_gateway = ev.source_service == Some("gateway");
            assert_eq!(ev.outcome == Some("allow"), from_gateway);
        }

        // Origin: one principal, resource and action; the decision follows the origin.
        let origin = decisions(&played[&OriginDependentDecision], "orders");
        assert_eq!(origin.len(), 4);
        for ev in &origin {
            assert_eq!((ev.resource, ev.action), (Some("/orders"), Some("POST")));
            assert_eq!(ev.principal, origin[0].principal);
            let via_gateway = ev.source_service == Some("gateway");
            assert_eq!(ev.outcome == Some("allow"), via_gateway);
        }

        // Dropped identity: one trace, two principals, no token issued in between.
        let dropped = &played[&DroppedIdentity];
        let calls: Vec<&Ev> = dropped.iter().filter(|ev| ev.kind == "authz").collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].trace_id, calls[1].trace_id);
        assert_ne!(calls[0].principal, calls[1].principal);
        assert_eq!(calls[1].source_service, calls[0].target_service);

        // Over-scoped: four scopes granted, one required, one audience of two reached.
        let scoped = &played[&OverScopedClient];
        assert_eq!(scoped[0].token_scopes.unwrap().split(' ').count(), 4);
        let calls = decisions(scoped, "orders");
        assert!(calls.len() >= 5);
        assert!(calls
            .iter()
            .all(|ev| ev.required_scopes == Some("orders:read")));

        // Dormant: issues only.
        let dormant = &played[&DormantClient];
        assert!(dormant.len() >= 3 && dormant.iter().all(|ev| ev.kind == "token_issue"));

        // Look-alikes: ten seconds past the expiry; an open route without a credential.
        let late = &played[&TokenJustAfterExpiry];
        let expires = late.iter().find_map(|ev| ev.token_expires).unwrap();
        let after: Vec<Micros> = late
            .iter()
            .map(|ev| ev.time - expires)
            .filter(|&past| past > 0)
            .collect();
        // Event times are written to the millisecond; the relay follows the gateway.
        assert!(!after.is_empty());
        assert!(after
            .iter()
            .all(|&past| (10 * SECOND - MS..10 * SECOND + 20 * MS).contains(&past)));
        let probes = &played[&OpenHealthCheck];
        assert!(probes
            .iter()
            .all(|ev| ev.resource == Some("/healthz") && ev.token_id.is_none()));
    }
}
