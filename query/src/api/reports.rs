//! `GET /api/v1/reports/trust` and `GET /api/v1/reports/privilege`: the reports of
//! [`crate::reports`] as JSON. The window and the service are bounded and bound as query
//! parameters; the queries run on the engine's pool like every other route's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::reports::{self, Window};
use crate::Error;

/// `since` (a duration back from `until`, e.g. `7d`), `until` (RFC 3339, default now),
/// `service` (trust only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    since: Option<String>,
    until: Option<String>,
    service: Option<String>,
}

impl ReportParams {
    fn window(&self, default_since: &str) -> Result<Window, Error> {
        let since = reports::parse_since("since", self.since.as_deref().unwrap_or(default_since))?;
        let until = match &self.until {
            None => authtrail_model::time::now_micros(),
            Some(text) => authtrail_model::time::parse_rfc3339(text).ok_or_else(|| {
                Error::InvalidParameter {
                    name: "until",
                    reason: "not an RFC 3339 time like 2026-11-23T18:00:00Z".into(),
                }
            })?,
        };
        Window::before(until, since)
    }
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

/// `GET /api/v1/reports/trust?since=7d&service=payments`.
pub async fn trust(
    State(state): State<AppState>,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let window = params.window(reports::DEFAULT_TRUST_SINCE)?;
    let report = reports::trust(
        &state.engine,
        &state.reports,
        window,
        params.service.as_deref(),
    )
    .await?;
    Ok(Json(report.to_json()))
}

/// `GET /api/v1/reports/privilege?since=30d`.
pub async fn privilege(
    State(state): State<AppState>,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    if params.service.is_some() {
        return Err(ApiError::BadRequest(
            "the privilege report covers every holder; `service` applies to the trust report"
                .into(),
        ));
    }
    let window = params.window(reports::DEFAULT_PRIVILEGE_SINCE)?;
    let report = reports::privilege(&state.engine, &state.reports, window).await?;
    Ok(Json(report.to_json()))
}
