//! The generated traffic read as a backlog, partition by partition (what a consumer
//! catching up gets from Kafka), raises the alerts it raises read in time order.
//!
//! Slow in a debug build (about 2 min for 640k events read nine times), so ignored by
//! default: `cargo test -p authtrail-gen --release --test partitioned_backlog --
//! --ignored --nocapture`.

use std::collections::BTreeSet;

use authtrail_detect::{DetectConfig, Detectors};
use authtrail_gen::{GenConfig, Generator};
use authtrail_model::{parse_event, Alert, ContractLimits, Micros};

const PARTITIONS: usize = 4;

/// A partition of `key` under one of several arbitrary partitionings (FNV-1a, salted).
fn partition(salt: u64, key: &str) -> usize {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ salt;
    for byte in key.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % PARTITIONS as u64) as usize
}

/// (detector, key, id) of each alert.
fn raised(alerts: &[Alert]) -> BTreeSet<(String, String, String)> {
    let alerts = alerts.iter();
    alerts
        .map(|a| (a.detector.clone(), a.key.clone(), a.id.clone()))
        .collect()
}

#[test]
#[ignore = "about 2 min in a debug build; run with --release -- --ignored"]
fn a_backlog_read_partition_by_partition_raises_the_time_ordered_alerts() {
    let config = GenConfig {
        seed: 7,
        users: 4_000,
        ..GenConfig::default()
    };
    let mut generator = Generator::new(config).unwrap();
    let generated: Vec<_> = std::iter::from_fn(|| generator.next_event()).collect();
    let limits = ContractLimits {
        max_future_skew: Micros::MAX / 4,
        ..ContractLimits::default()
    };
    let events: Vec<_> = generated
        .iter()
        .map(|g| parse_event(g.json.as_bytes(), 0, &limits).unwrap())
        .collect();
    let detect = DetectConfig::default();

    let mut one = Detectors::new(&detect).unwrap();
    let mut alerts = Vec::new();
    for event in &events {
        one.observe(event, &mut alerts);
    }
    let in_order = raised(&alerts);
    println!(
        "{} events, in time order {} alerts",
        events.len(),
        in_order.len()
    );
    assert_eq!(in_order.len(), 20);

    for salt in 0..8 {
        let mut detectors = Detectors::new(&detect).unwrap();
        let sources: Vec<_> = (0..PARTITIONS as i32)
            .map(|p| detectors.source("auth", p))
            .collect();
        let mut alerts = Vec::new();
        for (p, &source) in sources.iter().enumerate() {
            let mine = generated.iter().zip(&events);
            for (_, event) in mine.filter(|(g, _)| partition(salt, &g.key) == p) {
                detectors.observe_from(source, event, &mut alerts);
            }
        }
        let backlog = raised(&alerts);
        let differ: Vec<_> = in_order.symmetric_difference(&backlog).collect();
        println!(
            "partitioning {salt}: {} alerts, differing {differ:?}",
            backlog.len()
        );
        let keys = |set: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
            set.iter().map(|(d, k, _)| (d.clone(), k.clone())).collect()
        };
        assert_eq!(keys(&backlog), keys(&in_order), "partitioning {salt}");
        // Only a spray's evidence window may differ (see detect/README.md), so its id.
        assert!(
            differ
                .iter()
                .all(|(detector, _, _)| detector == "password_spray"),
            "partitioning {salt}: {differ:?}"
        );
    }
}
