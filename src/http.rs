//! The HTTP server of `authtrail run`: the query API (bearer keys), `/metrics` and the
//! live alert feed (bearer keys too), `/healthz` and `/readyz` (open, for orchestrators),
//! and the web UI's static files (open: they hold no data; the page asks for a key).

use std::sync::Arc;

use authtrail_collect::Collector;
use authtrail_ingest::RulesReload;
use authtrail_query::api::{router_with, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::json;

use crate::live::{self, LiveAlerts};
use crate::metrics::{self, Sources};
use crate::ui;

/// Every route of `authtrail run`. The collector's route (when it has keys) sits outside
/// the query keys' middleware: it has its own, write-only keys.
pub fn app(
    state: AppState,
    sources: Arc<Sources>,
    live: Arc<LiveAlerts>,
    collector: Option<Arc<Collector>>,
    rules_reload: Option<Arc<RulesReload>>,
) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::handler))
        .with_state(sources.clone())
        .merge(
            Router::new()
                .route("/api/v1/live/alerts", get(live::handler))
                .with_state(live),
        )
        .merge(crate::rules::reload::routes(rules_reload));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(sources.clone())
        .merge(ui::routes())
        .merge(collector.map_or_else(Router::new, authtrail_collect::router))
        .merge(router_with(state, protected))
        .layer(middleware::from_fn_with_state(
            sources,
            metrics::time_requests,
        ))
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: consuming and writing (the pipeline runs, its writer has not failed, the source
/// polls); 503 with the reason otherwise.
async fn readyz(State(sources): State<Arc<Sources>>) -> Response {
    match sources.ingest.readiness(sources.ready_silence_ms) {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response(),
    }
}
