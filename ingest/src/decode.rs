//! One message through its source's format: an event, a reject with its reason, or
//! nothing to keep. The pipeline thread calls it inline, or a pool of decoder threads
//! ([`crate::decode_pool`]) calls it ahead of the pipeline thread; both give the same
//! outcome for the same message and clock.

use authtrail_model::adapt::{DecodeContext, Decoded};
use authtrail_model::{ContractError, ContractLimits, Event, Micros, RejectKind};

use crate::formats::SourceFormats;
use crate::message::RawMessage;

/// The ingest clock: microseconds since the Unix epoch, read once per message for its
/// `ingest_time` and the contract's future-skew check.
pub type Clock = fn() -> Micros;

/// What decoding made of one message.
// Most messages are events: boxing the event would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome<'a> {
    /// An event of the contract, borrowing from the message where it needs no copy.
    Event(Event<'a>),
    /// Breaks the contract: kept in `rejects` with this reason.
    Rejected(ContractError),
    /// A native record no rule maps, from a source that skips those: counted, not kept.
    SkipUnmapped,
    /// Not an event by its format's own rules: counted, not kept.
    NotEvent,
}

impl Outcome<'_> {
    /// The same outcome owning its text, to move to another thread.
    pub fn into_owned(self) -> Outcome<'static> {
        match self {
            Outcome::Event(event) => Outcome::Event(event.into_owned()),
            Outcome::Rejected(error) => Outcome::Rejected(error),
            Outcome::SkipUnmapped => Outcome::SkipUnmapped,
            Outcome::NotEvent => Outcome::NotEvent,
        }
    }
}

/// A message's outcome and the ingest time it was decoded at.
pub(crate) struct Decoding<'a> {
    pub now: Micros,
    pub outcome: Outcome<'a>,
}

/// Decodes `message` in its source's format at ingest time `now`.
pub(crate) fn decode<'a>(
    message: &'a RawMessage,
    formats: &'a SourceFormats,
    limits: ContractLimits,
    now: Micros,
) -> Decoding<'a> {
    let outcome = match message.payload.as_deref() {
        None => Outcome::Rejected(ContractError::new(
            RejectKind::InvalidJson,
            "message has no value (a tombstone), expected one JSON object",
        )),
        Some(_) if message.size > limits.max_message_bytes => {
            Outcome::Rejected(ContractError::new(
                RejectKind::TooLarge,
                format!(
                    "message of {} bytes exceeds the limit of {} bytes",
                    message.size, limits.max_message_bytes
                ),
            ))
        }
        Some(bytes) => {
            let format = formats.of(&message.source);
            let context = DecodeContext {
                now,
                limits,
                envelope_time: message.timestamp,
            };
            match format.format.decode(bytes, &context) {
                Decoded::Event(event) => Outcome::Event(event),
                Decoded::Rejected(error)
                    if error.kind == RejectKind::Unmapped && format.skip_unmapped =>
                {
                    Outcome::SkipUnmapped
                }
                Decoded::Rejected(error) => Outcome::Rejected(error),
                Decoded::Skipped(_) => Outcome::NotEvent,
            }
        }
    };
    Decoding { now, outcome }
}
