//! Sliding windows on event time: small time-ordered vectors per key, with the first
//! entries inline (most keys hold one entry or none, and then cost no allocation), or
//! packed into an exactly sized block of bytes ([`Packed`](crate::state::packed::Packed))
//! for windows that usually hold several.
//!
//! Events may arrive out of order (up to the allowed lateness), so entries are inserted
//! in time order, and a new entry is checked against every window of width `w` that
//! contains it, not only the one ending at it.

use std::ops::{DerefMut, Range};

use authtrail_model::Micros;
use serde::{Deserialize, Serialize};
use smallvec::{Array, SmallVec};

/// A window's entries, `N` of them inline.
pub(crate) type Window<T, const N: usize = 1> = SmallVec<[Timed<T>; N]>;

/// One entry of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timed<T> {
    pub time: Micros,
    pub item: T,
}

/// What the window functions need of a window's storage.
pub(crate) trait Entries<T>: DerefMut<Target = [Timed<T>]> {
    /// Inserts `entry` at `at`, growing a heap block by one entry (windows are short
    /// and live for minutes: a doubled block would be mostly empty).
    fn insert_at(&mut self, at: usize, entry: Timed<T>);
    fn remove_at(&mut self, at: usize);
    /// Drops the first `n` entries and gives back room no longer needed.
    fn drop_front(&mut self, n: usize);
}

impl<T, A: Array<Item = Timed<T>>> Entries<T> for SmallVec<A> {
    fn insert_at(&mut self, at: usize, entry: Timed<T>) {
        if self.len() == self.capacity() {
            self.reserve_exact(1);
        }
        self.insert(at, entry);
    }

    fn remove_at(&mut self, at: usize) {
        self.remove(at);
    }

    fn drop_front(&mut self, n: usize) {
        self.drain(..n);
        // A window that once spilled keeps its heap block however far it shrinks; back
        // inline, most keys hold no block again.
        if self.spilled() && self.len() <= self.inline_size() {
            self.shrink_to_fit();
        }
    }
}

/// A window that mostly holds one entry or none (a token's client addresses: one per
/// client): the entry in place, more in an exactly sized block. For an item with a
/// spare bit pattern (an [`EventId`](crate::state::id::EventId)) the compiler keeps the
/// variant there, so the window is the size of one entry, where a `Window` with one
/// inline entry adds 8 bytes for its capacity. Encoded as the sequence of its entries,
/// as a `Window` is.
#[derive(Debug, Default)]
pub(crate) enum Slim<T> {
    #[default]
    Empty,
    One(Timed<T>),
    Many(Box<[Timed<T>]>),
}

impl<T> Slim<T> {
    /// Edits the entries as a `Vec` (only a window going past one entry pays for it).
    fn edit(&mut self, f: impl FnOnce(&mut Vec<Timed<T>>)) {
        let mut entries = match std::mem::take(self) {
            Slim::Empty => Vec::new(),
            Slim::One(entry) => vec![entry],
            Slim::Many(entries) => entries.into_vec(),
        };
        f(&mut entries);
        *self = Slim::from_vec(entries);
    }

    fn from_vec(mut entries: Vec<Timed<T>>) -> Self {
        match entries.len() {
            0 => Slim::Empty,
            1 => Slim::One(entries.pop().expect("one entry")),
            _ => Slim::Many(entries.into_boxed_slice()),
        }
    }
}

impl<T> std::ops::Deref for Slim<T> {
    type Target = [Timed<T>];

    fn deref(&self) -> &[Timed<T>] {
        match self {
            Slim::Empty => &[],
            Slim::One(entry) => std::slice::from_ref(entry),
            Slim::Many(entries) => entries,
        }
    }
}

impl<T> DerefMut for Slim<T> {
    fn deref_mut(&mut self) -> &mut [Timed<T>] {
        match self {
            Slim::Empty => &mut [],
            Slim::One(entry) => std::slice::from_mut(entry),
            Slim::Many(entries) => entries,
        }
    }
}

impl<T> Entries<T> for Slim<T> {
    fn insert_at(&mut self, at: usize, entry: Timed<T>) {
        if let Slim::Empty = self {
            *self = Slim::One(entry);
        } else {
            self.edit(|entries| entries.insert(at, entry));
        }
    }

    fn remove_at(&mut self, at: usize) {
        self.edit(|entries| {
            entries.remove(at);
        });
    }

    fn drop_front(&mut self, n: usize) {
        if n > 0 {
            self.edit(|entries| {
                entries.drain(..n);
            });
        }
    }
}

impl<T: Serialize> Serialize for Slim<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Slim<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Slim::from_vec)
    }
}

/// A window's width on event time with the lateness events may arrive within: what a
/// windowed detector keeps and how it looks for a completed window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub width: Micros,
    pub lateness: Micros,
}

impl Span {
    /// Entries older than this can share no window with an event that is not late.
    pub fn horizon(&self, now: Micros) -> Micros {
        now - self.lateness - self.width
    }

    /// The first window holding entry `at` that satisfies `hit`, which needs at least
    /// `min` entries (see [`find_min`]). Without one, keeps at most `4 * min + 16`
    /// entries (those whose `key` repeats go first, see [`trim`]): below `min` in every
    /// window, the entries within the width and lateness stay few, and the cap only
    /// guards against a flood at one instant.
    pub fn find_or_trim<T, K: PartialEq>(
        &self,
        entries: &mut impl Entries<T>,
        at: usize,
        min: usize,
        hit: impl FnMut(&[Timed<T>]) -> bool,
        key: impl Fn(&T) -> K,
    ) -> Option<Range<usize>> {
        let found = find_min(entries, at, self.width, min, hit);
        if found.is_none() {
            trim(entries, 4 * min + 16, key);
        }
        found
    }
}

/// Inserts keeping time order (after equal times, so arrival order breaks ties);
/// returns the entry's index.
pub(crate) fn insert<T>(entries: &mut impl Entries<T>, time: Micros, item: T) -> usize {
    // Nearly every event is the newest of its window: append without a search.
    let at = if entries.last().is_none_or(|last| last.time <= time) {
        entries.len()
    } else {
        entries.partition_point(|entry| entry.time <= time)
    };
    entries.insert_at(at, Timed { time, item });
    at
}

/// Replaces entry `index` by `item` at `time`, keeping time order (as a removal and an
/// [`insert`]); returns the new entry's index.
pub(crate) fn replace<T>(
    entries: &mut impl Entries<T>,
    index: usize,
    time: Micros,
    item: T,
) -> usize {
    // The slice once: each access through the storage would ask again where it is.
    let slice: &mut [Timed<T>] = entries;
    let last = slice.len() - 1;
    if slice[last].time <= time {
        // The newest use of an item seen before: move it to the end, shifting once.
        // (Windows are short: swaps beat `rotate_left`'s general algorithm.)
        for i in index..last {
            slice.swap(i, i + 1);
        }
        slice[last] = Timed { time, item };
        return last;
    }
    entries.remove_at(index);
    insert(entries, time, item)
}

/// Drops entries older than `horizon`.
#[inline]
pub(crate) fn prune<T>(entries: &mut impl Entries<T>, horizon: Micros) {
    // Nearly always nothing is stale: no call.
    if entries.first().is_some_and(|first| first.time < horizon) {
        prune_stale(entries, horizon);
    }
}

fn prune_stale<T>(entries: &mut impl Entries<T>, horizon: Micros) {
    let stale = entries.partition_point(|entry| entry.time < horizon);
    entries.drop_front(stale);
}

/// The first window `[end - width, end]` that contains entry `at` and satisfies `hit`,
/// as a range of entries. Windows are tried by their end, earliest first; only ends at
/// or after `at` can contain it.
pub(crate) fn find<T>(
    entries: &[Timed<T>],
    at: usize,
    width: Micros,
    mut hit: impl FnMut(&[Timed<T>]) -> bool,
) -> Option<Range<usize>> {
    let time = entries[at].time;
    for end in at..entries.len() {
        let end_time = entries[end].time;
        if end_time - time > width {
            break;
        }
        let start = entries[..=at].partition_point(|entry| entry.time < end_time - width);
        if hit(&entries[start..=end]) {
            return Some(start..end + 1);
        }
    }
    None
}

/// [`find`] for a `hit` that needs at least `min` entries: with fewer in the whole
/// window none can hit, so the search is skipped (most keys hold fewer than a
/// detector's threshold, and this runs on nearly every event).
pub(crate) fn find_min<T>(
    entries: &[Timed<T>],
    at: usize,
    width: Micros,
    min: usize,
    hit: impl FnMut(&[Timed<T>]) -> bool,
) -> Option<Range<usize>> {
    if entries.len() < min {
        return None;
    }
    find(entries, at, width, hit)
}

/// Number of distinct values in a short slice (windows hold tens of entries, so a
/// quadratic scan beats hashing).
pub(crate) fn distinct<T, K: PartialEq>(entries: &[Timed<T>], key: impl Fn(&T) -> K) -> usize {
    let mut count = 0;
    for (i, entry) in entries.iter().enumerate() {
        let k = key(&entry.item);
        if !entries[..i].iter().any(|earlier| key(&earlier.item) == k) {
            count += 1;
        }
    }
    count
}

/// Keeps at most `cap` entries. Entries whose key occurs again later go first, so a
/// flood of repeats cannot push the only entry of a distinct key out of the window.
#[inline]
pub(crate) fn trim<T, K: PartialEq>(
    entries: &mut impl Entries<T>,
    cap: usize,
    key: impl Fn(&T) -> K,
) {
    // Nearly always under the cap: no call.
    if entries.len() > cap {
        trim_over(entries, cap, key);
    }
}

fn trim_over<T, K: PartialEq>(entries: &mut impl Entries<T>, cap: usize, key: impl Fn(&T) -> K) {
    while entries.len() > cap {
        let repeated = (0..entries.len()).find(|&i| {
            let k = key(&entries[i].item);
            entries[i + 1..].iter().any(|later| key(&later.item) == k)
        });
        entries.remove_at(repeated.unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(times: &[Micros]) -> Window<u32> {
        let mut entries = Window::new();
        for (i, &time) in times.iter().enumerate() {
            insert(&mut entries, time, i as u32);
        }
        entries
    }

    #[test]
    fn inserts_late_entries_in_time_order() {
        let entries = window(&[10, 30, 20, 5]);
        let times: Vec<_> = entries.iter().map(|e| e.time).collect();
        assert_eq!(times, [5, 10, 20, 30]);
    }

    #[test]
    fn finds_a_window_that_a_late_entry_completes() {
        // 0, 10 and 30 fit no window of width 20 with three entries; a late 15 makes
        // the window ending at 15 hold 0, 10 and 15.
        let mut entries = window(&[0, 10, 30]);
        let at = insert(&mut entries, 15, 9);
        let found = find(&entries, at, 20, |slice| slice.len() >= 3);
        assert_eq!(found, Some(0..3));
    }

    #[test]
    fn find_min_skips_windows_too_small_to_hit() {
        let entries = window(&[0, 10, 20]);
        assert_eq!(find_min(&entries, 2, 20, 4, |_| true), None);
        assert_eq!(find_min(&entries, 2, 20, 3, |s| s.len() >= 3), Some(0..3));
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let entries = window(&[0, 20]);
        assert_eq!(find(&entries, 1, 20, |s| s.len() >= 2), Some(0..2));
        assert_eq!(find(&entries, 1, 19, |s| s.len() >= 2), None);
    }

    #[test]
    fn a_slim_window_holds_and_encodes_what_a_plain_one_does() {
        let mut slim = Slim::default();
        let mut plain = Window::<u32>::new();
        let got = |slim: &Slim<u32>| slim.iter().map(|e| (e.time, e.item)).collect::<Vec<_>>();
        let want = |plain: &Window<u32>| plain.iter().map(|e| (e.time, e.item)).collect::<Vec<_>>();
        for (i, time) in [10, 30, 20, 5].into_iter().enumerate() {
            insert(&mut slim, time, i as u32);
            insert(&mut plain, time, i as u32);
            assert_eq!(got(&slim), want(&plain));
        }
        replace(&mut slim, 0, 40, 7);
        replace(&mut plain, 0, 40, 7);
        trim(&mut slim, 3, |item| *item);
        trim(&mut plain, 3, |item| *item);
        assert_eq!(got(&slim), want(&plain));
        let bytes = postcard::to_allocvec(&slim).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let back: Slim<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(got(&back), want(&plain));
        prune(&mut slim, 35);
        prune(&mut plain, 35);
        assert!(matches!(slim, Slim::One(_)));
        assert_eq!(got(&slim), want(&plain));
        slim.drop_front(1);
        assert!(matches!(slim, Slim::Empty));
    }

    #[test]
    fn replace_keeps_time_order_for_new_and_old_times() {
        let mut entries = window(&[10, 20, 30]);
        // Entry 0 used again at 40: moves to the end.
        assert_eq!(replace(&mut entries, 0, 40, 7), 2);
        let got: Vec<_> = entries.iter().map(|e| (e.time, e.item)).collect();
        assert_eq!(got, [(20, 1), (30, 2), (40, 7)]);
        // Entry 2 replaced by a late time: goes back into place.
        assert_eq!(replace(&mut entries, 2, 25, 8), 1);
        let got: Vec<_> = entries.iter().map(|e| (e.time, e.item)).collect();
        assert_eq!(got, [(20, 1), (25, 8), (30, 2)]);
        prune(&mut entries, 21);
        assert_eq!(entries.len(), 2);
        prune(&mut entries, 0);
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn a_pruned_window_goes_back_inline() {
        let mut entries = window(&[10, 20, 30]);
        assert!(entries.spilled());
        prune(&mut entries, 25);
        assert_eq!(entries.len(), 1);
        assert!(!entries.spilled());
        assert_eq!(entries[0].time, 30);
    }

    #[test]
    fn trim_drops_repeats_before_distinct_entries() {
        let mut entries = Window::<char>::new();
        insert(&mut entries, 1, 'b');
        for time in 2..10 {
            insert(&mut entries, time, 'a');
        }
        insert(&mut entries, 10, 'c');
        trim(&mut entries, 3, |item| *item);
        let items: Vec<_> = entries.iter().map(|e| e.item).collect();
        assert_eq!(items, ['b', 'a', 'c']);
        assert_eq!(distinct(&entries, |item| *item), 3);
    }
}
