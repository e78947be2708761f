//! `authtrail run` end to end against a separate broker process (tansu): headless Chromium
//! drives the web UI (live alert, its evidence, a principal's timeline, the service graph,
//! the SQL console; screenshots kept under `<target dir>/e2e-artifacts/ui/`), and SIGTERM
//! under load stops it within the deadline with everything flushed and committed.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::run::{
    http, printed, start, wait_for, write_config, write_revoked_token_use, API_KEY,
};
use support::{column_counts, good_event, python, Broker, WorkDir};

const TOPIC: &str = "auth-events";
const SIGTERM: i32 = 15;

/// `$CARGO_TARGET_DIR/e2e-artifacts/<name>` (the target dir found from this test binary,
/// `<target>/debug/deps/e2e_run-*`, when the variable is not set).
fn artifacts(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        },
        PathBuf::from,
    );
    let dir = target.join("e2e-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn the_web_ui_shows_live_alerts_evidence_timeline_graph_and_sql() {
    let work = WorkDir::new();
    let broker = Broker::start(work.path());
    let lake = work.path().join("lake");
    // The page counts the alerts of revoked_token_use and new_service_edge; the service
    // allowing the revoked tokens would add validation_gap's, which is not the point here.
    let extra = format!(
        "[kafka]\nbrokers = \"{}\"\n\n[detect.new_service_edge]\nlearning = \"1h\"\n\n\
         [detect.validation_gap]\nenabled = false\n",
        broker.address
    );
    let config = write_config(work.path(), &lake, &extra);
    let _run = start(work.path(), "run", &config);
    let address = printed(work.path(), "run", "on http://");

    // One partition, so the file's order is the detectors' order: a service learns its
    // edges for an hour, three tokens are revoked and used, then the service reaches a new
    // target.
    let tokens = work.path().join("tokens.jsonl");
    write_revoked_token_use(&tokens, 3);
    let learnt = r#"{"id":"edge-0","time":"2026-11-23T17:00:00Z","kind":"authz","principal":"svc:checkout","service":"payments","target_service":"payments","outcome":"allow"}"#;
    let new = r#"{"id":"edge-1","time":"2026-11-23T19:30:00Z","kind":"authz","principal":"svc:checkout","service":"hr-db","target_service":"hr-db","outcome":"allow"}"#;
    let input = work.path().join("events.jsonl");
    let middle = std::fs::read_to_string(&tokens).unwrap();
    std::fs::write(&input, format!("{learnt}\n{middle}{new}\n")).unwrap();
    broker.produce(TOPIC, &input, Some(1));
    wait_for(&address, "/metrics", "two detectors' alerts", |body| {
        body.contains("authtrail_alerts_total{detector=\"new_service_edge\"")
            && body.contains("authtrail_alerts_total{detector=\"revoked_token_use\"")
    });

    let shots = artifacts("ui");
    let output = Command::new(python())
        .arg(support::repo_file("tests/e2e/ui_check.py"))
        .arg(format!("http://{address}/"))
        .arg(API_KEY)
        .arg(&shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "UI check failed (screenshots in {}): {stdout}\n{}",
        shots.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let alerts: Vec<&str> = seen["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    assert!(
        alerts.iter().any(|a| a.contains("revoked_token_use")),
        "{alerts:?}"
    );
    assert!(
        alerts.iter().any(|a| a.contains("new_service_edge")),
        "{alerts:?}"
    );
    // The first alert raised (last row) is a revoked token's use: its evidence is the
    // token's events from the lake.
    let evidence: Vec<&str> = seen["evidence_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!evidence.is_empty());
    assert!(evidence.iter().all(|id| id.ends_with("-0")), "{evidence:?}");
    assert!(seen["timeline_rows"].as_u64().unwrap() >= 3, "{seen}");
    assert!(seen["graph_edges"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["graph_anomalous"], 1, "{seen}");
    assert_eq!(
        seen["sql_header"],
        serde_json::json!(["id", "kind", "principal"])
    );
    assert_eq!(seen["sql_rows"].as_array().unwrap().len(), 5, "{seen}");
    for name in [
        "01-loaded",
        "02-live-alerts",
        "03-alert-evidence",
        "04-principal-timeline",
        "05-service-graph",
        "06-sql-console",
    ] {
        let shot = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1_000),
            "{}",
            shot.display()
        );
    }
}

#[test]
fn sigterm_under_load_flushes_and_commits_within_the_deadline() {
    const EVENTS: usize = 200_000;
    let work = WorkDir::new();
    let broker = Broker::start(work.path());
    let lake = work.path().join("lake");
    let input = work.path().join("events.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for i in 0..EVENTS {
        writeln!(file, "{}", good_event(i)).unwrap();
    }
    drop(file);
    broker.produce(TOPIC, &input, Some(4));
    // Large flushes, so plenty is buffered when the signal comes.
    let extra = format!(
        "[kafka]\nbrokers = \"{}\"\n\n[run]\nshutdown_timeout = \"20s\"\n",
        broker.address
    );
    let config = write_config(work.path(), &lake, &extra);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "flush_age = \"300ms\"",
        "flush_age = \"30s\"\nflush_rows = 50000",
    );
    std::fs::write(&config, text).unwrap();

    let mut run = start(work.path(), "first", &config);
    let address = printed(work.path(), "first", "on http://");
    let metrics = wait_for(&address, "/metrics", "consuming", |body| {
        metric(body, "authtrail_events_consumed_total{") >= 20_000.0
    });
    let consumed_before = metric(&metrics, "authtrail_events_consumed_total{");
    let signalled = Instant::now();
    run.signal(SIGTERM);
    let status = run.wait(Duration::from_secs(25));
    let took = signalled.elapsed();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        took < Duration::from_secs(20),
        "within the deadline: {took:?}"
    );
    let stored = column_counts(&lake, "events", "id");
    assert!(
        stored.len() as f64 >= consumed_before,
        "flushed at least what was consumed"
    );
    assert!(stored.values().all(|&n| n == 1));
    eprintln!(
        "SIGTERM after {consumed_before} consumed: exited in {took:?} with {} events in the lake",
        stored.len()
    );

    // The restart reads only what the lake lacks: the committed offsets cover the lake.
    let _second = start(work.path(), "second", &config);
    let address = printed(work.path(), "second", "on http://");
    let metrics = wait_for(&address, "/metrics", "the rest consumed", |body| {
        metric(body, "authtrail_events_accepted_total{") >= (EVENTS - stored.len()) as f64
    });
    assert_eq!(
        metric(
            &metrics,
            "authtrail_events_skipped_total{reason=\"already_in_lake\"}"
        ),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "authtrail_events_consumed_total{") as usize,
        EVENTS - stored.len(),
        "the second run re-read nothing the first one stored"
    );
    assert_eq!(http(&address, "GET", "/healthz", None, None).0, 200);
}
