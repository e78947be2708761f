//! Generated native records through the adapters that read them (`authtrail_model::
//! adapt`): each comes back as the contract event it was rendered from, in what the
//! detectors key on (id, time, kind, outcome, token id, address), and each principal maps
//! to one adapted principal, so per-principal detector state stays whole.

mod support;

use std::collections::BTreeMap;

use authtrail_gen::{Format, Generator};
use authtrail_model::adapt::{DecodeContext, Decoded, Format as Adapter};
use authtrail_model::{ContractLimits, RejectKind};
use serde_json::Value;

/// Keycloak types the built-in mapping (`model/formats/keycloak.toml`) leaves unmapped on
/// purpose: a `LOGOUT` ends one session, and a revoke without a token id would revoke all
/// of the user's tokens (`docs/adapters.md`).
const KEYCLOAK_UNMAPPED: &[&str] = &["LOGOUT"];

#[test]
fn native_records_adapt_back_to_their_contract_events() {
    let context = DecodeContext {
        now: i64::MAX / 2,
        limits: ContractLimits::default(),
        envelope_time: None,
    };
    for format in [Format::Keycloak, Format::K8sAudit] {
        let adapter = Adapter::builtin(format.name()).expect("a built-in adapter");
        let mut adapted = 0;
        // Contract principal to adapted principal, and back.
        let mut principals: BTreeMap<String, String> = BTreeMap::new();
        let mut contract_principals: BTreeMap<String, String> = BTreeMap::new();
        for generated in Generator::new(support::config()).unwrap() {
            let Some(line) = format.render(&generated) else {
                continue;
            };
            let contract: Value = serde_json::from_str(&generated.json).unwrap();
            let event = match adapter.decode(line.as_bytes(), &context) {
                Decoded::Event(event) => event,
                Decoded::Rejected(error) if error.kind == RejectKind::Unmapped => {
                    let native: Value = serde_json::from_str(&line).unwrap();
                    let native_type = native["type"].as_str().unwrap_or_default();
                    assert!(
                        format == Format::Keycloak && KEYCLOAK_UNMAPPED.contains(&native_type),
                        "{format}: {error}: {line}"
                    );
                    continue;
                }
                other => panic!("{format}: {other:?}: {line}"),
            };
            assert_eq!(event.id, contract["id"].as_str().unwrap(), "{line}");
            assert_eq!(event.time, generated.time, "{line}");
            assert_eq!(event.kind.as_str(), contract["kind"], "{line}");
            assert_eq!(
                event.outcome.map(|outcome| outcome.as_str()),
                contract["outcome"].as_str(),
                "{line}"
            );
            assert_eq!(
                event.token_id.as_deref(),
                contract["token_id"].as_str(),
                "{line}"
            );
            assert_eq!(
                event.source_ip.map(|ip| ip.to_string()).as_deref(),
                contract["source_ip"].as_str(),
                "{line}"
            );
            let principal = contract["principal"].as_str().unwrap().to_owned();
            let mapped = principals
                .entry(principal.clone())
                .or_insert_with(|| event.principal.to_string());
            assert_eq!(*mapped, event.principal, "{format}: {principal}");
            let back = contract_principals
                .entry(event.principal.to_string())
                .or_insert_with(|| principal.clone());
            assert_eq!(*back, principal, "{format}: two principals as {mapped}");
            adapted += 1;
        }
        assert!(adapted > 100, "{format}: {adapted} adapted");
    }
}
