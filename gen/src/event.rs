//! One generated event, written as the contract's JSON object.

use std::net::Ipv4Addr;

use authtrail_model::Micros;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// An event of the contract (`events.md`), with the fields the model fills.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Ev {
    pub id: String,
    #[serde(serialize_with = "rfc3339")]
    pub time: Micros,
    pub kind: &'static str,
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_service: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_service: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_issuer: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_audience: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_scopes: Option<&'static str>,
    /// On `authz`: the scopes the deciding service required (one space-separated string,
    /// as the contract allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<&'static str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_option"
    )]
    pub token_expires: Option<Micros>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The scenario the event belongs to (never written: ground truth stays out of the
    /// events).
    #[serde(skip)]
    pub scenario: Option<usize>,
}

pub(crate) const ISSUER: &str = "https://idp.example.com";

impl Ev {
    /// An event with only the common required fields set.
    pub fn new(id: String, time: Micros, kind: &'static str, principal: &str) -> Self {
        Ev {
            id,
            time,
            kind,
            principal: principal.to_owned(),
            ..Ev::default()
        }
    }

    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

/// Millisecond RFC 3339 in UTC, the way most reporters write time.
pub(crate) fn format_time(time: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(time)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn rfc3339<S: serde::Serializer>(time: &Micros, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

fn rfc3339_option<S: serde::Serializer>(
    time: &Option<Micros>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, serializer),
        None => serializer.serialize_none(),
    }
}
