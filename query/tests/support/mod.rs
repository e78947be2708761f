//! A small fixture lake written through the real store (`SegmentBuilder`, `Lake::commit`,
//! `Lake::write_alerts`), with answers small enough to compute by hand.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use authtrail_model::{
    parse_event, Alert, AlertBatchBuilder, ContractLimits, IngestMeta, Severity,
};
use authtrail_query::{QueryConfig, QueryEngine};
use authtrail_store::{EncodeOptions, Lake, SegmentBuilder};

/// Ingest clock: 2026-12-01T00:00:00Z, after every fixture event.
/// The ingest clock of every fixture event.
pub const NOW: i64 = 1_796_083_200_000_000;

/// The fixture's events, in ingest order. Hours: 2026-11-23 08, 09, 10 and 2026-11-24 00.
pub const EVENTS: [&str; 10] = [
    r#"{"id":"e-1","time":"2026-11-23T08:05:00Z","kind":"authn","principal":"user:alice","service":"idp","outcome":"failure","reason":"bad_password","auth_method":"password","source_ip":"203.0.113.7"}"#,
    r#"{"id":"e-2","time":"2026-11-23T08:06:00Z","kind":"authn","principal":"user:alice","service":"idp","outcome":"success","auth_method":"password","source_ip":"203.0.113.7","mfa":true,"attributes":{"geo":"DE"}}"#,
    r#"{"id":"e-3","time":"2026-11-23T08:10:00Z","kind":"token_issue","principal":"svc:checkout","service":"idp","outcome":"success","token_id":"jti-1","client_id":"checkout","token_audience":["payments","orders"],"token_scopes":"payments:charge orders:read","token_expires":"2026-11-23T20:10:00Z"}"#,
    r#"{"id":"e-4","time":"2026-11-23T09:00:00Z","kind":"authz","principal":"svc:checkout","service":"payments","target_service":"payments","outcome":"allow","token_id":"jti-1","source_ip":"10.4.0.12"}"#,
    r#"{"id":"e-5","time":"2026-11-23T09:30:00Z","kind":"authz","principal":"svc:checkout","service":"orders","target_service":"orders","outcome":"deny","token_id":"jti-1","source_ip":"10.4.0.12"}"#,
    r#"{"id":"e-6","time":"2026-11-23T09:45:00Z","kind":"authz","principal":"svc:checkout","service":"payments","target_service":"payments","outcome":"allow","token_id":"jti-1","source_ip":"10.4.1.9"}"#,
    r#"{"id":"e-7","time":"2026-11-23T10:15:00Z","kind":"token_revoke","principal":"svc:checkout","service":"idp","token_id":"jti-1","reason":"rotated"}"#,
    r#"{"id":"e-8","time":"2026-11-23T10:20:00Z","kind":"authz","principal":"user:o'brien","service":"payments","target_service":"payments","outcome":"deny","source_ip":"2001:db8::5"}"#,
    r#"{"id":"e-9","time":"2026-11-24T00:10:00Z","kind":"authz","principal":"svc:checkout","service":"ledger","target_service":"ledger","outcome":"allow","token_id":"jti-2","source_ip":"10.9.0.1"}"#,
    r#"{"id":"e-10","time":"2026-11-23T10:30:00Z","kind":"authn","principal":"user:bob","service":"idp","outcome":"failure"}"#,
];

/// A message that breaks the contract, so `rejects` has a row.
pub const REJECT: &str = r#"{"id":"r-1","kind":"authn"}"#;

fn micros(text: &str) -> i64 {
    authtrail_model::time::parse_rfc3339(text).unwrap()
}

pub fn alerts() -> Vec<Alert> {
    vec![
        Alert {
            id: "a-1".into(),
            detector: "denied_burst".into(),
            severity: Severity::High,
            time: micros("2026-11-23T09:31:00Z"),
            principal: "svc:checkout".into(),
            token_id: Some("jti-1".into()),
            source_ip: Some("10.4.0.12".parse::<IpAddr>().unwrap()),
            target_service: Some("orders".into()),
            key: "svc:checkout".into(),
            summary: "denied after allowed".into(),
            evidence_ids: vec!["e-4".into(), "e-5".into()],
            attack_technique: "T1078".into(),
            suppressed_count: 0,
        },
        Alert {
            id: "a-2".into(),
            detector: "brute_force".into(),
            severity: Severity::Low,
            time: micros("2026-11-23T10:21:00Z"),
            principal: "user:o'brien".into(),
            token_id: None,
            source_ip: None,
            target_service: None,
            key: "user:o'brien".into(),
            summary: "denied".into(),
            evidence_ids: vec!["e-8".into()],
            attack_technique: "T1110.001".into(),
            suppressed_count: 2,
        },
    ]
}

/// Writes the fixture lake under `root`: events in two commits (so hour 09 has two
/// files), one reject, and the alerts. No `_checkpoint` is readable, but one exists.
pub fn write_fixture(root: &Path) {
    let mut lake = Lake::open(root, EncodeOptions::default()).unwrap();
    let mut log = lake.open_partition("auth-events", 0).unwrap();
    let limits = ContractLimits::default();
    let mut offset = 0i64;
    for (commit, chunk) in [&EVENTS[..5], &EVENTS[5..]].into_iter().enumerate() {
        let mut segment = SegmentBuilder::new("auth-events", 0, 1024);
        for line in chunk {
            let event = parse_event(line.as_bytes(), NOW, &limits).unwrap();
            segment.push_event(&event, &meta(offset));
            offset += 1;
        }
        if commit == 0 {
            let error = parse_event(REJECT.as_bytes(), NOW, &limits).unwrap_err();
            segment.push_reject(REJECT.as_bytes(), REJECT.len(), &error, &meta(offset), NOW);
            offset += 1;
        }
        let segment = segment.finish().unwrap().unwrap();
        lake.commit(&mut log, segment).unwrap();
    }
    let mut by_hour = std::collections::BTreeMap::<i64, AlertBatchBuilder>::new();
    for alert in alerts() {
        by_hour
            .entry(authtrail_model::time::hour_of(alert.time))
            .or_default()
            .append(&alert);
    }
    let batches: Vec<_> = by_hour
        .into_iter()
        .map(|(hour, mut builder)| (hour, builder.finish().unwrap()))
        .collect();
    lake.write_alerts(1, &batches).unwrap();
    lake.save_checkpoint("detect", b"not a parquet file")
        .unwrap();
}

/// Writes `lines` (contract events) under `root` as one partition's log, `per_commit`
/// events to a commit, so the lake has several files.
pub fn write_events(root: &Path, lines: &[String], per_commit: usize) {
    let mut lake = Lake::open(root, EncodeOptions::default()).unwrap();
    let mut log = lake.open_partition("auth-events", 0).unwrap();
    let limits = ContractLimits::default();
    for (commit, chunk) in lines.chunks(per_commit).enumerate() {
        let mut segment = SegmentBuilder::new("auth-events", 0, per_commit);
        for (at, line) in chunk.iter().enumerate() {
            let event = parse_event(line.as_bytes(), NOW, &limits).unwrap();
            segment.push_event(&event, &meta((commit * per_commit + at) as i64));
        }
        let segment = segment.finish().unwrap().unwrap();
        lake.commit(&mut log, segment).unwrap();
    }
}

/// Where a fixture event at `offset` was read: `auth-events` partition 0, at [`NOW`].
pub fn meta(offset: i64) -> IngestMeta<'static> {
    IngestMeta {
        topic: "auth-events",
        partition: 0,
        offset,
        ingest_time: NOW,
    }
}

/// A temporary fixture lake and an engine over it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Arc<QueryEngine>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_config(QueryConfig {
            threads: 2,
            ..QueryConfig::default()
        })
    }

    pub fn with_config(config: QueryConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let engine = Arc::new(QueryEngine::open(dir.path(), config).unwrap());
        Fixture { dir, engine }
    }
}

/// Runs `sql` and renders the result as JSON lines, for exact comparisons.
pub async fn rows(engine: &QueryEngine, sql: &str) -> Vec<serde_json::Value> {
    let output = engine
        .query(sql, None)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    let mut bytes = Vec::new();
    let mut writer = authtrail_query::output::BatchWriter::new(
        authtrail_query::output::Format::Jsonl,
        output.schema.clone(),
        &mut bytes,
    )
    .unwrap();
    for batch in &output.batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
