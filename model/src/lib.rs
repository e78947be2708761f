//! authtrail's data model: the event contract and the lake's schemas. No I/O.
//!
//! A message's bytes go through [`parse_event`], which either yields an [`Event`]
//! (validated and normalised as `events.md` describes) or a [`ContractError`] naming the
//! class of the violation. Accepted events go into an [`EventBatchBuilder`], rejected
//! messages into a [`RejectBatchBuilder`]; both produce Arrow record batches of the lake's
//! schemas ([`events_schema`], [`rejects_schema`]), which the store writes as Parquet.
//!
//! [`lake`] is the lake's layout (tables, partition columns, reserved directories, paths)
//! and [`Alert::to_json`] the one JSON shape of an alert; every crate takes both from here.

pub mod adapt;
mod alert;
mod batch;
mod error;
mod event;
mod json;
pub mod lake;
mod parse;
pub mod records;
mod schema;
pub mod time;

pub use alert::{alert_id, alerts_schema, Alert, AlertBatchBuilder, Severity, SERVICE_DETECTORS};
pub use batch::{EventBatchBuilder, IngestMeta, RejectBatchBuilder};
pub use error::{ContractError, RejectKind};
pub use event::{Event, Kind, Micros, Outcome, PrincipalType, Text};
pub use parse::{
    jwt_fingerprint, parse_event, redact_credentials_in, token_fingerprint, ContractLimits,
    FIELD_NAMES as CONTRACT_FIELDS, REDACTED_SUFFIX, SESSION_ID_REDACTED_ATTRIBUTE,
    TOKEN_ID_REDACTED_ATTRIBUTE,
};
pub use schema::{events_schema, rejects_schema, timestamp_type, EVENT_LOOKUP_COLUMNS};
