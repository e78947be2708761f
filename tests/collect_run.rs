//! The collector in the real binary: on `authtrail run`'s listener with its own keys
//! (a collector key opens no query route, a query key does not open the collector), its
//! counts on `/metrics`; `authtrail collect` in front of that run's broker, and refusing
//! to start without a cluster or keys.

mod support;

use std::time::Duration;

use support::run::{http, printed, wait_for, write_config, API_KEY, SECRET};
use support::{authtrail_env, WorkDir};

const COLLECT_KEY: &str = "collect-key-0123456789abcdef";

const OKTA_RECORD: &str = r#"{"uuid":"okta-1","published":"2026-01-05T10:00:00.000Z","eventType":"user.session.start","actor":{"alternateId":"alice@example.com"},"outcome":{"result":"SUCCESS"}}"#;

#[test]
fn run_serves_the_collector_with_write_only_keys_of_its_own() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    // With collector keys, run consumes the collector's topics in their formats (and the
    // embedded broker creates them): nothing to configure for the okta one.
    let config = write_config(work.path(), &lake, "[kafka]\nembedded_partitions = 1\n");
    let _run = authtrail_env(
        work.path(),
        "run",
        &["run", "--config", config.to_str().unwrap()],
        &[
            ("AUTHTRAIL_API_KEYS", API_KEY),
            ("AUTHTRAIL_COLLECT_KEYS", COLLECT_KEY),
            ("AUTHTRAIL_TEST_WEBHOOK_SECRET", SECRET),
        ],
    );
    let address = printed(work.path(), "run", "on http://");
    let collect = "/api/v1/collect/okta";

    let (status, body) = http(
        &address,
        "POST",
        collect,
        Some(COLLECT_KEY),
        Some(OKTA_RECORD),
    );
    assert_eq!(status, 200, "{body}");
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&counts["records"], &counts["mapped"]),
        (&1.into(), &1.into()),
        "{body}"
    );

    // Separate keys: neither opens the other's routes.
    assert_eq!(
        http(&address, "POST", collect, Some(API_KEY), Some(OKTA_RECORD)).0,
        401
    );
    assert_eq!(
        http(&address, "POST", collect, None, Some(OKTA_RECORD)).0,
        401
    );
    let query = r#"{"sql": "SELECT 1"}"#;
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/v1/query",
            Some(COLLECT_KEY),
            Some(query)
        )
        .0,
        401
    );
    for path in [
        "/api/v1/alerts",
        "/metrics",
        "/api/v1/live/alerts",
        "/api/v1/nope",
    ] {
        assert_eq!(
            http(&address, "GET", path, Some(COLLECT_KEY), None).0,
            401,
            "{path}"
        );
    }
    assert_eq!(
        http(
            &address,
            "POST",
            "/api/v1/query",
            Some(API_KEY),
            Some(query)
        )
        .0,
        200
    );

    wait_for(&address, "/metrics", "the collector's counts", |metrics| {
        metrics.contains(r#"authtrail_collect_records_total{format="okta",stage="acknowledged"} 1"#)
            && metrics.contains(r#"authtrail_collect_requests_total{format="okta",code="200"} 1"#)
    });

    // `authtrail collect` in front of the same broker: the same answers, /metrics behind
    // the query keys.
    let brokers = printed(work.path(), "run", "broker listening on ");
    let _collect = authtrail_env(
        work.path(),
        "collect",
        &["collect", "--listen", "127.0.0.1:0", "--brokers", &brokers],
        &[
            ("AUTHTRAIL_API_KEYS", API_KEY),
            ("AUTHTRAIL_COLLECT_KEYS", COLLECT_KEY),
        ],
    );
    let collector = printed(work.path(), "collect", "collecting on http://");
    let (status, body) = http(
        &collector,
        "POST",
        collect,
        Some(COLLECT_KEY),
        Some(OKTA_RECORD),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        http(
            &collector,
            "POST",
            collect,
            Some(API_KEY),
            Some(OKTA_RECORD)
        )
        .0,
        401
    );
    assert_eq!(http(&collector, "GET", "/healthz", None, None).0, 200);
    assert_eq!(
        http(&collector, "GET", "/metrics", Some(COLLECT_KEY), None).0,
        401
    );
    let (status, metrics) = http(&collector, "GET", "/metrics", Some(API_KEY), None);
    assert_eq!(status, 200);
    assert!(
        metrics
            .contains(r#"authtrail_collect_records_total{format="okta",stage="acknowledged"} 1"#),
        "{metrics}"
    );
}

#[test]
fn collect_refuses_to_start_without_a_cluster_or_keys() {
    let work = WorkDir::new();
    let mut no_brokers = authtrail_env(
        work.path(),
        "collect",
        &["collect", "--listen", "127.0.0.1:0"],
        &[("AUTHTRAIL_COLLECT_KEYS", COLLECT_KEY)],
    );
    assert!(!no_brokers.wait(Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(work.path().join("collect.log")).unwrap();
    assert!(log.contains("--brokers"), "{log}");

    let mut no_keys = authtrail_env(
        work.path(),
        "collect-keys",
        &["collect", "--brokers", "127.0.0.1:9092"],
        &[],
    );
    assert!(!no_keys.wait(Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(work.path().join("collect-keys.log")).unwrap();
    assert!(log.contains("AUTHTRAIL_COLLECT_KEYS"), "{log}");
}
