//! Behaviour tests: rules compiled from YAML and run on events parsed by the contract.

mod correlations;
mod detections;

use std::path::PathBuf;
use std::sync::Arc;

use authtrail_model::{parse_event, Alert, ContractLimits};

use crate::{Error, Pack, RuleSet, Settings};

/// 2026-01-01T00:00:00Z in epoch milliseconds.
const T0: i64 = 1_767_225_600_000;

fn pack(yaml: &str) -> Result<Pack, Error> {
    Pack::from_sources(&[(PathBuf::from("test.yml"), yaml.to_owned())])
}

fn rules(yaml: &str) -> RuleSet {
    RuleSet::new(Arc::new(pack(yaml).unwrap()), Settings::default())
}

/// Feeds events given as JSON (without `id`: `e<n>`; without `time`: T0 + n s).
fn feed(set: &mut RuleSet, events: &[serde_json::Value]) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let mut event = event.clone();
        let fields = event.as_object_mut().unwrap();
        fields.entry("id").or_insert_with(|| format!("e{n}").into());
        fields
            .entry("time")
            .or_insert_with(|| (T0 + 1_000 * n as i64).into());
        let text = event.to_string();
        let parsed =
            parse_event(text.as_bytes(), i64::MAX / 2, &ContractLimits::default()).unwrap();
        set.observe(&parsed, &mut alerts);
    }
    alerts
}

/// The first problem's line and message of a pack that must not load.
fn problem(yaml: &str) -> (usize, String) {
    match pack(yaml) {
        Err(Error::Invalid(problems)) => (problems[0].line, problems[0].message.clone()),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the pack loaded"),
    }
}
