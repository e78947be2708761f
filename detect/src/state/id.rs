//! Event ids as detector state keeps them: 16 bytes, with ids of up to 15 bytes inline
//! and canonical UUIDs (the usual production id) in a 17-byte heap block instead of
//! their 36 characters, so that a window entry (time and id) is 24 bytes.
//!
//! Ids are reported in alerts and hashed into alert ids, so every form gives back the
//! exact string it was made from.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::state::packed::{get_varint, put_varint, take, Bytes, Pack};
use crate::state::window::Timed;

/// Bytes an id may have and still be kept inline.
const INLINE: usize = 15;
/// Characters of a UUID in its canonical text form.
const UUID_TEXT: usize = 36;
/// Where the canonical form has its dashes.
const DASHES: [usize; 4] = [8, 13, 18, 23];

/// The length of an inline id. An enum of 16 values rather than a `u8`: its other 240
/// values are free for the compiler to tell the heap forms apart, so `EventId` needs
/// no tag byte of its own and stays 16 bytes.
#[rustfmt::skip]
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Len { L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15 }

#[rustfmt::skip]
const LENS: [Len; INLINE + 1] = [
    Len::L0, Len::L1, Len::L2, Len::L3, Len::L4, Len::L5, Len::L6, Len::L7, Len::L8,
    Len::L9, Len::L10, Len::L11, Len::L12, Len::L13, Len::L14, Len::L15,
];

/// A UUID id: its 16 bytes and whether its hex digits were upper case.
#[derive(Clone, PartialEq, Eq)]
pub struct Uuid {
    bytes: [u8; 16],
    upper: bool,
}

/// An event id: up to 15 bytes inline, a canonical UUID as its 16 bytes, any other
/// (up to the contract's 128 bytes) as its string. Public for state kept next to the
/// detectors (the Sigma rules' correlation windows); its variants are its layout.
#[derive(Clone, PartialEq, Eq)]
pub enum EventId {
    Inline { len: Len, bytes: [u8; INLINE] },
    Uuid(Box<Uuid>),
    // Boxed twice: a `Box<str>` is 16 bytes and would make every id 24.
    Long(Box<Box<str>>),
}

const _: () = assert!(std::mem::size_of::<EventId>() == 16);

fn hex_value(digit: u8) -> Option<(u8, Option<bool>)> {
    match digit {
        b'0'..=b'9' => Some((digit - b'0', None)),
        b'a'..=b'f' => Some((digit - b'a' + 10, Some(false))),
        b'A'..=b'F' => Some((digit - b'A' + 10, Some(true))),
        _ => None,
    }
}

impl Uuid {
    /// `id` as a UUID if it is one in canonical form with hex digits of one case (so
    /// that [`Uuid::text`] gives it back byte for byte).
    fn parse(id: &str) -> Option<Uuid> {
        let text = id.as_bytes();
        if text.len() != UUID_TEXT || DASHES.iter().any(|&at| text[at] != b'-') {
            return None;
        }
        let mut bytes = [0; 16];
        let mut case = None;
        let digits = text
            .iter()
            .enumerate()
            .filter(|(at, _)| !DASHES.contains(at));
        for (i, (_, &digit)) in digits.enumerate() {
            let (value, upper) = hex_value(digit)?;
            if upper.is_some() {
                if case.is_some_and(|case| Some(case) != upper) {
                    return None;
                }
                case = upper;
            }
            bytes[i / 2] |= value << (4 * (1 - i % 2));
        }
        Some(Uuid {
            bytes,
            upper: case.unwrap_or(false),
        })
    }

    fn text(&self) -> [u8; UUID_TEXT] {
        let digits: &[u8; 16] = if self.upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut text = [b'-'; UUID_TEXT];
        let places = (0..UUID_TEXT).filter(|at| !DASHES.contains(at));
        for (i, at) in places.enumerate() {
            let nibble = (self.bytes[i / 2] >> (4 * (1 - i % 2))) & 0xF;
            text[at] = digits[usize::from(nibble)];
        }
        text
    }
}

impl EventId {
    pub fn new(id: &str) -> Self {
        if id.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            return EventId::Inline {
                len: LENS[id.len()],
                bytes,
            };
        }
        match Uuid::parse(id) {
            Some(uuid) => EventId::Uuid(Box::new(uuid)),
            None => EventId::Long(Box::new(id.into())),
        }
    }

    /// Calls `f` with the id's text (a UUID's is written out on the stack).
    fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            // Inline bytes were copied from a `&str` whole, and a UUID's text is ASCII,
            // so both are valid UTF-8.
            EventId::Inline { len, bytes } => {
                f(std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default())
            }
            EventId::Uuid(uuid) => f(std::str::from_utf8(&uuid.text()).unwrap_or_default()),
            EventId::Long(id) => f(id),
        }
    }

    /// Whether this is the id `id`.
    pub fn is(&self, id: &str) -> bool {
        match self {
            EventId::Inline { len, bytes } => &bytes[..*len as usize] == id.as_bytes(),
            EventId::Uuid(uuid) => uuid.text() == id.as_bytes(),
            EventId::Long(long) => ***long == *id,
        }
    }
}

/// Its text's length plus two, then the text; or 0 (lower case) or 1 (upper case) and a
/// UUID's 16 bytes: 9 bytes for an id like `e1234567`, 17 for a UUID, with no heap
/// block of its own.
impl Pack for EventId {
    fn pack(&self, _: &[Timed<EventId>], out: &mut Bytes) {
        self.pack_with(0, 1, out);
    }

    fn unpack(input: &mut &[u8], _: &[Timed<EventId>]) -> Self {
        EventId::unpack_with(input, 1).0
    }
}

impl EventId {
    /// Packs the id (see `Pack`) with `extra` (below `radix`) folded into its first
    /// varint as `tag * radix + extra`: for `radix` up to 4, still one byte for a text
    /// id of up to 29 bytes.
    pub(crate) fn pack_with(&self, extra: u64, radix: u64, out: &mut Bytes) {
        match self {
            EventId::Uuid(uuid) => {
                put_varint(out, u64::from(uuid.upper) * radix + extra);
                out.extend_from_slice(&uuid.bytes);
            }
            _ => self.with_str(|text| {
                put_varint(out, (text.len() as u64 + 2) * radix + extra);
                out.extend_from_slice(text.as_bytes());
            }),
        }
    }

    /// Reads what [`pack_with`](EventId::pack_with) wrote with the same `radix`: the
    /// id and the `extra`.
    pub(crate) fn unpack_with(input: &mut &[u8], radix: u64) -> (Self, u64) {
        let first = get_varint(input);
        let id = match first / radix {
            tag @ (0 | 1) => EventId::Uuid(Box::new(Uuid {
                bytes: take(input, 16).try_into().expect("16 bytes"),
                upper: tag == 1,
            })),
            len => {
                // Packed from a `&str` whole: valid UTF-8. `new` gives the same form
                // again (an id it did not take for a UUID then, it does not now).
                let text = take(input, len as usize - 2);
                EventId::new(std::str::from_utf8(text).unwrap_or_default())
            }
        };
        (id, first % radix)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|id| f.write_str(id))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|id| fmt::Debug::fmt(id, f))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|id| serializer.serialize_str(id))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(EventId::new(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_inline_and_long_ones_round_trip() {
        assert_eq!(std::mem::size_of::<EventId>(), 16);
        assert_eq!(std::mem::size_of::<Option<EventId>>(), 16);
        let short = EventId::new("e-1");
        assert!(matches!(short, EventId::Inline { .. }));
        assert!(short.is("e-1") && !short.is("e-12"));
        let fifteen = EventId::new("123456789012345");
        assert!(matches!(fifteen, EventId::Inline { .. }));
        assert_eq!(fifteen.to_string(), "123456789012345");
        let long = "evt-2026-11-25T08:00:00.123456Z-gateway-eu-west-1";
        let id = EventId::new(long);
        assert!(matches!(id, EventId::Long(_)));
        assert!(id.is(long) && !id.is("evt"));
        assert_eq!(id.to_string(), long);
        for id in [short, fifteen, id] {
            let bytes = postcard::to_allocvec(&id).unwrap();
            assert_eq!(postcard::from_bytes::<EventId>(&bytes).unwrap(), id);
        }
        assert_eq!(EventId::new("ü").to_string(), "ü");
        assert_eq!(EventId::new("").to_string(), "");
    }

    #[test]
    fn uuids_are_kept_as_bytes_and_give_back_their_exact_text() {
        for text in [
            "0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5f",
            "0190B6E4-8C1A-7D3E-9F00-0A1B2C3D4E5F",
            "01234567-8901-2345-6789-012345678901",
        ] {
            let id = EventId::new(text);
            assert!(matches!(id, EventId::Uuid(_)), "{text}");
            assert_eq!(id.to_string(), text);
            assert_eq!(format!("{id:?}"), format!("{text:?}"));
            assert!(id.is(text));
            let bytes = postcard::to_allocvec(&id).unwrap();
            assert_eq!(bytes, postcard::to_allocvec(text).unwrap());
            assert_eq!(postcard::from_bytes::<EventId>(&bytes).unwrap(), id);
        }
        let lower = EventId::new("0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5f");
        assert!(!lower.is("0190B6E4-8C1A-7D3E-9F00-0A1B2C3D4E5F"));
        // Mixed case, a misplaced dash or a non-hex digit would not come back exactly:
        // kept as strings.
        for text in [
            "0190b6e4-8c1a-7d3e-9f00-0A1B2C3D4E5F",
            "0190b6e48-c1a-7d3e-9f00-0a1b2c3d4e5f",
            "0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5g",
            "{190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5}",
        ] {
            let id = EventId::new(text);
            assert!(matches!(id, EventId::Long(_)), "{text}");
            assert_eq!(id.to_string(), text);
        }
    }
}
