//! The collector's errors: what keeps it from starting ([`Error`]) and what a request is
//! answered with instead of 200 ([`Refusal`]).

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why the collector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("collector configuration: {0}")]
    Config(String),
    /// The Kafka producer could not be created.
    #[error("creating the Kafka producer: {0}")]
    Producer(String),
}

/// Everything a request is answered with instead of 200, as `{"error": {"code",
/// "message"}}` (the query API's shape).
#[derive(Debug)]
pub enum Refusal {
    /// 401: no collector key, or not an accepted one.
    Unauthorized,
    /// 404: the path names no known format.
    UnknownFormat { format: String, known: Vec<String> },
    /// 400: the body is not JSON records (the message names the line).
    BadRequest(String),
    /// 413: the body, decompressed, or its record count is over the limit.
    TooLarge(String),
    /// 415: a `Content-Encoding` other than gzip.
    UnsupportedEncoding(String),
    /// 429: the key's rate is spent; retry after this long.
    RateLimited(Duration),
    /// 503: the broker did not acknowledge every record; retry after this long.
    Unavailable {
        message: String,
        retry_after: Duration,
    },
    /// 500: a bug (logged where it happened; the answer says no more).
    Internal,
}

impl Refusal {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer <collector key>` header is required".into(),
            ),
            Refusal::UnknownFormat { format, known } => (
                StatusCode::NOT_FOUND,
                "unknown_format",
                format!(
                    "no format `{}`; known formats: {}",
                    printable(format),
                    known.join(", ")
                ),
            ),
            Refusal::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone())
            }
            Refusal::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message.clone(),
            ),
            Refusal::UnsupportedEncoding(encoding) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "`Content-Encoding: {}` is not supported; send gzip or nothing",
                    printable(encoding)
                ),
            ),
            Refusal::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this key's rate of records is spent; retry after `Retry-After` seconds".into(),
            ),
            Refusal::Unavailable { message, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                message.clone(),
            ),
            Refusal::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log".into(),
            ),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::RateLimited(after) => Some(*after),
            Refusal::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = Json(json!({ "error": { "code": code, "message": message } }));
        match self.retry_after() {
            // Whole seconds, at least one (RFC 9110's delay-seconds).
            Some(after) => {
                let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                let seconds = seconds.max(1).to_string();
                (status, [(header::RETRY_AFTER, seconds)], body).into_response()
            }
            None => (status, body).into_response(),
        }
    }
}

/// `text` without control characters and at most 64 of its characters: it comes from the
/// request and ends up in answers and logs.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let response = Refusal::RateLimited(Duration::from_millis(1_200)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = Refusal::RateLimited(Duration::ZERO).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn request_text_in_messages_has_no_control_characters() {
        assert_eq!(printable("ok\n\u{1b}[31m"), "ok??[31m");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}
