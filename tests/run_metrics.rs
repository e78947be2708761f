//! `authtrail run` with its embedded broker, fed by a real Kafka client: open and
//! authenticated routes, `/metrics` accepted by `promtool check metrics`, every metric the
//! Grafana dashboards use present in it, and a clean exit on SIGTERM.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::run::{
    http, printed, start, wait_for, write_config, write_revoked_token_use, API_KEY,
};
use support::{Broker, WorkDir};

const SIGTERM: i32 = 15;

/// Names of the series in an exposition (sample lines, not comments).
fn series_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            line[..end].to_owned()
        })
        .collect()
}

/// Every `authtrail_*` name in the panel expressions of the dashboards, with its file.
fn dashboard_metrics() -> Vec<(String, String)> {
    let dir = support::repo_file("dashboards");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or("?");
            let description = panel["description"].as_str().unwrap_or("");
            assert!(
                !description.is_empty(),
                "{file}: panel `{title}` has no description"
            );
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let mut rest = expr;
                while let Some(start) = rest.find("authtrail_") {
                    let tail = &rest[start..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(tail.len());
                    found.push((file.clone(), tail[..end].to_owned()));
                    rest = &tail[end..];
                }
            }
        }
    }
    assert!(found.len() > 20, "dashboards use metrics: {found:?}");
    found
}

fn promtool_check(metrics: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`): run scripts/install-test-deps.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn run_serves_metrics_promtool_accepts_and_the_dashboards_use() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    // Four revoked_token_use alerts are counted below; the service allowing those tokens
    // would add one validation_gap alert, which is not what this test is about.
    let config = write_config(
        work.path(),
        &lake,
        "[kafka]\nembedded_partitions = 2\n\n[detect.validation_gap]\nenabled = false\n",
    );
    let mut run = start(work.path(), "run", &config);
    let address = printed(work.path(), "run", "on http://");
    let brokers = printed(work.path(), "run", "broker listening on ");

    // Open routes answer without a key; everything else wants one.
    assert_eq!(http(&address, "GET", "/healthz", None, None).0, 200);
    let (status, page) = http(&address, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("/ui/app.js"), "{page}");
    assert_eq!(http(&address, "GET", "/ui/app.js", None, None).0, 200);
    assert_eq!(http(&address, "GET", "/metrics", None, None).0, 401);
    assert_eq!(
        http(
            &address,
            "GET",
            "/metrics",
            Some("wrong-key-0123456789abc"),
            None
        )
        .0,
        401
    );
    assert_eq!(
        http(&address, "GET", "/api/v1/live/alerts", None, None).0,
        401
    );
    assert_eq!(http(&address, "GET", "/api/v1/nope", None, None).0, 401);

    let input = work.path().join("events.jsonl");
    write_revoked_token_use(&input, 4);
    Broker::existing(&brokers).produce("auth-events", &input, None);

    wait_for(&address, "/readyz", "ready", |body| {
        body.starts_with("ready")
    });
    let live = wait_for(
        &address,
        "/api/v1/live/alerts?after=0&wait=5",
        "4 live alerts",
        |body| {
            serde_json::from_str::<serde_json::Value>(body).unwrap()["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.len() == 4)
        },
    );
    assert!(live.contains("revoked_token_use"), "{live}");
    // Wait until the flush, the dry-run deliveries and librdkafka's lag statistics show.
    let metrics = wait_for(&address, "/metrics", "metrics after the flush", |body| {
        body.contains("authtrail_alerts_total{detector=\"revoked_token_use\",severity=")
            && body.contains(
                "authtrail_webhook_deliveries_total{webhook=\"dry\",outcome=\"delivered\"} 4",
            )
            && body.contains("authtrail_kafka_consumer_lag{")
            && !body.contains("authtrail_lake_flushes_total 0")
    });
    assert!(
        metrics.contains("authtrail_events_consumed_total{topic=\"auth-events\",partition="),
        "{metrics}"
    );
    assert!(
        metrics.contains("authtrail_detector_latency_seconds{quantile=\"0.99\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authtrail_detector_state_keys{table=\"tokens\"}"),
        "{metrics}"
    );
    // The flush that wrote the lake went through the detectors: its pause is recorded.
    let pauses = metrics
        .lines()
        .find_map(|line| line.strip_prefix("authtrail_detector_flush_pause_seconds_count "))
        .expect("flush pause histogram");
    assert_ne!(pauses, "0", "{metrics}");
    // Every message read had a timestamp, so its age at the poll is recorded.
    let ages = metrics
        .lines()
        .find_map(|line| line.strip_prefix("authtrail_kafka_record_age_seconds_count "))
        .expect("record age histogram");
    assert_ne!(ages, "0", "{metrics}");
    // Each batch handed to the pipeline records how long the source waited to hand it.
    let handed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("authtrail_kafka_source_blocked_seconds_count "))
        .expect("source blocked histogram");
    assert_ne!(handed, "0", "{metrics}");
    // Both embedded partitions are assigned; the one without events holds the clock (no
    // sample yet) until it idles out after `source_idle_after`.
    let active_sources = metrics
        .lines()
        .find_map(|line| line.strip_prefix("authtrail_detector_active_sources "))
        .expect("active sources gauge");
    assert!(["1", "2"].contains(&active_sources), "{metrics}");
    assert!(
        metrics.contains("# TYPE authtrail_detector_clock_seconds gauge"),
        "{metrics}"
    );
    assert!(metrics.contains("authtrail_http_request_duration_seconds_bucket{route=\"/api/v1/live/alerts\",code=\"2xx\",le="), "{metrics}");
    let consumed: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("authtrail_events_consumed_total{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(consumed, 12.0, "{metrics}");
    std::fs::write(work.path().join("metrics.txt"), &metrics).unwrap();

    let (ok, report) = promtool_check(&metrics);
    assert!(ok, "promtool check metrics failed:\n{report}\n{metrics}");
    // promtool does fail on a broken exposition (so the check above can fail).
    let (broken, _) = promtool_check("# TYPE x counter\nx{a=\"1\"} one\n");
    assert!(!broken);

    let names = series_names(&metrics);
    let missing: Vec<_> = dashboard_metrics()
        .into_iter()
        .filter(|(_, name)| !names.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics missing from /metrics: {missing:?}"
    );

    run.signal(SIGTERM);
    assert!(
        run.wait(Duration::from_secs(30)).success(),
        "clean exit on SIGTERM"
    );
    let out = std::fs::read_to_string(work.path().join("run.out")).unwrap();
    assert!(out.contains("stopped cleanly: 12 received"), "{out}");
    let _ = API_KEY;
}
