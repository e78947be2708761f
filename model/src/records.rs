//! Splitting a body of native records (an HTTP request, a file) into one slice per record,
//! as the senders of identity logs really write them: one JSON object, a JSON array of
//! records (OPA's decision logs), a list object with an `items` array (Kubernetes'
//! `EventList`), or JSON lines.
//!
//! The body is read as a sequence of JSON values separated by whitespace: an array
//! contributes its elements, a list object (a `kind` ending in `List` and an `items`
//! array) its items, any other value itself. A record is returned as the body's own bytes
//! (no copy, no tree built), so memory stays that of the body plus one slice per record.
//! Whether a record is an object the format understands is the adapter's question, not
//! this one's: a non-object element becomes a record and its adapter rejects it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ContractError, RejectKind};

/// Splits `body` into its records, at most `max_records` of them.
///
/// Errors: invalid JSON anywhere (`invalid_json`, naming the line and column), more
/// than `max_records` records (`too_large`). Blank lines and a UTF-8 byte order mark are
/// skipped; an empty body has no records.
pub fn split_records(body: &[u8], max_records: usize) -> Result<Vec<&[u8]>, ContractError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut records = Vec::new();
    let values = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
    for value in values {
        let value = value.map_err(invalid_json)?;
        let text = value.get();
        match text.as_bytes().first() {
            Some(b'[') => push_elements(value, &mut records, max_records)?,
            Some(b'{') => match list_items(value) {
                Some(items) => push_elements(items, &mut records, max_records)?,
                None => push(text.as_bytes(), &mut records, max_records)?,
            },
            _ => push(text.as_bytes(), &mut records, max_records)?,
        }
    }
    Ok(records)
}

fn invalid_json(error: serde_json::Error) -> ContractError {
    ContractError::new(RejectKind::InvalidJson, format!("invalid JSON: {error}"))
}

fn too_many(max_records: usize) -> ContractError {
    ContractError::new(
        RejectKind::TooLarge,
        format!("more than {max_records} records in one body"),
    )
}

fn push<'a>(
    record: &'a [u8],
    records: &mut Vec<&'a [u8]>,
    max_records: usize,
) -> Result<(), ContractError> {
    if records.len() >= max_records {
        return Err(too_many(max_records));
    }
    records.push(record);
    Ok(())
}

/// The `items` of a list object (`{"kind": "EventList", "items": [...]}`), or `None` for
/// any other object.
fn list_items(object: &RawValue) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct MaybeList<'a> {
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        items: Option<&'a RawValue>,
    }
    // A record of a format may have a field named `kind` of another type (or twice): then
    // it is not a list, and the record itself goes to its adapter.
    let probe = serde_json::from_str::<MaybeList>(object.get()).ok()?;
    let is_list = probe.kind.is_some_and(|kind| kind.ends_with("List"));
    probe
        .items
        .filter(|items| is_list && items.get().starts_with('['))
}

/// Pushes each element of the JSON array `array` (already known to be valid JSON),
/// stopping at `max_records` without reading the rest.
fn push_elements<'a>(
    array: &'a RawValue,
    records: &mut Vec<&'a [u8]>,
    max_records: usize,
) -> Result<(), ContractError> {
    let mut deserializer = serde_json::Deserializer::from_str(array.get());
    let elements = Elements {
        records,
        max_records,
    };
    match deserializer.deserialize_seq(elements) {
        Ok(()) => Ok(()),
        // The JSON was validated as a whole before, so the only error left is the
        // visitor's own: a full list.
        Err(_) if records.len() >= max_records => Err(too_many(max_records)),
        Err(error) => Err(invalid_json(error)),
    }
}

/// Visits an array, pushing each element's raw text.
struct Elements<'r, 'a> {
    records: &'r mut Vec<&'a [u8]>,
    max_records: usize,
}

impl<'de> Visitor<'de> for Elements<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<&'de RawValue>()? {
            if self.records.len() >= self.max_records {
                // push_elements reports "too many"; the rest is not read.
                return Err(serde::de::Error::custom("too many records"));
            }
            self.records.push(element.get().as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str) -> Vec<&str> {
        split_records(body.as_bytes(), 100)
            .unwrap()
            .into_iter()
            .map(|record| std::str::from_utf8(record).unwrap())
            .collect()
    }

    #[test]
    fn one_object_is_one_record() {
        assert_eq!(split(r#" {"a": 1} "#), [r#"{"a": 1}"#]);
    }

    #[test]
    fn json_lines_are_one_record_each_and_blank_lines_are_skipped() {
        let body = "{\"a\":1}\n\n{\"b\":2}\r\n  \n{\"c\":[3]}\n";
        assert_eq!(split(body), [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":[3]}"#]);
    }

    #[test]
    fn an_array_gives_its_elements() {
        let body = r#"[{"decision_id":"1"}, {"decision_id":"2","result":{"allowed":true}}]"#;
        assert_eq!(
            split(body),
            [
                r#"{"decision_id":"1"}"#,
                r#"{"decision_id":"2","result":{"allowed":true}}"#
            ]
        );
        assert!(split("[]").is_empty());
    }

    #[test]
    fn an_event_list_gives_its_items() {
        let body = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},
            "items":[{"kind":"Event","auditID":"a"},{"kind":"Event","auditID":"b"}]}"#;
        assert_eq!(
            split(body),
            [
                r#"{"kind":"Event","auditID":"a"}"#,
                r#"{"kind":"Event","auditID":"b"}"#
            ]
        );
    }

    #[test]
    fn an_object_with_items_that_is_not_a_list_is_one_record() {
        let body = r#"{"kind":"Event","items":[1,2]}"#;
        assert_eq!(split(body), [body]);
        let body = r#"{"items":[1,2]}"#;
        assert_eq!(split(body), [body]);
        let body = r#"{"kind":7,"items":[1,2]}"#;
        assert_eq!(split(body), [body]);
    }

    #[test]
    fn values_other_than_objects_are_records_for_the_adapter_to_reject() {
        assert_eq!(split("[1, \"x\", null]"), ["1", "\"x\"", "null"]);
    }

    #[test]
    fn an_empty_body_has_no_records() {
        assert!(split("").is_empty());
        assert!(split(" \n\n ").is_empty());
        assert!(split("\u{feff}").is_empty());
    }

    #[test]
    fn invalid_json_names_its_line() {
        let body = b"{\"a\":1}\n{\"b\":2}\n{\"c\":\n";
        let error = split_records(body, 100).unwrap_err();
        assert_eq!(error.kind, RejectKind::InvalidJson);
        assert!(error.message.contains("line 4"), "{}", error.message);

        let body = b"{\"a\":1}\n{\"b\" 2}\n{\"c\":3}\n";
        let error = split_records(body, 100).unwrap_err();
        assert!(error.message.contains("line 2"), "{}", error.message);

        let body = b"[{\"a\":1},\n{\"b\":2},]";
        let error = split_records(body, 100).unwrap_err();
        assert_eq!(error.kind, RejectKind::InvalidJson);
        assert!(error.message.contains("line 2"), "{}", error.message);
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        let error = split_records(b"{\"a\":\"\xff\"}", 100).unwrap_err();
        assert_eq!(error.kind, RejectKind::InvalidJson);
    }

    #[test]
    fn more_records_than_allowed_is_an_error_in_every_shape() {
        let lines = "{}\n{}\n{}\n";
        let array = "[{},{},{}]";
        let list = r#"{"kind":"EventList","items":[{},{},{}]}"#;
        let mixed = "[{},{}]\n{}";
        for body in [lines, array, list, mixed] {
            assert_eq!(
                split_records(body.as_bytes(), 3).unwrap().len(),
                3,
                "{body}"
            );
            let error = split_records(body.as_bytes(), 2).unwrap_err();
            assert_eq!(error.kind, RejectKind::TooLarge, "{body}");
            assert!(error.message.contains("more than 2 records"), "{error}");
        }
    }

    #[test]
    fn records_are_slices_of_the_body() {
        let body = br#"[{"a":1},{"b":2}]"#;
        let records = split_records(body, 10).unwrap();
        let range = body.as_ptr_range();
        for record in records {
            assert!(range.contains(&record.as_ptr()));
        }
    }
}
