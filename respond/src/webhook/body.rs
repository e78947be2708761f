//! Request bodies: by default `{"type", "action", "webhook", "alert"}`; or a JSON template
//! whose string values hold `{{…}}` placeholders.
//!
//! `alert` is the alert's one JSON shape ([`Alert::to_json`], `time` as RFC 3339 text, as
//! the API and the live feed show it) plus `time_us`, the same time in integer
//! microseconds: bodies carried that as `time` before the shapes were unified, and a
//! receiver that did arithmetic on it switches to `time_us` rather than parsing text.
//!
//! Templates are substituted on parsed JSON values, never on text: a value that is exactly
//! one placeholder becomes that JSON value (a string, number, list or null), and
//! placeholders inside longer strings are replaced by the value's text. Alert fields can
//! therefore never break out of the string they are placed in.

use authtrail_model::{alerts_schema, Alert};
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::webhook::config::Action;

/// Placeholders besides `alert.<field>`.
const FIELDS: &[&str] = &["action", "webhook", "alert"];
/// The alert's time in integer microseconds, beside `time`; see the module docs.
const TIME_US: &str = "time_us";

/// Whether `{{name}}` is a placeholder: [`FIELDS`], or `alert.` and a field of the alert's
/// JSON (its keys are the `alerts` table's columns) or `time_us`.
fn is_placeholder(name: &str) -> bool {
    FIELDS.contains(&name)
        || name
            .strip_prefix("alert.")
            .is_some_and(|field| field == TIME_US || alerts_schema().field_with_name(field).is_ok())
}

/// The alert as a body carries it: [`Alert::to_json`] and `time_us`.
fn alert_value(alert: &Alert) -> Value {
    let mut value = alert.to_json();
    value[TIME_US] = Value::from(alert.time);
    value
}

/// How a sink turns an alert into a request body.
#[derive(Debug, Clone)]
pub struct BodyBuilder {
    webhook: String,
    action: Action,
    template: Option<Value>,
}

impl BodyBuilder {
    /// Checks the template (valid JSON, known placeholders only).
    pub fn new(webhook: &str, action: Action, template: Option<&str>) -> Result<Self, Error> {
        let template = template
            .map(|text| {
                let value: Value = serde_json::from_str(text).map_err(|error| {
                    Error::config(webhook, format!("`body_template` is not JSON: {error}"))
                })?;
                check_placeholders(webhook, &value)?;
                Ok::<_, Error>(value)
            })
            .transpose()?;
        Ok(BodyBuilder {
            webhook: webhook.to_owned(),
            action,
            template,
        })
    }

    /// The body for `alert`; the same alert always gives the same bytes.
    pub fn build(&self, alert: &Alert) -> Vec<u8> {
        let alert_value = alert_value(alert);
        let body = match &self.template {
            None => json!({
                "type": "authtrail.alert",
                "action": self.action.as_str(),
                "webhook": self.webhook,
                "alert": alert_value,
            }),
            Some(template) => substitute(template, &|name| match name {
                "action" => Some(Value::from(self.action.as_str())),
                "webhook" => Some(Value::from(self.webhook.as_str())),
                "alert" => Some(alert_value.clone()),
                _ => name
                    .strip_prefix("alert.")
                    .and_then(|field| alert_value.get(field).cloned()),
            }),
        };
        serde_json::to_vec(&body).expect("JSON values serialize")
    }
}

fn placeholders(text: &str) -> impl Iterator<Item = (usize, usize, &str)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text[from..].find("{{")?;
        let end = start + 2 + text[start + 2..].find("}}")?;
        from = end + 2;
        Some((start, end + 2, text[start + 2..end].trim()))
    })
}

fn check_placeholders(webhook: &str, value: &Value) -> Result<(), Error> {
    match value {
        Value::String(text) => {
            for (_, _, name) in placeholders(text) {
                if !is_placeholder(name) {
                    return Err(Error::config(
                        webhook,
                        format!("`body_template` has an unknown placeholder `{{{{{name}}}}}`"),
                    ));
                }
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_placeholders(webhook, v)),
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_placeholders(webhook, v)),
        _ => Ok(()),
    }
}

fn substitute(template: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Value {
    match template {
        Value::String(text) => {
            let mut found = placeholders(text).peekable();
            let Some(&(start, end, name)) = found.peek() else {
                return template.clone();
            };
            if start == 0 && end == text.len() {
                return lookup(name).unwrap_or(Value::Null);
            }
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for (start, end, name) in found {
                out.push_str(&text[at..start]);
                match lookup(name) {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
                at = end;
            }
            out.push_str(&text[at..]);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, lookup)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtrail_model::Severity;

    fn alert() -> Alert {
        Alert {
            id: "a1".into(),
            detector: "token_replay".into(),
            severity: Severity::High,
            time: 1_795_456_800_000_000,
            principal: "svc:\"evil\",\"admin\":true".into(),
            token_id: Some("jti-7".into()),
            source_ip: None,
            target_service: None,
            key: "jti-7".into(),
            summary: "token used from two places".into(),
            evidence_ids: vec!["e-1".into()],
            attack_technique: "T1550.001".into(),
            suppressed_count: 0,
        }
    }

    #[test]
    fn default_body_holds_the_alert_and_the_action() {
        let builder = BodyBuilder::new("idp", Action::RevokeToken, None).unwrap();
        let body: Value = serde_json::from_slice(&builder.build(&alert())).unwrap();
        assert_eq!(body["action"], "revoke_token");
        assert_eq!(body["alert"]["token_id"], "jti-7");
        assert_eq!(builder.build(&alert()), builder.build(&alert()));
    }

    #[test]
    fn the_alert_is_its_json_shape_with_the_time_in_microseconds_beside() {
        let builder = BodyBuilder::new("idp", Action::Notify, None).unwrap();
        let body: Value = serde_json::from_slice(&builder.build(&alert())).unwrap();
        let mut expected = alert().to_json();
        expected["time_us"] = json!(1_795_456_800_000_000i64);
        assert_eq!(body["alert"], expected);
        assert_eq!(body["alert"]["time"], "2026-11-23T18:00:00Z");
        let template = r#"{"at": "{{alert.time}}", "us": "{{alert.time_us}}"}"#;
        let builder = BodyBuilder::new("idp", Action::Notify, Some(template)).unwrap();
        let body: Value = serde_json::from_slice(&builder.build(&alert())).unwrap();
        assert_eq!(
            body,
            json!({"at": "2026-11-23T18:00:00Z", "us": 1_795_456_800_000_000i64})
        );
    }

    #[test]
    fn template_values_cannot_break_out_of_their_string() {
        let template = r#"{"token": "{{alert.token_id}}", "who": "user {{ alert.principal }}",
            "evidence": "{{alert.evidence_ids}}", "ip": "{{alert.source_ip}}", "n": 3}"#;
        let builder = BodyBuilder::new("idp", Action::RevokeToken, Some(template)).unwrap();
        let body: Value = serde_json::from_slice(&builder.build(&alert())).unwrap();
        assert_eq!(body["token"], "jti-7");
        assert_eq!(body["who"], "user svc:\"evil\",\"admin\":true");
        assert_eq!(body.get("admin"), None);
        assert_eq!(body["evidence"], json!(["e-1"]));
        assert_eq!(body["ip"], Value::Null);
        assert_eq!(body["n"], 3);
    }

    #[test]
    fn unknown_placeholders_and_bad_json_are_config_errors() {
        let error = BodyBuilder::new("idp", Action::Notify, Some(r#"{"x": "{{alert.pasword}}"}"#))
            .unwrap_err();
        assert!(error.to_string().contains("alert.pasword"), "{error}");
        assert!(BodyBuilder::new("idp", Action::Notify, Some("{nope")).is_err());
    }
}
