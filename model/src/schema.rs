//! The Arrow schemas of the lake's tables. One place defines them, so the writer, the
//! query engine and the docs agree.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The time type of every timestamp column: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

fn text_map() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// Where a row came from: source topic (or file), partition, offset and when it was read.
fn ingest_fields() -> [Field; 4] {
    [
        Field::new("ingest_topic", DataType::Utf8, false),
        Field::new("ingest_partition", DataType::Int32, false),
        Field::new("ingest_offset", DataType::Int64, false),
        Field::new("ingest_time", timestamp_type(), false),
    ]
}

/// The `events` table: every field of the contract, then the ingest columns.
pub fn events_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("time", timestamp_type(), false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("principal", DataType::Utf8, false),
            Field::new("principal_type", DataType::Utf8, false),
            text("service"),
            text("outcome"),
            text("reason"),
            text("source_ip"),
            text("source_service"),
            text("target_service"),
            text("resource"),
            text("action"),
            text("token_id"),
            text("token_issuer"),
            Field::new("token_audience", text_list(), true),
            Field::new("token_scopes", text_list(), true),
            // Added after the first lake files were written: readers find it missing in
            // older files and read it as null (the lake's schema evolves by adding
            // nullable columns only).
            Field::new("required_scopes", text_list(), true),
            Field::new("token_expires", timestamp_type(), true),
            text("client_id"),
            text("auth_method"),
            Field::new("mfa", DataType::Boolean, true),
            text("user_agent"),
            text("session_id"),
            text("trace_id"),
            Field::new("attributes", text_map(), false),
        ];
        fields.extend(ingest_fields());
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// The `rejects` table: the ingest columns, why the message was rejected, and its bytes.
pub fn rejects_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = ingest_fields().to_vec();
        fields.extend([
            Field::new("error_kind", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, false),
            Field::new("raw", DataType::Binary, false),
            Field::new("raw_bytes", DataType::Int64, false),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Columns of `events` that investigators look up by value; they get Parquet bloom filters.
pub const EVENT_LOOKUP_COLUMNS: [&str; 3] = ["principal", "token_id", "source_ip"];
