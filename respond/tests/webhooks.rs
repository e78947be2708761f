//! The responder against a real HTTP receiver: signatures, retries, dead letters, the rate
//! limit, dry runs, restarts and duplicates.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use authtrail_respond::outbox::requests::{self, Operation, Request};
use authtrail_respond::{outbox_dir, Action, Responder, State, WebhookConfig};
use support::*;

/// A responder in `dir` with one webhook to `url`, its config as `adjust` leaves it.
fn responder_to(dir: &Path, url: &str, adjust: impl FnOnce(&mut WebhookConfig)) -> Responder {
    let mut config = webhook(dir, url);
    adjust(&mut config);
    Responder::start(dir, &respond_config(vec![config]), runtime()).unwrap()
}

/// Hands `operation` (on `alert_id`, or on every alert it applies to) to the responder
/// running in `dir`, as `authtrail respond` does.
fn submit(dir: &Path, operation: Operation, alert_id: Option<&str>) -> requests::Outcome {
    let alert_id = alert_id.map(Into::into);
    let request = Request {
        operation,
        alert_id,
    };
    requests::submit(&outbox_dir(dir), &request, Duration::from_secs(10)).unwrap()
}

/// Waits until `dir`'s outbox holds `n` delivered entries.
fn wait_delivered(dir: &Path, what: &str, n: usize) {
    wait_until(what, || count(dir, State::Delivered) == n);
}

#[test]
fn delivers_signed_requests_that_verify_independently() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let responder = responder_to(dir.path(), &receiver.url(), |_| {});
    responder.record(&alert("a1")).unwrap();
    wait_delivered(dir.path(), "delivery", 1);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!(delivery.id, "a1");
    assert!(verify(delivery, SECRET), "{delivery:?}");
    let mut tampered = delivery.clone();
    tampered.body.push(b' ');
    assert!(!verify(&tampered, SECRET));
    let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["action"], "revoke_token");
    assert_eq!(body["alert"]["token_id"], "jti-a1");
}

#[test]
fn receiver_down_then_up_gets_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{port}/hook");
    let responder = responder_to(dir.path(), &url, |config| {
        config.rate_limit = 0;
    });
    let ids: BTreeSet<String> = (0..20).map(|i| format!("a{i}")).collect();
    for id in &ids {
        responder.record(&alert(id)).unwrap();
    }
    wait_until("failed attempts", || {
        entries(dir.path()).iter().all(|e| e.attempts >= 1)
    });
    assert_eq!(count(dir.path(), State::Delivered), 0);
    let receiver = Receiver::start_on(port);
    wait_delivered(dir.path(), "every delivery", 20);
    let received: BTreeSet<String> = receiver.deliveries().into_iter().map(|d| d.id).collect();
    assert_eq!(received, ids);
}

#[test]
fn server_errors_then_success_delivers_once_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script([
        Reply(500, None),
        Reply(502, None),
        Reply(503, None),
        Reply(408, None),
    ]);
    let responder = responder_to(dir.path(), &receiver.url(), |_| {});
    responder.record(&alert("a1")).unwrap();
    wait_delivered(dir.path(), "delivery", 1);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 5, "four failures, then accepted once");
    assert!(deliveries.iter().all(|d| d.id == "a1" && verify(d, SECRET)));
    assert_eq!(entries(dir.path())[0].attempts, 5);
}

#[test]
fn not_found_is_a_dead_letter_until_retried() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer(Reply(404, None));
    let responder = responder_to(dir.path(), &receiver.url(), |_| {});
    responder.record(&alert("a1")).unwrap();
    wait_until("dead letter", || count(dir.path(), State::Dead) == 1);
    let entry = &entries(dir.path())[0];
    assert!(
        entry.last_error.as_deref().unwrap().contains("404"),
        "{entry:?}"
    );
    assert_eq!(receiver.deliveries().len(), 1, "a 404 is not retried");

    receiver.answer(Reply(200, None));
    let outcome = submit(dir.path(), Operation::Retry, Some("a1"));
    assert_eq!(outcome, requests::Outcome::HandedOver);
    wait_delivered(dir.path(), "delivery after retry", 1);
    assert_eq!(receiver.deliveries().len(), 2);
}

#[test]
fn too_many_requests_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script([Reply(429, Some("1"))]);
    let responder = responder_to(dir.path(), &receiver.url(), |_| {});
    responder.record(&alert("a1")).unwrap();
    wait_delivered(dir.path(), "delivery", 1);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    // Backoff alone would retry within 20 ms; the server asked for a second.
    assert!(deliveries[1].at - deliveries[0].at >= Duration::from_secs(1));
}

#[test]
fn revocations_over_the_rate_limit_are_held_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let responder = responder_to(dir.path(), &receiver.url(), |config| {
        config.rate_limit = 3;
        config.rate_window = Duration::from_secs(3_600);
    });
    for i in 0..5 {
        responder.record(&alert(&format!("a{i}"))).unwrap();
    }
    wait_until("three delivered, two held", || {
        count(dir.path(), State::Delivered) == 3 && count(dir.path(), State::Held) == 2
    });
    assert_eq!(receiver.deliveries().len(), 3);

    submit(dir.path(), Operation::Release, None);
    wait_delivered(dir.path(), "released alerts delivered", 5);
    assert_eq!(receiver.deliveries().len(), 5);
}

#[test]
fn dry_run_builds_and_signs_but_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let responder = responder_to(dir.path(), &receiver.url(), |config| {
        config.dry_run = true;
    });
    for i in 0..3 {
        responder.record(&alert(&format!("a{i}"))).unwrap();
    }
    wait_delivered(dir.path(), "dry runs recorded", 3);
    responder.shutdown().unwrap();
    assert!(receiver.deliveries().is_empty());
    let entry = &entries(dir.path())[0];
    assert!(entry.last_error.as_deref().unwrap().contains("dry run"));
}

#[test]
fn alerts_raised_again_are_not_sent_twice_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = respond_config(vec![webhook(dir.path(), &receiver.url())]);
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    responder.record(&alert("a1")).unwrap();
    wait_delivered(dir.path(), "delivery", 1);
    responder.record(&alert("a1")).unwrap();
    responder.shutdown().unwrap();
    drop(responder);
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    responder.record(&alert("a1")).unwrap();
    responder.record(&alert("a2")).unwrap();
    wait_delivered(dir.path(), "second alert", 2);
    responder.shutdown().unwrap();
    let ids: Vec<String> = receiver.deliveries().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["a1", "a2"]);
}

#[test]
fn undelivered_alerts_resume_after_a_restart_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer(Reply(503, None));
    let config = respond_config(vec![webhook(dir.path(), &receiver.url())]);
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    responder.record(&alert("a1")).unwrap();
    wait_until("a failed attempt", || !receiver.deliveries().is_empty());
    responder.shutdown().unwrap();
    drop(responder);
    assert_eq!(count(dir.path(), State::Retrying), 1);

    receiver.answer(Reply(200, None));
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    wait_delivered(dir.path(), "delivery after restart", 1);
    drop(responder);
    let deliveries = receiver.deliveries();
    assert!(deliveries.iter().all(|d| d.id == "a1"));
    assert!(verify(deliveries.last().unwrap(), SECRET));
}

#[test]
fn filters_pick_alerts_by_detector_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let responder = responder_to(dir.path(), &receiver.url(), |config| {
        config.detectors = vec!["token_replay".into()];
        config.min_severity = authtrail_model::Severity::Critical;
    });
    let mut critical = alert("critical");
    critical.severity = authtrail_model::Severity::Critical;
    let mut other = critical.clone();
    other.id = "other".into();
    other.detector = "brute_force".into();
    for alert in [alert("high"), other, critical] {
        responder.record(&alert).unwrap();
    }
    wait_delivered(dir.path(), "delivery", 1);
    responder.shutdown().unwrap();
    assert_eq!(entries(dir.path()).len(), 1);
    assert_eq!(receiver.deliveries()[0].id, "critical");
}

#[test]
fn an_alert_about_a_service_goes_to_notify_and_to_revocations_only_that_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let hook = |name: &str, action: Action, detectors: &[&str]| {
        let mut config = webhook(dir.path(), &receiver.url());
        config.name = name.into();
        config.action = action;
        config.detectors = detectors.iter().map(|d| (*d).to_owned()).collect();
        config
    };
    let webhooks = vec![
        hook("revoke-any", Action::RevokeToken, &[]),
        hook("disable-any", Action::DisablePrincipal, &[]),
        hook("chat", Action::Notify, &[]),
        hook("revoke-gaps", Action::RevokeToken, &["validation_gap"]),
    ];
    let responder = Responder::start(dir.path(), &respond_config(webhooks), runtime()).unwrap();
    // A service allowed a revoked token: its key is the service, its principal and token
    // the caller's.
    let mut gap = alert("gap");
    gap.detector = "validation_gap".into();
    gap.key = "payments revoked".into();
    responder.record(&gap).unwrap();
    responder.record(&alert("replay")).unwrap();
    wait_delivered(dir.path(), "deliveries", 5);
    responder.shutdown().unwrap();
    let sent: BTreeSet<(String, String)> = entries(dir.path())
        .into_iter()
        .map(|entry| (entry.alert_id, entry.webhook))
        .collect();
    let expected = [
        ("gap", "chat"),
        ("gap", "revoke-gaps"),
        ("replay", "chat"),
        ("replay", "disable-any"),
        ("replay", "revoke-any"),
    ];
    let expected = expected.map(|(id, hook)| (id.to_owned(), hook.to_owned()));
    assert_eq!(sent, BTreeSet::from(expected));
}

#[test]
fn an_open_circuit_pauses_requests_to_a_failing_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer(Reply(500, None));
    let responder = responder_to(dir.path(), &receiver.url(), |config| {
        config.breaker_failures = 2;
        config.breaker_cooldown = Duration::from_secs(1);
        config.retry_initial = Duration::from_millis(1);
        config.retry_max_interval = Duration::from_millis(2);
    });
    responder.record(&alert("a1")).unwrap();
    wait_until("the probe after the cool-down", || {
        receiver.deliveries().len() >= 3
    });
    responder.shutdown().unwrap();
    let deliveries = receiver.deliveries();
    // Backoff alone would retry within 2 ms; the open breaker holds the third attempt.
    assert!(deliveries[2].at - deliveries[1].at >= Duration::from_secs(1));
    assert_eq!(
        count(dir.path(), State::Retrying),
        1,
        "still retrying, not dropped"
    );
}

#[test]
fn webhook_config_rejects_bad_values_with_clear_errors() {
    let parse = |text: &str| toml::from_str::<authtrail_respond::WebhookConfig>(text);
    let base = "name = \"idp\"\nurl = \"https://idp.example/x\"\naction = \"revoke_token\"\n";
    assert!(parse(&format!("{base}secret_env = \"S\"\nretries = 3\n")).is_err());
    assert!(parse(&format!("{base}secret_env = \"S\"\naction2 = 1\n")).is_err());
    let both = parse(&format!("{base}secret_env = \"S\"\nsecret_file = \"/s\"\n")).unwrap();
    assert!(both
        .validate()
        .unwrap_err()
        .to_string()
        .contains("exactly one"));
    let mut bad_url = parse(&format!("{base}secret_env = \"S\"\n")).unwrap();
    bad_url.url = "ftp://x".into();
    assert!(bad_url
        .validate()
        .unwrap_err()
        .to_string()
        .contains("`url`"));
    let missing = parse(&format!(
        "{base}secret_env = \"AUTHTRAIL_TEST_UNSET_VARIABLE\"\n"
    ));
    let error = Responder::start(
        tempfile::tempdir().unwrap().path(),
        &respond_config(vec![missing.unwrap()]),
        runtime(),
    )
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("AUTHTRAIL_TEST_UNSET_VARIABLE"),
        "{error}"
    );
}

#[test]
fn a_clean_stop_right_after_recording_still_delivers_within_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let responder = responder_to(dir.path(), &receiver.url(), |config| {
        config.rate_limit = 0;
    });
    for i in 0..20 {
        responder.record(&alert(&format!("a{i}"))).unwrap();
    }
    responder.shutdown().unwrap();
    assert_eq!(count(dir.path(), State::Delivered), 20);
    assert_eq!(receiver.deliveries().len(), 20);
}
