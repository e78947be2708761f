//! Event ids as detector state keeps them: inline when short, so that a window entry
//! costs no allocation of its own.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes an id may have and still be kept inline (the enum is then 24 bytes, the size
/// of a `String`, with no heap block behind it).
const INLINE: usize = 22;

/// An event id: up to 22 bytes inline, longer ones on the heap.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum EventId {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl EventId {
    pub fn new(id: &str) -> Self {
        if id.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            EventId::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            EventId::Heap(id.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            EventId::Inline { len, bytes } => &bytes[..usize::from(*len)],
            EventId::Heap(id) => id.as_bytes(),
        }
    }

    /// Whether this is the id `id` (no UTF-8 check needed to compare bytes).
    pub fn is(&self, id: &str) -> bool {
        self.as_bytes() == id.as_bytes()
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Inline bytes were copied from a `&str` whole, so they are valid UTF-8.
            EventId::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            EventId::Heap(id) => id,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
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
        assert_eq!(std::mem::size_of::<EventId>(), 24);
        assert_eq!(std::mem::size_of::<Option<EventId>>(), 24);
        let short = EventId::new("e-1");
        assert!(matches!(short, EventId::Inline { .. }));
        assert!(short.is("e-1") && !short.is("e-12"));
        let long = "0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5f";
        let id = EventId::new(long);
        assert_eq!(id.as_str(), long);
        let bytes = postcard::to_allocvec(&short).unwrap();
        assert_eq!(postcard::from_bytes::<EventId>(&bytes).unwrap(), short);
        assert_eq!(EventId::new("ü").to_string(), "ü");
    }
}
