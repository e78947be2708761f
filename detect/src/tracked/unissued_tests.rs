//! Presentations read before their token's issue: judged when the issue arrives, as in
//! time order (`token_replay`'s other principal, `audience_mismatch`).

use authtrail_model::{Alert, Event, Kind};

use super::{Unissued, PER_TOKEN};
use crate::detector::Facts;
use crate::detectors::testkit::{at, authn, authz, event, feed, feed_from, only, run, table, text};
use crate::state::TableStats;
use crate::{DetectConfig, Detectors};

fn issue(seconds: f64, owner: &str, audience: &[&str]) -> Event<'static> {
    let mut issue = event("i", seconds, Kind::TokenIssue, owner);
    issue.token_id = text("jti-1");
    if !audience.is_empty() {
        issue.token_audience = Some(audience.iter().map(|a| (*a).to_owned().into()).collect());
    }
    issue
}

/// A presentation of `jti-1` by `principal` to `target`, without a client address (so
/// `token_replay` keeps no sighting and its row counts only the records).
fn present(id: &str, seconds: f64, principal: &str, target: &str) -> Event<'static> {
    let mut event = authz(id, seconds, principal, target, true);
    event.token_id = text("jti-1");
    event.source_service = text("gateway");
    event
}

/// An event of nobody involved, moving its source's watermark to `seconds`.
fn filler(seconds: f64) -> Event<'static> {
    authn(
        &format!("x{seconds}"),
        seconds,
        "user:zed",
        true,
        "password",
    )
}

/// The issue on partition 0, the presentation (and an hour more) on partition 1, read
/// first: the backlog case.
fn partitioned(config: &DetectConfig, issue: Event<'_>, presentation: Event<'_>) -> Vec<Alert> {
    let mut detectors = Detectors::new(config).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let mut alerts = feed_from(&mut detectors, p1, &[presentation, filler(3_600.0)]);
    alerts.extend(feed_from(&mut detectors, p0, &[issue]));
    alerts
}

#[test]
fn token_replay_fires_on_an_issue_read_after_another_partition_s_presentation() {
    let config = only("token_replay");
    let (issue, fraud) = (
        issue(0.0, "user:alice", &[]),
        present("p", 10.0, "svc:fraud", "payments"),
    );
    let in_order = run(&config, &[issue.clone(), fraud.clone()]);
    assert_eq!(in_order.len(), 1);
    assert_eq!(in_order[0].key, "jti-1 by svc:fraud");
    assert_eq!(partitioned(&config, issue, fraud), in_order);
}

#[test]
fn audience_mismatch_fires_on_an_issue_read_after_another_partition_s_presentation() {
    let config = only("audience_mismatch");
    let (issue, ledger) = (
        issue(0.0, "user:alice", &["payments", "orders"]),
        present("p", 10.0, "svc:fraud", "ledger"),
    );
    let in_order = run(&config, &[issue.clone(), ledger.clone()]);
    assert_eq!(in_order.len(), 1);
    assert_eq!(in_order[0].key, "jti-1 -> ledger");
    assert_eq!(partitioned(&config, issue, ledger), in_order);
}

#[test]
fn an_issue_up_to_the_lateness_late_in_one_stream_still_fires() {
    for (name, target) in [
        ("token_replay", "payments"),
        ("audience_mismatch", "ledger"),
    ] {
        let config = only(name);
        let (issue, presentation) = (
            issue(0.0, "user:alice", &["payments"]),
            present("p", 10.0, "svc:fraud", target),
        );
        let in_order = run(&config, &[issue.clone(), presentation.clone()]);
        assert_eq!(in_order.len(), 1, "{name}");
        // The watermark is 30 s when the issue at 0 s arrives: 30 s behind, not late.
        let late = run(&config, &[presentation, filler(30.0), issue]);
        assert_eq!(late, in_order, "{name}");
    }
}

#[test]
fn an_issue_more_than_the_lateness_late_raises_nothing() {
    for (name, target) in [
        ("token_replay", "payments"),
        ("audience_mismatch", "ledger"),
    ] {
        let config = only(name);
        let mut detectors = Detectors::new(&config).unwrap();
        let events = [
            present("p", 10.0, "svc:fraud", target),
            filler(30.5),
            issue(0.0, "user:alice", &["payments"]),
        ];
        assert!(feed(&mut detectors, &events).is_empty(), "{name}");
        assert_eq!(detectors.stats().late_events, 1);
        // Its records went with the issue all the same.
        assert_eq!(table(&detectors, name).live_keys, 0, "{name}");
    }
}

#[test]
fn silent_when_the_issue_read_late_names_the_presenter_or_covers_the_target() {
    let mine = present("p", 10.0, "user:alice", "payments");
    let alerts = partitioned(&only("token_replay"), issue(0.0, "user:alice", &[]), mine);
    assert!(alerts.is_empty());
    let config = only("audience_mismatch");
    let covered = present("p", 10.0, "svc:fraud", "orders");
    let issue_ = issue(0.0, "user:alice", &["payments", "orders"]);
    assert!(partitioned(&config, issue_, covered.clone()).is_empty());
    // No audience recorded: nothing is outside it.
    assert!(partitioned(&config, issue(0.0, "user:alice", &[]), covered).is_empty());
}

#[test]
fn silent_when_the_presentation_is_older_than_the_issue() {
    for (name, target) in [
        ("token_replay", "payments"),
        ("audience_mismatch", "ledger"),
    ] {
        let config = only(name);
        let issue = issue(20.0, "user:alice", &["payments"]);
        let early = present("p", 10.0, "svc:fraud", target);
        assert!(partitioned(&config, issue.clone(), early.clone()).is_empty());
        assert!(run(&config, &[early, issue]).is_empty(), "{name}");
    }
}

#[test]
fn records_go_once_the_clock_passes_them_by_the_lateness() {
    for (name, target) in [
        ("token_replay", "payments"),
        ("audience_mismatch", "ledger"),
    ] {
        let mut detectors = Detectors::new(&only(name)).unwrap();
        // One record per presenter (or target): a repeat refreshes nothing new.
        let twice = [
            present("p", 10.0, "svc:fraud", target),
            present("q", 11.0, "svc:fraud", target),
        ];
        feed(&mut detectors, &twice);
        assert_eq!(table(&detectors, name).live_keys, 1, "{name}");
        // Swept once the clock is 30 s past them (and the 5 s sweep interval has come).
        feed(&mut detectors, &[filler(40.0)]);
        assert_eq!(table(&detectors, name).live_keys, 1, "{name}");
        for second in 41..50 {
            feed(&mut detectors, &[filler(second as f64)]);
        }
        let stats = table(&detectors, name);
        assert_eq!((stats.live_keys, stats.expired), (0, 1), "{name}");
        // An issue now would be late for any time before the presentation: nothing.
        assert!(feed(&mut detectors, &[issue(10.0, "user:alice", &["payments"])]).is_empty());
    }
}

#[test]
fn records_stay_under_their_cap_and_evictions_are_counted() {
    let max_keys = 4 * PER_TOKEN;
    let mut unissued: Unissued = Unissued::new(max_keys);
    let mut kept = 0;
    for token in 0..10u64 {
        for presenter in 0..(PER_TOKEN as u64 + 2) {
            let mut presentation = present("p", token as f64, "svc:fraud", "ledger");
            presentation.token_id = text(&format!("t{token}"));
            let facts = Facts {
                now: at(token as f64),
                token: Some(token),
                ..Facts::default()
            };
            unissued.note(&presentation, &facts, presenter, 30_000_000);
            kept += 1;
            let stats = unissued.stats();
            assert!(stats.live_keys <= max_keys, "{stats:?}");
            assert_eq!(stats.live_keys as u64 + stats.evicted, kept);
        }
    }
    assert_eq!(unissued.stats().live_keys, max_keys);
    // The newest token is held in full, the oldest went.
    assert_eq!(unissued.issued(9, 0).len(), PER_TOKEN);
    assert!(unissued.issued(0, 0).is_empty());
}

#[test]
fn a_record_survives_a_checkpoint_and_fires_on_the_issue_after_the_restart() {
    let config = only("token_replay");
    let mut detectors = Detectors::new(&config).unwrap();
    let (_, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let fraud = present("p", 10.0, "svc:fraud", "payments");
    feed_from(&mut detectors, p1, &[fraud.clone(), filler(3_600.0)]);
    let mut restored = Detectors::restore(&config, &detectors.checkpoint()).unwrap();
    assert_eq!(table(&restored, "token_replay").live_keys, 1);
    let p0 = restored.source("auth", 0);
    let issue = issue(0.0, "user:alice", &[]);
    let alerts = feed_from(&mut restored, p0, std::slice::from_ref(&issue));
    assert_eq!(alerts, run(&config, &[issue, fraud]));
}

#[test]
fn empty_detector_bytes_of_an_earlier_checkpoint_restore_with_no_records() {
    let mut unissued: Unissued = Unissued::new(1_000);
    unissued.load(&[]).unwrap();
    assert_eq!(unissued.stats(), TableStats::default());
    assert!(unissued.load(&[0xff; 3]).is_err());
}
