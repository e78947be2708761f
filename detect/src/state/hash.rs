//! Keys of detector state: 64-bit hashes of principals, tokens, IPs and services.
//!
//! State keyed by owned strings would cost an allocation per key and most of the memory
//! budget, so every map is keyed by a u64 hash. A collision merges two keys' state; at
//! 64 bits that needs billions of live keys. The seed is random per deployment (and
//! kept in checkpoints) so that nobody can craft principal names that collide on
//! purpose; alert ids never depend on it.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xD6E8_FEB8_6659_FD93;
const K2: u64 = 0xA076_1D64_78BD_642F;

/// Multiplies and folds the 128-bit product: a fast mix with full avalanche.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A seeded, stable hash of strings and addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    /// A hasher with a seed from the OS's randomness.
    pub fn random() -> Self {
        KeyHasher {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }

    #[cfg(test)]
    pub fn with_seed(seed: u64) -> Self {
        KeyHasher { seed }
    }

    /// The hash of some bytes.
    pub fn bytes(&self, data: &[u8]) -> u64 {
        let mut state = self.seed ^ fold(data.len() as u64 ^ K0, K1);
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
            state = fold(state ^ word, K1 ^ self.seed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            state = fold(state ^ u64::from_le_bytes(word), K2 ^ self.seed);
        }
        fold(state ^ K2, K0)
    }

    /// The hash of a string.
    pub fn str(&self, text: &str) -> u64 {
        self.bytes(text.as_bytes())
    }

    /// The hash of an address.
    pub fn ip(&self, ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(v4) => self.bytes(&v4.octets()),
            IpAddr::V6(v6) => self.bytes(&v6.octets()),
        }
    }

    /// The hash of an ordered pair of hashes (an edge `principal -> target`).
    pub fn pair(&self, a: u64, b: u64) -> u64 {
        fold(a ^ self.seed, K0) ^ fold(b ^ K2, K1)
    }
}

/// A `Hasher` for keys that already are hashes: it passes them through.
#[derive(Default, Clone, Copy)]
pub(crate) struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; keep it total anyway.
        for &byte in bytes {
            self.0 = fold(self.0 ^ u64::from(byte), K0);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Set of hashes.
pub(crate) type HashedSet = HashSet<u64, BuildHasherDefault<Passthrough>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_hash_and_different_inputs_differ() {
        let a = KeyHasher::with_seed(7);
        let b = KeyHasher::with_seed(7);
        assert_eq!(a.str("user:alice"), b.str("user:alice"));
        assert_ne!(a.str("user:alice"), a.str("user:alicf"));
        assert_ne!(a.str(""), a.str("\0"));
        assert_ne!(a.str("12345678"), a.str("123456789"));
        assert_ne!(a.pair(1, 2), a.pair(2, 1));
    }

    #[test]
    fn seeds_change_hashes() {
        let a = KeyHasher::with_seed(1);
        let b = KeyHasher::with_seed(2);
        assert_ne!(a.str("svc:payments"), b.str("svc:payments"));
    }
}
