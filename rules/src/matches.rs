//! The matches one correlation group keeps, encoded in one block of bytes of exactly
//! their size.
//!
//! Hundreds of thousands of groups hold a few matches each; fixed 32-byte records (time,
//! a 16-byte id, an 8-byte tag) spent most of their bytes on widths few values need.
//! Here, per match, oldest first: its time as the difference to the previous match's
//! time (the first one's to zero), zigzag LEB128, so a few bytes; the event id's length
//! (LEB128) and its bytes as they came; and the tag in the form its correlation needs
//! ([`Tagging`]). A group is rebuilt whole on each change, which is what the fixed
//! records did too (one exact block per group), so no spare capacity is ever held.

use authtrail_model::Micros;

/// What a correlation's matches carry besides time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    /// Nothing (`event_count` counts matches only).
    None,
    /// The correlated rule's position (`temporal`, `temporal_ordered`), LEB128.
    Position,
    /// An 8-byte hash of the counted value (`value_count`).
    Hash,
}

/// One match, decoded: its id is borrowed from the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    pub time: Micros,
    pub id: &'a [u8],
    pub tag: u64,
}

/// A group's matches, oldest first (see the module's comment for the encoding).
#[derive(Debug, Default, Clone)]
pub struct Matches(Box<[u8]>);

impl Matches {
    /// `matches` (oldest first) in one block, built in `scratch` and copied out at its
    /// exact size.
    pub fn encode<'a>(
        matches: impl IntoIterator<Item = Match<'a>>,
        tagging: Tagging,
        scratch: &mut Vec<u8>,
    ) -> Matches {
        scratch.clear();
        let mut previous: Micros = 0;
        for m in matches {
            put(scratch, m, previous, tagging);
            previous = m.time;
        }
        Matches(scratch.as_slice().into())
    }

    /// Adds `new` after the block's last match, whose time is `last` (the caller knows
    /// `new` is not older): `new` is encoded in `scratch` and the block grown by exactly
    /// its bytes, in place when the allocator has room after it (no copy of the block).
    pub fn push(&mut self, new: Match<'_>, last: Micros, tagging: Tagging, scratch: &mut Vec<u8>) {
        scratch.clear();
        put(scratch, new, last, tagging);
        let mut bytes = std::mem::take(&mut self.0).into_vec();
        // Exact, so the boxed slice below takes the buffer as it is.
        bytes.reserve_exact(scratch.len());
        bytes.extend_from_slice(scratch);
        self.0 = bytes.into_boxed_slice();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of the block.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.0.len()
    }

    /// The matches, oldest first. `tagging` must be the one they were encoded with.
    pub fn iter(&self, tagging: Tagging) -> Iter<'_> {
        Iter {
            bytes: &self.0,
            time: 0,
            tagging,
        }
    }
}

/// Decodes a block's matches in order.
#[derive(Clone)]
pub struct Iter<'a> {
    bytes: &'a [u8],
    time: Micros,
    tagging: Tagging,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Match<'a>;

    fn next(&mut self) -> Option<Match<'a>> {
        if self.bytes.is_empty() {
            return None;
        }
        // Blocks are only ever written by `encode`: a short one cannot occur, and would
        // end the iteration rather than panic.
        let delta = unzigzag(take_varint(&mut self.bytes)?);
        self.time = self.time.wrapping_add(delta);
        let len = usize::try_from(take_varint(&mut self.bytes)?).ok()?;
        let id = take(&mut self.bytes, len)?;
        let tag = match self.tagging {
            Tagging::None => 0,
            Tagging::Position => take_varint(&mut self.bytes)?,
            Tagging::Hash => u64::from_le_bytes(take(&mut self.bytes, 8)?.try_into().ok()?),
        };
        Some(Match {
            time: self.time,
            id,
            tag,
        })
    }
}

/// Encodes `m` after a match at `previous`.
fn put(out: &mut Vec<u8>, m: Match<'_>, previous: Micros, tagging: Tagging) {
    put_varint(out, zigzag(m.time.wrapping_sub(previous)));
    put_varint(out, m.id.len() as u64);
    out.extend_from_slice(m.id);
    match tagging {
        Tagging::None => {}
        Tagging::Position => put_varint(out, m.tag),
        Tagging::Hash => out.extend_from_slice(&m.tag.to_le_bytes()),
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if bytes.len() < len {
        return None;
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_what_it_encoded_in_every_tagging() {
        let ids = ["e1", "", "0c5e3a4f-9d2b-4e1a-8f00-123456789abc", "ü-id"];
        let times = [i64::MIN, -5, 0, 1_795_456_800_000_000, i64::MAX];
        let tags = [0, 1, 127, 128, u64::MAX];
        for tagging in [Tagging::None, Tagging::Position, Tagging::Hash] {
            let matches: Vec<Match> = (0..times.len())
                .map(|at| Match {
                    time: times[at],
                    id: ids[at % ids.len()].as_bytes(),
                    tag: if tagging == Tagging::None {
                        0
                    } else {
                        tags[at]
                    },
                })
                .collect();
            let block = Matches::encode(matches.iter().copied(), tagging, &mut Vec::new());
            assert_eq!(block.iter(tagging).collect::<Vec<_>>(), matches);
        }
    }

    #[test]
    fn pushing_gives_what_encoding_all_gives() {
        let m = |time, id: &'static str| Match {
            time,
            id: id.as_bytes(),
            tag: 7,
        };
        let scratch = &mut Vec::new();
        let mut three = Matches::encode([m(5, "a"), m(9, "bb")], Tagging::Hash, scratch);
        three.push(m(9, "c"), 9, Tagging::Hash, scratch);
        let all = Matches::encode([m(5, "a"), m(9, "bb"), m(9, "c")], Tagging::Hash, scratch);
        assert_eq!(three.0, all.0);
    }

    #[test]
    fn a_match_of_a_short_id_takes_a_few_bytes_besides_it() {
        let m = |time, tag| Match {
            time,
            id: b"e1234567",
            tag,
        };
        let t0 = 1_795_456_800_000_000;
        let block = Matches::encode(
            [m(t0, 1), m(t0 + 2_000, 0)],
            Tagging::Position,
            &mut Vec::new(),
        );
        // First: 8 bytes of time, 1 + 8 of id, 1 of tag; second: 2 + 9 + 1.
        assert_eq!(block.bytes(), 18 + 12);
        assert!(Matches::default().iter(Tagging::Hash).next().is_none());
    }
}
