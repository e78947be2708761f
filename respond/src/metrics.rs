//! The responder's metric families: deliveries, retries and circuit breakers per sink, and
//! the outbox's entries per state.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use authtrail_metrics::{Exposition, Kind};

use crate::outbox::State;
use crate::webhook::Sink;

/// Writes the respond families for `sinks` and the outbox's `counts` into `out`.
pub(crate) fn expose(sinks: &[Arc<Sink>], counts: &[(State, usize)], out: &mut Exposition) {
    out.family("authtrail_webhook_deliveries_total", Kind::Counter, "Alert deliveries that ended, per webhook and outcome: delivered, dead (dead letter) or held (over the revocation rate limit).");
    for sink in sinks {
        let counters = &sink.counters;
        for (outcome, count) in [
            ("delivered", &counters.delivered),
            ("dead", &counters.dead),
            ("held", &counters.held),
        ] {
            out.sample(
                &[("webhook", &sink.config.name), ("outcome", outcome)],
                count.load(Relaxed) as f64,
            );
        }
    }
    out.family("authtrail_webhook_retries_total", Kind::Counter, "Delivery attempts that failed and are retried (5xx, 408, 429, timeouts, connection errors).");
    for sink in sinks {
        out.sample(
            &[("webhook", &sink.config.name)],
            sink.counters.retries.load(Relaxed) as f64,
        );
    }
    out.family(
        "authtrail_webhook_circuit_open",
        Kind::Gauge,
        "1 while a webhook's circuit breaker pauses requests to it.",
    );
    for sink in sinks {
        out.sample(
            &[("webhook", &sink.config.name)],
            f64::from(u8::from(sink.breaker.is_open())),
        );
    }
    out.family(
        "authtrail_outbox_entries",
        Kind::Gauge,
        "Entries in the alert outbox per state (pending, retrying, delivered, dead, held).",
    );
    for state in [
        State::Pending,
        State::Retrying,
        State::Delivered,
        State::Dead,
        State::Held,
    ] {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        out.sample(&[("state", state.as_str())], n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outbox_state_has_a_sample() {
        let mut out = Exposition::default();
        expose(&[], &[(State::Delivered, 4), (State::Dead, 1)], &mut out);
        let text = out.finish();
        for (state, n) in [
            ("pending", 0),
            ("retrying", 0),
            ("delivered", 4),
            ("dead", 1),
            ("held", 0),
        ] {
            let line = format!("authtrail_outbox_entries{{state=\"{state}\"}} {n}\n");
            assert!(text.contains(&line), "{text}");
        }
        assert!(text.contains("# TYPE authtrail_webhook_deliveries_total counter\n"));
    }
}
