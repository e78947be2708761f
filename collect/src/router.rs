//! `POST /api/v1/collect/{format}`: the body's records, each produced unchanged to the
//! format's topic, answered 200 once the broker acknowledged them all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use authtrail_model::records::split_records;
use authtrail_model::RejectKind;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{middleware, Extension, Json, Router};
use serde_json::json;

use crate::body::{self, Encoding};
use crate::error::Refusal;
use crate::keys::{require_key, KeyIndex};
use crate::{formats, Collector};

/// The collector's one route, behind its own keys (never the query keys). Bodies are
/// limited by `max_body_bytes` here, not by a router-wide limit.
pub fn router(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/api/v1/collect/{format}", post(collect))
        .with_state(collector.clone())
        .route_layer(middleware::from_fn_with_state(
            collector.keys.clone(),
            require_key,
        ))
}

async fn collect(
    State(collector): State<Arc<Collector>>,
    Path(format): Path<String>,
    Extension(key): Extension<KeyIndex>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some((format, topic)) = collector.topic(&format) else {
        return Refusal::UnknownFormat {
            format,
            known: formats::known().map(str::to_owned).collect(),
        }
        .into_response();
    };
    let response = match receive(&collector, format, &topic, key, &headers, body).await {
        Ok(records) => Json(json!({ "records": records })).into_response(),
        Err(refusal) => refusal.into_response(),
    };
    if let Some(metrics) = collector.metrics.format(format) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        metrics.answered(response.status().as_u16(), micros);
    }
    response
}

/// Reads, splits and produces the body; the number of records the broker acknowledged.
async fn receive(
    collector: &Arc<Collector>,
    format: &'static str,
    topic: &str,
    key: KeyIndex,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, Refusal> {
    let encoding = Encoding::of(headers)?;
    let limit = collector.config.max_body_bytes;
    let sent = body::read(body, limit).await?;
    // Inflating, splitting and handing records to librdkafka is CPU work, and the
    // reachability check may wait a second for the brokers: off the reactor.
    let (records, in_flight) = tokio::task::spawn_blocking({
        let collector = collector.clone();
        let topic = topic.to_owned();
        move || {
            let json = body::decode(sent, encoding, limit)?;
            let records =
                split_records(&json, collector.config.max_records).map_err(
                    |error| match error.kind {
                        RejectKind::TooLarge => Refusal::TooLarge(error.message),
                        _ => Refusal::BadRequest(error.message),
                    },
                )?;
            let metrics = collector.metrics.format(format);
            if let Some(metrics) = metrics {
                metrics
                    .received
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            // Only a request that could be acknowledged spends the key's rate.
            collector.producer.check_reachable(&topic)?;
            collector
                .rate
                .take(key, records.len(), Instant::now())
                .map_err(Refusal::RateLimited)?;
            let id_field = formats::id_field(format);
            let keyed = records.iter().map(|record| {
                let key = id_field.and_then(|field| formats::top_level_string(record, field));
                (key, *record)
            });
            let in_flight = collector.producer.enqueue(&topic, keyed)?;
            Ok::<_, Refusal>((records.len(), in_flight))
        }
    })
    .await
    .map_err(|_| Refusal::BadRequest("the request could not be processed".into()))??;
    collector.producer.acknowledged(in_flight).await?;
    if let Some(metrics) = collector.metrics.format(format) {
        metrics
            .acknowledged
            .fetch_add(records as u64, Ordering::Relaxed);
    }
    Ok(records)
}
