//! Why a message was rejected.

use std::fmt;

/// The class of a contract violation; stored in the `rejects` table's `error_kind`
/// column so rejects can be counted and grouped by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Larger than the configured message size limit.
    TooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not exactly one JSON object (syntax error, trailing data, another JSON type,
    /// nesting deeper than the parser allows).
    InvalidJson,
    /// A key that appears twice in the object.
    DuplicateKey,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// `kind` is not one of the contract's kinds.
    UnknownKind,
    /// A field has the right type but a value the contract does not allow.
    InvalidValue,
    /// `time` or `token_expires` does not parse.
    InvalidTime,
    /// `time` lies before 1970 or too far in the future.
    TimeOutOfRange,
    /// `source_ip` is not an IPv4 or IPv6 address.
    InvalidSourceIp,
    /// A native record (an adapted format) of a type no rule of its mapping maps; the
    /// message names the type.
    Unmapped,
}

impl RejectKind {
    /// Every class, in a fixed order (metrics and docs list them this way).
    pub const ALL: [RejectKind; 12] = [
        RejectKind::TooLarge,
        RejectKind::InvalidUtf8,
        RejectKind::InvalidJson,
        RejectKind::DuplicateKey,
        RejectKind::MissingField,
        RejectKind::WrongType,
        RejectKind::UnknownKind,
        RejectKind::InvalidValue,
        RejectKind::InvalidTime,
        RejectKind::TimeOutOfRange,
        RejectKind::InvalidSourceIp,
        RejectKind::Unmapped,
    ];

    /// The name stored in the lake.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::TooLarge => "too_large",
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::InvalidJson => "invalid_json",
            RejectKind::DuplicateKey => "duplicate_key",
            RejectKind::MissingField => "missing_field",
            RejectKind::WrongType => "wrong_type",
            RejectKind::UnknownKind => "unknown_kind",
            RejectKind::InvalidValue => "invalid_value",
            RejectKind::InvalidTime => "invalid_time",
            RejectKind::TimeOutOfRange => "time_out_of_range",
            RejectKind::InvalidSourceIp => "invalid_source_ip",
            RejectKind::Unmapped => "unmapped",
        }
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that breaks the event contract: its class and a one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ContractError {
    pub kind: RejectKind,
    pub message: String,
}

impl ContractError {
    /// A violation of class `kind` explained by `message`.
    pub fn new(kind: RejectKind, message: impl Into<String>) -> Self {
        ContractError {
            kind,
            message: message.into(),
        }
    }
}
