use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authtrail_detect::DetectConfig;

use super::*;
use crate::truth::{TruthMeta, TruthScenario};
use crate::{write_jsonl, GenConfig, Generator, ScenarioKind};

fn small() -> GenConfig {
    GenConfig {
        seed: 7,
        users: 200,
        learning: Duration::from_secs(3_600),
        duration: Duration::from_secs(2 * 3_600 + 1_800),
        service_calls_per_second: 0.05,
        ..GenConfig::default()
    }
}

fn detect_config(learning: Duration) -> DetectConfig {
    let mut config = DetectConfig::default();
    config.new_service_edge.learning = learning;
    config
}

#[test]
fn generated_attacks_are_all_caught_and_lookalikes_raise_nothing() {
    let config = small();
    let mut generator = Generator::new(config.clone()).unwrap();
    let mut events = Vec::new();
    write_jsonl(
        &mut generator,
        &mut events,
        "memory",
        &AtomicBool::new(false),
    )
    .unwrap();
    let truth = generator.truth();
    let mut evaluator = Evaluator::new(truth, &detect_config(config.learning)).unwrap();
    for line in events.split(|&b| b == b'\n') {
        evaluator.observe_line(line);
    }
    let report = evaluator.finish();
    println!("{report}");
    assert_eq!(report.rejected, 0);
    assert_eq!(report.recall(), 1.0, "{report}");
    assert_eq!(report.lookalike_alerts(), 0, "{report}");
    assert_eq!(report.background_alerts(), 0, "{report}");
}

const T0: i64 = 1_795_392_000_000; // epoch ms

fn authn(id: &str, second: i64, principal: &str, method: &str, ok: bool, ip: &str) -> String {
    let outcome = if ok { "success" } else { "failure" };
    format!(
        r#"{{"id":"{id}","time":{},"kind":"authn","principal":"{principal}","outcome":"{outcome}","auth_method":"{method}","source_ip":"{ip}"}}"#,
        T0 + second * 1_000
    )
}

fn scenario(kind: ScenarioKind, ids: &[String], start_second: i64) -> TruthScenario {
    TruthScenario {
        scenario: kind,
        label: kind.label(),
        expect: kind.expect().iter().map(|d| d.to_string()).collect(),
        lookalike_of: kind.lookalike_of().map(str::to_owned),
        reports: kind.reports().iter().map(|r| r.to_string()).collect(),
        subject: None,
        principal: None,
        start: Some((T0 + start_second * 1_000) * 1_000),
        end: None,
        event_ids: ids.to_vec(),
    }
}

/// A hand-labelled stream: a brute force (caught 9 s after its first failure), a service
/// password login (caught at once), an MFA-fatigue attack too short to be caught, a
/// look-alike the detector wrongly flags, and one background false alert.
#[test]
fn scores_a_hand_labelled_stream() {
    let mut lines = Vec::new();
    let brute: Vec<String> = (0..10).map(|n| format!("b{n}")).collect();
    for (n, id) in brute.iter().enumerate() {
        lines.push(authn(
            id,
            n as i64,
            "user:mallory",
            "password",
            false,
            "203.0.113.9",
        ));
    }
    lines.push(authn(
        "s1",
        100,
        "svc:payments",
        "password",
        true,
        "203.0.113.10",
    ));
    lines.push(authn(
        "m1",
        200,
        "user:bob",
        "mfa_push",
        false,
        "198.18.0.1",
    ));
    lines.push(authn(
        "m2",
        210,
        "user:bob",
        "mfa_push",
        false,
        "198.18.0.1",
    ));
    lines.push(authn("m3", 220, "user:bob", "mfa_push", true, "198.18.0.1"));
    lines.push(authn("l1", 300, "svc:ledger", "mfa_push", true, "10.0.0.1"));
    lines.push(authn("g1", 400, "svc:email", "password", true, "10.0.0.2"));
    for n in 0..3 {
        lines.push(format!(
            r#"{{"id":"z{n}","time":{},"kind":"authz","principal":"svc:a","target_service":"b","outcome":"allow"}}"#,
            T0 + 500_000 + n * 1_000
        ));
    }
    lines.push("not json".to_owned());
    let truth = Truth {
        meta: TruthMeta {
            seed: 0,
            start: T0 * 1_000,
            end: (T0 + 600_000) * 1_000,
            learning: Duration::from_secs(3_600),
            events: 19,
        },
        scenarios: vec![
            scenario(ScenarioKind::BruteForce, &brute, 0),
            scenario(ScenarioKind::ServiceInteractiveLogin, &["s1".into()], 100),
            scenario(
                ScenarioKind::MfaFatigue,
                &["m1".into(), "m2".into(), "m3".into()],
                200,
            ),
            scenario(ScenarioKind::ServiceMachineLogin, &["l1".into()], 300),
        ],
    };
    let mut evaluator = Evaluator::new(truth, &DetectConfig::default()).unwrap();
    for line in &lines {
        evaluator.observe_line(line.as_bytes());
    }
    let report = evaluator.finish();
    assert_eq!(
        (report.events, report.rejected, report.benign_events),
        (19, 1, 5)
    );

    let brute = &report.detectors["brute_force"];
    assert_eq!(
        (
            brute.attacks,
            brute.detected,
            brute.alerts,
            brute.true_alerts
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(brute.precision(), Some(1.0));
    assert_eq!(brute.recall(), Some(1.0));
    assert_eq!(brute.time_to_detect, [9_000_000]);

    let login = &report.detectors["service_interactive_login"];
    assert_eq!(
        (
            login.attacks,
            login.detected,
            login.alerts,
            login.true_alerts
        ),
        (1, 1, 3, 1)
    );
    assert_eq!((login.lookalike_alerts, login.background_alerts), (1, 1));
    assert_eq!(login.precision(), Some(1.0 / 3.0));
    assert_eq!(login.time_to_detect, [0]);
    assert_eq!(login.false_per_million(), 400_000.0);

    let fatigue = &report.detectors["mfa_fatigue"];
    assert_eq!(
        (fatigue.attacks, fatigue.detected, fatigue.alerts),
        (1, 0, 0)
    );
    assert_eq!(fatigue.recall(), Some(0.0));
    assert_eq!(fatigue.precision(), None);

    // 2 of 3 expected detections overall.
    assert!((report.recall() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        (report.lookalike_alerts(), report.background_alerts()),
        (1, 1)
    );
    let passed: Vec<bool> = report.scenarios.iter().map(|s| s.passed()).collect();
    assert_eq!(passed, [true, true, false, false]);
}

#[test]
fn truth_survives_a_round_trip_through_json_lines() {
    let mut generator = Generator::new(small()).unwrap();
    write_jsonl(
        &mut generator,
        std::io::sink(),
        "sink",
        &AtomicBool::new(false),
    )
    .unwrap();
    let truth = generator.truth();
    let mut bytes = Vec::new();
    truth.write_jsonl(&mut bytes).unwrap();
    let read = Truth::read_jsonl(bytes.as_slice(), "memory").unwrap();
    assert_eq!(read, truth);
    let error = Truth::read_jsonl(&b"{\"type\":\"scenario\"}\n"[..], "bad.jsonl").unwrap_err();
    assert!(error.to_string().contains("bad.jsonl"), "{error}");
}
