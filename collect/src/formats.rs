//! The formats the collector takes, their default topics, and where a record's native id
//! is (the Kafka message key, so a resent record lands on the same partition).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One format: its name (the path segment), its default topic and its native id field.
struct FormatInfo {
    name: &'static str,
    default_topic: &'static str,
    /// The top-level field holding the record's own unique id, if the format has one there.
    id_field: Option<&'static str>,
}

// TO BE REPLACED when the adapter engine lands (`authtrail_model::adapt::BUILTIN_FORMATS`
// and `Format::builtin`): the format names are then the adapters', and this list keeps
// only the default topics and id fields.
const FORMATS: [FormatInfo; 7] = [
    FormatInfo {
        name: "authtrail",
        default_topic: "auth-events",
        id_field: Some("id"),
    },
    FormatInfo {
        name: "okta",
        default_topic: "okta-events",
        id_field: Some("uuid"),
    },
    FormatInfo {
        name: "auth0",
        default_topic: "auth0-events",
        id_field: Some("log_id"),
    },
    FormatInfo {
        name: "keycloak",
        default_topic: "keycloak-events",
        id_field: Some("id"),
    },
    FormatInfo {
        name: "k8s_audit",
        default_topic: "k8s-audit",
        id_field: Some("auditID"),
    },
    FormatInfo {
        name: "opa",
        default_topic: "opa-decisions",
        id_field: Some("decision_id"),
    },
    // OCSF's id is `metadata.uid`, nested: not worth a second walk per record.
    FormatInfo {
        name: "ocsf",
        default_topic: "ocsf-events",
        id_field: None,
    },
];

fn info(format: &str) -> Option<&'static FormatInfo> {
    FORMATS.iter().find(|info| info.name == format)
}

/// The names of the formats the collector takes.
pub fn known() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|info| info.name)
}

/// The topic a format's records go to unless `[collect.topics]` says otherwise.
pub fn default_topic(format: &str) -> Option<&'static str> {
    info(format).map(|info| info.default_topic)
}

/// The top-level field holding `format`'s native record id.
pub(crate) fn id_field(format: &str) -> Option<&'static str> {
    info(format).and_then(|info| info.id_field)
}

/// The string value of the top-level field `field` of the JSON object `record`, if it
/// is one (at most 256 bytes: a longer value is no id worth keying on).
pub(crate) fn top_level_string(record: &[u8], field: &str) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(record);
    deserializer
        .deserialize_map(FieldValue(field))
        .ok()
        .flatten()
}

const MAX_KEY_BYTES: usize = 256;

/// Visits an object for one field's string value, skipping every other value unread.
struct FieldValue<'f>(&'f str);

impl<'de> Visitor<'de> for FieldValue<'_> {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.0 && found.is_none() {
                let value: &RawValue = map.next_value()?;
                found = serde_json::from_str::<String>(value.get())
                    .ok()
                    .filter(|id| !id.is_empty() && id.len() <= MAX_KEY_BYTES);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_id_is_found_at_the_top_level_only() {
        let record = br#"{"actor":{"uuid":"nested"},"uuid":"u-1","x":[1,{"a":2}]}"#;
        assert_eq!(top_level_string(record, "uuid").as_deref(), Some("u-1"));
        assert_eq!(top_level_string(br#"{"uuid":7}"#, "uuid"), None);
        assert_eq!(top_level_string(br#"{"a":"b"}"#, "uuid"), None);
        assert_eq!(top_level_string(b"[1]", "uuid"), None);
        assert_eq!(
            top_level_string(br#"{"id":"a\"b"}"#, "id").as_deref(),
            Some("a\"b")
        );
    }

    #[test]
    fn every_format_has_a_topic() {
        for format in known() {
            assert!(default_topic(format).is_some(), "{format}");
        }
        assert_eq!(id_field("k8s_audit"), Some("auditID"));
    }
}
