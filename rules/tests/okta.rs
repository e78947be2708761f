//! An Okta rule in SigmaHQ's form (`logsource: {product: okta, service: okta}`, the
//! System Log's field names in lowercase) on real Okta records read by the `okta`
//! adapter (`../shared/samples/real/okta.jsonl`): it fires on the record of its event
//! type and on nothing else, and a field named as Sigma writes it (`displaymessage`)
//! reaches the native one (`displayMessage`).

use std::path::PathBuf;
use std::sync::Arc;

use authtrail_model::adapt::{DecodeContext, Decoded, Format};
use authtrail_model::{Alert, ContractLimits};
use authtrail_rules::{run_tests, Pack, RuleSet, Settings};

fn okta_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("okta")
}

/// The real Okta records, one per line.
fn records() -> Vec<String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/samples/real/okta.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("the real samples are read from {}: {error}", path.display())
    });
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs `pack` over every record the okta adapter turns into an event; returns the
/// alerts and how many events there were.
fn run(pack: Pack) -> (Vec<Alert>, usize) {
    let okta = Format::builtin("okta").unwrap();
    let context = DecodeContext {
        now: i64::MAX / 4,
        limits: ContractLimits::default(),
        envelope_time: None,
    };
    let mut set = RuleSet::new(Arc::new(pack), Settings::default());
    let (mut alerts, mut events) = (Vec::new(), 0);
    for record in records() {
        if let Decoded::Event(event) = okta.decode(record.as_bytes(), &context) {
            events += 1;
            set.observe(&event, &mut alerts);
        }
    }
    (alerts, events)
}

#[test]
fn an_okta_rule_in_sigmahq_form_fires_on_its_real_record_only() {
    let pack = Pack::load(&[okta_rules()]).unwrap_or_else(|error| panic!("{error}"));
    let (alerts, events) = run(pack);
    // Sign-ins, SSO, API tokens: the records the adapter maps and the contract accepts
    // (the rest are unmapped types or fail its checks). The rule is silent on all but one.
    assert!(events >= 10, "{events} events");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.detector, "sigma:okta_api_token_created");
    assert_eq!(alert.evidence_ids, ["2a992f80-d1ad-4f62-900e-8c68bb72a21b"]);
    assert_eq!(alert.principal, "user:user@example.com");
    assert_eq!(alert.token_id.as_deref(), Some("00Tpki36zlWjhjQ1u2p4"));

    let results = run_tests(&[okta_rules()]).unwrap();
    assert!(results.iter().all(|result| result.passed), "{results:#?}");
}

#[test]
fn sigma_field_names_reach_native_okta_fields_ignoring_case() {
    let rule = |name: &str, selection: &str| {
        format!("title: {name}\nid: {name}\nname: {name}\nlogsource: {{product: okta, service: okta}}\ndetection:\n  selection:\n{selection}\n  condition: selection\n---\n")
    };
    let yaml = [
        // Native fields kept as attributes, named as SigmaHQ writes them.
        rule(
            "message",
            "    displaymessage: 'revoke api token'\n    legacyeventtype: api.token.revoke",
        ),
        // Moved into columns by the adapter: `client.ipAddress` is `source_ip`.
        rule(
            "sign_in_from",
            "    eventtype: user.session.start\n    client.ipaddress|cidr: 0.0.0.0/0",
        ),
        // Matches no record: silent.
        rule("locked", "    eventtype: user.account.lock"),
    ]
    .concat();
    let pack = Pack::from_sources(&[(PathBuf::from("okta.yml"), yaml)]).unwrap();
    let (alerts, _) = run(pack);
    let count = |detector: &str| alerts.iter().filter(|a| a.detector == detector).count();
    assert_eq!(count("sigma:message"), 1, "{alerts:#?}");
    assert!(count("sigma:sign_in_from") >= 1, "{alerts:#?}");
    // `user.account.lock` records are not mapped to events by the adapter.
    assert_eq!(count("sigma:locked"), 0);
    // A contract event is no Okta record, whatever its fields.
    let pack = Pack::from_sources(&[(
        PathBuf::from("okta.yml"),
        rule("any", "    eventtype|exists: false"),
    )])
    .unwrap();
    let mut set = RuleSet::new(Arc::new(pack), Settings::default());
    let event = authtrail_model::parse_event(
        br#"{"id":"e1","time":1767225600000,"kind":"authn","principal":"user:a","outcome":"success"}"#,
        i64::MAX / 2,
        &ContractLimits::default(),
    )
    .unwrap();
    let mut alerts = Vec::new();
    set.observe(&event, &mut alerts);
    assert!(alerts.is_empty());
}
