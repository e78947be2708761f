//! The HTTP API: `POST /api/v1/query`, the forensic endpoints and the trust and privilege
//! reports, behind bearer keys.
//!
//! Every route, including unknown ones, requires `Authorization: Bearer <key>`; keys are
//! compared as SHA-256 digests in constant time, so neither their content nor their length
//! leaks through timing. Errors are JSON (`{"error": {"code", "message"}}`); internal
//! failures are logged and answered with a generic message.

mod error;
mod forensics;
mod json;
mod listener;
mod query;
mod reports;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ApiError;
pub use listener::{serve_connections, ConnectionLimits};

use crate::reports::ReportConfig;
use crate::QueryEngine;

/// What every handler shares: the engine, the accepted keys and the reports' settings.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<QueryEngine>,
    keys: Arc<ApiKeys>,
    reports: Arc<ReportConfig>,
}

impl AppState {
    /// State serving `engine` to holders of any of `keys`.
    pub fn new(engine: Arc<QueryEngine>, keys: Vec<String>) -> AppState {
        let digests = keys
            .iter()
            .map(|key| Sha256::digest(key.as_bytes()).into())
            .collect();
        AppState {
            engine,
            keys: Arc::new(ApiKeys(digests)),
            reports: Arc::new(ReportConfig::default()),
        }
    }

    /// The same state, with the trust and privilege reports run under `config`.
    pub fn with_reports(mut self, config: ReportConfig) -> AppState {
        self.reports = Arc::new(config);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("lake", &self.engine.root())
            .field("keys", &format_args!("<{} redacted>", self.keys.0.len()))
            .finish()
    }
}

/// SHA-256 digests of the accepted keys.
struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, so the time taken does not say which one matched.
        let mut accepted = subtle::Choice::from(0);
        for key in &self.0 {
            accepted |= key.ct_eq(&digest);
        }
        accepted.into()
    }
}

/// Request bodies are small JSON documents; refuse anything larger than this.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// One route: its method, its path and how its handler is mounted.
type Route = (
    Method,
    &'static str,
    fn(MethodFilter) -> MethodRouter<AppState>,
);

/// Every route of the API; the router is built from this list, so it is also the list of
/// what the router serves ([`routes`]).
const ROUTES: [Route; 8] = [
    (Method::POST, "/api/v1/query", |m| on(m, query::run)),
    (Method::GET, "/api/v1/alerts", |m| on(m, forensics::alerts)),
    (
        Method::GET,
        "/api/v1/principals/{principal}/timeline",
        |m| on(m, forensics::timeline),
    ),
    (Method::GET, "/api/v1/principals/{principal}/reach", |m| {
        on(m, forensics::reach)
    }),
    (Method::GET, "/api/v1/tokens/{token_id}", |m| {
        on(m, forensics::token)
    }),
    (Method::POST, "/api/v1/events/lookup", |m| {
        on(m, forensics::lookup)
    }),
    (Method::GET, "/api/v1/reports/trust", |m| {
        on(m, reports::trust)
    }),
    (Method::GET, "/api/v1/reports/privilege", |m| {
        on(m, reports::privilege)
    }),
];

/// The `(method, path)` of every route the API's router serves.
pub fn routes() -> impl Iterator<Item = (Method, &'static str)> {
    ROUTES.into_iter().map(|(method, path, _)| (method, path))
}

/// The API's routes, all behind bearer-key authentication.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The API's routes and `extra` ones (the binary's metrics and live alerts), all behind
/// bearer-key authentication; unknown routes answer 401 without a key, 404 with one.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let mut api = Router::new();
    for (method, path, handler) in ROUTES {
        let filter = MethodFilter::try_from(method).expect("a routable method");
        api = api.route(path, handler(filter));
    }
    api.with_state(state.clone())
        .merge(extra)
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(state, require_key))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Serves the API on `config.listen` until `shutdown` completes, then finishes in-flight
/// requests.
pub async fn serve(
    config: &crate::ApiConfig,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    let listen = &config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| crate::Error::Config(format!("listening on `{listen}`: {error}")))?;
    let address = listener
        .local_addr()
        .map_err(|error| crate::Error::Internal(error.to_string()))?;
    tracing::info!(%address, lake = %state.engine.root().display(), "serving the HTTP API");
    let limits = config.connection_limits(state.engine.config().timeout);
    serve_connections(listener, router(state), limits, shutdown)
        .await
        .map_err(|error| crate::Error::Internal(format!("serving: {error}")))
}

async fn require_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    match presented {
        Some(key) if state.keys.accepts(key) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
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
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer k", "bearer k", "BEARER  k ", "BeArEr k"] {
            assert_eq!(bearer_credentials(header), Some("k"), "{header}");
        }
        assert_eq!(bearer_credentials("Basic k"), None);
        assert_eq!(bearer_credentials("Bearerk"), None);
    }

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys(vec![Sha256::digest(b"key-one-0123456789").into()]);
        assert!(keys.accepts("key-one-0123456789"));
        assert!(!keys.accepts("key-one-012345678"));
        assert!(!keys.accepts("key-one-0123456789x"));
        assert!(!keys.accepts(""));
    }
}
