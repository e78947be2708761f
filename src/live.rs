//! Alerts as they are raised, for the web UI: the pipeline's alert sink keeps the latest
//! ones in memory (numbered), and `GET /api/v1/live/alerts?after=N&wait=S` long-polls for
//! those after `N`. The lake gets them at the next flush; this shows them at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authtrail_ingest::{AlertSink, BoxError};
use authtrail_model::Alert;
use authtrail_query::api::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

/// How many recent alerts are kept in memory.
const KEEP: usize = 1_000;
/// Longest a long-poll waits for a new alert.
const MAX_WAIT: Duration = Duration::from_secs(25);

/// The latest alerts, numbered from 1 in the order raised.
pub struct LiveAlerts {
    recent: Mutex<VecDeque<(u64, Arc<Value>)>>,
    latest: watch::Sender<u64>,
}

impl Default for LiveAlerts {
    fn default() -> Self {
        LiveAlerts {
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
            latest: watch::Sender::new(0),
        }
    }
}

impl LiveAlerts {
    /// Adds an alert (called on the decode thread, once per alert: alerts are rare).
    pub fn push(&self, alert: &Alert) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let seq = recent.back().map_or(1, |(seq, _)| seq + 1);
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back((seq, Arc::new(alert_json(seq, alert))));
        drop(recent);
        self.latest.send_replace(seq);
    }

    /// Alerts numbered after `after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<Arc<Value>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, alert)| alert.clone())
            .collect()
    }
}

/// The alert's one JSON shape ([`Alert::to_json`]) and its number in the feed.
fn alert_json(seq: u64, alert: &Alert) -> Value {
    let mut value = alert.to_json();
    value["seq"] = Value::from(seq);
    value
}

/// Query of `GET /api/v1/live/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveParams {
    /// Only alerts numbered after this (the last `seq` the client has).
    #[serde(default)]
    after: u64,
    /// Seconds to wait for one when there is none yet (at most 25).
    #[serde(default)]
    wait: u64,
}

/// `GET /api/v1/live/alerts?after=N&wait=S`: `{"alerts": [...], "latest": seq}`.
pub async fn handler(
    State(live): State<Arc<LiveAlerts>>,
    params: Result<Query<LiveParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    // Malformed parameters get the API's JSON error shape, not axum's plain text.
    let Query(params) = params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let mut latest = live.latest.subscribe();
    if *latest.borrow_and_update() <= params.after && params.wait > 0 {
        let wait = Duration::from_secs(params.wait).min(MAX_WAIT);
        // Times out quietly: the client asks again.
        let _ = tokio::time::timeout(wait, latest.changed()).await;
    }
    let alerts = live.after(params.after);
    let latest = *live.latest.borrow();
    Ok(Json(json!({ "alerts": alerts, "latest": latest })))
}

/// The live feed as one of the pipeline's alert sinks in `authtrail run` (after the
/// webhook responder, which the pipeline plugs in itself).
pub struct LiveSink(pub Arc<LiveAlerts>);

impl AlertSink for LiveSink {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        self.0.push(alert);
        Ok(())
    }

    fn sync(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtrail_model::Severity;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            detector: "brute_force".into(),
            severity: Severity::High,
            time: 1_795_456_800_000_000,
            principal: "user:alice".into(),
            token_id: None,
            source_ip: None,
            target_service: None,
            key: "user:alice".into(),
            summary: "s".into(),
            evidence_ids: vec!["e-1".into()],
            attack_technique: "T1110.001".into(),
            suppressed_count: 0,
        }
    }

    #[test]
    fn alerts_are_numbered_and_listed_after_a_given_one() {
        let live = LiveAlerts::default();
        live.push(&alert("a"));
        live.push(&alert("b"));
        let all = live.after(0);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["seq"], 2);
        assert_eq!(all[1]["id"], "b");
        assert_eq!(all[0]["time"], "2026-11-23T18:00:00Z");
        assert_eq!(live.after(1).len(), 1);
        assert!(live.after(2).is_empty());
    }

    #[test]
    fn only_the_latest_are_kept() {
        let live = LiveAlerts::default();
        for i in 0..KEEP + 5 {
            live.push(&alert(&format!("a{i}")));
        }
        let all = live.after(0);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0]["seq"], 6);
    }

    #[tokio::test]
    async fn a_long_poll_returns_when_an_alert_arrives() {
        let live = Arc::new(LiveAlerts::default());
        let waiting = tokio::spawn(handler(
            State(live.clone()),
            Ok(Query(LiveParams { after: 0, wait: 25 })),
        ));
        tokio::task::yield_now().await;
        live.push(&alert("a"));
        let Json(body) = waiting.await.unwrap().unwrap();
        assert_eq!(body["alerts"][0]["id"], "a");
        assert_eq!(body["latest"], 1);
    }
}
