//! The manifest signing key, from the environment or `lake.signing_key_file`.

use std::path::Path;

use authtrail_store::ManifestKey;

use crate::{Error, Result};

/// The environment variable holding the manifest signing key itself (64 hex characters).
pub const SIGNING_KEY_ENV: &str = "AUTHTRAIL_SIGNING_KEY";

/// The manifest signing key: `AUTHTRAIL_SIGNING_KEY`, else the key file
/// (`lake.signing_key_file`), else none (records are hash-chained but not signed).
pub fn manifest_key(signing_key_file: Option<&Path>) -> Result<Option<ManifestKey>> {
    if let Some(text) = std::env::var_os(SIGNING_KEY_ENV) {
        let text = text.into_string().map_err(|_| Error::KeyNotUtf8)?;
        return ManifestKey::from_hex(&text)
            .map(Some)
            .map_err(Error::KeyEnv);
    }
    match signing_key_file {
        Some(path) => Ok(Some(ManifestKey::from_file(path).map_err(Error::KeyFile)?)),
        None => Ok(None),
    }
}
