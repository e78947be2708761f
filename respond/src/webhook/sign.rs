//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed by the base64 part of a `whsec_` secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

const PREFIX: &str = "whsec_";

/// A signing key. Its `Debug` shows nothing of it, so it cannot reach a log by accident.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; errors never quote the value.
    pub fn parse(webhook: &str, text: &str) -> Result<Secret, Error> {
        let text = text.trim();
        let encoded = text.strip_prefix(PREFIX).ok_or_else(|| {
            Error::config(
                webhook,
                "the secret must start with `whsec_` (Standard Webhooks)",
            )
        })?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| Error::config(webhook, "the secret after `whsec_` is not base64"))?;
        if key.len() < 16 {
            return Err(Error::config(
                webhook,
                "the secret must hold at least 16 bytes (24 recommended)",
            ));
        }
        Ok(Secret(key))
    }

    /// Reads the secret from `env` or `file` (the config allows exactly one).
    pub fn load(
        webhook: &str,
        env: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> Result<Secret, Error> {
        let text = match (env, file) {
            (Some(variable), _) => std::env::var(variable).map_err(|_| {
                Error::config(
                    webhook,
                    format!("environment variable `{variable}` is not set (or not UTF-8)"),
                )
            })?,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|error| {
                Error::config(
                    webhook,
                    format!("reading the secret file `{}`: {error}", path.display()),
                )
            })?,
            (None, None) => return Err(Error::config(webhook, "no `secret_env` or `secret_file`")),
        };
        Secret::parse(webhook, &text)
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_reference_example() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let secret = Secret::parse("t", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rejects_secrets_without_prefix_or_base64_without_quoting_them() {
        let error = Secret::parse("hook", "hunter2hunter2hunter2").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = Secret::parse("hook", "whsec_not*base64*hunter2").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(format!("{:?}", Secret(vec![1; 32])), "Secret(<redacted>)");
    }
}
