//! The building blocks of detector state, none of which knows a detector: keys hashed
//! to 64 bits (`hash`), event ids in 16 bytes (`id`), a compact map on those hashes
//! (`table`), bounded keyed state with expiry and a cap on keys (`keyed`), one
//! detector's share of an entry several keep (`part`), and sliding windows on event
//! time (`window`), the fullest of them packed into bytes (`packed`). The tables in
//! `tracked` and the detectors are made of these.

pub(crate) mod hash;
pub(crate) mod id;
mod keyed;
pub(crate) mod packed;
pub(crate) mod part;
pub(crate) mod table;
pub(crate) mod window;

pub use keyed::TableStats;
pub(crate) use keyed::{KeyedState, Parts, PartsState};
