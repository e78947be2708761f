//! Fields an attacker chooses, through the real binary: a username that tries to forge a
//! log line stays on its alert's line, and bearer tokens sent in any field reach the lake
//! only as digests.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use arrow_array::cast::AsArray;
use support::{column_counts, read_table, WorkDir};

/// A username tried at a login form: a forged record after CR/LF, then a screen clear, a
/// bell and a right-to-left override. JSON-escaped, as the reporter sends it.
const FORGED_PRINCIPAL: &str = r"user:mallory\r\n2026-12-07T06:00:00.000000Z ERROR authtrail::forged: all clear\u001b[2J\u0007\u202e";

/// `{"alg":"HS256"}` . `{"sub":"mallory"}` . signature
const JWS: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
/// `{"alg":"dir","enc":"A128GCM"}` . (no key) . iv . ciphertext . tag
const JWE: &str = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn";

fn ingest(work: &WorkDir, lines: &[String], log_format: &str) -> (std::path::PathBuf, String) {
    let input = work.path().join(format!("{log_format}.jsonl"));
    let mut file = std::fs::File::create(&input).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let lake = work.path().join(format!("lake-{log_format}"));
    let output = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["--log-format", log_format, "--lake"])
        .arg(&lake)
        .args(["ingest", "--from-file"])
        .arg(&input)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    (lake, stderr)
}

/// Ten failed logins as the forged principal: enough for a `brute_force` alert.
fn forged_logins() -> Vec<String> {
    (0..10)
        .map(|i| {
            format!(
                r#"{{"id":"f-{i}","time":"2026-11-23T18:00:{i:02}Z","kind":"authn","principal":"{FORGED_PRINCIPAL}","service":"idp","outcome":"failure","source_ip":"203.0.113.9"}}"#
            )
        })
        .collect()
}

#[test]
fn a_principal_forging_a_log_line_stays_on_its_alert_line() {
    let work = WorkDir::new();
    let (_, stderr) = ingest(&work, &forged_logins(), "text");
    let alert_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("authtrail::alert"))
        .collect();
    assert_eq!(alert_lines.len(), 1, "{stderr}");
    assert!(
        alert_lines[0]
            .contains(r"user:mallory\r\n2026-12-07T06:00:00.000000Z ERROR authtrail::forged"),
        "{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.starts_with("2026-12-07T06:00:00.000000Z"),
            "forged line: {stderr}"
        );
    }
    let bad = stderr
        .chars()
        .find(|&c| (c.is_control() && c != '\n') || c == '\u{202e}');
    assert_eq!(bad, None, "{stderr:?}");
}

#[test]
fn json_logs_keep_the_forged_principal_inside_one_record() {
    let work = WorkDir::new();
    let (_, stderr) = ingest(&work, &forged_logins(), "json");
    let alerts: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect(line))
        .filter(|record| record["target"] == "authtrail::alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{stderr}");
    assert!(alerts[0]["fields"]["principal"]
        .as_str()
        .unwrap()
        .contains("\r\n2026-12-07T06:00:00.000000Z ERROR authtrail::forged"));
}

#[test]
fn bearer_tokens_reach_the_lake_only_as_digests() {
    let work = WorkDir::new();
    let lines = vec![
        format!(
            r#"{{"id":"t-1","time":"2026-11-23T18:00:00Z","kind":"token_issue","principal":"user:alice","token_id":"{JWS}"}}"#
        ),
        format!(
            r#"{{"id":"t-2","time":"2026-11-23T18:00:01Z","kind":"authz","principal":"user:alice","outcome":"allow","token_id":"Bearer {JWS}","session_id":" {JWE}","attributes":{{"authorization":"Basic YWxpY2U6cHc="}},"callback":"https://app/cb#access_token={JWS}"}}"#
        ),
        // Rejected (no outcome), with the token in a header copied into the message.
        format!(
            r#"{{"id":"t-3","time":"2026-11-23T18:00:02Z","kind":"authz","principal":"user:alice","headers":{{"Authorization":"bearer {JWE}"}}}}"#
        ),
    ];
    let (lake, _) = ingest(&work, &lines, "text");

    let digest = authtrail_model::token_fingerprint(JWS).unwrap();
    let token_ids = column_counts(&lake, "events", "token_id");
    assert_eq!(
        token_ids,
        HashMap::from([(digest.clone(), 2)]),
        "one token, however presented"
    );
    assert_eq!(
        strings(&lake, "session_id"),
        [authtrail_model::token_fingerprint(JWE).unwrap()]
    );
    let stored = all_text(&lake);
    for secret in [JWS, JWE, "YWxpY2U6cHc"] {
        assert!(!stored.contains(secret), "{secret} stored: {stored}");
    }
    for marker in [
        "token_id_redacted=true",
        "session_id_redacted=true",
        "authorization_redacted=true",
        "callback_redacted=true",
    ] {
        assert!(stored.contains(marker), "{marker} missing: {stored}");
    }
}

/// The non-null values of one string column of `events`.
fn strings(lake: &Path, column: &str) -> Vec<String> {
    let mut strings = Vec::new();
    for batch in read_table(lake, "events") {
        let array = batch.column_by_name(column).unwrap().as_string::<i32>();
        strings.extend(array.iter().flatten().map(str::to_owned));
    }
    strings
}

/// Every attribute (as `key=value`) and every rejected message's bytes in the lake.
fn all_text(lake: &Path) -> String {
    let mut text = String::new();
    for batch in read_table(lake, "events") {
        let entries = batch
            .column_by_name("attributes")
            .unwrap()
            .as_map()
            .entries();
        let keys = entries.column(0).as_string::<i32>();
        let values = entries.column(1).as_string::<i32>();
        for (key, value) in keys.iter().zip(values.iter()) {
            text.push_str(&format!("{}={}\n", key.unwrap(), value.unwrap()));
        }
    }
    for batch in read_table(lake, "rejects") {
        for raw in batch
            .column_by_name("raw")
            .unwrap()
            .as_binary::<i32>()
            .iter()
            .flatten()
        {
            text.push_str(&String::from_utf8_lossy(raw));
            text.push('\n');
        }
    }
    text
}
