//! `POST /api/v1/query`: `{"sql": "...", "limit": 1000}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{json, ApiError, AppState};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    sql: String,
    limit: Option<usize>,
}

pub async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) =
        body.map_err(|rejection| ApiError::from_body(rejection.status(), rejection.body_text()))?;
    let max_rows = state.engine.config().max_rows;
    let limit = request.limit.unwrap_or(max_rows).min(max_rows);
    let output = state.engine.query(&request.sql, Some(limit)).await?;
    let wants_arrow = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains(ARROW_STREAM));
    let (content_type, body) = if wants_arrow {
        (ARROW_STREAM, json::ipc_bytes(&output)?)
    } else {
        ("application/json", json::result_bytes(&output)?)
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if output.truncated {
        response
            .headers_mut()
            .insert("x-authtrail-truncated", HeaderValue::from_static("true"));
    }
    Ok(response)
}
