//! Ed25519 signatures on manifest records.
//!
//! The hash chain shows that no record was changed or dropped from the middle of a log, but
//! anyone who can write the lake can rewrite a whole log and recompute the chain. A record
//! signed with a key kept outside the lake cannot be forged that way: `verify` checks every
//! record's signature with the public half.
//!
//! A record is signed over its JSON serialization without the `sig` field; the signature
//! (hex) is then stored in `sig`, and the chain's `prev` hashes the whole line, signature
//! included.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::Error;
use crate::Result;

/// The private key that signs manifest records. Never printed: `Debug` shows only the
/// public key.
#[derive(Clone)]
pub struct ManifestKey(SigningKey);

impl ManifestKey {
    /// Parses a key written as 64 hex characters (a 32-byte Ed25519 seed, e.g. from
    /// `openssl rand -hex 32`); surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<ManifestKey> {
        let seed = decode_32(text.trim()).ok_or_else(|| {
            Error::Key("the signing key must be 64 hex characters (32 bytes)".to_owned())
        })?;
        Ok(ManifestKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key from a file holding its hex text.
    pub fn from_file(path: &Path) -> Result<ManifestKey> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        ManifestKey::from_hex(&text).map_err(|error| match error {
            Error::Key(message) => Error::Key(format!("`{}`: {message}", path.display())),
            other => other,
        })
    }

    /// The public half, for `verify`.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The hex signature of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestKey")
            .field("public", &self.public().to_hex())
            .field("private", &"<redacted>")
            .finish()
    }
}

/// The public key that checks manifest signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a public key written as 64 hex characters.
    pub fn from_hex(text: &str) -> Result<PublicKey> {
        let bytes = decode_32(text.trim()).ok_or_else(|| {
            Error::Key("the public key must be 64 hex characters (32 bytes)".to_owned())
        })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| Error::Key("not an Ed25519 public key".to_owned()))
    }

    /// The key as 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Whether `signature` (hex) is this key's signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = hex::decode(signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
        else {
            return false;
        };
        self.0
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    #[test]
    fn signature_verifies_only_for_the_same_message_and_key() {
        let key = ManifestKey::from_hex(SEED).unwrap();
        let signature = key.sign(b"record");
        assert!(key.public().verifies(b"record", &signature));
        assert!(!key.public().verifies(b"recorD", &signature));
        let other = ManifestKey::from_hex(&"11".repeat(32)).unwrap();
        assert!(!other.public().verifies(b"record", &signature));
        assert!(!key.public().verifies(b"record", "zz"));
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = ManifestKey::from_hex(SEED).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(SEED), "{shown}");
        assert!(shown.contains(&key.public().to_hex()));
    }

    #[test]
    fn malformed_keys_are_clear_errors() {
        let error = ManifestKey::from_hex("abc").unwrap_err().to_string();
        assert!(error.contains("64 hex characters"), "{error}");
        let round_trip =
            PublicKey::from_hex(&ManifestKey::from_hex(SEED).unwrap().public().to_hex()).unwrap();
        assert_eq!(round_trip, ManifestKey::from_hex(SEED).unwrap().public());
    }
}
