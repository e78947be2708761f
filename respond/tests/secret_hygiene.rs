//! A planted secret (the signing key, and a token in the webhook URL) never reaches the
//! logs, whatever happens: deliveries, failures, dead letters, dry runs, config errors.
//! Its own test binary, because it installs the process-wide log subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use authtrail_respond::{Responder, State};
use support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_planted_secret_never_appears_in_log_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script([Reply(500, None), Reply(404, None)]);
    let url = format!("{}?token=PLANTED-URL-TOKEN", receiver.url());
    let mut dry = webhook(dir.path(), &url);
    dry.name = "dry".into();
    dry.dry_run = true;
    let live = webhook(dir.path(), &url);
    let config = respond_config(vec![live.clone(), dry]);
    tracing::info!(config = ?config, "starting");
    let responder = Responder::start(dir.path(), &config, runtime()).unwrap();
    for i in 0..3 {
        responder.record(&alert(&format!("a{i}"))).unwrap();
    }
    wait_until("every outcome", || {
        let done = entries(dir.path())
            .iter()
            .filter(|e| matches!(e.state, State::Delivered | State::Dead))
            .count();
        done == 6
    });
    responder.shutdown().unwrap();
    drop(responder);

    // A refused connection, and a secret that fails to parse.
    let mut down = webhook(
        dir.path(),
        "http://127.0.0.1:9/hook?token=PLANTED-URL-TOKEN",
    );
    down.retry_max_age = std::time::Duration::from_millis(1);
    let responder = Responder::start(dir.path(), &respond_config(vec![down]), runtime()).unwrap();
    responder.record(&alert("down")).unwrap();
    wait_until("dead letter", || {
        entries(dir.path())
            .iter()
            .any(|e| e.alert_id == "down" && e.state == State::Dead)
    });
    drop(responder);
    let bad = dir.path().join("bad-secret");
    std::fs::write(&bad, "whsec_PLANTED*not-base64").unwrap();
    let mut broken = live;
    broken.secret_file = Some(bad);
    let error = Responder::start(dir.path(), &respond_config(vec![broken]), runtime())
        .err()
        .unwrap();
    tracing::error!(%error, "start failed as expected");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("alert delivered"), "the logs were captured");
    assert!(logs.contains("dead letter"));
    let key = SECRET.strip_prefix("whsec_").unwrap();
    for planted in [SECRET, key, "PLANTED"] {
        assert!(
            !logs.contains(planted),
            "`{planted}` leaked into the logs:\n{logs}"
        );
    }
}
