//! `authtrail export --ocsf` on a lake the real pipeline wrote from generated traffic:
//! JSON lines and Parquet read back by DuckDB and pyarrow (tests/e2e/ocsf_check.py), every
//! lake event exported once in the class its kind maps to, with the attributes OCSF
//! requires, and `--from`/`--until` honoured.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{python, repo_file, WorkDir};

/// Events written by hand beside the generated traffic: an authz about a session (no
/// request, scopes granted) is Authorize Session; a failed logon carries an attribute.
const HAND_WRITTEN: [&str; 2] = [
    r#"{"id":"ocsf-grant","time":"2026-11-23T02:30:00Z","kind":"authz","principal":"user:alice","service":"portal","outcome":"allow","token_scopes":"orders:read orders:write","session_id":"s-42"}"#,
    r#"{"id":"ocsf-login","time":"2026-11-23T02:31:00.250Z","kind":"authn","principal":"user:alice","service":"idp","outcome":"failure","reason":"bad_password","auth_method":"password","mfa":false,"source_ip":"203.0.113.7","user_agent":"curl/8.5","tenant":"acme"}"#,
];

/// `--from` and `--until` of the windowed export: not on hour boundaries, so the filter
/// itself (not only partition pruning) is checked.
const FROM: &str = "2026-11-23T01:10:00Z";
const UNTIL: &str = "2026-11-23T01:40:00Z";
const FROM_MS: i64 = 1_795_396_200_000;
const UNTIL_MS: i64 = 1_795_398_000_000;

fn authtrail(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "authtrail {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn exports_every_event_as_ocsf_in_json_lines_and_parquet() {
    let work = WorkDir::new();
    let input = work.path().join("events.jsonl");
    authtrail(&[
        "gen",
        "--seed",
        "5",
        "--users",
        "50",
        "--duration",
        "3h",
        "--learning",
        "2h",
        "--start",
        "2026-11-23T00:00:00Z",
        "--output",
        path(&input),
    ]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for line in HAND_WRITTEN {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let lake = work.path().join("lake");
    authtrail(&[
        "--lake",
        path(&lake),
        "ingest",
        "--from-file",
        path(&input),
        "--no-detect",
    ]);

    let jsonl = work.path().join("all.jsonl");
    let parquet = work.path().join("all.parquet");
    let window = work.path().join("window.jsonl");
    let export = |extra: &[&str]| {
        let mut args = vec!["--lake", path(&lake), "export", "--ocsf"];
        args.extend_from_slice(extra);
        authtrail(&args)
    };
    let written = export(&["--out", path(&jsonl)]);
    assert!(
        String::from_utf8_lossy(&written.stderr).contains("OCSF 1.1.0 events written"),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    export(&["--output-format", "parquet", "--out", path(&parquet)]);
    // The window to stdout, as a pipe into another tool would take it.
    let windowed = export(&["--from", FROM, "--until", UNTIL, "--out", "-"]);
    std::fs::write(&window, &windowed.stdout).unwrap();

    let check = Command::new(python())
        .arg(repo_file("tests/e2e/ocsf_check.py"))
        .args([path(&lake), path(&jsonl), path(&parquet), path(&window)])
        .args([FROM_MS.to_string(), UNTIL_MS.to_string()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "ocsf_check.py: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();

    let kinds = &report["lake_kinds"];
    let kind = |name: &str| kinds[name].as_u64().unwrap_or(0);
    let session_grants = report["lake_session_grants"].as_u64().unwrap();
    assert_eq!(session_grants, 1, "the hand-written grant is the only one");
    assert!(kind("authn") > 0 && kind("token_issue") > 0 && kind("token_revoke") > 0);
    let total = kind("authn") + kind("token_issue") + kind("token_revoke") + kind("authz");
    let expected_classes = serde_json::json!({
        "3002": kind("authn") + kind("token_issue") + kind("token_revoke"),
        "3003": session_grants,
        "6003": kind("authz") - session_grants,
    });
    for format in ["jsonl", "parquet"] {
        let found = &report[format];
        assert_eq!(found["rows"], total, "{format}");
        assert_eq!(found["classes"], expected_classes, "{format}");
        assert_eq!(found["problems"], serde_json::json!({}), "{format}");
        assert_eq!(
            found["same_ids"], true,
            "{format}: ids differ from the lake's"
        );
        assert_eq!(found["wrong_times"], 0, "{format}");
    }
    let columns = report["parquet"]["columns"].as_array().unwrap();
    for nested in [
        "metadata",
        "user",
        "actor",
        "api",
        "src_endpoint",
        "unmapped",
    ] {
        assert!(columns.contains(&Value::from(nested)), "{columns:?}");
    }

    let window = &report["window"];
    assert!(window["rows"].as_u64().unwrap() > 0);
    assert_eq!(window["rows"], report["lake_window_rows"]);
    assert_eq!(window["outside"], 0);
    assert_eq!(window["problems"], serde_json::json!({}));

    for format in ["jsonl", "parquet"] {
        let samples = &report[format]["samples"];
        let grant = &samples["ocsf-grant"];
        assert_eq!(grant["type_uid"], 300301, "{format}: {grant}");
        assert_eq!(grant["status_id"], 1, "{format}");
        assert_eq!(
            grant["privileges"],
            serde_json::json!(["orders:read", "orders:write"])
        );
        assert_eq!(grant["session"]["uid"], "s-42", "{format}");
        let login = &samples["ocsf-login"];
        assert_eq!(login["type_uid"], 300201, "{format}: {login}");
        assert_eq!(login["status_id"], 2, "{format}");
        assert_eq!(login["status_detail"], "bad_password", "{format}");
        assert_eq!(login["time"], 1_795_401_060_250i64, "{format}");
        assert_eq!(login["user"]["name"], "user:alice", "{format}");
        assert_eq!(login["src_endpoint"]["ip"], "203.0.113.7", "{format}");
        assert_eq!(login["is_mfa"], false, "{format}");
        assert_eq!(login["http_request"]["user_agent"], "curl/8.5", "{format}");
        assert_eq!(login["auth_protocol_id"], 99, "{format}");
        assert_eq!(
            login["unmapped"]["attributes"]["tenant"], "acme",
            "{format}"
        );
    }
}

#[test]
fn bad_ranges_and_a_missing_lake_are_clear_errors() {
    let work = WorkDir::new();
    let out = work.path().join("out.jsonl");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .args(args)
            .output()
            .unwrap()
    };
    let lake = work.path().join("no-lake");
    let missing = run(&[
        "--lake",
        path(&lake),
        "export",
        "--ocsf",
        "--out",
        path(&out),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("opening the lake"));
    assert!(!out.exists(), "no file for a failed export");

    let not_a_time = run(&["export", "--ocsf", "--from", "yesterday", "--out", "-"]);
    assert!(!not_a_time.status.success());
    assert!(String::from_utf8_lossy(&not_a_time.stderr).contains("not an RFC 3339 time"));

    std::fs::create_dir(&lake).unwrap();
    let reversed = run(&[
        "--lake",
        path(&lake),
        "export",
        "--ocsf",
        "--from",
        UNTIL,
        "--until",
        FROM,
        "--out",
        "-",
    ]);
    assert!(!reversed.status.success());
    assert!(String::from_utf8_lossy(&reversed.stderr).contains("`--from` must be before `--until`"));
}
