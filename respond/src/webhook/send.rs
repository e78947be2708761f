//! One delivery attempt: build, sign, POST, and classify the answer.

use std::time::{Duration, SystemTime};

use authtrail_model::Alert;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use super::{Sink, Target};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Dry run: built and signed, not sent.
    DryRun,
    /// Worth another attempt (5xx, 408, 429, timeout, connection error); `after` is the
    /// server's `Retry-After`, if it gave one.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Refused for good (any other 4xx, or a redirect): a dead letter.
    Refused { error: String },
}

/// Sends `alert` to `sink` once.
pub async fn attempt(client: &reqwest::Client, sink: &Sink, alert: &Alert) -> Outcome {
    let body = sink.body.build(alert);
    let secret = match &sink.target {
        Target::Http(secret) => secret,
        Target::Kafka { producer, topic } => {
            return produce(producer, topic, sink.config.timeout, alert, &body).await
        }
    };
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let signature = secret.sign(&alert.id, timestamp, &body);
    if sink.config.dry_run {
        tracing::info!(webhook = sink.config.name, alert_id = %alert.id, bytes = body.len(), "dry run: request built and signed, not sent");
        return Outcome::DryRun;
    }
    let sent = client
        .post(&sink.config.url)
        .timeout(sink.config.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &alert.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        // Without the URL: it may carry a token in its query string.
        Err(error) => {
            return Outcome::Retry {
                error: error_chain(&error.without_url()),
                after: None,
            }
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let after = retry_after(response.headers(), SystemTime::now());
    let snippet = response
        .text()
        .await
        // One line, bounded: it ends up in `authtrail alerts` and in logs.
        .map(|text| {
            text.chars()
                .take(200)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
        })
        .unwrap_or_default();
    let error = match snippet.trim() {
        "" => format!("HTTP {status}"),
        text => format!("HTTP {status}: {text}"),
    };
    classify(status, error, after)
}

/// Produces `body` keyed by the alert id; the broker's acknowledgement is the delivery.
async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    timeout: Duration,
    alert: &Alert,
    body: &[u8],
) -> Outcome {
    use rdkafka::message::{Header, OwnedHeaders};
    let headers = OwnedHeaders::new().insert(Header {
        key: "webhook-id",
        value: Some(alert.id.as_str()),
    });
    let record = rdkafka::producer::FutureRecord::to(topic)
        .key(alert.id.as_str())
        .payload(body)
        .headers(headers);
    match producer.send(record, timeout).await {
        Ok(_) => Outcome::Delivered,
        Err((error, _)) => Outcome::Retry {
            error: format!("kafka: {error}"),
            after: None,
        },
    }
}

fn classify(status: StatusCode, error: String, after: Option<Duration>) -> Outcome {
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if retryable {
        Outcome::Retry { error, after }
    } else if status.is_redirection() {
        Outcome::Refused {
            error: format!("{error} (redirects are not followed)"),
        }
    } else {
        Outcome::Refused { error }
    }
}

/// `Retry-After` as delay seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay before attempt `attempts + 1`: full jitter over an exponentially growing cap.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let cap = initial
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(max);
    Duration::from_nanos(fastrand::u64(
        0..=cap.as_nanos().min(u64::MAX as u128) as u64,
    ))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn only_5xx_408_and_429_are_retried() {
        for (code, retried) in [(500, true), (503, true), (408, true), (429, true)] {
            let outcome = classify(StatusCode::from_u16(code).unwrap(), "x".into(), None);
            assert_eq!(matches!(outcome, Outcome::Retry { .. }), retried, "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422, 301] {
            let outcome = classify(StatusCode::from_u16(code).unwrap(), "x".into(), None);
            assert!(matches!(outcome, Outcome::Refused { .. }), "{code}");
        }
    }

    #[test]
    fn backoff_stays_under_a_doubling_cap() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempts in 1..40 {
            let cap = Duration::from_millis(100 << (attempts - 1).min(5)).min(max);
            assert!(backoff(initial, max, attempts) <= cap);
        }
    }
}
