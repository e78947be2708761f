//! One delivery task per (alert, webhook): attempts until the endpoint accepts, refuses,
//! or the max age passes, recording every transition in the outbox.

use std::sync::Arc;
use std::time::Duration;

use authtrail_model::time::now_micros;

use crate::outbox::{Key, State};
use crate::responder::Shared;
use crate::webhook::send::{attempt, backoff, Outcome};
use crate::webhook::{DeliveryCounters, Sink};

pub(crate) async fn deliver(shared: Arc<Shared>, sink: Arc<Sink>, key: Key) {
    let name = sink.config.name.as_str();
    loop {
        let (alert, attempts, since, released) = {
            let outbox = shared.outbox();
            match outbox.get(&key) {
                Some(e) if e.state.is_active() => match &e.alert {
                    Some(alert) => (alert.clone(), e.attempts, e.since, e.released),
                    None => return,
                },
                _ => return,
            }
        };
        if attempts == 0
            && !released
            && sink.config.action.is_revocation()
            && !sink.rate.try_admit()
        {
            tracing::warn!(webhook = name, alert_id = key.0, limit = sink.config.rate_limit, window = ?sink.config.rate_window, "revocation rate limit reached: alert held until released (`authtrail alerts release`)");
            let error = format!(
                "over the rate limit of {} per {:?}",
                sink.config.rate_limit, sink.config.rate_window
            );
            DeliveryCounters::add(&sink.counters.held);
            record(&shared, &key, State::Held, 0, Some(error));
            return;
        }
        // Biased: at shutdown an attempt that may go now still goes (within the drain
        // timeout); only waiting for an open breaker is cut short.
        tokio::select! {
            biased;
            _ = sink.breaker.admit() => {}
            _ = shared.cancel.cancelled() => return,
        }
        let outcome = {
            let _permit = sink.in_flight.acquire().await.expect("never closed");
            attempt(&shared.client, &sink, &alert).await
        };
        let attempts = attempts + 1;
        let (error, after) = match outcome {
            Outcome::Delivered => {
                sink.breaker.succeeded();
                tracing::info!(
                    webhook = name,
                    alert_id = key.0,
                    attempts,
                    "alert delivered"
                );
                DeliveryCounters::add(&sink.counters.delivered);
                record(&shared, &key, State::Delivered, attempts, None);
                return;
            }
            Outcome::DryRun => {
                let note = Some("dry run: built and signed, not sent".to_owned());
                DeliveryCounters::add(&sink.counters.delivered);
                record(&shared, &key, State::Delivered, attempts, note);
                return;
            }
            Outcome::Refused { error } => {
                // The endpoint is up and answering; it just will not take this alert.
                sink.breaker.succeeded();
                tracing::error!(
                    webhook = name,
                    alert_id = key.0,
                    attempts,
                    error,
                    "alert refused: dead letter (`authtrail alerts retry` resends it)"
                );
                DeliveryCounters::add(&sink.counters.dead);
                record(&shared, &key, State::Dead, attempts, Some(error));
                return;
            }
            Outcome::Retry { error, after } => {
                sink.breaker.failed();
                (error, after)
            }
        };
        let delay = after.unwrap_or_else(|| {
            backoff(
                sink.config.retry_initial,
                sink.config.retry_max_interval,
                attempts,
            )
        });
        let age = Duration::from_micros(now_micros().saturating_sub(since).max(0) as u64);
        if age + delay > sink.config.retry_max_age {
            let error = format!("gave up after {attempts} attempts over {age:.0?}: {error}");
            tracing::error!(
                webhook = name,
                alert_id = key.0,
                attempts,
                error,
                "alert not delivered within the max age: dead letter"
            );
            DeliveryCounters::add(&sink.counters.dead);
            record(&shared, &key, State::Dead, attempts, Some(error));
            return;
        }
        DeliveryCounters::add(&sink.counters.retries);
        tracing::warn!(webhook = name, alert_id = key.0, attempts, error, retry_in = ?delay, "delivery failed; retrying");
        record(&shared, &key, State::Retrying, attempts, Some(error));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.cancel.cancelled() => return,
        }
    }
}

fn record(shared: &Shared, key: &Key, state: State, attempts: u32, error: Option<String>) {
    if let Err(error) = shared
        .outbox()
        .transition(key, state, attempts, error, false, false)
    {
        // The alert is still in the outbox in its previous state and resumes at the next
        // start; an unwritable outbox also fails the pipeline's next sync.
        tracing::error!(%error, alert_id = key.0, webhook = key.1, "recording a delivery state failed");
    }
}
