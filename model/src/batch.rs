//! Builders that turn accepted events and rejected messages into Arrow record batches of
//! the lake's schemas.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder,
    MapBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

use crate::error::ContractError;
use crate::event::{Event, Micros, Text};
use crate::parse::{redact_credentials_in, redact_credentials_in_text};
use crate::schema::{events_schema, rejects_schema};

/// Where a message was read: the source's topic (or file), partition and offset, and the
/// ingest clock when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestMeta<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub ingest_time: Micros,
}

#[derive(Default)]
struct IngestColumns {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    time: TimestampMicrosecondBuilder,
}

impl IngestColumns {
    fn append(&mut self, meta: &IngestMeta<'_>) {
        self.topic.append_value(meta.topic);
        self.partition.append_value(meta.partition);
        self.offset.append_value(meta.offset);
        self.time.append_value(meta.ingest_time);
    }

    fn finish(&mut self) -> [ArrayRef; 4] {
        let rows = self.partition.len();
        let columns: [ArrayRef; 4] = [
            finish_text(&mut self.topic),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            finish_times(&mut self.time),
        ];
        self.partition = Int32Builder::with_capacity(rows);
        self.offset = Int64Builder::with_capacity(rows);
        columns
    }
}

// The finish helpers leave each builder sized like the batch it just produced: the next
// batch of a stream is usually as large, and growing a buffer by doubling copies it again
// and again. Capacity is only reserved; untouched pages cost no memory.

fn finish_text(builder: &mut StringBuilder) -> ArrayRef {
    let (rows, bytes) = (builder.len(), builder.values_slice().len());
    let array = builder.finish();
    *builder = StringBuilder::with_capacity(rows, bytes);
    Arc::new(array)
}

fn finish_times(builder: &mut TimestampMicrosecondBuilder) -> ArrayRef {
    let rows = builder.len();
    let array = builder.finish().with_timezone("UTC");
    *builder = TimestampMicrosecondBuilder::with_capacity(rows);
    Arc::new(array)
}

fn finish_list(builder: &mut ListBuilder<StringBuilder>) -> ArrayRef {
    let rows = builder.len();
    let (items, bytes) = (
        builder.values().len(),
        builder.values().values_slice().len(),
    );
    let array = builder.finish();
    *builder = ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), rows);
    Arc::new(array)
}

/// Appends an address in its standard text form; IPv4, the common case, without the
/// formatting machinery.
fn append_ip(builder: &mut StringBuilder, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            builder.append_value(std::str::from_utf8(&text[..len]).expect("digits and dots"));
        }
        IpAddr::V6(ip) => {
            // The builder's `Write` extends the pending value; `append_value("")` ends it.
            write!(builder, "{ip}").expect("writing to a builder cannot fail");
            builder.append_value("");
        }
    }
}

/// Accumulates events into one `events` record batch.
#[derive(Default)]
pub struct EventBatchBuilder {
    rows: usize,
    id: StringBuilder,
    time: TimestampMicrosecondBuilder,
    kind: StringBuilder,
    principal: StringBuilder,
    principal_type: StringBuilder,
    service: StringBuilder,
    outcome: StringBuilder,
    reason: StringBuilder,
    source_ip: StringBuilder,
    source_service: StringBuilder,
    target_service: StringBuilder,
    resource: StringBuilder,
    action: StringBuilder,
    token_id: StringBuilder,
    token_issuer: StringBuilder,
    token_audience: ListBuilder<StringBuilder>,
    token_scopes: ListBuilder<StringBuilder>,
    required_scopes: ListBuilder<StringBuilder>,
    token_expires: TimestampMicrosecondBuilder,
    client_id: StringBuilder,
    auth_method: StringBuilder,
    mfa: BooleanBuilder,
    user_agent: StringBuilder,
    session_id: StringBuilder,
    trace_id: StringBuilder,
    attributes: MapBuilderOfText,
    ingest: IngestColumns,
}

struct MapBuilderOfText(MapBuilder<StringBuilder, StringBuilder>);

impl Default for MapBuilderOfText {
    fn default() -> Self {
        MapBuilderOfText(MapBuilder::new(
            None,
            StringBuilder::new(),
            StringBuilder::new(),
        ))
    }
}

fn append_list(builder: &mut ListBuilder<StringBuilder>, items: Option<&[Text<'_>]>) {
    match items {
        None => builder.append_null(),
        Some(items) => {
            for item in items {
                builder.values().append_value(item);
            }
            builder.append(true);
        }
    }
}

impl EventBatchBuilder {
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

    /// Appends one event read at `meta`.
    pub fn append(&mut self, event: &Event<'_>, meta: &IngestMeta<'_>) {
        self.rows += 1;
        self.id.append_value(&event.id);
        self.time.append_value(event.time);
        self.kind.append_value(event.kind.as_str());
        self.principal.append_value(&event.principal);
        self.principal_type
            .append_value(event.principal_type.as_str());
        self.service.append_option(event.service.as_deref());
        self.outcome
            .append_option(event.outcome.map(|outcome| outcome.as_str()));
        self.reason.append_option(event.reason.as_deref());
        match event.source_ip {
            Some(ip) => append_ip(&mut self.source_ip, ip),
            None => self.source_ip.append_null(),
        }
        self.source_service
            .append_option(event.source_service.as_deref());
        self.target_service
            .append_option(event.target_service.as_deref());
        self.resource.append_option(event.resource.as_deref());
        self.action.append_option(event.action.as_deref());
        self.token_id.append_option(event.token_id.as_deref());
        self.token_issuer
            .append_option(event.token_issuer.as_deref());
        append_list(&mut self.token_audience, event.token_audience.as_deref());
        append_list(&mut self.token_scopes, event.token_scopes.as_deref());
        append_list(&mut self.required_scopes, event.required_scopes.as_deref());
        self.token_expires.append_option(event.token_expires);
        self.client_id.append_option(event.client_id.as_deref());
        self.auth_method.append_option(event.auth_method.as_deref());
        self.mfa.append_option(event.mfa);
        self.user_agent.append_option(event.user_agent.as_deref());
        self.session_id.append_option(event.session_id.as_deref());
        self.trace_id.append_option(event.trace_id.as_deref());
        let attributes = &mut self.attributes.0;
        for (key, value) in &event.attributes {
            attributes.keys().append_value(key);
            attributes.values().append_value(value);
        }
        attributes
            .append(true)
            .expect("keys and values are appended in pairs");
        self.ingest.append(meta);
    }

    /// The rows appended so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let attributes = &mut self.attributes.0;
        let (entries, key_bytes, value_bytes) = (
            attributes.keys().len(),
            attributes.keys().values_slice().len(),
            attributes.values().values_slice().len(),
        );
        let attributes_array: ArrayRef = Arc::new(attributes.finish());
        *attributes = MapBuilder::with_capacity(
            None,
            StringBuilder::with_capacity(entries, key_bytes),
            StringBuilder::with_capacity(entries, value_bytes),
            rows,
        );
        let mfa: ArrayRef = Arc::new(self.mfa.finish());
        self.mfa = BooleanBuilder::with_capacity(rows);
        let mut columns: Vec<ArrayRef> = vec![
            finish_text(&mut self.id),
            finish_times(&mut self.time),
            finish_text(&mut self.kind),
            finish_text(&mut self.principal),
            finish_text(&mut self.principal_type),
            finish_text(&mut self.service),
            finish_text(&mut self.outcome),
            finish_text(&mut self.reason),
            finish_text(&mut self.source_ip),
            finish_text(&mut self.source_service),
            finish_text(&mut self.target_service),
            finish_text(&mut self.resource),
            finish_text(&mut self.action),
            finish_text(&mut self.token_id),
            finish_text(&mut self.token_issuer),
            finish_list(&mut self.token_audience),
            finish_list(&mut self.token_scopes),
            finish_list(&mut self.required_scopes),
            finish_times(&mut self.token_expires),
            finish_text(&mut self.client_id),
            finish_text(&mut self.auth_method),
            mfa,
            finish_text(&mut self.user_agent),
            finish_text(&mut self.session_id),
            finish_text(&mut self.trace_id),
            attributes_array,
        ];
        columns.extend(self.ingest.finish());
        RecordBatch::try_new(events_schema(), columns)
    }
}

/// Accumulates rejected messages into one `rejects` record batch.
pub struct RejectBatchBuilder {
    rows: usize,
    max_raw_bytes: usize,
    ingest: IngestColumns,
    error_kind: StringBuilder,
    error: StringBuilder,
    raw: BinaryBuilder,
    raw_bytes: Int64Builder,
}

impl RejectBatchBuilder {
    /// An empty builder that keeps at most `max_raw_bytes` of each message.
    pub fn new(max_raw_bytes: usize) -> Self {
        RejectBatchBuilder {
            rows: 0,
            max_raw_bytes,
            ingest: IngestColumns::default(),
            error_kind: StringBuilder::new(),
            error: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            raw_bytes: Int64Builder::new(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one rejected message: its bytes (capped) and why it was rejected.
    ///
    /// `raw_bytes` is the message's full size; `raw` may already be shorter (a source
    /// that refuses to buffer an oversized message keeps only its head). Credentials in
    /// `raw` and in the error's text are kept only as digests, as in accepted events: a
    /// message rejected for a typo must not put its bearer token in the lake.
    pub fn append(
        &mut self,
        raw: &[u8],
        raw_bytes: usize,
        error: &ContractError,
        meta: &IngestMeta<'_>,
    ) {
        self.rows += 1;
        self.ingest.append(meta);
        self.error_kind.append_value(error.kind.as_str());
        self.error
            .append_value(redact_credentials_in_text(&error.message));
        // Redacted before the cap, so that a token the cap cuts is still recognised, but
        // not all of a huge message: a flood of them would cost a scan each.
        const LONGEST_TOKEN: usize = 16 * 1024;
        let raw = redact_credentials_in(&raw[..raw.len().min(self.max_raw_bytes + LONGEST_TOKEN)]);
        self.raw
            .append_value(&raw[..raw.len().min(self.max_raw_bytes)]);
        self.raw_bytes
            .append_value(i64::try_from(raw_bytes).unwrap_or(i64::MAX));
    }

    /// The rows appended so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = self.ingest.finish().to_vec();
        columns.extend([
            Arc::new(self.error_kind.finish()) as ArrayRef,
            Arc::new(self.error.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.raw_bytes.finish()),
        ]);
        RecordBatch::try_new(rejects_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    use super::*;
    use crate::parse::{parse_event, ContractLimits};

    #[test]
    fn writes_addresses_in_their_standard_text_form() {
        for text in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2a02:1:2::3",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut builder = StringBuilder::new();
            append_ip(&mut builder, ip);
            builder.append_null();
            append_ip(&mut builder, ip);
            let array = builder.finish();
            assert_eq!(array.value(0), ip.to_string());
            assert!(array.is_null(1));
            assert_eq!(array.value(2), ip.to_string());
        }
    }

    #[test]
    fn a_finished_builder_makes_the_same_batch_again() {
        let lines = [
            r#"{"id":"a","time":1000,"kind":"authn","principal":"user:a","outcome":"success","source_ip":"10.0.0.1","mfa":true,"attributes":{"k":"v"}}"#,
            r#"{"id":"b","time":2000,"kind":"token_issue","principal":"svc:b","token_id":"t","token_audience":["x","y"],"token_scopes":"r w","source_ip":"::1"}"#,
        ];
        let mut builder = EventBatchBuilder::new();
        let fill = |builder: &mut EventBatchBuilder| {
            for (offset, line) in lines.iter().enumerate() {
                let event =
                    parse_event(line.as_bytes(), 10_000_000, &ContractLimits::default()).unwrap();
                let meta = IngestMeta {
                    topic: "t",
                    partition: 0,
                    offset: offset as i64,
                    ingest_time: 5,
                };
                builder.append(&event, &meta);
            }
            builder.finish().unwrap()
        };
        let first = fill(&mut builder);
        let second = fill(&mut builder);
        assert_eq!(first, second);
        assert_eq!(first.num_rows(), 2);
        assert_eq!(
            first
                .column_by_name("source_ip")
                .unwrap()
                .as_string::<i32>()
                .value(1),
            "::1"
        );
    }

    #[test]
    fn rejected_messages_keep_no_bearer_token() {
        const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
        // Rejected for its kind, with the token in a field and in the error's text.
        let message = format!(
            r#"{{"id":"r","time":1,"kind":"Bearer opaque-secret","token_id":"Bearer {JWT}","headers":{{"Authorization":"Basic dXNlcjpwdw=="}}}}"#
        );
        let error =
            parse_event(message.as_bytes(), 10_000_000, &ContractLimits::default()).unwrap_err();
        assert!(error.message.contains("opaque-secret"), "{error}");
        let mut builder = RejectBatchBuilder::new(64 * 1024);
        let meta = IngestMeta {
            topic: "t",
            partition: 0,
            offset: 0,
            ingest_time: 5,
        };
        builder.append(message.as_bytes(), message.len(), &error, &meta);
        let batch = builder.finish().unwrap();
        let raw = batch
            .column_by_name("raw")
            .unwrap()
            .as_binary::<i32>()
            .value(0);
        let raw = String::from_utf8(raw.to_vec()).unwrap();
        let error_text = batch
            .column_by_name("error")
            .unwrap()
            .as_string::<i32>()
            .value(0);
        for secret in [JWT, "opaque-secret", "dXNlcjpwdw"] {
            assert!(!raw.contains(secret), "{raw}");
            assert!(!error_text.contains(secret), "{error_text}");
        }
        let digest = crate::parse::jwt_fingerprint(JWT).unwrap();
        assert!(
            raw.contains(&format!(r#""token_id":"Bearer {digest}""#)),
            "{raw}"
        );
        let raw_bytes = batch.column_by_name("raw_bytes").unwrap();
        assert_eq!(
            raw_bytes
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            message.len() as i64
        );
    }
}
