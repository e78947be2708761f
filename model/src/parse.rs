//! The event contract parser: one message's bytes in, an [`Event`] or a [`ContractError`]
//! out. Pure: the caller passes the ingest clock, so tests and replays are deterministic.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{ContractError, RejectKind};
use crate::event::{Event, Kind, Micros, Outcome, PrincipalType, Text};
use crate::json::{Json, Key};
use crate::time::{parse_rfc3339, MICROS_PER_MILLI};

mod redact;

pub(crate) use redact::redact_credentials_in_text;
pub use redact::{
    jwt_fingerprint, redact_credentials_in, token_fingerprint, REDACTED_SUFFIX,
    SESSION_ID_REDACTED_ATTRIBUTE, TOKEN_ID_REDACTED_ATTRIBUTE,
};

/// The limits a message must respect; the defaults are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLimits {
    /// Largest accepted message, in bytes.
    pub max_message_bytes: usize,
    /// How far ahead of the ingest clock an event's `time` may lie, in microseconds.
    pub max_future_skew: Micros,
}

impl Default for ContractLimits {
    fn default() -> Self {
        ContractLimits {
            max_message_bytes: 1024 * 1024,
            max_future_skew: 3_600 * 1_000_000,
        }
    }
}

const ID_MAX_BYTES: usize = 128;
/// Deepest nesting of arrays and objects kept from an unknown field. serde_json skips
/// unknown values without a depth limit, so the contract sets one.
const MAX_NESTING: usize = 64;
const PRINCIPAL_MAX_BYTES: usize = 256;

/// Parses one message against the event contract.
///
/// `now` is the ingest clock, used for the future-skew check.
pub fn parse_event<'a>(
    message: &'a [u8],
    now: Micros,
    limits: &ContractLimits,
) -> Result<Event<'a>, ContractError> {
    if message.len() > limits.max_message_bytes {
        return Err(ContractError::new(
            RejectKind::TooLarge,
            format!(
                "message of {} bytes exceeds the limit of {} bytes",
                message.len(),
                limits.max_message_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(message).map_err(|error| {
        ContractError::new(RejectKind::InvalidUtf8, format!("not valid UTF-8: {error}"))
    })?;
    if text.trim().is_empty() {
        return Err(ContractError::new(
            RejectKind::InvalidJson,
            "empty message, expected one JSON object",
        ));
    }
    // Filled in place: the slots are large, and handing them through serde's return
    // values would copy them several times per message.
    let mut fields = RawFields {
        known: Default::default(),
        unknown: Vec::new(),
        duplicate: None,
    };
    read_fields(text, &mut fields)?;
    build_event(&mut fields, now, limits)
}

/// The fields of the contract, in the order of [`FIELD_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Time,
    Kind,
    Principal,
    PrincipalType,
    Service,
    Outcome,
    Reason,
    SourceIp,
    SourceService,
    TargetService,
    Resource,
    Action,
    TokenId,
    TokenIssuer,
    TokenAudience,
    TokenScopes,
    RequiredScopes,
    TokenExpires,
    ClientId,
    AuthMethod,
    Mfa,
    UserAgent,
    SessionId,
    TraceId,
    Attributes,
}

pub(crate) const FIELD_COUNT: usize = 26;

/// Every field name of the event contract (events.md), in its order.
pub const FIELD_NAMES: [&str; FIELD_COUNT] = [
    "id",
    "time",
    "kind",
    "principal",
    "principal_type",
    "service",
    "outcome",
    "reason",
    "source_ip",
    "source_service",
    "target_service",
    "resource",
    "action",
    "token_id",
    "token_issuer",
    "token_audience",
    "token_scopes",
    "required_scopes",
    "token_expires",
    "client_id",
    "auth_method",
    "mfa",
    "user_agent",
    "session_id",
    "trace_id",
    "attributes",
];

impl Field {
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "id" => Field::Id,
            "time" => Field::Time,
            "kind" => Field::Kind,
            "principal" => Field::Principal,
            "principal_type" => Field::PrincipalType,
            "service" => Field::Service,
            "outcome" => Field::Outcome,
            "reason" => Field::Reason,
            "source_ip" => Field::SourceIp,
            "source_service" => Field::SourceService,
            "target_service" => Field::TargetService,
            "resource" => Field::Resource,
            "action" => Field::Action,
            "token_id" => Field::TokenId,
            "token_issuer" => Field::TokenIssuer,
            "token_audience" => Field::TokenAudience,
            "token_scopes" => Field::TokenScopes,
            "required_scopes" => Field::RequiredScopes,
            "token_expires" => Field::TokenExpires,
            "client_id" => Field::ClientId,
            "auth_method" => Field::AuthMethod,
            "mfa" => Field::Mfa,
            "user_agent" => Field::UserAgent,
            "session_id" => Field::SessionId,
            "trace_id" => Field::TraceId,
            "attributes" => Field::Attributes,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        FIELD_NAMES[self as usize]
    }
}

/// The top-level object split into the contract's fields and everything else.
pub(crate) struct RawFields<'a> {
    pub(crate) known: [Option<Json<'a>>; FIELD_COUNT],
    pub(crate) unknown: Vec<(Text<'a>, &'a RawValue)>,
    /// The first key seen twice; reported after the whole object has been read, so that a
    /// syntax error later in the message wins (it is the more fundamental problem).
    pub(crate) duplicate: Option<String>,
}

fn read_fields<'a>(text: &'a str, fields: &mut RawFields<'a>) -> Result<(), ContractError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer
        .deserialize_map(FieldsVisitor { fields })
        .and_then(|()| deserializer.end())
        .map_err(|error| ContractError::new(RejectKind::InvalidJson, error.to_string()))?;
    match &fields.duplicate {
        Some(key) => Err(ContractError::new(
            RejectKind::DuplicateKey,
            format!("key `{key}` appears more than once"),
        )),
        None => Ok(()),
    }
}

struct FieldsVisitor<'f, 'a> {
    fields: &'f mut RawFields<'a>,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fields = self.fields;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match Field::from_name(&key) {
                Some(field) => {
                    let value: Json<'de> = map.next_value()?;
                    let slot = &mut fields.known[field as usize];
                    if slot.is_some() && fields.duplicate.is_none() {
                        fields.duplicate = Some(key.into_owned());
                    }
                    *slot = Some(value);
                }
                None => {
                    let value: &'de RawValue = map.next_value()?;
                    fields.unknown.push((key, value));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn build_event<'a>(
    fields: &mut RawFields<'a>,
    now: Micros,
    limits: &ContractLimits,
) -> Result<Event<'a>, ContractError> {
    let mut take = |field: Field| match fields.known[field as usize].take() {
        Some(Json::Null) | None => None,
        Some(value) => Some(value),
    };

    let id = required_text(take(Field::Id), Field::Id)?;
    check_length(&id, Field::Id, ID_MAX_BYTES)?;
    let time = event_time(required(take(Field::Time), Field::Time)?, now, limits)?;
    let kind_name = required_text(take(Field::Kind), Field::Kind)?;
    let kind = Kind::parse(&kind_name).ok_or_else(|| {
        ContractError::new(
            RejectKind::UnknownKind,
            format!(
                "`kind` is `{}`, expected authn, token_issue, token_revoke or authz",
                shorten(&kind_name)
            ),
        )
    })?;
    let principal = required_text(take(Field::Principal), Field::Principal)?;
    check_length(&principal, Field::Principal, PRINCIPAL_MAX_BYTES)?;
    let principal_type = match optional_text(take(Field::PrincipalType), Field::PrincipalType)? {
        None => PrincipalType::infer(&principal),
        Some(name) => PrincipalType::parse(&name)
            .ok_or_else(|| invalid_value(Field::PrincipalType, &name, "user or service"))?,
    };
    let service = optional_text(take(Field::Service), Field::Service)?;
    let outcome = match optional_text(take(Field::Outcome), Field::Outcome)? {
        None if matches!(kind, Kind::Authn | Kind::Authz) => {
            return Err(ContractError::new(
                RejectKind::MissingField,
                format!("`outcome` is required for kind `{kind}`"),
            ))
        }
        None => None,
        Some(name) => {
            let expected = if kind == Kind::Authz {
                "allow or deny"
            } else {
                "success or failure"
            };
            match Outcome::parse(&name) {
                Some(outcome) if outcome.fits(kind) => Some(outcome),
                _ => {
                    return Err(ContractError::new(
                        RejectKind::InvalidValue,
                        format!(
                            "`outcome` is `{}`, expected {expected} for kind `{kind}`",
                            shorten(&name)
                        ),
                    ))
                }
            }
        }
    };
    let reason = optional_text(take(Field::Reason), Field::Reason)?;
    let source_ip = match optional_text(take(Field::SourceIp), Field::SourceIp)? {
        None => None,
        Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
            ContractError::new(
                RejectKind::InvalidSourceIp,
                format!(
                    "`source_ip` is `{}`, not an IPv4 or IPv6 address",
                    shorten(&text)
                ),
            )
        })?),
    };
    let source_service = optional_text(take(Field::SourceService), Field::SourceService)?;
    let mut target_service = optional_text(take(Field::TargetService), Field::TargetService)?;
    if kind == Kind::Authz && target_service.is_none() {
        target_service = service.clone();
    }
    let resource = optional_text(take(Field::Resource), Field::Resource)?;
    let action = optional_text(take(Field::Action), Field::Action)?;
    let mut token_id = optional_text(take(Field::TokenId), Field::TokenId)?;
    if kind == Kind::TokenIssue && token_id.is_none() {
        return Err(ContractError::new(
            RejectKind::MissingField,
            "`token_id` is required for kind `token_issue`",
        ));
    }
    let token_issuer = optional_text(take(Field::TokenIssuer), Field::TokenIssuer)?;
    let token_audience = optional_list(take(Field::TokenAudience), Field::TokenAudience, false)?;
    let token_scopes = optional_list(take(Field::TokenScopes), Field::TokenScopes, true)?;
    let required_scopes = optional_list(take(Field::RequiredScopes), Field::RequiredScopes, true)?;
    let token_expires = take(Field::TokenExpires)
        .map(|value| timestamp(value, Field::TokenExpires))
        .transpose()?;
    let client_id = optional_text(take(Field::ClientId), Field::ClientId)?;
    let auth_method = optional_text(take(Field::AuthMethod), Field::AuthMethod)?;
    let mfa = match take(Field::Mfa) {
        None => None,
        Some(Json::Bool(value)) => Some(value),
        Some(other) => return Err(wrong_type(Field::Mfa, "a boolean", &other)),
    };
    let user_agent = optional_text(take(Field::UserAgent), Field::UserAgent)?;
    let mut session_id = optional_text(take(Field::SessionId), Field::SessionId)?;
    let trace_id = optional_text(take(Field::TraceId), Field::TraceId)?;
    let mut attributes = attributes(take(Field::Attributes))?;
    for (key, value) in std::mem::take(&mut fields.unknown) {
        if nesting_depth(value.get()) > MAX_NESTING {
            return Err(ContractError::new(
                RejectKind::InvalidJson,
                format!(
                    "field `{}` nests deeper than {MAX_NESTING} levels",
                    shorten(&key)
                ),
            ));
        }
        attributes.push((key, raw_to_text(value)));
    }
    reject_duplicate_attributes(&attributes)?;

    redact::redact_event(&mut token_id, &mut session_id, &mut attributes);

    Ok(Event {
        id,
        time,
        kind,
        principal,
        principal_type,
        service,
        outcome,
        reason,
        source_ip,
        source_service,
        target_service,
        resource,
        action,
        token_id,
        token_issuer,
        token_audience,
        token_scopes,
        required_scopes,
        token_expires,
        client_id,
        auth_method,
        mfa,
        user_agent,
        session_id,
        trace_id,
        attributes,
    })
}

fn required(value: Option<Json<'_>>, field: Field) -> Result<Json<'_>, ContractError> {
    value.ok_or_else(|| {
        ContractError::new(
            RejectKind::MissingField,
            format!("required field `{}` is missing", field.name()),
        )
    })
}

fn required_text(value: Option<Json<'_>>, field: Field) -> Result<Text<'_>, ContractError> {
    match required(value, field)? {
        Json::Str(text) => Ok(text),
        other => Err(wrong_type(field, "a string", &other)),
    }
}

fn optional_text(value: Option<Json<'_>>, field: Field) -> Result<Option<Text<'_>>, ContractError> {
    match value {
        None => Ok(None),
        Some(Json::Str(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

/// A string or an array of strings; with `split_words` one string holds several
/// whitespace-separated items (the OAuth `scope` form).
fn optional_list(
    value: Option<Json<'_>>,
    field: Field,
    split_words: bool,
) -> Result<Option<Vec<Text<'_>>>, ContractError> {
    let expected = "a string or an array of strings";
    match value {
        None => Ok(None),
        Some(Json::Str(text)) if split_words => Ok(Some(split_whitespace(text))),
        Some(Json::Str(text)) => Ok(Some(vec![text])),
        Some(Json::List(items)) => items
            .into_iter()
            .map(|item| match item {
                Json::Str(text) => Ok(text),
                other => Err(wrong_type(field, expected, &other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(wrong_type(field, expected, &other)),
    }
}

fn split_whitespace(text: Text<'_>) -> Vec<Text<'_>> {
    match text {
        Cow::Borrowed(text) => text.split_whitespace().map(Cow::Borrowed).collect(),
        Cow::Owned(text) => text
            .split_whitespace()
            .map(|word| Cow::Owned(word.to_owned()))
            .collect(),
    }
}

fn attributes(value: Option<Json<'_>>) -> Result<Vec<(Text<'_>, Text<'_>)>, ContractError> {
    match value {
        None => Ok(Vec::new()),
        Some(Json::Object(entries)) => entries
            .into_iter()
            .map(|(key, value)| match value {
                Json::Str(text) => Ok((key, text)),
                other => Err(ContractError::new(
                    RejectKind::WrongType,
                    format!(
                        "`attributes.{}` must be a string, got {}",
                        shorten(&key),
                        other.type_name()
                    ),
                )),
            })
            .collect(),
        Some(other) => Err(wrong_type(
            Field::Attributes,
            "an object of strings",
            &other,
        )),
    }
}

/// Rejects an attribute key given twice, in `attributes` or as an unknown top-level field.
fn reject_duplicate_attributes(attributes: &[(Text<'_>, Text<'_>)]) -> Result<(), ContractError> {
    if attributes.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(attributes.len());
    for (key, _) in attributes {
        if !seen.insert(key.as_ref()) {
            return Err(ContractError::new(
                RejectKind::DuplicateKey,
                format!(
                    "key `{}` appears more than once (in `attributes` or at the top level)",
                    shorten(key)
                ),
            ));
        }
    }
    Ok(())
}

/// How deeply arrays and objects nest in a JSON text that is known to be valid.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An unknown field's value: strings as they are, anything else as its JSON text.
fn raw_to_text(value: &RawValue) -> Text<'_> {
    let raw = value.get();
    if raw.starts_with('"') {
        if let Ok(Json::Str(text)) = serde_json::from_str::<Json<'_>>(raw) {
            return text;
        }
    }
    Cow::Borrowed(raw)
}

fn event_time(
    value: Json<'_>,
    now: Micros,
    limits: &ContractLimits,
) -> Result<Micros, ContractError> {
    let time = timestamp(value, Field::Time)?;
    if time < 0 {
        return Err(ContractError::new(
            RejectKind::TimeOutOfRange,
            format!(
                "`time` {} lies before 1970",
                crate::time::format_micros(time)
            ),
        ));
    }
    if time > now.saturating_add(limits.max_future_skew) {
        return Err(ContractError::new(
            RejectKind::TimeOutOfRange,
            format!(
                "`time` {} lies more than {} s ahead of the ingest clock",
                crate::time::format_micros(time),
                limits.max_future_skew / 1_000_000
            ),
        ));
    }
    Ok(time)
}

/// An RFC 3339 string with offset, or integer Unix epoch milliseconds.
fn timestamp(value: Json<'_>, field: Field) -> Result<Micros, ContractError> {
    let expected = "an RFC 3339 string or integer epoch milliseconds";
    match value {
        Json::Str(text) => parse_rfc3339(&text).ok_or_else(|| {
            ContractError::new(
                RejectKind::InvalidTime,
                format!(
                    "`{}` is `{}`, not an RFC 3339 time with offset",
                    field.name(),
                    shorten(&text)
                ),
            )
        }),
        Json::Int(millis) => millis.checked_mul(MICROS_PER_MILLI).ok_or_else(|| {
            ContractError::new(
                RejectKind::TimeOutOfRange,
                format!("`{}` {millis} ms is out of range", field.name()),
            )
        }),
        Json::BigUint(millis) => Err(ContractError::new(
            RejectKind::TimeOutOfRange,
            format!("`{}` {millis} ms is out of range", field.name()),
        )),
        other => Err(wrong_type(field, expected, &other)),
    }
}

fn check_length(text: &str, field: Field, max: usize) -> Result<(), ContractError> {
    if text.is_empty() || text.len() > max {
        return Err(ContractError::new(
            RejectKind::InvalidValue,
            format!(
                "`{}` must be 1 to {max} bytes, got {} bytes",
                field.name(),
                text.len()
            ),
        ));
    }
    Ok(())
}

fn wrong_type(field: Field, expected: &str, got: &Json<'_>) -> ContractError {
    ContractError::new(
        RejectKind::WrongType,
        format!(
            "`{}` must be {expected}, got {}",
            field.name(),
            got.type_name()
        ),
    )
}

fn invalid_value(field: Field, value: &str, expected: &str) -> ContractError {
    ContractError::new(
        RejectKind::InvalidValue,
        format!(
            "`{}` is `{}`, expected {expected}",
            field.name(),
            shorten(value)
        ),
    )
}

/// At most 64 characters of a reporter's value, so an error message stays one short line.
pub(crate) fn shorten(value: &str) -> Cow<'_, str> {
    const MAX_CHARS: usize = 64;
    match value.char_indices().nth(MAX_CHARS) {
        None => Cow::Borrowed(value),
        Some((cut, _)) => Cow::Owned(format!("{}…", &value[..cut])),
    }
}

#[cfg(test)]
mod tests;
