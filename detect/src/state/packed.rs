//! A window's entries packed into one exactly sized block of bytes: each entry's time
//! as a variable-length difference from the previous entry's, then its item in the
//! item's own compact form ([`Pack`]). For the windows that hold the most entries (a
//! principal's failures, denies and MFA prompts, an address's failed attempts): in
//! memory an entry of 8-byte time and 16-byte id takes 24–32 bytes, packed about 13–21
//! (the bench's ids), and nothing is lost: times keep every microsecond and any range
//! (a window may legitimately span hours behind a lagging partition), ids their exact
//! text.
//!
//! The entries are unpacked for each edit and packed again after it
//! ([`Packed::edit`]), so the window functions work on them unchanged. A window is
//! edited only by the events it counts (failures, denies) and, for MFA prompts, by
//! its principal's successes while it holds any; it holds a few to a few tens of
//! entries, so the cost stays off most events.

use std::ops::Range;

use authtrail_model::Micros;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::state::id::EventId;
use crate::state::window::Timed;

/// Where a block is packed before it is copied into its exact size: on the stack for
/// all but the longest windows, so a pack costs one allocation.
pub(crate) type Bytes = SmallVec<[u8; 256]>;

/// A block's entries while they are edited: on the stack for the usual few.
pub(crate) type Unpacked<T> = SmallVec<[Timed<T>; 8]>;

/// An item's compact form in a [`Packed`] block. `before` holds the entries packed
/// ahead of it in the same block, which an item may refer back to (see [`pack_keyed`]).
pub(crate) trait Pack: Sized {
    fn pack(&self, before: &[Timed<Self>], out: &mut Bytes);
    /// Reads one item from the front of `input`, which [`Pack::pack`] wrote after
    /// the same `before`.
    fn unpack(input: &mut &[u8], before: &[Timed<Self>]) -> Self;
}

/// A key hash: 8 bytes (hashes are uniform, a variable length would not shorten them).
fn put_key(out: &mut Bytes, key: u64) {
    out.extend_from_slice(&key.to_le_bytes());
}

fn get_key(input: &mut &[u8]) -> u64 {
    u64::from_le_bytes(take(input, 8).try_into().expect("8 bytes"))
}

/// How many entries back [`pack_keyed`] looks for an item's key instead of writing it.
const BACK: usize = 3;

/// Packs an item of a key hash and an event id (a deny: its target; a failed attempt:
/// its principal) as the id with, folded into its first byte, how many entries back
/// (1 to 3) one holds the same key, and the key's 8 bytes only when none of them does:
/// an address's failures are mostly its one user's, a principal's denies mostly of a
/// few targets. `key_of` gives an entry's key.
pub(crate) fn pack_keyed<T>(
    key: u64,
    id: &EventId,
    before: &[Timed<T>],
    key_of: impl Fn(&T) -> u64,
    out: &mut Bytes,
) {
    let mut recent = before.iter().rev().take(BACK);
    let back = recent
        .position(|entry| key_of(&entry.item) == key)
        .map_or(0, |at| at + 1);
    id.pack_with(back as u64, BACK as u64 + 1, out);
    if back == 0 {
        put_key(out, key);
    }
}

/// Reads what [`pack_keyed`] wrote after the same `before`: the key (resolved, so the
/// entries are exactly those packed) and the id.
pub(crate) fn unpack_keyed<T>(
    input: &mut &[u8],
    before: &[Timed<T>],
    key_of: impl Fn(&T) -> u64,
) -> (u64, EventId) {
    let (id, back) = EventId::unpack_with(input, BACK as u64 + 1);
    let key = match back as usize {
        0 => get_key(input),
        back => key_of(&before[before.len() - back].item),
    };
    (key, id)
}

/// Writes `value` in 7-bit groups, low first, the high bit set on all but the last.
pub(crate) fn put_varint(out: &mut Bytes, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn get_varint(input: &mut &[u8]) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let byte = take(input, 1)[0];
        value |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}

/// The first `n` bytes of `input`, which moves past them. Blocks are only ever read
/// as they were packed here, so a short one is a bug, not bad input.
pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = input.split_at(n);
    *input = rest;
    head
}

/// A time's difference from the previous entry's, zigzagged so that any difference
/// (entries are in time order, so it is never negative in use) has a short form when
/// small, and wrapping so that every pair of `i64` times round-trips.
fn put_time(out: &mut Bytes, previous: Micros, time: Micros) {
    let delta = time.wrapping_sub(previous);
    put_varint(out, ((delta << 1) ^ (delta >> 63)) as u64);
}

fn get_time(input: &mut &[u8], previous: Micros) -> Micros {
    let zigzag = get_varint(input);
    let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
    previous.wrapping_add(delta)
}

/// The entries `pack_entries` wrote to `input`, in time order.
fn unpack_entries<T: Pack>(mut input: &[u8]) -> Unpacked<T> {
    let mut entries = Unpacked::new();
    let mut previous = 0;
    while !input.is_empty() {
        let time = get_time(&mut input, previous);
        let item = T::unpack(&mut input, &entries);
        entries.push(Timed { time, item });
        previous = time;
    }
    entries
}

/// Each entry's time as its difference from the previous one's, then its item.
fn pack_entries<T: Pack>(entries: &[Timed<T>], out: &mut Bytes) {
    let mut previous = 0;
    for (at, entry) in entries.iter().enumerate() {
        put_time(out, previous, entry.time);
        entry.item.pack(&entries[..at], out);
        previous = entry.time;
    }
}

/// A window's entries, packed (see the module): 16 bytes in its key's entry, no block
/// while empty. Encoded in checkpoints as the sequence of its entries, as the unpacked
/// windows these replaced were (a boxed slice of entries), so checkpoints written
/// before read unchanged and do not depend on the form.
pub(crate) struct Packed<T> {
    block: Box<[u8]>,
    item: std::marker::PhantomData<T>,
}

impl<T> Default for Packed<T> {
    fn default() -> Self {
        // An empty boxed slice allocates nothing.
        Packed {
            block: Box::default(),
            item: std::marker::PhantomData,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Packed<crate::state::id::EventId>>() == 16);

impl<T: Pack> Packed<T> {
    pub fn new() -> Self {
        Packed::default()
    }

    fn from_entries(entries: &[Timed<T>]) -> Self {
        let mut packed = Packed::new();
        packed.set(entries);
        packed
    }

    /// The entries, in time order.
    pub fn entries(&self) -> Unpacked<T> {
        unpack_entries(&self.block)
    }

    /// Packs `entries` (in time order) in place of what was held, in a block of
    /// exactly their size (none when there are none).
    fn set(&mut self, entries: &[Timed<T>]) {
        let mut out = Bytes::new();
        pack_entries(entries, &mut out);
        self.block = Box::from(&out[..]);
    }

    /// Edits the entries (as the window functions' storage) and packs the result.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Unpacked<T>) -> R) -> R {
        let mut entries = self.entries();
        let result = f(&mut entries);
        self.set(&entries);
        result
    }

    /// Bytes of the block (tests).
    #[cfg(test)]
    pub fn packed_len(&self) -> usize {
        self.block.len()
    }
}

/// `N` windows of one key packed in one block (a principal's failures, denies and MFA
/// prompts): the byte lengths of the first `N - 1` as varints, then each window's entries
/// as a [`Packed`] block holds them. 16 bytes in the key's entry and one allocation
/// however many of the windows hold entries, where a `Packed` each took 16 bytes and
/// a block of its own. A window is read and edited as a `Packed` is, by its index and
/// the type of its items (the owner gives each index one type); an edit packs the
/// whole block again, the other windows copied as they are.
pub(crate) struct Sections<const N: usize> {
    block: Box<[u8]>,
}

impl<const N: usize> Default for Sections<N> {
    fn default() -> Self {
        Sections {
            block: Box::default(),
        }
    }
}

impl<const N: usize> Sections<N> {
    /// Where each window's bytes lie in the block.
    fn ranges(&self) -> [Range<usize>; N] {
        let mut lens = [0; N];
        if !self.block.is_empty() {
            let mut input = &*self.block;
            for len in &mut lens[..N - 1] {
                *len = get_varint(&mut input) as usize;
            }
            lens[N - 1] = input.len() - lens[..N - 1].iter().sum::<usize>();
        }
        let mut start = self.block.len() - lens.iter().sum::<usize>();
        lens.map(|len| {
            start += len;
            start - len..start
        })
    }

    /// The entries of window `at`, in time order.
    pub fn entries<T: Pack>(&self, at: usize) -> Unpacked<T> {
        unpack_entries(&self.block[self.ranges()[at].clone()])
    }

    /// Edits the entries of window `at` (as the window functions' storage) and packs
    /// the result.
    pub fn edit<T: Pack, R>(&mut self, at: usize, f: impl FnOnce(&mut Unpacked<T>) -> R) -> R {
        let ranges = self.ranges();
        let mut entries = unpack_entries(&self.block[ranges[at].clone()]);
        let result = f(&mut entries);
        let mut packed = Bytes::new();
        pack_entries(&entries, &mut packed);
        self.replace(&ranges, at, &packed);
        result
    }

    /// Empties window `at` (its owner's part expired or was dropped).
    pub fn clear(&mut self, at: usize) {
        let ranges = self.ranges();
        if !ranges[at].is_empty() {
            self.replace(&ranges, at, &[]);
        }
    }

    /// Packs the block again with `packed` as window `at`: exactly sized, none when
    /// every window is empty.
    fn replace(&mut self, ranges: &[Range<usize>; N], at: usize, packed: &[u8]) {
        let window = |i: usize| {
            if i == at {
                packed
            } else {
                &self.block[ranges[i].clone()]
            }
        };
        let mut out = Bytes::new();
        if (0..N).any(|i| !window(i).is_empty()) {
            for i in 0..N - 1 {
                put_varint(&mut out, window(i).len() as u64);
            }
            for i in 0..N {
                out.extend_from_slice(window(i));
            }
        }
        self.block = Box::from(&out[..]);
    }

    /// Bytes of the block (tests).
    #[cfg(test)]
    pub fn packed_len(&self) -> usize {
        self.block.len()
    }
}

impl<T: Pack + std::fmt::Debug> std::fmt::Debug for Packed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

impl<T: Pack + Serialize> Serialize for Packed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries().serialize(serializer)
    }
}

impl<'de, T: Pack + Deserialize<'de>> Deserialize<'de> for Packed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<Timed<T>>::deserialize(deserializer)?;
        Ok(Packed::from_entries(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::id::EventId;
    use crate::state::window;

    #[test]
    fn varints_and_times_round_trip_at_the_extremes() {
        for value in [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, u64::MAX - 1, u64::MAX] {
            let mut out = Bytes::new();
            put_varint(&mut out, value);
            let mut input = &out[..];
            assert_eq!(get_varint(&mut input), value);
            assert!(input.is_empty());
        }
        let times = [Micros::MIN, -1, 0, 1, 1_764_000_000_000_000, Micros::MAX];
        for previous in times {
            for time in times {
                let mut out = Bytes::new();
                put_time(&mut out, previous, time);
                let mut input = &out[..];
                assert_eq!(get_time(&mut input, previous), time);
            }
        }
    }

    /// A key and an id, packed as denies and failed attempts are.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct KeyAndId(u64, EventId);

    impl Pack for KeyAndId {
        fn pack(&self, before: &[Timed<Self>], out: &mut Bytes) {
            pack_keyed(self.0, &self.1, before, |item| item.0, out);
        }

        fn unpack(input: &mut &[u8], before: &[Timed<Self>]) -> Self {
            let (key, id) = unpack_keyed(input, before, |item: &KeyAndId| item.0);
            KeyAndId(key, id)
        }
    }

    #[test]
    fn keys_seen_in_the_last_three_entries_are_referred_to_and_come_back_exactly() {
        let uuid = "0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5f";
        let long = "evt-2026-11-25T08:00:00.123456Z-gateway-eu-west-1";
        // Repeats 1, 2 and 3 entries back, one 4 back (written out), and each id form.
        let items = [
            (7, "e1"),
            (7, uuid),
            (9, "e3"),
            (7, long),
            (5, ""),
            (6, "e6"),
            (9, "e7"),
            (u64::MAX, uuid),
            (9, "e9"),
        ];
        let entries: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(at, &(key, id))| Timed {
                time: 1_764_000_000_000_000 + at as Micros,
                item: KeyAndId(key, EventId::new(id)),
            })
            .collect();
        let packed = Packed::from_entries(&entries);
        assert_eq!(packed.entries()[..], entries[..]);
        // Keys not among the three entries before are written out, the rest referred to.
        let written_out = 8 * entries
            .iter()
            .enumerate()
            .filter(|(at, e)| {
                let recent = &entries[at.saturating_sub(3)..*at];
                !recent.iter().any(|r| r.item.0 == e.item.0)
            })
            .count();
        // One byte of length (two for the long id's) and the text, or a UUID's 17 bytes.
        let ids: usize = [3, 17, 3, 51, 1, 3, 3, 17, 3].iter().sum();
        // Times: 8 bytes for the first, one byte for each difference of 1.
        assert_eq!(packed.packed_len(), 8 + 8 + ids + written_out);
    }

    #[test]
    fn windows_in_one_block_are_edited_and_cleared_apart_and_hold_what_packed_ones_do() {
        let base = 1_764_000_000_000_000;
        let mut sections = Sections::<3>::default();
        let mut alone: [Packed<KeyAndId>; 3] = Default::default();
        // Each window takes a turn; window 1 is emptied on the way.
        for round in 0..40u64 {
            let at = (round % 3) as usize;
            let time = base + (round as Micros) * 1_000;
            let item = || KeyAndId(round % 5, EventId::new(&format!("event-{round}")));
            sections.edit(at, |entries| window::insert(entries, time, item()));
            alone[at].edit(|entries| window::insert(entries, time, item()));
            if round == 10 {
                sections.clear(1);
                alone[1] = Packed::new();
            }
            for (i, packed) in alone.iter().enumerate() {
                assert_eq!(sections.entries::<KeyAndId>(i)[..], packed.entries()[..]);
            }
        }
        let lens: Vec<usize> = alone.iter().map(Packed::packed_len).collect();
        assert!(lens[0] >= 128, "a length of two bytes: {lens:?}");
        // The first two lengths as varints, then the windows.
        let varint = |len: usize| if len < 128 { 1 } else { 2 };
        let header = varint(lens[0]) + varint(lens[1]);
        assert_eq!(sections.packed_len(), header + lens.iter().sum::<usize>());
        for at in 0..3 {
            sections.clear(at);
        }
        assert_eq!(sections.packed_len(), 0);
        assert!(sections.entries::<KeyAndId>(2).is_empty());
    }

    #[test]
    fn a_packed_window_holds_what_a_plain_one_does_in_fewer_bytes_and_encodes_as_it() {
        let mut packed = Packed::<EventId>::new();
        let mut plain = window::Window::<EventId>::new();
        assert!(packed.entries().is_empty() && packed.packed_len() == 0);
        let ids = [
            "e1",
            "0190b6e4-8c1a-7d3e-9f00-0a1b2c3d4e5f",
            "0190B6E4-8C1A-7D3E-9F00-0A1B2C3D4E5F",
            "evt-2026-11-25T08:00:00.123456Z-gateway-eu-west-1",
            "",
            "e7654321",
        ];
        let base = 1_764_000_000_000_000;
        // Out of order, one far in the past (a lagging partition's window).
        let times = [
            base + 5,
            base,
            base + 3_600_000_000_000,
            base + 5,
            0,
            base + 1,
        ];
        for (id, time) in ids.into_iter().zip(times) {
            packed.edit(|entries| window::insert(entries, time, EventId::new(id)));
            window::insert(&mut plain, time, EventId::new(id));
        }
        assert_eq!(packed.entries()[..], plain[..]);
        assert!(packed.packed_len() < 24 * ids.len());
        packed.edit(|entries| window::prune(entries, base + 2));
        window::prune(&mut plain, base + 2);
        assert_eq!(packed.entries()[..], plain[..]);
        // The encodings of the boxed slice and the inline window of entries that
        // checkpoints held before.
        let bytes = postcard::to_allocvec(&packed).unwrap();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&plain.to_vec().into_boxed_slice()).unwrap()
        );
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let back: Packed<EventId> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.entries()[..], plain[..]);
        packed.edit(|entries| entries.clear());
        assert_eq!(packed.packed_len(), 0);
    }
}
