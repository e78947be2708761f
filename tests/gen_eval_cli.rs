//! `authtrail gen` and `authtrail eval` as a user runs them: the real binary, files on
//! disk, the same seed twice, and the labelled stream scored by the detectors.

use std::path::Path;
use std::process::Command;

fn authtrail(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(args)
        .output()
        .expect("run authtrail");
    assert!(
        output.status.success(),
        "authtrail {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn gen(dir: &Path, name: &str, seed: &str) -> (Vec<u8>, Vec<u8>) {
    let events = dir.join(format!("{name}.jsonl"));
    let truth = dir.join(format!("{name}.truth.jsonl"));
    authtrail(&[
        "gen",
        "--seed",
        seed,
        "--start",
        "2026-11-23T08:00:00Z",
        "--duration",
        "2h 30m",
        "--learning",
        "1h",
        "--users",
        "100",
        "--service-calls-per-second",
        "0.05",
        "--output",
        events.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
    ]);
    (
        std::fs::read(events).unwrap(),
        std::fs::read(truth).unwrap(),
    )
}

#[test]
fn gen_is_deterministic_and_eval_catches_every_attack_without_false_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let first = gen(dir.path(), "a", "11");
    assert_eq!(first, gen(dir.path(), "b", "11"), "same seed, same bytes");
    assert_ne!(first.0, gen(dir.path(), "c", "12").0);
    // Labels never leak into the events.
    let events = String::from_utf8(first.0).unwrap();
    assert!(!events.contains("attack") && !events.contains("scenario"));

    let output = authtrail(&[
        "eval",
        "--truth",
        dir.path().join("a.truth.jsonl").to_str().unwrap(),
        "--events",
        dir.path().join("a.jsonl").to_str().unwrap(),
    ]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(!report.contains("FAIL"), "{report}");
    for detector in [
        "new_service_edge",
        "service_fan_out",
        "authz_probing",
        "brute_force",
        "password_spray",
        "token_replay",
        "revoked_token_use",
        "audience_mismatch",
        "mfa_fatigue",
        "service_interactive_login",
        "validation_gap",
    ] {
        let row = report
            .lines()
            .find(|line| line.starts_with(detector))
            .unwrap_or_else(|| panic!("no row for {detector}: {report}"));
        let columns: Vec<&str> = row.split_whitespace().collect();
        // detector, attacks, detected, recall, alerts, true, precision, ..., false
        assert_eq!(columns[3], "1.000", "{row}");
        assert_eq!(columns[6], "1.000", "{row}");
        assert_eq!(columns[9], "0", "{row}");
    }
}

#[test]
fn eval_rejects_a_truth_file_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    std::fs::write(&truth, "{\"type\":\"scenario\",\"scenario\":\"nope\"}\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args([
            "eval",
            "--truth",
            truth.to_str().unwrap(),
            "--events",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("truth.jsonl") && stderr.contains("line 1"),
        "{stderr}"
    );
}
