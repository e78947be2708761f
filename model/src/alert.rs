//! Alerts: what a detector raises when a pattern completes, and the lake's `alerts` table.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::event::Micros;
use crate::schema::timestamp_type;
use crate::time::format_micros;

/// How urgent an alert is; ordered from least to most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The name stored in the lake and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity name.
    pub fn parse(name: &str) -> Option<Severity> {
        match name {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Detectors whose alerts are about the service that decided, not about the caller they
/// name (`principal`, `token_id`): `validation_gap`, a service that allowed a token it
/// should have rejected. Revoking that caller's token or disabling that caller would
/// punish it for the service's broken validation.
pub const SERVICE_DETECTORS: &[&str] = &["validation_gap"];

/// One alert: a detector saw its pattern complete.
///
/// `id` is derived from the detector, the key and the evidence, so replaying the same
/// events raises alerts with the same ids (sinks use it as the idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: the same situation seen again after a replay gives the same id.
    pub id: String,
    /// The detector that raised it (`brute_force`, …).
    pub detector: String,
    pub severity: Severity,
    /// Event time of the event that completed the pattern.
    pub time: Micros,
    /// The principal the alert is about (for per-IP or per-token patterns, the principal
    /// of the completing event).
    pub principal: String,
    pub token_id: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub target_service: Option<String>,
    /// What the detector keyed its state and suppression on (`user:alice`,
    /// `svc:a -> payments`, a token id, an IP).
    pub key: String,
    /// One line for people.
    pub summary: String,
    /// Ids of the events that make up the pattern, oldest first.
    pub evidence_ids: Vec<String>,
    /// MITRE ATT&CK technique id (`T1110.001`).
    pub attack_technique: String,
    /// Alerts of the same detector and key suppressed since the previous one was raised.
    pub suppressed_count: u64,
}

impl Alert {
    /// Whether the alert is about a service's own conduct rather than its `principal`'s
    /// (see [`SERVICE_DETECTORS`]).
    pub fn is_about_a_service(&self) -> bool {
        SERVICE_DETECTORS.contains(&self.detector.as_str())
    }

    /// The alert as JSON: the one shape webhook bodies, the live feed and the API's alert
    /// rows share. Its keys are the `alerts` table's columns; `time` is RFC 3339 text
    /// ([`format_micros`]), which is how the API writes the table's timestamps, so an
    /// alert reads the same whether it comes from the lake or as it is raised.
    ///
    /// `Serialize` is not this shape: it writes `time` as integer microseconds and is the
    /// outbox log's record format, which must stay readable across versions.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "detector": self.detector,
            "severity": self.severity.as_str(),
            "time": format_micros(self.time),
            "principal": self.principal,
            "token_id": self.token_id,
            "source_ip": self.source_ip.map(|ip| ip.to_string()),
            "target_service": self.target_service,
            "key": self.key,
            "summary": self.summary,
            "evidence_ids": self.evidence_ids,
            "attack_technique": self.attack_technique,
            "suppressed_count": self.suppressed_count,
        })
    }
}

/// The alert id: a digest of the detector, the key and the evidence, so it depends on
/// nothing but the events (not on the hash seed, the process or the clock). The built-in
/// detectors and Sigma rules both use it, so a replay raises the same ids from either.
pub fn alert_id(detector: &str, key: &str, evidence_ids: &[String]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"authtrail-alert-v1\0");
    digest.update(detector.as_bytes());
    digest.update(b"\0");
    digest.update(key.as_bytes());
    for id in evidence_ids {
        digest.update(b"\0");
        digest.update(id.as_bytes());
    }
    hex::encode(&digest.finalize()[..16])
}

/// The `alerts` table: one row per raised alert.
pub fn alerts_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        Arc::new(Schema::new(vec![
            text("id", false),
            text("detector", false),
            text("severity", false),
            Field::new("time", timestamp_type(), false),
            text("principal", false),
            text("token_id", true),
            text("source_ip", true),
            text("target_service", true),
            text("key", false),
            text("summary", false),
            Field::new("evidence_ids", list, false),
            text("attack_technique", false),
            Field::new("suppressed_count", DataType::UInt64, false),
        ]))
    });
    SCHEMA.clone()
}

/// Accumulates alerts into one `alerts` record batch.
#[derive(Default)]
pub struct AlertBatchBuilder {
    rows: usize,
    id: StringBuilder,
    detector: StringBuilder,
    severity: StringBuilder,
    time: TimestampMicrosecondBuilder,
    principal: StringBuilder,
    token_id: StringBuilder,
    source_ip: StringBuilder,
    target_service: StringBuilder,
    key: StringBuilder,
    summary: StringBuilder,
    evidence_ids: ListBuilder<StringBuilder>,
    attack_technique: StringBuilder,
    suppressed_count: UInt64Builder,
}

impl AlertBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one alert.
    pub fn append(&mut self, alert: &Alert) {
        self.rows += 1;
        self.id.append_value(&alert.id);
        self.detector.append_value(&alert.detector);
        self.severity.append_value(alert.severity.as_str());
        self.time.append_value(alert.time);
        self.principal.append_value(&alert.principal);
        self.token_id.append_option(alert.token_id.as_deref());
        match alert.source_ip {
            Some(ip) => self.source_ip.append_value(ip.to_string()),
            None => self.source_ip.append_null(),
        }
        self.target_service
            .append_option(alert.target_service.as_deref());
        self.key.append_value(&alert.key);
        self.summary.append_value(&alert.summary);
        for id in &alert.evidence_ids {
            self.evidence_ids.values().append_value(id);
        }
        self.evidence_ids.append(true);
        self.attack_technique.append_value(&alert.attack_technique);
        self.suppressed_count.append_value(alert.suppressed_count);
    }

    /// The rows appended so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.detector.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.principal.finish()),
            Arc::new(self.token_id.finish()),
            Arc::new(self.source_ip.finish()),
            Arc::new(self.target_service.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.summary.finish()),
            Arc::new(self.evidence_ids.finish()),
            Arc::new(self.attack_technique.finish()),
            Arc::new(self.suppressed_count.finish()),
        ];
        RecordBatch::try_new(alerts_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            id: "a1".into(),
            detector: "brute_force".into(),
            severity: Severity::Critical,
            time: 1_795_456_800_000_000,
            principal: "user:alice".into(),
            token_id: None,
            source_ip: Some("203.0.113.7".parse().unwrap()),
            target_service: None,
            key: "user:alice".into(),
            summary: "10 failures then a success".into(),
            evidence_ids: vec!["e-1".into(), "e-2".into()],
            attack_technique: "T1110.001".into(),
            suppressed_count: 2,
        }
    }

    #[test]
    fn builds_a_batch_of_the_alerts_schema() {
        let mut builder = AlertBatchBuilder::new();
        builder.append(&alert());
        builder.append(&Alert {
            source_ip: None,
            ..alert()
        });
        assert_eq!(builder.len(), 2);
        let batch = builder.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), alerts_schema());
        assert!(builder.is_empty());
    }

    #[test]
    fn json_has_the_alerts_columns_and_rfc3339_time() {
        let value = alert().to_json();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let schema = alerts_schema();
        let mut columns: Vec<&str> = schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        columns.sort_unstable();
        assert_eq!(keys, columns);
        assert_eq!(value["time"], "2026-11-23T18:00:00Z");
        assert_eq!(value["source_ip"], "203.0.113.7");
        assert_eq!(value["severity"], "critical");
        assert_eq!(value["token_id"], Value::Null);
        assert_eq!(value["evidence_ids"], json!(["e-1", "e-2"]));
        assert_eq!(value["suppressed_count"], 2);
    }

    #[test]
    fn alert_ids_depend_on_detector_key_and_evidence_only() {
        let evidence = ["e-1".to_owned(), "e-2".to_owned()];
        // Pinned: ids are idempotency keys in sinks and must not change between releases.
        assert_eq!(
            alert_id("brute_force", "user:alice", &evidence),
            "d6f195465418773c4e7c5192f53de7a3"
        );
        assert_ne!(
            alert_id("brute_force", "user:alice", &evidence),
            alert_id("brute_force", "user:alice", &evidence[..1])
        );
        assert_ne!(alert_id("a", "bc", &[]), alert_id("ab", "c", &[]));
    }

    #[test]
    fn severities_order_by_urgency_and_round_trip_their_names() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Medium > Severity::Low);
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
    }
}
