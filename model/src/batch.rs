//! Builders that turn accepted events and rejected messages into Arrow record batches of
//! the lake's schemas.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

use crate::error::ContractError;
use crate::event::{Event, Micros, Text};
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
        [
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.time.finish().with_timezone("UTC")),
        ]
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
            Some(ip) => self.source_ip.append_value(ip.to_string()),
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
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.kind.finish()),
            Arc::new(self.principal.finish()),
            Arc::new(self.principal_type.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.source_ip.finish()),
            Arc::new(self.source_service.finish()),
            Arc::new(self.target_service.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.token_id.finish()),
            Arc::new(self.token_issuer.finish()),
            Arc::new(self.token_audience.finish()),
            Arc::new(self.token_scopes.finish()),
            Arc::new(self.token_expires.finish().with_timezone("UTC")),
            Arc::new(self.client_id.finish()),
            Arc::new(self.auth_method.finish()),
            Arc::new(self.mfa.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.attributes.0.finish()),
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
    /// that refuses to buffer an oversized message keeps only its head).
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
        self.error.append_value(&error.message);
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
