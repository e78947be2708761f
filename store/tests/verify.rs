//! `verify` against real lakes: intact ones pass; each kind of tampering is one finding.

use std::fs;
use std::path::Path;

use arrow_array::RecordBatch;
use authtrail_model::{parse_event, ContractError, ContractLimits, IngestMeta, RejectKind};
use authtrail_store::{
    verify, EncodeOptions, Finding, Lake, LostRange, ManifestKey, SegmentBuilder, VerifyOptions,
};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_795_458_600_000_000;
const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const OTHER_KEY: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

fn segment(offsets: std::ops::Range<i64>) -> authtrail_store::Segment {
    let mut builder = SegmentBuilder::new("auth-events", 0, 1024);
    let meta = |offset| IngestMeta {
        topic: "auth-events",
        partition: 0,
        offset,
        ingest_time: NOW,
    };
    for offset in offsets.clone() {
        let message = format!(
            r#"{{"id":"e-{offset}","time":"2026-11-23T{:02}:00:00Z","kind":"authn","principal":"user:a","outcome":"success"}}"#,
            17 + offset % 2
        );
        let event = parse_event(message.as_bytes(), NOW, &ContractLimits::default()).unwrap();
        builder.push_event(&event, &meta(offset));
    }
    let error = ContractError::new(RejectKind::InvalidJson, "expected value");
    builder.push_reject(b"{oops", 5, &error, &meta(offsets.end), NOW);
    builder.finish().unwrap().unwrap()
}

fn alerts_batch() -> Vec<(i64, RecordBatch)> {
    let schema = authtrail_model::alerts_schema();
    let batch = RecordBatch::new_empty(schema);
    vec![(NOW / authtrail_model::time::MICROS_PER_HOUR, batch)]
}

/// A lake with two flushes of events and rejects and one alerts file.
fn lake(dir: &Path, key: Option<&str>) -> Lake {
    let key = key.map(|key| ManifestKey::from_hex(key).unwrap());
    let mut lake = Lake::open(dir, EncodeOptions::default())
        .unwrap()
        .with_manifest_key(key);
    let mut log = lake.open_partition("auth-events", 0).unwrap();
    lake.commit(&mut log, segment(0..4)).unwrap();
    lake.commit(&mut log, segment(5..9)).unwrap();
    lake.write_alerts(1, &alerts_batch()).unwrap();
    lake
}

fn findings(dir: &Path, options: &VerifyOptions) -> Vec<Finding> {
    verify(dir, options).unwrap().findings
}

fn signed_by(key: &str) -> VerifyOptions {
    VerifyOptions {
        public_key: Some(ManifestKey::from_hex(key).unwrap().public()),
        allow_unsigned: false,
    }
}

const EVENTS_FILE: &str = "events/date=2026-11-23/hour=17/auth-events-0-0-4.parquet";
const MANIFEST: &str = "_manifest/auth-events-0.jsonl";

#[test]
fn intact_signed_lake_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), Some(KEY));
    let report = verify(dir.path(), &signed_by(KEY)).unwrap();
    assert_eq!(report.findings, []);
    // Two flushes of events (2 hours) and rejects, plus one alerts file.
    assert_eq!(report.files, 7);
    assert_eq!(report.logs, 2);
    assert_eq!(report.records, 6);
}

#[test]
fn modified_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    let path = dir.path().join(EVENTS_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let found = findings(dir.path(), &VerifyOptions::default());
    assert!(
        matches!(&found[..], [Finding::Modified { path, .. }] if path == EVENTS_FILE),
        "{found:?}"
    );
}

#[test]
fn missing_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    fs::remove_file(dir.path().join(EVENTS_FILE)).unwrap();
    assert_eq!(
        findings(dir.path(), &VerifyOptions::default()),
        [Finding::Missing {
            path: EVENTS_FILE.to_owned()
        }]
    );
}

#[test]
fn unexpected_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    let planted = "events/date=2026-11-23/hour=17/auth-events-0-100-200.parquet";
    fs::copy(dir.path().join(EVENTS_FILE), dir.path().join(planted)).unwrap();
    assert_eq!(
        findings(dir.path(), &VerifyOptions::default()),
        [Finding::Unexpected {
            path: planted.to_owned()
        }]
    );
}

#[test]
fn edited_record_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    let path = dir.path().join(MANIFEST);
    // Hide a file by pointing its record at another digest: the next record no longer
    // links to the edited one.
    let text = fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"rows\":2", "\"rows\":3", 1);
    assert_ne!(text, edited);
    fs::write(&path, edited).unwrap();
    let found = findings(dir.path(), &VerifyOptions::default());
    assert!(
        matches!(&found[..], [Finding::ChainBroken { line: 3, .. }]),
        "{found:?}"
    );
}

#[test]
fn dropped_record_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    let path = dir.path().join(MANIFEST);
    let text = fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains("\"seq\":1,"))
        .collect();
    fs::write(&path, kept.join("\n") + "\n").unwrap();
    let found = findings(dir.path(), &VerifyOptions::default());
    assert!(
        found
            .iter()
            .any(|finding| matches!(finding, Finding::ChainBroken { line: 2, .. })),
        "{found:?}"
    );
}

#[test]
fn rewritten_chain_fails_the_signature_check() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), Some(KEY));
    // An attacker who changes a file and rewrites the log with a consistent chain, but
    // without the private key.
    let target = dir.path().join(EVENTS_FILE);
    fs::write(&target, b"forged").unwrap();
    let forged_digest = hex::encode(Sha256::digest(b"forged"));
    let path = dir.path().join(MANIFEST);
    let mut prev = String::new();
    let mut lines = Vec::new();
    for line in fs::read_to_string(&path).unwrap().lines() {
        let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(files) = record["files"].as_array_mut() {
            for file in files {
                if file["path"] == EVENTS_FILE && file.get("sha256").is_some() {
                    file["sha256"] = forged_digest.clone().into();
                }
            }
        }
        record["prev"] = prev.clone().into();
        let line = serde_json::to_string(&record).unwrap();
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        lines.push(line);
    }
    fs::write(&path, lines.join("\n") + "\n").unwrap();

    assert_eq!(
        findings(dir.path(), &VerifyOptions::default()),
        [],
        "without a key the rewrite is consistent"
    );
    // The edited record fails, and so does every later one: its `prev` changed too.
    let lines: Vec<usize> = findings(dir.path(), &signed_by(KEY))
        .iter()
        .map(|finding| match finding {
            Finding::BadSignature { line, .. } => *line,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lines, [2, 3, 4]);
    let found = findings(dir.path(), &signed_by(OTHER_KEY));
    assert_eq!(found.len(), 6, "every record fails another key: {found:?}");
}

#[test]
fn unsigned_records_are_findings_when_a_key_is_given() {
    let dir = tempfile::tempdir().unwrap();
    lake(dir.path(), None);
    let found = findings(dir.path(), &signed_by(KEY));
    assert_eq!(found.len(), 6, "{found:?}");
    assert!(found
        .iter()
        .all(|finding| matches!(finding, Finding::Unsigned { .. })));
    let lenient = VerifyOptions {
        allow_unsigned: true,
        ..signed_by(KEY)
    };
    assert_eq!(findings(dir.path(), &lenient), []);
}

#[test]
fn rewritten_alerts_checkpoint_supersedes_the_old_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake(dir.path(), None);
    // A crash after the alerts file but before the detector checkpoint: the restarted
    // pipeline writes checkpoint 1's alerts again, from a fresh lake handle.
    drop(lake.write_alerts(2, &alerts_batch()).unwrap());
    let mut restarted = lake.handle();
    restarted.write_alerts(1, &alerts_batch()).unwrap();
    assert_eq!(findings(dir.path(), &VerifyOptions::default()), []);
}

#[test]
fn offsets_lost_before_authtrail_read_them_are_a_finding_naming_topic_partition_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = lake(dir.path(), Some(KEY));
    let mut log = lake.open_partition("auth-events", 0).unwrap();
    let mut later = segment(20..22);
    later.lost.push(LostRange {
        first_offset: 10,
        last_offset: 19,
    });
    lake.commit(&mut log, later).unwrap();

    let report = verify(dir.path(), &signed_by(KEY)).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("cannot be recovered")),
        "{:?}",
        report.notes
    );
    let found = report.findings;
    assert_eq!(
        found,
        [Finding::Lost {
            log: "auth-events-0.jsonl".into(),
            line: 6,
            source: "auth-events".into(),
            partition: 0,
            first_offset: 10,
            last_offset: 19,
        }]
    );
    let text = found[0].to_string();
    assert!(
        text.starts_with("lost: `auth-events` partition 0 offsets 10 to 19 (10 messages)"),
        "{text}"
    );
}
