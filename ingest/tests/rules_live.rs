//! Sigma rules (`[detect] rules`) in the live pipeline: their alerts counted with the
//! built-ins', their correlation state carried across a restart by the checkpoint.

use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use authtrail_detect::DetectConfig;
use authtrail_ingest::{Detection, IngestStats, Input, Pipeline, PipelineConfig, RawMessage};
use authtrail_store::{EncodeOptions, Lake};

const RULES: &str = "title: denied admin call
id: r-denied
name: admin_denied
logsource: {product: authtrail, category: authz}
detection:
  selection: {target_service: admin, outcome: deny}
  condition: selection
---
title: three denied admin calls
id: r-burst
name: admin_denied_burst
level: high
correlation:
  type: event_count
  rules: [admin_denied]
  group-by: [principal]
  timespan: 10m
  condition: {gte: 3}
";

/// A denied admin call by `user:mallory` at 18:`minute`.
fn denial(offset: i64) -> RawMessage {
    let text = format!(
        r#"{{"id":"d-{offset}","time":"2026-11-23T18:{offset:02}:00Z","kind":"authz","principal":"user:mallory","target_service":"admin","outcome":"deny"}}"#
    );
    RawMessage {
        source: Arc::from("auth-events"),
        partition: 0,
        offset,
        timestamp: None,
        size: text.len(),
        payload: Some(text.into_bytes()),
    }
}

fn run(lake: &Path, rules: &Path, offsets: std::ops::Range<i64>) -> Arc<IngestStats> {
    let stats = Arc::new(IngestStats::default());
    let store = Lake::open(lake, EncodeOptions::default()).unwrap();
    let config = DetectConfig {
        rules: vec![rules.to_owned()],
        ..DetectConfig::default()
    };
    let detection = Detection::open(&store, &config, stats.clone()).unwrap();
    let pipeline = Pipeline::new(
        store,
        PipelineConfig::default(),
        stats.clone(),
        Box::new(|_| {}),
        Some(detection),
    );
    let (sender, receiver) = sync_channel(1);
    sender
        .send(Input::Messages(offsets.map(denial).collect()))
        .unwrap();
    drop(sender);
    pipeline.run(receiver).unwrap();
    stats
}

#[test]
fn a_correlation_straddling_a_restart_fires_once() {
    let lake = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("burst.yml"), RULES).unwrap();

    let first = run(lake.path(), rules.path(), 0..2);
    assert_eq!(first.snapshot().alerts, 0, "two denials are one short");
    let tables = first.detect_stats().unwrap().tables;
    let state = tables
        .iter()
        .find(|table| table.name == "sigma_rules")
        .unwrap();
    assert_eq!(state.state.live_keys, 1, "one group in the rules' state");

    // Re-delivered from the start: 0 and 1 are in the lake and in the checkpointed
    // state, so only the correlation state restored from the checkpoint can count them.
    let second = run(lake.path(), rules.path(), 0..4);
    assert_eq!(second.snapshot().already_in_lake, 2);
    assert_eq!(second.snapshot().alerts, 1, "the third denial completes it");

    let third = run(lake.path(), rules.path(), 0..4);
    assert_eq!(
        third.snapshot().alerts,
        0,
        "a clean restart raises nothing twice"
    );
}

#[test]
fn a_broken_rule_set_stops_the_stage_with_file_and_line() {
    let lake = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("bad.yml"),
        RULES.replace("target_service", "target"),
    )
    .unwrap();
    let store = Lake::open(lake.path(), EncodeOptions::default()).unwrap();
    let config = DetectConfig {
        rules: vec![rules.path().to_owned()],
        ..DetectConfig::default()
    };
    let error = Detection::open(&store, &config, Arc::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("bad.yml:6: unknown field `target`"),
        "{error}"
    );
}
