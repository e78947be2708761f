//! Reloading the Sigma rules of a running `authtrail run` or `authtrail ingest` without a
//! restart: SIGHUP, and `POST /api/v1/rules/reload` (behind the query keys). The files of
//! `[detect] rules` are read and checked again; a broken set is refused with its reasons
//! (files and lines) and the running set goes on; a good one is swapped in by the pipeline
//! between two batches, keeping the correlation state of every rule it still holds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use authtrail_ingest::{ReloadError, RulesReload};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, SignalKind};

/// How long a reload waits for the pipeline to take the new set (it does between two
/// batches, or within `ingest.flush_age` when idle).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The reload route; it answers 404 when no `[detect] rules` are configured.
pub fn routes(reload: Option<Arc<RulesReload>>) -> Router {
    Router::new()
        .route("/api/v1/rules/reload", post(reload_route))
        .with_state(reload)
}

async fn reload_route(State(reload): State<Option<Arc<RulesReload>>>) -> Response {
    let Some(reload) = reload else {
        return error(
            StatusCode::NOT_FOUND,
            "no_rules",
            "no `[detect] rules` are configured: there is nothing to reload".into(),
        );
    };
    match tokio::task::spawn_blocking(move || reload.reload(RELOAD_TIMEOUT)).await {
        Ok(Ok(running)) => {
            Json(json!({ "status": "reloaded", "running": running })).into_response()
        }
        Ok(Err(ReloadError::Invalid(reasons))) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rules",
            format!("refused, the running rules go on: {reasons}"),
        ),
        Ok(Err(not_taken)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_taken",
            not_taken.to_string(),
        ),
        Err(failed) => {
            tracing::error!(error = %failed, "the rules reload task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the reload failed; see the log".into(),
            )
        }
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// Reloads the rules on every SIGHUP, logging what runs afterwards or why the new set was
/// refused.
pub fn on_sighup(runtime: &Handle, reload: Arc<RulesReload>) -> anyhow::Result<()> {
    let mut hangup = {
        let _entered = runtime.enter();
        signal(SignalKind::hangup()).context("installing the SIGHUP handler")?
    };
    runtime.spawn(async move {
        while hangup.recv().await.is_some() {
            let reload = reload.clone();
            match tokio::task::spawn_blocking(move || reload.reload(RELOAD_TIMEOUT)).await {
                Ok(Ok(running)) => tracing::info!(%running, "SIGHUP: sigma rules reloaded"),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "SIGHUP: sigma rules not reloaded; the running set goes on")
                }
                Err(error) => tracing::error!(%error, "SIGHUP: the rules reload task failed"),
            }
        }
    });
    Ok(())
}
