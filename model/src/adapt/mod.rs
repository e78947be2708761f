//! Adapters: identity logs as real systems write them (Okta, Auth0, Keycloak, Kubernetes
//! audit, OPA decision logs, OCSF), or a team's own JSON, turned into contract events.
//!
//! One engine does it: a [mapping file](mapping) per format says which native records are
//! which kind of event and where each contract field comes from. The built-in formats are
//! mapping files shipped in `model/formats/`; a custom format is the same kind of file.
//! The mapped fields then go through the contract's own checks ([`crate::parse_event`]'s),
//! so an adapted event is held to exactly the rules a contract message is.
//!
//! What the engine adds to the contract: the native id becomes the event id (a digest of
//! the record's bytes when it has none), native fields without a column are kept in
//! `attributes` under their native path, with `source_format` and `source_type`; lenient
//! times (`2024-04-02 19:17:37.621` is UTC, `+0000` offsets, epoch ms); records of a type
//! no rule maps are rejects of kind `unmapped`.

mod mapping;
mod path;

use std::borrow::Cow;

use sha2::{Digest, Sha256};

pub use mapping::MappingError;
use mapping::{Action, Mapping};

use crate::error::{ContractError, RejectKind};
use crate::event::{Event, Kind, Micros, Text};
use crate::json::Json;
use crate::parse::{build_event, parse_event, shorten, ContractLimits, Field, RawFields};
use crate::time::{parse_rfc3339, MICROS_PER_MILLI};

/// The contract's own format, the default of every source.
pub const CONTRACT_FORMAT: &str = "authtrail";

/// Every built-in format, the contract first.
pub const BUILTIN_FORMATS: [&str; 7] = [
    CONTRACT_FORMAT,
    "okta",
    "auth0",
    "keycloak",
    "k8s_audit",
    "opa",
    "ocsf",
];

/// The mapping files of the built-in native formats.
const BUILTIN_MAPPINGS: [(&str, &str); 6] = [
    ("okta", include_str!("../../formats/okta.toml")),
    ("auth0", include_str!("../../formats/auth0.toml")),
    ("keycloak", include_str!("../../formats/keycloak.toml")),
    ("k8s_audit", include_str!("../../formats/k8s_audit.toml")),
    ("opa", include_str!("../../formats/opa.toml")),
    ("ocsf", include_str!("../../formats/ocsf.toml")),
];

/// The Kafka topic a format's records go to unless configured otherwise (the collector
/// produces there; `authtrail run` consumes it with that format).
pub fn default_topic(format: &str) -> String {
    match format {
        CONTRACT_FORMAT => "auth-events".to_owned(),
        "k8s_audit" => "k8s-audit".to_owned(),
        "opa" => "opa-decisions".to_owned(),
        other => format!("{other}-events"),
    }
}

/// Attribute naming the format an event was adapted from.
pub const SOURCE_FORMAT_ATTRIBUTE: &str = "source_format";
/// Attribute holding the native event type (`user.session.start`, `LOGIN_ERROR`, …).
pub const SOURCE_TYPE_ATTRIBUTE: &str = "source_type";
/// Attribute set when the event time came from the envelope (the Kafka message's
/// timestamp), because the record carried none.
pub const TIME_SOURCE_ATTRIBUTE: &str = "time_source";

/// How a source's records are read: the contract, or a mapping.
#[derive(Debug)]
pub struct Format {
    engine: Engine,
}

#[derive(Debug)]
enum Engine {
    Contract,
    Mapping(Box<Mapping>),
}

/// What decoding needs besides the record.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext {
    /// The ingest clock, for the future-skew check.
    pub now: Micros,
    pub limits: ContractLimits,
    /// The time of the record's envelope (the Kafka message timestamp), used only when a
    /// record has no time field at all (Keycloak's JSON listeners write none).
    pub envelope_time: Option<Micros>,
}

/// One record's fate.
// Returned by value like `parse_event`'s result: boxing the event would cost an
// allocation per record on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded<'a> {
    Event(Event<'a>),
    /// Breaks the contract, or is of a type no rule maps (`RejectKind::Unmapped`).
    Rejected(ContractError),
    /// Not an event by the format's own rules (a repeated stage of one request): counted,
    /// not kept.
    Skipped(&'a str),
}

impl Format {
    /// The event contract itself.
    pub fn contract() -> Format {
        Format {
            engine: Engine::Contract,
        }
    }

    /// A built-in format by name (`authtrail`, `okta`, …).
    pub fn builtin(name: &str) -> Option<Format> {
        if name == CONTRACT_FORMAT {
            return Some(Format::contract());
        }
        let (_, text) = BUILTIN_MAPPINGS.iter().find(|(n, _)| *n == name)?;
        let mapping = Mapping::parse(text, &format!("built-in {name}"))
            .expect("built-in mappings parse (tested)");
        Some(Format {
            engine: Engine::Mapping(Box::new(mapping)),
        })
    }

    /// A custom format from a mapping file's text; `origin` names it in errors.
    pub fn from_mapping(text: &str, origin: &str) -> Result<Format, MappingError> {
        Ok(Format {
            engine: Engine::Mapping(Box::new(Mapping::parse(text, origin)?)),
        })
    }

    /// A built-in format's name, or the path of a mapping file (ends in `.toml`).
    pub fn load(name_or_file: &str) -> Result<Format, MappingError> {
        if let Some(format) = Format::builtin(name_or_file) {
            return Ok(format);
        }
        if !name_or_file.ends_with(".toml") {
            return Err(MappingError {
                origin: name_or_file.to_owned(),
                message: format!(
                    "not a built-in format ({}) nor a mapping file (*.toml)",
                    BUILTIN_FORMATS.join(", ")
                ),
            });
        }
        let text = std::fs::read_to_string(name_or_file).map_err(|error| MappingError {
            origin: name_or_file.to_owned(),
            message: error.to_string(),
        })?;
        Format::from_mapping(&text, name_or_file)
    }

    /// The format's name (`authtrail` for the contract).
    pub fn name(&self) -> &str {
        match &self.engine {
            Engine::Contract => CONTRACT_FORMAT,
            Engine::Mapping(mapping) => &mapping.name,
        }
    }

    /// Whether this is the contract itself (records need no mapping).
    pub fn is_contract(&self) -> bool {
        matches!(self.engine, Engine::Contract)
    }

    /// Decodes one record: a contract message, or a native record through the mapping.
    pub fn decode<'a>(&'a self, record: &'a [u8], context: &DecodeContext) -> Decoded<'a> {
        match &self.engine {
            Engine::Contract => match parse_event(record, context.now, &context.limits) {
                Ok(event) => Decoded::Event(event),
                Err(error) => Decoded::Rejected(error),
            },
            Engine::Mapping(mapping) => {
                adapt_record(mapping, record, context).unwrap_or_else(Decoded::Rejected)
            }
        }
    }
}

/// The event a native record maps to, or the skip rule that applies.
fn adapt_record<'a>(
    mapping: &'a Mapping,
    record: &'a [u8],
    context: &DecodeContext,
) -> Result<Decoded<'a>, ContractError> {
    let limits = &context.limits;
    if record.len() > limits.max_message_bytes {
        return Err(ContractError::new(
            RejectKind::TooLarge,
            format!(
                "record of {} bytes exceeds the limit of {} bytes",
                record.len(),
                limits.max_message_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(record).map_err(|error| {
        ContractError::new(RejectKind::InvalidUtf8, format!("not valid UTF-8: {error}"))
    })?;
    let native: Json<'a> = serde_json::from_str(text)
        .map_err(|error| ContractError::new(RejectKind::InvalidJson, error.to_string()))?;
    if !matches!(native, Json::Object(_)) {
        return Err(ContractError::new(
            RejectKind::InvalidJson,
            format!(
                "a {} record is one JSON object, got {}",
                mapping.name,
                native.type_name()
            ),
        ));
    }
    let native_type = mapping
        .eval(&mapping.native_type, &native)
        .and_then(|read| mapping::scalar_text(&read.value).map(Cow::into_owned));
    let Some(rule) = mapping.rule_for(&native) else {
        return Err(ContractError::new(
            RejectKind::Unmapped,
            format!(
                "{} type `{}` has no mapping",
                mapping.name,
                shorten(native_type.as_deref().unwrap_or("(none)"))
            ),
        ));
    };
    let (kind, fields) = match &rule.action {
        Action::Skip(reason) => return Ok(Decoded::Skipped(reason)),
        Action::Map { kind, fields } => (*kind, fields),
    };

    let mut consumed: Vec<Cow<'a, str>> = Vec::new();
    let mut known: [Option<Json<'a>>; crate::parse::FIELD_COUNT] = Default::default();

    let id = match mapping
        .id
        .as_ref()
        .and_then(|expr| mapping.eval(expr, &native))
    {
        Some(read) => {
            consumed.extend(read.consumed);
            read.value
        }
        // No native id: a digest of the record, so the same record shipped twice is the
        // same event.
        None => Json::Str(Cow::Owned(format!(
            "sha256:{}",
            &hex::encode(Sha256::digest(record))[..32]
        ))),
    };
    known[Field::Id as usize] = Some(id);

    let mut time_from_envelope = false;
    let time = match mapping.eval(&mapping.time, &native) {
        Some(read) => {
            let time = lenient_time(&read.value).ok_or_else(|| {
                ContractError::new(
                    RejectKind::InvalidTime,
                    format!(
                        "{} {} is {}, not a time (RFC 3339, `YYYY-MM-DD hh:mm:ss[.f]` in UTC, or epoch ms)",
                        mapping.name,
                        mapping.time.describe(),
                        describe_value(&read.value)
                    ),
                )
            })?;
            consumed.extend(read.consumed);
            time
        }
        None => {
            time_from_envelope = true;
            context.envelope_time.ok_or_else(|| {
                ContractError::new(
                    RejectKind::MissingField,
                    format!(
                        "`time` is missing: {} {} absent and no message timestamp",
                        mapping.name,
                        mapping.time.describe()
                    ),
                )
            })?
        }
    };
    // The contract's checks see the time in milliseconds (its integer form); the event
    // keeps the microseconds (set below), without a round trip through text.
    known[Field::Time as usize] = Some(Json::Int(time.div_euclid(MICROS_PER_MILLI)));
    known[Field::Kind as usize] = Some(Json::Str(Cow::Borrowed(kind.as_str())));

    for (field, expr) in fields {
        if let Some(read) = mapping.eval(expr, &native) {
            consumed.extend(read.consumed);
            known[*field as usize] = Some(read.value);
        }
    }
    let required: &[Field] = match kind {
        Kind::Authn | Kind::Authz => &[Field::Principal, Field::Outcome],
        Kind::TokenIssue => &[Field::Principal, Field::TokenId],
        Kind::TokenRevoke => &[Field::Principal],
    };
    for field in required {
        if known[*field as usize].is_none() {
            return Err(ContractError::new(
                RejectKind::MissingField,
                format!(
                    "`{}` is required for kind `{kind}`: {} {} absent",
                    field.name(),
                    mapping.name,
                    rule.describe(*field)
                        .unwrap_or_else(|| "(not mapped)".into())
                ),
            ));
        }
    }

    // Ours first, so a native field of the same name (`source_format` at the top of a
    // record) is left out rather than made a duplicate attribute: ours win.
    let mut ours: Vec<(Text<'a>, Json<'a>)> = vec![(
        Cow::Borrowed(SOURCE_FORMAT_ATTRIBUTE),
        Json::Str(Cow::Borrowed(&mapping.name)),
    )];
    if let Some(native_type) = native_type {
        ours.push((
            Cow::Borrowed(SOURCE_TYPE_ATTRIBUTE),
            Json::Str(Cow::Owned(native_type)),
        ));
    }
    if time_from_envelope {
        ours.push((
            Cow::Borrowed(TIME_SOURCE_ATTRIBUTE),
            Json::Str(Cow::Borrowed("envelope")),
        ));
    }
    let mut attributes: Vec<(Text<'a>, Json<'a>)> = Vec::new();
    flatten(&native, &mut String::new(), &mut |name, value| {
        let taken = consumed.iter().any(|c| c == name) || ours.iter().any(|(n, _)| n == name);
        if !taken && !mapping.drops(name) {
            attributes.push((Cow::Owned(name.to_owned()), Json::Str(value)));
        }
    });
    attributes.append(&mut ours);
    known[Field::Attributes as usize] = Some(Json::Object(attributes));

    let mut fields = RawFields {
        known,
        unknown: Vec::new(),
        duplicate: None,
    };
    let mut event = build_event(&mut fields, context.now, limits)?;
    event.time = time;
    Ok(Decoded::Event(event))
}

/// Calls `emit` with the dotted path and text of every leaf of `value`: strings as they
/// are, numbers and booleans as their JSON text, arrays whole as JSON text (their members
/// have no stable names); nulls and empty objects are nothing to keep.
fn flatten<'a>(value: &Json<'a>, path: &mut String, emit: &mut dyn FnMut(&str, Text<'a>)) {
    match value {
        Json::Null => {}
        Json::Object(entries) => {
            for (key, child) in entries {
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                flatten(child, path, emit);
                path.truncate(length);
            }
        }
        Json::Str(text) => emit(path, text.clone()),
        Json::List(_) => {
            let mut text = String::new();
            write_json(value, &mut text);
            emit(path, Cow::Owned(text));
        }
        scalar => {
            if let Some(text) = mapping::scalar_text(scalar) {
                emit(path, Cow::Owned(text.into_owned()));
            }
        }
    }
}

/// Compact JSON text of a value.
fn write_json(value: &Json<'_>, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Str(text) => out.push_str(&serde_json::to_string(text.as_ref()).unwrap_or_default()),
        Json::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(entries) => {
            out.push('{');
            for (index, (key, item)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key.as_ref()).unwrap_or_default());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&mapping::scalar_text(scalar).unwrap_or_default()),
    }
}

/// A value as an error message shows it: a short string in backticks, else its type.
fn describe_value(value: &Json<'_>) -> String {
    match value {
        Json::Str(text) => format!("`{}`", shorten(text)),
        other => other.type_name().to_owned(),
    }
}

/// The time forms identity logs really use: RFC 3339; the same with a space for `T`,
/// without an offset (UTC: Panther and many exporters normalise so) or with a `+0000`
/// offset; epoch milliseconds as a number or a string of digits.
pub fn lenient_time_text(text: &str) -> Option<Micros> {
    if let Some(time) = parse_rfc3339(text) {
        return Some(time);
    }
    let text = text.trim();
    if !text.is_empty() && text.len() <= 15 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok()?.checked_mul(MICROS_PER_MILLI);
    }
    // `YYYY-MM-DD hh:mm:ss[.fraction][offset]`: at least the date, a separator, the time.
    if text.len() < 19 || !text.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let separator = rest.as_bytes()[0];
    if separator != b' ' && separator != b'T' {
        return None;
    }
    let clock = &rest[1..];
    let offset_at = clock[8..]
        .find(['Z', 'z', '+', '-'])
        .map(|at| at + 8)
        .unwrap_or(clock.len());
    let (clock, offset) = clock.split_at(offset_at);
    let offset = match offset {
        "" => "Z".to_owned(),
        // `+0000` → `+00:00`
        o if o.len() == 5 && o[1..].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}:{}", &o[..3], &o[3..])
        }
        o => o.to_owned(),
    };
    parse_rfc3339(&format!("{date}T{clock}{offset}"))
}

fn lenient_time(value: &Json<'_>) -> Option<Micros> {
    match value {
        Json::Str(text) => lenient_time_text(text),
        Json::Int(millis) => millis.checked_mul(MICROS_PER_MILLI),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
