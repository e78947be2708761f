//! Every modifier and condition form of detection rules, and what a bad rule gets.

use serde_json::json;

use super::{feed, problem, rules};

/// A rule over authz events with `selection` (YAML, indented for `detection:`) and
/// `condition`.
fn rule(selection: &str, condition: &str) -> String {
    format!(
        "title: t\nid: r1\nname: r1\nlevel: high\ntags: [attack.t1078.004]\nlogsource:\n  product: authtrail\n  category: authz\ndetection:\n{selection}\n  condition: {condition}\n"
    )
}

/// Whether the rule with `selection` and `condition` matches `event` (an authz event).
fn matches(selection: &str, condition: &str, event: serde_json::Value) -> bool {
    let mut set = rules(&rule(selection, condition));
    let mut event = event;
    let fields = event.as_object_mut().unwrap();
    fields.entry("kind").or_insert("authz".into());
    fields.entry("principal").or_insert("user:alice".into());
    fields.entry("outcome").or_insert("allow".into());
    !feed(&mut set, &[event]).is_empty()
}

fn sel(body: &str) -> String {
    format!("  selection:\n{body}")
}

#[test]
fn plain_values_compare_whole_and_case_insensitively_and_lists_are_or() {
    let s = sel("    target_service: Admin-API");
    assert!(matches(
        &s,
        "selection",
        json!({"target_service": "admin-api"})
    ));
    assert!(!matches(
        &s,
        "selection",
        json!({"target_service": "admin-api-2"})
    ));
    assert!(!matches(&s, "selection", json!({})));
    let list = sel("    target_service: [billing, admin-api]");
    assert!(matches(
        &list,
        "selection",
        json!({"target_service": "billing"})
    ));
    assert!(!matches(
        &list,
        "selection",
        json!({"target_service": "orders"})
    ));
    let cased = sel("    target_service|cased: Admin-API");
    assert!(!matches(
        &cased,
        "selection",
        json!({"target_service": "admin-api"})
    ));
}

#[test]
fn contains_startswith_endswith_and_wildcards() {
    let contains = sel("    resource|contains: /ADMIN/");
    assert!(matches(
        &contains,
        "selection",
        json!({"resource": "/v1/admin/users"})
    ));
    assert!(!matches(
        &contains,
        "selection",
        json!({"resource": "/v1/users"})
    ));
    let starts = sel("    principal|startswith: 'svc:'");
    assert!(matches(
        &starts,
        "selection",
        json!({"principal": "svc:payments"})
    ));
    assert!(!matches(
        &starts,
        "selection",
        json!({"principal": "user:svc:x"})
    ));
    let ends = sel("    user_agent|endswith: curl/8.4");
    assert!(matches(
        &ends,
        "selection",
        json!({"user_agent": "x curl/8.4"})
    ));
    assert!(!matches(
        &ends,
        "selection",
        json!({"user_agent": "curl/8.4 x"})
    ));
    let wild = sel("    resource: /v?/admin/*");
    assert!(matches(
        &wild,
        "selection",
        json!({"resource": "/v2/admin/keys"})
    ));
    assert!(!matches(
        &wild,
        "selection",
        json!({"resource": "/v10/admin/keys"})
    ));
    let escaped = sel("    resource: '/a\\*'");
    assert!(matches(&escaped, "selection", json!({"resource": "/a*"})));
    assert!(!matches(&escaped, "selection", json!({"resource": "/ab"})));
}

#[test]
fn all_needs_every_value_and_lists_fields_match_any_element() {
    let all = sel("    token_scopes|contains|all: [admin, write]");
    assert!(matches(
        &all,
        "selection",
        json!({"token_scopes": "admin:write users:read"})
    ));
    assert!(!matches(
        &all,
        "selection",
        json!({"token_scopes": "admin:read"})
    ));
    let audience = sel("    token_audience: payments");
    assert!(matches(
        &audience,
        "selection",
        json!({"token_audience": ["orders", "payments"]})
    ));
    assert!(!matches(
        &audience,
        "selection",
        json!({"token_audience": ["orders"]})
    ));
}

#[test]
fn re_is_case_sensitive_unless_flagged() {
    let re = sel("    action|re: '^(POST|DELETE) /keys/[0-9]+$'");
    assert!(matches(
        &re,
        "selection",
        json!({"action": "DELETE /keys/42"})
    ));
    assert!(!matches(
        &re,
        "selection",
        json!({"action": "delete /keys/42"})
    ));
    let insensitive = sel("    action|re|i: '^delete '");
    assert!(matches(
        &insensitive,
        "selection",
        json!({"action": "DELETE /keys/42"})
    ));
}

#[test]
fn cidr_matches_v4_and_v6_ranges_and_text_attributes() {
    let cidr = sel("    source_ip|cidr: [10.0.0.0/8, '2001:db8::/32']");
    assert!(matches(
        &cidr,
        "selection",
        json!({"source_ip": "10.200.1.2"})
    ));
    assert!(matches(
        &cidr,
        "selection",
        json!({"source_ip": "2001:db8::7"})
    ));
    assert!(!matches(
        &cidr,
        "selection",
        json!({"source_ip": "11.0.0.1"})
    ));
    assert!(!matches(&cidr, "selection", json!({})));
    let outside = sel("    source_ip|exists: true\n  office:\n    source_ip|cidr: 192.0.2.0/24");
    assert!(matches(
        &outside,
        "selection and not office",
        json!({"source_ip": "198.51.100.1"})
    ));
    assert!(!matches(
        &outside,
        "selection and not office",
        json!({"source_ip": "192.0.2.99"})
    ));
    let attribute = sel("    attributes.client_ip|cidr: 10.0.0.0/8");
    assert!(matches(
        &attribute,
        "selection",
        json!({"attributes": {"client_ip": "10.1.1.1"}})
    ));
    assert!(!matches(
        &attribute,
        "selection",
        json!({"attributes": {"client_ip": "nope"}})
    ));
}

#[test]
fn exists_null_and_booleans() {
    let exists = sel("    token_id|exists: true");
    assert!(matches(&exists, "selection", json!({"token_id": "t1"})));
    assert!(!matches(&exists, "selection", json!({})));
    let missing = sel("    token_id|exists: false");
    assert!(matches(&missing, "selection", json!({})));
    let null = sel("    token_id: null");
    assert!(matches(&null, "selection", json!({})));
    assert!(!matches(&null, "selection", json!({"token_id": "t1"})));
    let mfa = sel("    mfa: false");
    assert!(matches(&mfa, "selection", json!({"mfa": false})));
    assert!(!matches(&mfa, "selection", json!({"mfa": true})));
    assert!(!matches(&mfa, "selection", json!({})));
}

#[test]
fn numeric_comparisons_on_attributes_and_times() {
    for (modifier, value, expected) in [
        ("gt", "5", true),
        ("gt", "6", false),
        ("gte", "6", true),
        ("gte", "7", false),
        ("lt", "7", true),
        ("lt", "6", false),
        ("lte", "6", true),
        ("lte", "5", false),
    ] {
        let s = sel(&format!("    attributes.risk|{modifier}: {value}"));
        assert_eq!(
            matches(&s, "selection", json!({"attributes": {"risk": "6"}})),
            expected,
            "{modifier} {value}"
        );
    }
    let s = sel("    attributes.risk|gt: 1");
    assert!(!matches(
        &s,
        "selection",
        json!({"attributes": {"risk": "high"}})
    ));
}

#[test]
fn list_of_maps_is_or_of_ands_and_conditions_combine_selections() {
    let s = "  selection:\n    - target_service: admin\n      outcome: allow\n    - resource|startswith: /admin";
    assert!(matches(s, "selection", json!({"target_service": "admin"})));
    assert!(!matches(
        s,
        "selection",
        json!({"target_service": "admin", "outcome": "deny"})
    ));
    assert!(matches(
        s,
        "selection",
        json!({"resource": "/admin/x", "outcome": "deny"})
    ));
    let many = "  sel_admin:\n    target_service: admin\n  sel_keys:\n    resource: /keys\n  filter_ci:\n    principal: svc:ci";
    let event = |principal: &str, target: &str| json!({"principal": principal, "target_service": target, "resource": "/keys"});
    assert!(matches(
        many,
        "1 of sel_* and not filter_ci",
        event("user:bob", "orders")
    ));
    assert!(!matches(
        many,
        "all of sel_* and not filter_ci",
        event("user:bob", "orders")
    ));
    assert!(matches(
        many,
        "all of sel_* and not filter_ci",
        event("user:bob", "admin")
    ));
    assert!(!matches(
        many,
        "all of sel_* and not filter_ci",
        event("svc:ci", "admin")
    ));
    assert!(matches(
        many,
        "(sel_admin or filter_ci) and sel_keys",
        event("svc:ci", "orders")
    ));
    assert!(matches(many, "all of them", event("svc:ci", "admin")));
    assert!(!matches(many, "1 of them", json!({})));
}

#[test]
fn alerts_carry_level_tags_evidence_and_a_stable_id() {
    let mut set = rules(&rule(&sel("    target_service: admin"), "selection"));
    let event = json!({"kind": "authz", "principal": "user:alice", "outcome": "allow", "target_service": "admin", "id": "ev-1"});
    let alerts = feed(&mut set, std::slice::from_ref(&event));
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.detector, "sigma:r1");
    assert_eq!(alert.severity, authtrail_model::Severity::High);
    assert_eq!(alert.attack_technique, "T1078.004");
    assert_eq!(alert.evidence_ids, ["ev-1"]);
    assert_eq!(alert.key, "user:alice");
    assert_eq!(
        alert.id,
        authtrail_model::alert_id("sigma:r1", "user:alice", &["ev-1".to_owned()])
    );
    // The same event again within the suppression period is a repeat.
    let again = json!({"kind": "authz", "principal": "user:alice", "outcome": "allow", "target_service": "admin", "id": "ev-2"});
    assert!(feed(&mut set, &[again]).is_empty());
    assert_eq!(set.stats().suppressed, 1);
}

#[test]
fn logsource_category_limits_the_kinds() {
    let mut set = rules(&rule(&sel("    principal: user:alice"), "selection"));
    let authn = json!({"kind": "authn", "principal": "user:alice", "outcome": "success"});
    assert!(feed(&mut set, &[authn]).is_empty());
}

#[test]
fn bad_rules_name_the_line_and_the_problem() {
    let (line, message) = problem(&rule(&sel("    principle: user:alice"), "selection"));
    assert_eq!(line, 11);
    assert!(message.contains("unknown field `principle`"), "{message}");
    let (line, message) = problem(&rule(&sel("    principal|base64: x"), "selection"));
    assert_eq!(line, 11);
    assert!(
        message.contains("unsupported modifier `base64`"),
        "{message}"
    );
    let (_, message) = problem(&rule(&sel("    principal|re: '(unclosed'"), "selection"));
    assert!(message.contains("bad regular expression"), "{message}");
    let (_, message) = problem(&rule(&sel("    source_ip|cidr: 10.0.0.0/33"), "selection"));
    assert!(message.contains("not a CIDR range"), "{message}");
    let (line, message) = problem(&rule(&sel("    principal: a"), "selection and other"));
    assert_eq!(line, 12);
    assert!(message.contains("`other`"), "{message}");
    let (_, message) = problem(&rule(&sel("    - alice\n    - bob"), "selection"));
    assert!(message.contains("keyword searches"), "{message}");
    let (line, message) = problem("title: t\nid: x\nlevle: high\nlogsource: {product: authtrail}\ndetection: {s: {principal: a}, condition: s}\n");
    assert_eq!((line, message.as_str()), (3, "unknown rule key `levle`"));
    let (_, message) = problem("title: t\nid: x\nlogsource: {product: azure}\ndetection: {s: {principal: a}, condition: s}\n");
    assert!(
        message.contains("must be `authtrail` or `okta`"),
        "{message}"
    );
    let (_, message) = problem("title: t\nid: x\nlogsource: {product: okta, category: authn}\ndetection: {s: {eventtype: a}, condition: s}\n");
    assert!(
        message.contains("`service: okta` and no `category`"),
        "{message}"
    );
    let (_, message) = problem("title: t\nid: x\nlogsource: {product: okta}\ndetection: {s: {'event type': a}, condition: s}\n");
    assert!(message.contains("unknown field `event type`"), "{message}");
    let (_, message) = problem("title: t\nid: x\nlogsource: {product: authtrail, category: login}\ndetection: {s: {principal: a}, condition: s}\n");
    assert!(message.contains("no event kind"), "{message}");
    let (_, message) = problem("title: \"a\\e[31mred\"\nid: x\nlogsource: {product: authtrail}\ndetection: {s: {principal: a}, condition: s}\n");
    assert!(message.contains("control characters"), "{message}");
    // A regex whose compiled form would be huge is refused, not built.
    let (_, message) = problem(&rule(
        &sel("    principal|re: '(\\w{100}){100}'"),
        "selection",
    ));
    assert!(message.contains("bad regular expression"), "{message}");
}

/// How many rules of `yaml` the index offers `event` (an authz event from alice).
fn candidates(yaml: &str, event: serde_json::Value) -> usize {
    let pack = super::pack(yaml).unwrap();
    let mut event = event;
    let fields = event.as_object_mut().unwrap();
    fields.entry("id").or_insert("e1".into());
    fields.entry("time").or_insert(super::T0.into());
    fields.entry("kind").or_insert("authz".into());
    fields.entry("principal").or_insert("user:alice".into());
    let text = event.to_string();
    let limits = authtrail_model::ContractLimits::default();
    let event = authtrail_model::parse_event(text.as_bytes(), i64::MAX / 2, &limits).unwrap();
    let mut found = Vec::new();
    pack.candidates(&event, &mut found);
    found.len()
}

#[test]
fn rules_pinning_an_outcome_are_only_tried_on_it_and_others_on_all() {
    let pinned = rule(
        &sel("    outcome: [deny, Failure]\n    resource: a"),
        "selection",
    );
    assert_eq!(candidates(&pinned, json!({"outcome": "deny"})), 1);
    assert_eq!(candidates(&pinned, json!({"outcome": "allow"})), 0);
    // `not` and `or` with an unpinned side constrain nothing.
    for condition in ["not selection", "selection or other"] {
        let yaml = rule(
            &format!("{}\n  other:\n    resource: b", sel("    outcome: deny")),
            condition,
        );
        assert_eq!(
            candidates(&yaml, json!({"outcome": "allow"})),
            1,
            "{condition}"
        );
    }
}

#[test]
fn rules_pinning_a_target_or_principal_type_are_only_tried_on_its_values() {
    let target = rule(
        &sel("    target_service: [Billing-Admin, iam]\n    outcome: deny"),
        "selection",
    );
    let on = |yaml: &str, target: &str| {
        candidates(yaml, json!({"outcome": "deny", "target_service": target}))
    };
    assert_eq!((on(&target, "billing-ADMIN"), on(&target, "iam")), (1, 1));
    assert_eq!((on(&target, "billing"), on(&target, "iam2")), (0, 0));
    assert_eq!(candidates(&target, json!({"outcome": "deny"})), 0);
    // Pinned on both sides of an `or`: still only those values.
    let either = rule(
        &format!(
            "{}\n  other:\n    target_service: vault",
            sel("    target_service: iam")
        ),
        "selection or other",
    );
    assert_eq!(
        (on(&either, "vault"), on(&either, "iam"), on(&either, "kms")),
        (1, 1, 0)
    );
    let person = rule(&sel("    principal_type: user"), "selection");
    assert_eq!(
        candidates(
            &person,
            json!({"outcome": "allow", "principal": "user:bob"})
        ),
        1
    );
    assert_eq!(
        candidates(&person, json!({"outcome": "allow", "principal": "svc:api"})),
        0
    );
    // A pinned rule and an unpinned one come out in the pack's order.
    let both = format!(
        "{}---\n{}",
        rule(&sel("    target_service: iam"), "selection")
            .replace("id: r1\nname: r1", "id: r0\nname: r0"),
        rule(&sel("    resource: a"), "selection")
    );
    assert_eq!(on(&both, "iam"), 2);
    assert_eq!(on(&both, "vault"), 1);
}

#[test]
fn rules_pinning_a_principal_prefix_are_only_tried_on_principals_with_it() {
    let prefixed = rule(
        &sel("    principal|startswith: ['svc:CI-', 'svc:deploy']\n    outcome: allow"),
        "selection",
    );
    let from = |principal: &str| {
        candidates(
            &prefixed,
            json!({"outcome": "allow", "principal": principal}),
        )
    };
    assert_eq!(
        (
            from("svc:ci-runner"),
            from("SVC:Deploy"),
            from("svc:deploy")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (from("svc:c"), from("svc:api"), from("user:svc:ci-x")),
        (0, 0, 0)
    );
    // An equality is a whole value, not a prefix; one rule found by both comes once.
    let both = rule(
        &sel("    principal: ['svc:ci', 'svc:ci-runner']\n  other:\n    principal|startswith: svc:ci"),
        "selection or other",
    );
    let on =
        |principal: &str| candidates(&both, json!({"outcome": "deny", "principal": principal}));
    assert_eq!((on("svc:ci"), on("svc:ci-runner"), on("svc:cj")), (1, 1, 0));
    assert_eq!(on("svc:ci-other"), 1);
}

#[test]
fn an_empty_document_is_no_rule() {
    let one = rule(&sel("    principal: a"), "selection");
    assert_eq!(
        super::pack(&format!("{one}---\n"))
            .unwrap()
            .detections
            .len(),
        1
    );
}

#[test]
fn two_rules_with_one_name_are_refused() {
    let one = rule(&sel("    principal: a"), "selection");
    let (_, message) = problem(&format!("{one}---\n{one}"));
    assert!(message.contains("also the name"), "{message}");
}

#[test]
fn tests_written_alike_in_several_rules_run_once_per_event_and_keep_their_results() {
    // Both rules test `outcome: allow` and the filter; the second also the same
    // selection as the first one's, with `|cased`, which is another test.
    let yaml = format!(
        "{}---\n{}",
        rule(
            "  selection:\n    outcome: allow\n    action|contains: grant\n  filter:\n    principal: svc:ops",
            "selection and not filter"
        ),
        rule(
            "  selection:\n    outcome: allow\n    action|contains|cased: Grant\n  filter:\n    principal: svc:ops",
            "selection and not filter"
        )
        .replace("id: r1\nname: r1", "id: r2\nname: r2")
    );
    let mut set = rules(&yaml);
    assert_eq!(set.pack().shared_tests, 2);
    let call = |principal: &str, action: &str| json!({"kind": "authz", "principal": principal, "outcome": "allow", "action": action});
    let detectors = |alerts: Vec<authtrail_model::Alert>| -> Vec<String> {
        alerts.into_iter().map(|alert| alert.detector).collect()
    };
    let alerts = feed(&mut set, &[call("user:a", "grant role")]);
    assert_eq!(detectors(alerts), ["sigma:r1"]);
    let alerts = feed(&mut set, &[call("user:b", "Grant role")]);
    assert_eq!(detectors(alerts), ["sigma:r1", "sigma:r2"]);
    assert!(feed(&mut set, &[call("svc:ops", "Grant role")]).is_empty());
    let alerts = feed(&mut set, &[call("user:c", "Grant role")]);
    assert_eq!(detectors(alerts), ["sigma:r1", "sigma:r2"]);
}
