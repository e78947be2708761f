//! The forensic endpoints. Parameters are bound as DataFusion literals in expressions
//! built here, never spliced into SQL text, so a principal like `o'brien` or
//! `x' OR '1'='1` is just a value.

use authtrail_model::lake::Table;
use authtrail_model::Severity;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{col, lit, when, Expr};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json::rows_value, ApiError, AppState};
use crate::Error;

/// `since`/`until` (alerts) or `from`/`to` (principals): RFC 3339 times, `until`/`to`
/// exclusive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    since: Option<String>,
    until: Option<String>,
    detector: Option<String>,
    principal: Option<String>,
    /// The lowest severity to list: `high` lists `high` and `critical`.
    severity: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn time_literal(name: &'static str, text: &str) -> Result<Expr, Error> {
    let micros =
        authtrail_model::time::parse_rfc3339(text).ok_or_else(|| Error::InvalidParameter {
            name,
            reason: format!("`{text}` is not an RFC 3339 time like 2026-11-23T18:00:00Z"),
        })?;
    Ok(lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    )))
}

/// `time >= from AND time < to`, for the bounds given.
fn time_range(
    (from_name, from): (&'static str, Option<&str>),
    (to_name, to): (&'static str, Option<&str>),
) -> Result<Vec<Expr>, Error> {
    let mut filters = Vec::new();
    if let Some(from) = from {
        filters.push(col("time").gt_eq(time_literal(from_name, from)?));
    }
    if let Some(to) = to {
        filters.push(col("time").lt(time_literal(to_name, to)?));
    }
    Ok(filters)
}

fn filtered(mut frame: DataFrame, filters: Vec<Expr>) -> Result<DataFrame, Error> {
    for filter in filters {
        frame = frame.filter(filter)?;
    }
    Ok(frame)
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

impl AppState {
    fn limit(&self, requested: Option<usize>) -> usize {
        let max = self.engine.config().max_rows;
        requested.unwrap_or(max).min(max)
    }

    async fn table(&self, table: Table) -> Result<DataFrame, Error> {
        Ok(self.engine.context().table(table.as_str()).await?)
    }

    /// The events of `principal` in the `from`..`to` range of `params`.
    async fn principal_events(
        &self,
        principal: &str,
        params: &RangeParams,
    ) -> Result<DataFrame, Error> {
        let mut filters = time_range(
            ("from", params.from.as_deref()),
            ("to", params.to.as_deref()),
        )?;
        filters.push(col("principal").eq(lit(principal)));
        filtered(self.table(Table::Events).await?, filters)
    }

    /// Runs `frame` and renders `{"rows", "row_count", "truncated"}`.
    async fn rows(&self, frame: DataFrame, limit: usize) -> Result<Value, Error> {
        let output = self.engine.collect(frame, Some(limit)).await?;
        Ok(json!({
            "rows": rows_value(&output)?,
            "row_count": output.rows(),
            "truncated": output.truncated,
        }))
    }
}

/// `GET /api/v1/alerts`: alerts in a time range, optionally one detector's, one
/// principal's, or at least one severity; oldest first.
pub async fn alerts(
    State(state): State<AppState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let mut filters = time_range(
        ("since", params.since.as_deref()),
        ("until", params.until.as_deref()),
    )?;
    if let Some(detector) = params.detector {
        filters.push(col("detector").eq(lit(detector)));
    }
    if let Some(principal) = params.principal {
        filters.push(col("principal").eq(lit(principal)));
    }
    if let Some(name) = params.severity {
        let lowest = Severity::parse(&name).ok_or_else(|| Error::InvalidParameter {
            name: "severity",
            reason: format!("`{name}` is not one of low, medium, high, critical"),
        })?;
        let names = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .filter(|severity| *severity >= lowest)
        .map(|severity| lit(severity.as_str()))
        .collect();
        filters.push(col("severity").in_list(names, false));
    }
    let frame = filtered(state.table(Table::Alerts).await?, filters)?
        .sort(vec![
            col("time").sort(true, false),
            col("id").sort(true, false),
        ])
        .map_err(Error::from)?;
    Ok(Json(state.rows(frame, state.limit(params.limit)).await?))
}

/// `GET /api/v1/principals/{principal}/timeline`: every event of the principal in the
/// range, oldest first.
pub async fn timeline(
    State(state): State<AppState>,
    Path(principal): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let frame = state
        .principal_events(&principal, &params)
        .await?
        .sort(vec![
            col("time").sort(true, false),
            col("id").sort(true, false),
        ])
        .map_err(Error::from)?;
    let mut body = state.rows(frame, state.limit(params.limit)).await?;
    body["principal"] = json!(principal);
    Ok(Json(body))
}

/// `GET /api/v1/principals/{principal}/reach`: the blast radius. For each service the
/// principal was authorised against (`authz` events; `target_service`, else `service`):
/// first and last seen, and how many decisions allowed and denied it.
pub async fn reach(
    State(state): State<AppState>,
    Path(principal): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let target =
        datafusion::functions::expr_fn::coalesce(vec![col("target_service"), col("service")]);
    let counted = |outcome: &str| -> Result<Expr, Error> {
        let one = when(col("outcome").eq(lit(outcome)), lit(1i64)).end()?;
        Ok(count(one))
    };
    let frame = state
        .principal_events(&principal, &params)
        .await?
        .filter(col("kind").eq(lit("authz")))
        .map_err(Error::from)?
        .filter(target.clone().is_not_null())
        .map_err(Error::from)?
        .aggregate(
            vec![target.alias("target_service")],
            vec![
                min(col("time")).alias("first_seen"),
                max(col("time")).alias("last_seen"),
                counted("allow")?.alias("allow_count"),
                counted("deny")?.alias("deny_count"),
                count(lit(1i64)).alias("events"),
            ],
        )
        .map_err(Error::from)?
        .sort(vec![col("target_service").sort(true, false)])
        .map_err(Error::from)?;
    let mut body = state.rows(frame, state.limit(params.limit)).await?;
    body["principal"] = json!(principal);
    Ok(Json(body))
}

/// Most ids one lookup takes (an alert's evidence is a handful to a few hundred).
const MAX_LOOKUP_IDS: usize = 1_000;

/// Body of `POST /api/v1/events/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    ids: Vec<String>,
}

/// `POST /api/v1/events/lookup` with `{"ids": [...]}`: the events with these ids (an
/// alert's evidence), oldest first. Ids the lake does not hold (yet) are simply absent.
pub async fn lookup(
    State(state): State<AppState>,
    body: Result<Json<LookupBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) =
        body.map_err(|rejection| ApiError::from_body(rejection.status(), rejection.body_text()))?;
    if body.ids.len() > MAX_LOOKUP_IDS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_LOOKUP_IDS} ids per lookup, got {}",
            body.ids.len()
        )));
    }
    if body.ids.is_empty() {
        return Ok(Json(
            json!({"rows": [], "row_count": 0, "truncated": false}),
        ));
    }
    let ids = body.ids.into_iter().map(lit).collect();
    let frame = state
        .table(Table::Events)
        .await?
        .filter(col("id").in_list(ids, false))
        .and_then(|frame| {
            frame.sort(vec![
                col("time").sort(true, false),
                col("id").sort(true, false),
            ])
        })
        .map_err(Error::from)?;
    Ok(Json(state.rows(frame, state.limit(None)).await?))
}

/// `GET /api/v1/tokens/{token_id}`: the token's issue, every presentation, its
/// revocation, and the alerts naming it. 404 when the lake knows nothing of it.
pub async fn token(
    State(state): State<AppState>,
    Path(token_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let limit = state.limit(None);
    let events = state
        .table(Table::Events)
        .await?
        .filter(col("token_id").eq(lit(token_id.clone())))
        .map_err(Error::from)?;
    let by_time = || vec![col("time").sort(true, false), col("id").sort(true, false)];
    let of_kind = |kinds: &[&str], negated: bool| -> Result<DataFrame, Error> {
        let kinds = kinds.iter().map(|kind| lit(*kind)).collect();
        Ok(events
            .clone()
            .filter(col("kind").in_list(kinds, negated))?
            .sort(by_time())?)
    };
    let issued = state.rows(of_kind(&["token_issue"], false)?, limit).await?;
    let presented = state
        .rows(of_kind(&["token_issue", "token_revoke"], true)?, limit)
        .await?;
    let revoked = state
        .rows(of_kind(&["token_revoke"], false)?, limit)
        .await?;
    let alerts = state
        .table(Table::Alerts)
        .await?
        .filter(col("token_id").eq(lit(token_id.clone())))
        .and_then(|frame| frame.sort(by_time()))
        .map_err(Error::from)?;
    let alerts = state.rows(alerts, limit).await?;
    let found = [&issued, &presented, &revoked, &alerts]
        .iter()
        .any(|part| part["row_count"].as_u64() != Some(0));
    if !found {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({
        "token_id": token_id,
        "issue": issued,
        "presentations": presented,
        "revocation": revoked,
        "alerts": alerts,
    })))
}
