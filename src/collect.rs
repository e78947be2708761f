//! The HTTP collector in the binary: on `authtrail run`'s listener ([`for_run`]) and as
//! `authtrail collect`, a stand-alone collector tier in front of a Kafka cluster
//! ([`command`]). The collector itself is `authtrail_collect`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use authtrail_collect::{check_keys_are_separate, require_key, Collector, Keys};
use authtrail_metrics::{Exposition, CONTENT_TYPE};
use authtrail_query::api::serve_connections;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};
use tokio_util::sync::CancellationToken;

use crate::cli::CollectArgs;
use crate::config::Config;

/// `authtrail run`'s collector with the collector `keys`, producing to `brokers` (the
/// configured cluster or the embedded broker); `None` when there are no collector keys (the route is then not
/// served). A key that is also a query key is refused.
pub fn for_run(
    config: &Config,
    keys: &[String],
    query_keys: &[String],
    brokers: &str,
) -> anyhow::Result<Option<Arc<Collector>>> {
    if keys.is_empty() {
        tracing::info!(
            keys_env = %config.collect.keys_env,
            "no collector keys: POST /api/v1/collect/{{format}} is not served"
        );
        return Ok(None);
    }
    check_keys_are_separate(keys, query_keys)?;
    let collector = Collector::new(config.collect.clone(), brokers, keys)?;
    Ok(Some(Arc::new(collector)))
}

/// `authtrail collect`: serves the collector (and `/healthz`; `/metrics` behind the query
/// keys when `api.keys_env` has any) until SIGINT/SIGTERM.
pub fn command(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &args.listen {
        config.collect.listen = listen.clone();
    }
    if let Some(brokers) = &args.brokers {
        config.kafka.brokers = Some(brokers.clone());
    }
    let Some(brokers) = config.kafka.brokers.clone() else {
        bail!(
            "`authtrail collect` fronts a Kafka cluster: give `--brokers HOST:PORT,...` or `kafka.brokers` in the config (`authtrail run` serves the collector beside its embedded broker)"
        );
    };
    let keys = config.collect.load_keys()?;
    if keys.is_empty() {
        bail!(
            "no collector keys: set `{}` (comma-separated, 16+ characters each) or `collect.keys_file`",
            config.collect.keys_env
        );
    }
    // Optional here: without query keys, /metrics is simply not served.
    let metrics_keys = config.api.load_keys().unwrap_or_default();
    check_keys_are_separate(&keys, &metrics_keys)?;
    let collector = Arc::new(Collector::new(config.collect.clone(), &brokers, &keys)?);

    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(authtrail_collect::router(collector.clone()));
    if metrics_keys.is_empty() {
        tracing::info!(keys_env = %config.api.keys_env, "no query API keys: /metrics is not served");
    } else {
        app = app.merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(collector)
                .route_layer(middleware::from_fn_with_state(
                    Arc::new(Keys::new(&metrics_keys)),
                    require_key,
                )),
        );
    }

    let runtime = authtrail_pipeline::runtime().context("starting the async runtime")?;
    let shutdown = CancellationToken::new();
    crate::signals::install(
        runtime.handle(),
        shutdown.clone(),
        config.run.shutdown_timeout,
    )?;
    let listen = config.collect.listen.clone();
    let limits = config
        .api
        .connection_limits(config.collect.delivery_timeout);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on `{listen}`"))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, %brokers, "collecting");
        println!(
            "authtrail: collecting on http://{address}/api/v1/collect/{{format}} into {brokers}"
        );
        serve_connections(listener, app, limits, shutdown.cancelled_owned())
            .await
            .context("serving the collector")
    })?;
    println!("authtrail: collector stopped");
    Ok(ExitCode::SUCCESS)
}

/// `GET /metrics` of `authtrail collect`: the collector's families.
async fn metrics(State(collector): State<Arc<Collector>>) -> impl IntoResponse {
    let mut out = Exposition::default();
    collector.expose(&mut out);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.finish())
}
