//! The per-source clocks: lateness per partition, expiry on the slowest active one.

use std::time::{Duration, Instant};

use authtrail_model::{Alert, Event};

use super::SourceId;
use crate::detectors::testkit::{at, authn, feed, only, table};
use crate::{DetectConfig, Detectors};

fn feed_from(detectors: &mut Detectors, source: SourceId, events: &[Event<'_>]) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for event in events {
        detectors.observe_from(source, event, &mut alerts);
    }
    alerts
}

/// Ten password failures of `principal`, 5 s apart from `start`: a brute force.
fn brute_force(start: f64, principal: &str) -> Vec<Event<'static>> {
    (0..10)
        .map(|i| {
            let id = format!("{principal}-f{i}");
            authn(&id, start + i as f64 * 5.0, principal, false, "password")
        })
        .collect()
}

fn live_keys(detectors: &Detectors, name: &str) -> usize {
    table(detectors, name).live_keys
}

#[test]
fn a_lagging_partition_s_events_are_not_late() {
    let config = only("brute_force");
    // Partition 0 was read an hour of event time ahead before partition 1's backlog.
    let ahead = brute_force(3_600.0, "user:alice");
    let behind = brute_force(0.0, "user:bob");

    let mut detectors = Detectors::new(&config).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let mut alerts = feed_from(&mut detectors, p0, &ahead);
    alerts.extend(feed_from(&mut detectors, p1, &behind));
    assert_eq!(detectors.stats().late_events, 0);
    let keys: Vec<_> = alerts.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["user:alice", "user:bob"]);

    // One clock for both (what a single stream gets) counts bob's failures late.
    let mut one = Detectors::new(&config).unwrap();
    let alerts = [feed(&mut one, &ahead), feed(&mut one, &behind)].concat();
    assert_eq!(one.stats().late_events, 10);
    assert_eq!(alerts.len(), 1);
}

#[test]
fn out_of_order_within_one_partition_is_still_late() {
    let mut detectors = Detectors::new(&only("brute_force")).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let events = brute_force(0.0, "user:alice");
    // p0 reaches 100 s; its event at 45 s is 55 s behind: late. p1 is unaffected.
    feed_from(
        &mut detectors,
        p0,
        &[authn("x", 100.0, "user:x", true, "password")],
    );
    feed_from(&mut detectors, p0, &events[9..]);
    assert_eq!(detectors.stats().late_events, 1);
    feed_from(&mut detectors, p1, &events[..9]);
    assert_eq!(detectors.stats().late_events, 1);
    // Within the lateness (30 s) behind its own partition it is not.
    feed_from(
        &mut detectors,
        p0,
        &[authn("y", 75.0, "user:y", true, "password")],
    );
    assert_eq!(detectors.stats().late_events, 1);
}

#[test]
fn expiry_follows_the_slowest_active_partition() {
    let mut detectors = Detectors::new(&only("brute_force")).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    assert_eq!(
        detectors.clock(),
        None,
        "registered partitions hold it until they speak"
    );
    feed_from(&mut detectors, p1, &brute_force(0.0, "user:bob")[..3]);
    assert_eq!(detectors.clock(), None);
    feed_from(&mut detectors, p0, &brute_force(3_600.0, "user:alice")[..3]);
    assert_eq!(detectors.clock(), Some(at(10.0)));
    // p0 an hour ahead does not expire bob's failures: p1 may still bring the rest.
    assert_eq!(live_keys(&detectors, "brute_force"), 2);
    let alerts = feed_from(&mut detectors, p1, &brute_force(0.0, "user:bob")[3..]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(detectors.clock(), Some(at(45.0)));
}

#[test]
fn an_idle_partition_does_not_hold_expiry_back_forever() {
    let config = only("brute_force");
    let mut detectors = Detectors::new(&config).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    let start = Instant::now();
    feed_from(&mut detectors, p1, &brute_force(0.0, "user:bob")[..1]);
    feed_from(
        &mut detectors,
        p0,
        &[authn("a0", 1.0, "user:a", true, "password")],
    );
    detectors.tick(start);
    // p0 goes on, a minute of event time per second of wall clock (a tick per second),
    // while p1 delivers nothing.
    let mut clocks = Vec::new();
    for second in 1..=40u64 {
        let id = format!("a{second}");
        let event = authn(&id, second as f64 * 60.0, "user:a", true, "password");
        feed_from(&mut detectors, p0, &[event]);
        detectors.tick(start + Duration::from_secs(second));
        clocks.push(detectors.clock());
    }
    assert_eq!(clocks[28], Some(at(0.0)), "p1 holds it for 29 s");
    assert_eq!(clocks[29], Some(at(1_800.0)), "idle after 30 s");
    assert_eq!(detectors.stats().active_sources, 1);
    assert_eq!(clocks[39], Some(at(2_400.0)));
    assert_eq!(
        live_keys(&detectors, "brute_force"),
        0,
        "bob's failure expired"
    );

    // p1's next event makes it active again, and it is judged by its own watermark.
    feed_from(
        &mut detectors,
        p1,
        &[authn("b", 20.0, "user:bob", false, "password")],
    );
    assert_eq!(detectors.clock(), Some(at(20.0)));
    assert_eq!(detectors.stats().late_events, 0);
}

#[test]
fn a_stall_of_the_caller_idles_no_partition() {
    let mut detectors = Detectors::new(&only("brute_force")).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    feed_from(
        &mut detectors,
        p1,
        &[authn("b", 0.0, "user:b", true, "password")],
    );
    feed_from(
        &mut detectors,
        p0,
        &[authn("a", 10.0, "user:a", true, "password")],
    );
    let start = Instant::now();
    detectors.tick(start);
    // The pipeline stood still for a minute (a slow disk); then p0's batch comes first.
    feed_from(
        &mut detectors,
        p0,
        &[authn("c", 600.0, "user:c", true, "password")],
    );
    detectors.tick(start + Duration::from_secs(60));
    assert_eq!(detectors.clock(), Some(at(0.0)), "p1 still holds it");
}

#[test]
fn a_revoked_partition_s_watermark_is_dropped() {
    let mut detectors = Detectors::new(&only("brute_force")).unwrap();
    let (p0, p1) = (detectors.source("auth", 0), detectors.source("auth", 1));
    feed_from(&mut detectors, p0, &brute_force(3_600.0, "user:alice"));
    feed_from(&mut detectors, p1, &brute_force(0.0, "user:bob")[..1]);
    assert_eq!(detectors.clock(), Some(at(0.0)));
    assert_eq!(detectors.stats().active_sources, 2);
    detectors.release(p1);
    assert_eq!(detectors.clock(), Some(at(3_645.0)));
    assert_eq!(detectors.stats().clock, Some(at(3_645.0)));
    assert_eq!(detectors.stats().active_sources, 1);
    let checkpoint = detectors.checkpoint();
    let restored = Detectors::restore(&only("brute_force"), &checkpoint).unwrap();
    assert_eq!(
        restored.clock(),
        Some(at(3_645.0)),
        "not in the checkpoint either"
    );

    // Assigned again later, it starts without a watermark, and its slot is reused.
    let again = detectors.source("auth", 1);
    assert_eq!(again, p1);
    assert_eq!(detectors.clock(), None);
    feed_from(&mut detectors, again, &brute_force(0.0, "user:bob")[1..2]);
    assert_eq!(detectors.clock(), Some(at(5.0)));
    assert_eq!(detectors.stats().late_events, 0);
}

#[test]
fn watermarks_survive_a_checkpoint_and_unclaimed_ones_leave_when_idle() {
    let config = only("brute_force");
    let mut before = Detectors::new(&config).unwrap();
    let (p0, p1) = (before.source("auth", 0), before.source("auth", 1));
    feed_from(
        &mut before,
        p0,
        &[authn("a", 100.0, "user:a", true, "password")],
    );
    feed_from(
        &mut before,
        p1,
        &[authn("b", 50.0, "user:b", true, "password")],
    );
    let mut after = Detectors::restore(&config, &before.checkpoint()).unwrap();
    assert_eq!(after.clock(), Some(at(50.0)));
    let p0 = after.source("auth", 0);
    // 60 s is 40 s behind p0's watermark: late, as it was before the restart.
    feed_from(
        &mut after,
        p0,
        &[authn("c", 60.0, "user:c", true, "password")],
    );
    assert_eq!(after.stats().late_events, 1);
    // p1 was not registered again in this process: once idle it is forgotten.
    let start = Instant::now();
    after.tick(start);
    for second in 1..=30 {
        let event = authn("d", 120.0, "user:d", true, "password");
        feed_from(&mut after, p0, &[event]);
        after.tick(start + Duration::from_secs(second));
    }
    assert_eq!(after.clock(), Some(at(120.0)));
    let checkpoint = Detectors::restore(&config, &after.checkpoint()).unwrap();
    assert_eq!(checkpoint.clock(), Some(at(120.0)), "only p0 was kept");
}

#[test]
fn a_single_stream_needs_no_registration_and_keeps_its_clock_across_a_restart() {
    let config = DetectConfig::default();
    let mut before = Detectors::new(&config).unwrap();
    feed(
        &mut before,
        &[authn("a", 100.0, "user:a", true, "password")],
    );
    // Idle (a minute without events), the only source keeps its watermark.
    let start = Instant::now();
    for second in 0..60 {
        before.tick(start + Duration::from_secs(second));
    }
    assert_eq!(before.clock(), Some(at(100.0)));
    let mut after = Detectors::restore(&config, &before.checkpoint()).unwrap();
    assert_eq!(after.clock(), Some(at(100.0)));
    feed(&mut after, &[authn("b", 60.0, "user:b", true, "password")]);
    assert_eq!(after.stats().late_events, 1);
}

/// Partition `p`: two hours of logins from `p` × 40 min, a brute force turning critical
/// 10 min in; a spray from one address over principals on all four. In time order
/// within each partition.
fn partitions() -> Vec<Vec<Event<'static>>> {
    let mut partitions: Vec<Vec<Event<'static>>> = vec![Vec::new(); 4];
    for (p, events) in partitions.iter_mut().enumerate() {
        let start = p as f64 * 2_400.0;
        for k in 0..360 {
            let id = format!("bg-{p}-{k}");
            let principal = format!("user:bg{p}-{}", k % 5);
            let seconds = start + k as f64 * 20.0 + p as f64 + 1.0;
            events.push(authn(&id, seconds, &principal, true, "password"));
        }
        let victim = format!("user:victim{p}");
        for (i, mut failure) in brute_force(start + 605.0, &victim).into_iter().enumerate() {
            failure.source_ip = Some(format!("203.0.113.{}", p + 1).parse().unwrap());
            failure.id = format!("bf-{p}-{i}").into();
            events.push(failure);
        }
        events.push(authn(
            &format!("bf-{p}-ok"),
            start + 700.0,
            &victim,
            true,
            "password",
        ));
    }
    for i in 0..10 {
        let principal = format!("user:s{i}");
        let mut attempt = authn(
            &format!("spray-{i}"),
            4_207.0 + i as f64 * 20.0,
            &principal,
            false,
            "password",
        );
        attempt.source_ip = Some("198.51.100.7".parse().unwrap());
        partitions[i % 4].push(attempt);
    }
    for events in &mut partitions {
        events.sort_by_key(|event| event.time);
    }
    partitions
}

/// Alerts as `(id, severity, suppressed count)`, sorted: the id covers detector, key and
/// evidence.
fn summary(alerts: Vec<Alert>) -> Vec<(String, &'static str, u64)> {
    let mut rows: Vec<_> = alerts
        .into_iter()
        .map(|a| (a.id, a.severity.as_str(), a.suppressed_count))
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_backlog_read_in_any_partition_order_raises_what_one_stream_raises() {
    let config = DetectConfig::default();
    let partitions = partitions();
    let mut in_time: Vec<Event<'static>> = partitions.concat();
    in_time.sort_by_key(|event| event.time);
    let expected = summary(feed(&mut Detectors::new(&config).unwrap(), &in_time));
    assert_eq!(
        expected.len(),
        9,
        "4 brute forces, 4 turned critical, 1 spray"
    );

    // Whole partitions one after another, in several orders; then interleaved in chunks.
    let mut orders: Vec<Vec<(usize, std::ops::Range<usize>)>> =
        [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]]
            .iter()
            .map(|order| order.iter().map(|&p| (p, 0..partitions[p].len())).collect())
            .collect();
    let chunks = (0..partitions[0].len()).step_by(50);
    orders.push(
        chunks
            .flat_map(|at| (0..4).rev().map(move |p| (p, at..at + 50)))
            .map(|(p, range)| {
                (
                    p,
                    range.start.min(partitions[p].len())..range.end.min(partitions[p].len()),
                )
            })
            .collect(),
    );
    for order in orders {
        let mut detectors = Detectors::new(&config).unwrap();
        // As the pipeline does when Kafka assigns the partitions.
        let sources: Vec<_> = (0..4).map(|p| detectors.source("auth", p)).collect();
        let mut alerts = Vec::new();
        for (p, range) in &order {
            alerts.extend(feed_from(
                &mut detectors,
                sources[*p],
                &partitions[*p][range.clone()],
            ));
        }
        assert_eq!(detectors.stats().late_events, 0);
        assert_eq!(
            summary(alerts),
            expected,
            "read as {:?}",
            &order[..4.min(order.len())]
        );
    }

    // One clock over the same partition-by-partition read loses what lags.
    let mut one = Detectors::new(&config).unwrap();
    let alerts = feed(&mut one, &partitions.concat());
    assert!(summary(alerts).len() < expected.len());
}
