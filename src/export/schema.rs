//! The Arrow schema of the OCSF Parquet export: the union of the three classes'
//! attributes the export fills (`ocsf.rs`), nested as OCSF nests them (struct columns),
//! every column nullable but the ones each class requires.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn integer(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

/// OCSF `timestamp_t`: epoch milliseconds.
fn timestamp(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

fn text_list(name: &str) -> Field {
    Field::new_list(name, Field::new_list_field(DataType::Utf8, true), true)
}

fn user() -> Field {
    object(
        "user",
        vec![text("name"), text("uid"), integer("type_id"), text("type")],
    )
}

fn session() -> Field {
    object(
        "session",
        vec![
            text("uid"),
            text("credential_uid"),
            text("issuer"),
            timestamp("expiration_time"),
        ],
    )
}

fn endpoint(name: &str) -> Field {
    object(name, vec![text("ip"), text("svc_name")])
}

fn named(name: &str) -> Field {
    object(name, vec![text("name")])
}

/// The export's Parquet schema.
pub fn ocsf_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let required = |field: Field| field.with_nullable(false);
        let attributes = Field::new_map(
            "attributes",
            "entries",
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
            false,
            true,
        );
        let resource =
            Field::new_list_field(DataType::Struct(Fields::from(vec![text("name")])), true);
        Arc::new(Schema::new(vec![
            required(integer("class_uid")),
            required(text("class_name")),
            required(integer("category_uid")),
            required(text("category_name")),
            required(integer("activity_id")),
            required(text("activity_name")),
            required(Field::new("type_uid", DataType::Int64, false)),
            required(text("type_name")),
            required(integer("severity_id")),
            required(text("severity")),
            required(integer("status_id")),
            required(text("status")),
            text("status_detail"),
            required(timestamp("time")),
            required(object(
                "metadata",
                vec![
                    required(text("version")),
                    required(text("uid")),
                    required(object(
                        "product",
                        vec![text("name"), text("vendor_name"), text("version")],
                    )),
                    text("log_name"),
                    text("log_provider"),
                    timestamp("logged_time"),
                    text("correlation_uid"),
                ],
            )),
            user(),
            object("actor", vec![user(), session(), text("app_uid")]),
            object("api", vec![text("operation"), named("service")]),
            Field::new("resources", DataType::List(Arc::new(resource)), true),
            endpoint("src_endpoint"),
            endpoint("dst_endpoint"),
            named("service"),
            session(),
            text("auth_protocol"),
            integer("auth_protocol_id"),
            Field::new("is_mfa", DataType::Boolean, true),
            object("http_request", vec![text("user_agent")]),
            text_list("privileges"),
            object(
                "unmapped",
                vec![
                    attributes,
                    text("auth_method"),
                    text_list("token_audience"),
                    text_list("token_scopes"),
                    text_list("required_scopes"),
                ],
            ),
        ]))
    });
    SCHEMA.clone()
}
