//! `POST /api/v1/collect/{format}`: the body's records, each checked by the format's
//! adapter and produced unchanged to the format's topic, answered 200 once the broker
//! acknowledged them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use authtrail_model::adapt::{DecodeContext, Decoded};
use authtrail_model::records::split_records;
use authtrail_model::{ContractLimits, RejectKind};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{middleware, Extension, Json, Router};
use serde::Serialize;

use crate::body::{self, Encoding};
use crate::error::Refusal;
use crate::formats::{self, Route};
use crate::keys::{require_key, KeyIndex};
use crate::Collector;

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

/// What a 200 says: how many records were produced, and what the adapter made of them
/// (`records` = the four others; every one of them is in Kafka).
#[derive(Debug, Default, Serialize)]
struct Counts {
    records: usize,
    mapped: usize,
    unmapped: usize,
    rejected: usize,
    skipped: usize,
}

async fn collect(
    State(collector): State<Arc<Collector>>,
    Path(format): Path<String>,
    Extension(key): Extension<KeyIndex>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some((&format, route)) = collector.routes.get_key_value(format.as_str()) else {
        return Refusal::UnknownFormat {
            format,
            known: formats::known().map(str::to_owned).collect(),
        }
        .into_response();
    };
    let response = match receive(&collector, format, key, &headers, body).await {
        Ok(counts) => Json(counts).into_response(),
        Err(refusal) => refusal.into_response(),
    };
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    route.metrics.answered(response.status().as_u16(), micros);
    response
}

/// Reads, splits, checks and produces the body.
async fn receive(
    collector: &Arc<Collector>,
    format: &'static str,
    key: KeyIndex,
    headers: &HeaderMap,
    body: Body,
) -> Result<Counts, Refusal> {
    let encoding = Encoding::of(headers)?;
    let limit = collector.config.max_body_bytes;
    let sent = body::read(body, limit).await?;
    // Inflating, splitting, decoding and handing records to librdkafka is CPU work, and
    // the reachability check may wait a second for the brokers: off the reactor.
    let (counts, in_flight) = tokio::task::spawn_blocking({
        let collector = collector.clone();
        move || {
            let route = &collector.routes[format];
            let json = body::decode(sent, encoding, limit)?;
            let records =
                split_records(&json, collector.config.max_records).map_err(
                    |error| match error.kind {
                        RejectKind::TooLarge => Refusal::TooLarge(error.message),
                        _ => Refusal::BadRequest(error.message),
                    },
                )?;
            let (counts, keys) = check(route, &records);
            // Only a request that could be acknowledged spends the key's rate.
            collector.producer.check_reachable(&route.topic)?;
            collector
                .rate
                .take(key, records.len(), Instant::now())
                .map_err(Refusal::RateLimited)?;
            let keyed = keys.into_iter().zip(records.iter().copied());
            let in_flight = collector.producer.enqueue(&route.topic, keyed)?;
            Ok::<_, Refusal>((counts, in_flight))
        }
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, format, "a collector request's processing task failed");
        Refusal::Internal
    })??;
    collector.producer.acknowledged(in_flight).await?;
    collector.routes[format]
        .metrics
        .acknowledged
        .fetch_add(counts.records as u64, Ordering::Relaxed);
    Ok(counts)
}

/// Decodes each record with the route's adapter, as ingest will: the counts, and each
/// record's Kafka key (its event id: the native id, so a resent record lands on the same
/// partition; none for a record that did not map).
fn check(route: &Route, records: &[&[u8]]) -> (Counts, Vec<Option<String>>) {
    let now = authtrail_model::time::now_micros();
    let context = DecodeContext {
        now,
        limits: ContractLimits::default(),
        // Ingest reads the Kafka timestamp, which the producer sets to about now.
        envelope_time: Some(now),
    };
    let mut counts = Counts {
        records: records.len(),
        ..Counts::default()
    };
    let keys = records
        .iter()
        .map(|record| match route.format.decode(record, &context) {
            Decoded::Event(event) => {
                counts.mapped += 1;
                Some(event.id.into_owned())
            }
            Decoded::Rejected(error) if error.kind == RejectKind::Unmapped => {
                counts.unmapped += 1;
                None
            }
            Decoded::Rejected(_) => {
                counts.rejected += 1;
                None
            }
            Decoded::Skipped(_) => {
                counts.skipped += 1;
                None
            }
        })
        .collect();
    let metrics = &route.metrics;
    for (counter, value) in [
        (&metrics.received, counts.records),
        (&metrics.mapped, counts.mapped),
        (&metrics.unmapped, counts.unmapped),
        (&metrics.rejected, counts.rejected),
        (&metrics.skipped, counts.skipped),
    ] {
        add(counter, value);
    }
    (counts, keys)
}

fn add(counter: &AtomicU64, value: usize) {
    counter.fetch_add(value as u64, Ordering::Relaxed);
}
