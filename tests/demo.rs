//! `authtrail demo`, the README's first command, with a short `--duration`: it serves the
//! web UI, the generated attacks raise alerts that reach its own webhook receiver with a
//! valid signature, and it stops cleanly with everything in the lake.

mod support;

use std::time::Duration;

use support::run::{http, printed};
use support::{authtrail, row_count, WorkDir};

#[test]
fn demo_raises_alerts_delivers_webhooks_and_stops_cleanly() {
    let work = WorkDir::new();
    let lake = work.path().join("demo-lake");
    let mut demo = authtrail(
        work.path(),
        "demo",
        &[
            "--lake",
            lake.to_str().unwrap(),
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "60s",
            "--replay",
            "15s",
            "--users",
            "200",
        ],
    );
    let address = printed(work.path(), "demo", "web UI and API  http://");
    let api_key = printed(work.path(), "demo", "API key: ");
    let (status, page) = http(&address, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("authtrail"), "{page}");
    let (status, _) = http(&address, "GET", "/api/v1/alerts", Some(&api_key), None);
    assert_eq!(status, 200);

    let status = demo.wait(Duration::from_secs(240));
    let out = std::fs::read_to_string(work.path().join("demo.out")).unwrap();
    let log = std::fs::read_to_string(work.path().join("demo.log")).unwrap();
    assert!(status.success(), "{status}\n{out}\n{log}");
    assert!(out.contains("demo: the generator is done"), "{out}");
    // The receiver prints only requests whose Standard Webhooks signature checks out.
    assert!(
        out.contains("demo: webhook idp-revoke-token: revoke_token for "),
        "{out}"
    );
    assert!(!out.contains("refused"), "{out}");
    let summary = out
        .lines()
        .find(|line| line.starts_with("demo: stopped cleanly: "))
        .unwrap_or_else(|| panic!("no summary: {out}"));
    let alerts: u64 = summary
        .split(" alerts;")
        .next()
        .and_then(|head| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no alert count in `{summary}`"));
    assert!(alerts > 0, "{summary}");
    assert!(row_count(&lake, "events") > 1_000, "{summary}");
    assert!(row_count(&lake, "alerts") > 0, "{summary}");
    // The API key is the demo's to print on stdout, never to log.
    assert!(!log.contains(&api_key));
}
