//! Bearer keys, compared as SHA-256 digests in constant time (as the query API does), so
//! neither a key's content nor its length leaks through timing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::Refusal;

/// The accepted keys' digests.
pub struct Keys(Vec<[u8; 32]>);

/// Which accepted key a request presented (its position): the rate limiter's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyIndex(pub u32);

impl Keys {
    /// Accepts any of `keys`.
    pub fn new(keys: &[String]) -> Keys {
        Keys(
            keys.iter()
                .map(|key| Sha256::digest(key.as_bytes()).into())
                .collect(),
        )
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is accepted (then every request is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The position of the key `presented`, if accepted.
    pub fn find(&self, presented: &str) -> Option<KeyIndex> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare with every key, so the time taken does not say which one matched.
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (position, key) in self.0.iter().enumerate() {
            let equal = key.ct_eq(&digest);
            index = u32::conditional_select(&index, &(position as u32), equal);
            found |= equal;
        }
        bool::from(found).then_some(KeyIndex(index))
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys(<{} redacted>)", self.0.len())
    }
}

/// Middleware: 401 unless the request carries an accepted bearer key; the key's
/// [`KeyIndex`] goes into the request's extensions.
pub async fn require_key(
    State(keys): State<Arc<Keys>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    match presented.and_then(|key| keys.find(key)) {
        Some(index) => {
            request.extensions_mut().insert(index);
            next.run(request).await
        }
        None => Refusal::Unauthorized.into_response(),
    }
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 7235).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_found_at_its_position_and_only_exactly() {
        let keys = Keys::new(&["first-key-0000001".into(), "second-key-000002".into()]);
        assert_eq!(keys.find("first-key-0000001"), Some(KeyIndex(0)));
        assert_eq!(keys.find("second-key-000002"), Some(KeyIndex(1)));
        assert_eq!(keys.find("second-key-00000"), None);
        assert_eq!(keys.find(""), None);
        assert_eq!(Keys::new(&[]).find("first-key-0000001"), None);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_credentials("bEaReR  k "), Some("k"));
        assert_eq!(bearer_credentials("Basic k"), None);
    }
}
