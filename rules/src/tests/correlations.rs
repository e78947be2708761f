//! Correlation types with their window edges, groups, bounds on state, and restarts.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{feed, pack, problem, rules, T0};
use crate::{RuleSet, Settings};

const BASE: &str = "title: denied admin call
id: 11111111-0000-0000-0000-000000000001
name: admin_denied
logsource: {product: authtrail, category: authz}
detection:
  selection: {target_service: admin, outcome: deny}
  condition: selection
---
title: allowed admin call
id: 11111111-0000-0000-0000-000000000002
name: admin_allowed
logsource: {product: authtrail, category: authz}
detection:
  selection: {target_service: admin, outcome: allow}
  condition: selection
";

fn correlation(body: &str) -> String {
    format!("{BASE}---\ntitle: correlated\nid: c1\nname: c1\nlevel: critical\ntags: [attack.t1110]\ncorrelation:\n{body}")
}

/// An authz call to `admin` by `principal` with `outcome` at T0 + `ms`.
fn call(principal: &str, outcome: &str, ms: i64) -> Value {
    json!({"kind": "authz", "principal": principal, "target_service": "admin", "outcome": outcome, "time": T0 + ms, "source_ip": "192.0.2.1"})
}

fn denials(times_ms: &[i64]) -> Vec<Value> {
    times_ms
        .iter()
        .map(|&ms| call("user:alice", "deny", ms))
        .collect()
}

const COUNT: &str = "  type: event_count\n  rules: [admin_denied]\n  group-by: [principal]\n  timespan: 5m\n  condition: {gte: 3}\n";
const FIVE_MIN_MS: i64 = 300_000;

#[test]
fn event_count_fires_at_the_threshold_within_the_timespan_edges_included() {
    let fired = |times: &[i64]| feed(&mut rules(&correlation(COUNT)), &denials(times)).len();
    assert_eq!(fired(&[0, 1_000]), 0, "one short");
    assert_eq!(fired(&[0, 1_000, FIVE_MIN_MS]), 1, "exactly the timespan");
    assert_eq!(fired(&[0, 1_000, FIVE_MIN_MS + 1]), 0, "just outside");
    let alerts = feed(&mut rules(&correlation(COUNT)), &denials(&[0, 10, 20]));
    let alert = &alerts[0];
    assert_eq!(alert.detector, "sigma:c1");
    assert_eq!(alert.key, "principal=user:alice");
    assert_eq!(alert.evidence_ids, ["e0", "e1", "e2"]);
    assert_eq!(alert.attack_technique, "T1110");
    assert_eq!(alert.severity, authtrail_model::Severity::Critical);
}

#[test]
fn correlated_rules_alert_only_through_the_correlation_unless_generate() {
    let mut set = rules(&correlation(COUNT));
    assert!(feed(&mut set, &denials(&[0])).is_empty());
    let generating = correlation(&format!("{COUNT}  generate: true\n"));
    let alerts = feed(&mut rules(&generating), &denials(&[0]));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].detector, "sigma:admin_denied");
}

#[test]
fn groups_count_apart() {
    let mut set = rules(&correlation(COUNT));
    let events = vec![
        call("user:alice", "deny", 0),
        call("user:bob", "deny", 1),
        call("user:alice", "deny", 2),
        call("user:bob", "deny", 3),
    ];
    assert!(feed(&mut set, &events).is_empty());
    assert_eq!(feed(&mut set, &[call("user:bob", "deny", 4)]).len(), 1);
}

#[test]
fn value_count_counts_distinct_values_within_the_timespan() {
    let body = "  type: value_count\n  rules: [admin_denied]\n  group-by: [principal]\n  timespan: 5m\n  condition: {gte: 3, field: source_ip}\n";
    let from = |ip: &str, ms: i64| {
        let mut event = call("user:alice", "deny", ms);
        event["source_ip"] = ip.into();
        event
    };
    let fired = |events: Vec<Value>| feed(&mut rules(&correlation(body)), &events).len();
    assert_eq!(
        fired(vec![
            from("10.0.0.1", 0),
            from("10.0.0.2", 1),
            from("10.0.0.2", 2)
        ]),
        0,
        "one short"
    );
    assert_eq!(
        fired(vec![
            from("10.0.0.1", 0),
            from("10.0.0.2", 1),
            from("10.0.0.3", FIVE_MIN_MS)
        ]),
        1,
        "exact"
    );
    assert_eq!(
        fired(vec![
            from("10.0.0.1", 0),
            from("10.0.0.2", 1),
            from("10.0.0.3", FIVE_MIN_MS + 1)
        ]),
        0,
        "outside"
    );
}

#[test]
fn temporal_needs_every_rule_in_any_order_within_the_timespan() {
    let body = "  type: temporal\n  rules: [admin_denied, admin_allowed]\n  group-by: [principal]\n  timespan: 5m\n";
    let fired = |events: Vec<Value>| feed(&mut rules(&correlation(body)), &events).len();
    assert_eq!(
        fired(vec![
            call("user:alice", "deny", 0),
            call("user:alice", "deny", 1)
        ]),
        0,
        "one rule short"
    );
    assert_eq!(
        fired(vec![
            call("user:alice", "allow", 0),
            call("user:alice", "deny", FIVE_MIN_MS)
        ]),
        1,
        "exact, any order"
    );
    assert_eq!(
        fired(vec![
            call("user:alice", "deny", 0),
            call("user:alice", "allow", FIVE_MIN_MS + 1)
        ]),
        0,
        "outside"
    );
    assert_eq!(
        fired(vec![
            call("user:alice", "deny", 0),
            call("user:bob", "allow", 1)
        ]),
        0,
        "other group"
    );
}

#[test]
fn temporal_ordered_needs_the_rules_in_their_order() {
    let body = "  type: temporal_ordered\n  rules: [admin_denied, admin_allowed]\n  group-by: [principal]\n  timespan: 5m\n";
    let fired = |events: Vec<Value>| feed(&mut rules(&correlation(body)), &events).len();
    assert_eq!(
        fired(vec![
            call("user:alice", "allow", 0),
            call("user:alice", "deny", 1)
        ]),
        0,
        "wrong order"
    );
    assert_eq!(fired(vec![call("user:alice", "deny", 0)]), 0, "one short");
    assert_eq!(
        fired(vec![
            call("user:alice", "deny", 0),
            call("user:alice", "allow", FIVE_MIN_MS)
        ]),
        1,
        "exact"
    );
    assert_eq!(
        fired(vec![
            call("user:alice", "deny", 0),
            call("user:alice", "allow", FIVE_MIN_MS + 1)
        ]),
        0,
        "outside"
    );
    let alerts = feed(
        &mut rules(&correlation(body)),
        &[
            call("user:alice", "allow", 0),
            call("user:alice", "deny", 1),
            call("user:alice", "allow", 2),
        ],
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].evidence_ids, ["e1", "e2"]);
}

#[test]
fn bounds_cap_the_count_and_eq_needs_it_exact() {
    let range = COUNT.replace("{gte: 3}", "{gte: 2, lte: 2}");
    assert_eq!(
        feed(&mut rules(&correlation(&range)), &denials(&[0, 1])).len(),
        1
    );
    let eq = COUNT.replace("{gte: 3}", "{eq: 2}");
    assert_eq!(feed(&mut rules(&correlation(&eq)), &denials(&[0])).len(), 0);
    assert_eq!(
        feed(&mut rules(&correlation(&eq)), &denials(&[0, 1])).len(),
        1
    );
    let gt = COUNT.replace("{gte: 3}", "{gt: 2}");
    assert_eq!(
        feed(&mut rules(&correlation(&gt)), &denials(&[0, 1])).len(),
        0
    );
    assert_eq!(
        feed(&mut rules(&correlation(&gt)), &denials(&[0, 1, 2])).len(),
        1
    );
}

#[test]
fn late_events_do_not_enter_windows() {
    let mut set = rules(&correlation(COUNT));
    // More than 30 s (the default lateness) behind the newest event time is late.
    let events = denials(&[100_000, 200_000, 200_000 - 30_001, 200_001]);
    let alerts = feed(&mut set, &events);
    assert_eq!(set.stats().late_events, 1);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].evidence_ids, ["e0", "e1", "e3"]);
}

#[test]
fn groups_are_capped_and_evictions_counted() {
    let settings = Settings {
        max_keys: 2,
        ..Settings::default()
    };
    let mut set = RuleSet::new(Arc::new(pack(&correlation(COUNT)).unwrap()), settings);
    let events: Vec<Value> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(n, p)| call(&format!("user:{p}"), "deny", n as i64))
        .collect();
    feed(&mut set, &events);
    let stats = set.stats();
    assert_eq!((stats.groups, stats.evicted), (2, 1));
}

#[test]
fn a_restart_in_the_middle_of_a_correlation_neither_loses_nor_repeats() {
    // Each type keeps its matches in its own form (tags or none): each is restarted
    // after two of its events.
    let value_count = "  type: value_count\n  rules: [admin_denied]\n  group-by: [principal]\n  timespan: 5m\n  condition: {gte: 3, field: source_ip}\n";
    let ordered = "  type: temporal_ordered\n  rules: [admin_denied, admin_allowed]\n  group-by: [principal]\n  timespan: 5m\n";
    let from = |ip: &str, outcome: &str, ms: i64| {
        let mut event = call("user:alice", outcome, ms);
        event["source_ip"] = ip.into();
        event
    };
    let cases = [
        (COUNT, denials(&[0, 1_000, 2_000, 3_000, 4_000, 5_000])),
        (
            value_count,
            [
                "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5",
            ]
            .iter()
            .enumerate()
            .map(|(n, ip)| from(ip, "deny", 1_000 * n as i64))
            .collect(),
        ),
        (
            ordered,
            ["allow", "deny", "deny", "allow", "deny", "allow"]
                .iter()
                .enumerate()
                .map(|(n, outcome)| from("10.0.0.1", outcome, 1_000 * n as i64))
                .collect(),
        ),
    ];
    for (body, events) in cases {
        let pack = Arc::new(pack(&correlation(body)).unwrap());
        let mut straight = RuleSet::new(Arc::clone(&pack), Settings::default());
        let expected = feed(&mut straight, &events);
        assert!(!expected.is_empty(), "{body}");

        let mut first = RuleSet::new(Arc::clone(&pack), Settings::default());
        let mut alerts = feed(&mut first, &events[..2]);
        let bytes = first.checkpoint();
        let mut resumed = RuleSet::restore(pack, Settings::default(), &bytes).unwrap();
        // Ids e0.. are given by position: keep the originals.
        let mut rest = Vec::new();
        for (n, event) in events.iter().enumerate().skip(2) {
            let mut event = event.clone();
            event["id"] = format!("e{n}").into();
            rest.push(event);
        }
        alerts.extend(feed(&mut resumed, &rest));
        assert_eq!(alerts, expected, "{body}");
        assert_eq!(resumed.stats().events, 6);
    }
}

#[test]
fn bad_correlations_name_the_line_and_the_problem() {
    let (line, message) = problem(&correlation(&COUNT.replace("admin_denied", "nope")));
    assert!(message.contains("`nope`"), "{message}");
    assert_eq!(line, 24);
    let (_, message) = problem(&correlation(&COUNT.replace("{gte: 3}", "{lt: 3}")));
    assert!(message.contains("lower bound"), "{message}");
    let (_, message) = problem(&correlation(&COUNT.replace("[principal]", "[principle]")));
    assert!(message.contains("unknown field `principle`"), "{message}");
    let (_, message) = problem(&correlation(&COUNT.replace("5m", "five minutes")));
    assert!(message.contains("not a timespan"), "{message}");
    let (_, message) = problem(&correlation(&COUNT.replace("event_count", "value_count")));
    assert!(message.contains("`field`"), "{message}");
}

#[test]
fn state_restored_into_a_reordered_pack_follows_its_correlation_by_name() {
    let before = Arc::new(pack(&correlation(COUNT)).unwrap());
    let mut first = RuleSet::new(before, Settings::default());
    assert!(feed(&mut first, &denials(&[0, 1_000])).is_empty());
    let bytes = first.checkpoint();
    // Another correlation now comes first, so `c1` moved to the second position.
    let other = "title: other\nid: c0\nname: c0\ncorrelation:\n  type: event_count\n  rules: [admin_allowed]\n  group-by: [principal]\n  timespan: 1m\n  condition: {gte: 2}\n---\n";
    let after = format!(
        "{BASE}---\n{other}{}",
        &correlation(COUNT)[BASE.len() + 4..]
    );
    let after = Arc::new(pack(&after).unwrap());
    assert_eq!(after.correlations[1].meta.detector, "sigma:c1");
    let mut resumed = RuleSet::restore(after, Settings::default(), &bytes).unwrap();
    let mut third = call("user:alice", "deny", 2_000);
    third["id"] = "e2".into();
    let alerts = feed(&mut resumed, &[third]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].detector, "sigma:c1");
    assert_eq!(alerts[0].evidence_ids, ["e0", "e1", "e2"]);
}

#[test]
fn lateness_follows_the_detectors_watermark_of_each_partition() {
    use authtrail_detect::{DetectConfig, Detectors};
    use authtrail_model::{parse_event, ContractLimits};

    // Partition 0 runs an hour of event time ahead of partition 1, whose denials are in
    // order within it: the built-ins take them, and so must the rules. One watermark
    // over both partitions would find them late and keep them out of the window.
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    let (ahead, behind) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let mut set = rules(&correlation(COUNT));
    let mut alerts = Vec::new();
    let hour = 3_600_000;
    let mut events = vec![(ahead, call("user:bob", "allow", hour))];
    events.extend(denials(&[0, 1_000, 2_000]).into_iter().map(|e| (behind, e)));
    // Late for partition 1 itself (over 30 s behind its own newest): kept out.
    events.push((behind, call("user:alice", "deny", -60_000)));
    for (n, (source, mut event)) in events.into_iter().enumerate() {
        event["id"] = format!("e{n}").into();
        let text = event.to_string();
        let event = parse_event(text.as_bytes(), i64::MAX / 2, &ContractLimits::default()).unwrap();
        detectors.observe_from(source, &event, &mut Vec::new());
        set.observe_at(&event, detectors.last_reading(), &mut alerts);
    }
    assert_eq!(set.stats().late_events, 1);
    let correlated: Vec<_> = alerts.iter().filter(|a| a.detector == "sigma:c1").collect();
    assert_eq!(correlated.len(), 1, "{alerts:#?}");
    assert_eq!(correlated[0].evidence_ids, ["e1", "e2", "e3"]);
}

#[test]
fn correlations_of_one_definition_share_groups_and_each_raise() {
    // c2 repeats c1's definition under another name and level; c3 differs in its
    // threshold. Between c1 and c2 sits c3, so the alerts' order is the pack's.
    let twin = |name: &str, level: &str, body: &str| {
        format!(
            "---\ntitle: {name}\nid: {name}\nname: {name}\nlevel: {level}\ncorrelation:\n{body}"
        )
    };
    let yaml = format!(
        "{}{}{}",
        correlation(COUNT),
        twin("c3", "low", &COUNT.replace("{gte: 3}", "{gte: 2}")),
        twin("c2", "high", COUNT)
    );
    let pack = Arc::new(pack(&yaml).unwrap());
    assert_eq!(pack.shares, [0, 1, 0]);
    let mut set = RuleSet::new(Arc::clone(&pack), Settings::default());
    let alerts = feed(&mut set, &denials(&[0, 1_000]));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].detector, "sigma:c3");
    // c1 and c2 hold one group between them (c3 fired and forgot its group).
    assert_eq!(set.stats().groups, 1);
    let bytes = set.checkpoint();
    let mut resumed = RuleSet::restore(pack, Settings::default(), &bytes).unwrap();
    let mut third = call("user:alice", "deny", 2_000);
    third["id"] = "e2".into();
    let alerts = feed(&mut resumed, &[third]);
    let raised: Vec<(&str, &[String])> = alerts
        .iter()
        .map(|alert| (alert.detector.as_str(), alert.evidence_ids.as_slice()))
        .collect();
    let evidence = ["e0", "e1", "e2"].map(String::from);
    assert_eq!(
        raised,
        [("sigma:c1", &evidence[..]), ("sigma:c2", &evidence[..])]
    );
    assert_eq!(alerts[1].severity, authtrail_model::Severity::High);
    // c1's group fired and went; c3 started a new one.
    assert_eq!(resumed.stats().groups, 1);
}
