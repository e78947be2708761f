//! The API's one error type and its JSON rendering.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::Error;

/// Everything a handler can answer with instead of a result.
#[derive(Debug)]
pub enum ApiError {
    /// No bearer key, or not an accepted one.
    Unauthorized,
    /// No such route, or nothing known about the requested item.
    NotFound,
    /// The request itself is malformed (body, query string).
    BadRequest(String),
    /// The request body is larger than the API accepts.
    PayloadTooLarge(String),
    /// Planning or running the query failed.
    Query(Error),
}

impl ApiError {
    /// A body that did not deserialise: 413 when it was too large, 400 otherwise.
    pub fn from_body(status: StatusCode, message: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
            _ => ApiError::BadRequest(message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        ApiError::Query(error)
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer <key>` header is required".into(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".into()),
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone())
            }
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message.clone(),
            ),
            ApiError::Query(error) => {
                let (status, code) = match error {
                    Error::Forbidden(_) => (StatusCode::BAD_REQUEST, "forbidden_statement"),
                    Error::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
                    Error::QueryFailed(_) => (StatusCode::BAD_REQUEST, "query_failed"),
                    Error::InvalidParameter { .. } => {
                        (StatusCode::BAD_REQUEST, "invalid_parameter")
                    }
                    Error::ResourcesExhausted(_) => {
                        (StatusCode::BAD_REQUEST, "resources_exhausted")
                    }
                    Error::TooComplex(_) => (StatusCode::BAD_REQUEST, "query_too_complex"),
                    Error::ResultTooLarge(_) => (StatusCode::BAD_REQUEST, "result_too_large"),
                    Error::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                    Error::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
                    Error::Config(_) | Error::Internal(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                    }
                };
                let message = if error.is_client_error() {
                    error.to_string()
                } else {
                    "internal error; see the server log".into()
                };
                (status, code, message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = ?self, "API request failed");
        } else {
            tracing::debug!(%status, %message, "API request refused");
        }
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
