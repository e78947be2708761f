//! A backlog read partition by partition raises the alerts of the same events read in
//! time order (the detectors keep a watermark per partition: `detect/README.md`,
//! "Clocks"). Generated traffic with every attack and look-alike, keyed by principal as
//! the producer keys it, split over four partitions by two hashes, read either one
//! whole partition after another or in rounds of fetch-sized chunks.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use authtrail_detect::{DetectConfig, Detectors};
use authtrail_gen::{GenConfig, Generator};
use authtrail_model::{parse_event, Alert, ContractLimits};

const PARTITIONS: usize = 4;

/// Runs every detector over `events` (partition, JSON) in `order`, each partition a
/// source registered up front as the pipeline does on assignment. Alerts by id.
fn detect(events: &[(usize, String)], order: &[usize]) -> BTreeMap<String, Alert> {
    let mut detectors = Detectors::new(&DetectConfig::default()).unwrap();
    let sources: Vec<_> = (0..PARTITIONS)
        .map(|partition| detectors.source("auth-events", partition as i32))
        .collect();
    let limits = ContractLimits::default();
    let mut alerts = Vec::new();
    for &at in order {
        let (partition, json) = &events[at];
        let event = parse_event(json.as_bytes(), i64::MAX / 2, &limits).unwrap();
        detectors.observe_from(sources[*partition], &event, &mut alerts);
    }
    alerts
        .into_iter()
        .map(|alert| (alert.id.clone(), alert))
        .collect()
}

/// Each partition's events in turn, `chunk` at a time (a fetch), until all are read.
fn partition_order(events: &[(usize, String)], chunk: usize) -> Vec<usize> {
    let mut queues = vec![Vec::new(); PARTITIONS];
    for (at, (partition, _)) in events.iter().enumerate() {
        queues[*partition].push(at);
    }
    let mut order = Vec::with_capacity(events.len());
    let mut next = vec![0; PARTITIONS];
    while order.len() < events.len() {
        for (queue, next) in queues.iter().zip(&mut next) {
            let end = (*next + chunk).min(queue.len());
            order.extend_from_slice(&queue[*next..end]);
            *next = end;
        }
    }
    order
}

#[test]
fn a_backlog_read_partition_by_partition_raises_the_time_ordered_alerts() {
    let config = GenConfig {
        seed: 7,
        ..GenConfig::default()
    };
    let generated: Vec<(String, String)> = Generator::new(config)
        .unwrap()
        .map(|event| (event.key, event.json))
        .collect();
    let in_order = detect(
        &generated
            .iter()
            .map(|(_, json)| (0, json.clone()))
            .collect::<Vec<_>>(),
        &(0..generated.len()).collect::<Vec<_>>(),
    );
    let detectors: std::collections::BTreeSet<_> = in_order
        .values()
        .map(|alert| alert.detector.as_str())
        .collect();
    assert_eq!(detectors.len(), 11, "every detector fires: {detectors:?}");

    for salt in 0..2u64 {
        let events: Vec<(usize, String)> = generated
            .iter()
            .map(|(key, json)| {
                let mut hasher = DefaultHasher::new();
                (salt, key).hash(&mut hasher);
                ((hasher.finish() % PARTITIONS as u64) as usize, json.clone())
            })
            .collect();
        for chunk in [5_000, usize::MAX] {
            let backlog = detect(&events, &partition_order(&events, chunk));
            let keys = |alerts: &BTreeMap<String, Alert>| {
                let mut keys: Vec<_> = alerts
                    .values()
                    .map(|alert| (alert.detector.clone(), alert.key.clone()))
                    .collect();
                keys.sort();
                keys
            };
            assert_eq!(
                keys(&backlog),
                keys(&in_order),
                "salt {salt}, chunk {chunk}"
            );
            // The same alerts, evidence included, except a spray: its principals lie on
            // every partition, and which N of its attempts complete it depends on the
            // order they are read in (`detect/README.md`).
            for (id, alert) in &in_order {
                if alert.detector != "password_spray" {
                    assert!(
                        backlog.contains_key(id),
                        "salt {salt}, chunk {chunk}: missing {alert:?}"
                    );
                }
            }
        }
    }
}
