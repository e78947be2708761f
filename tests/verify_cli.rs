//! `authtrail verify` on a lake the real binary wrote with a signing key: clean exit when
//! intact, a non-zero exit naming the finding after tampering, and the key never logged.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use support::{good_event, WorkDir};

const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// The public half of `KEY` (RFC 8032, test 1).
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const OTHER_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

fn authtrail(lake: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env("AUTHTRAIL_SIGNING_KEY", KEY)
        .output()
        .unwrap()
}

/// Writes `count` good events (then, with `broken_line`, a line that is not JSON) and
/// ingests them with the real binary into `lake` in `work`, flushing every 100 rows.
fn ingest(work: &WorkDir, count: usize, broken_line: bool) -> (PathBuf, Output) {
    let input = work.path().join("events.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for i in 0..count {
        writeln!(file, "{}", good_event(i)).unwrap();
    }
    if broken_line {
        writeln!(file, "{{\"broken\": ").unwrap();
    }
    drop(file);
    let lake = work.path().join("lake");
    let from = input.to_str().unwrap();
    let args = ["ingest", "--from-file", from, "--flush-rows", "100"];
    let output = authtrail(lake.to_str().unwrap(), &args);
    assert!(output.status.success(), "{}", text(&output));
    (lake, output)
}

/// Asserts that the command failed and said `needle`.
fn assert_failed_saying(output: &Output, needle: &str) {
    assert!(!output.status.success());
    assert!(text(output).contains(needle), "{}", text(output));
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn verify_passes_a_signed_lake_and_fails_a_tampered_one() {
    let work = WorkDir::new();
    let (lake, ingest) = ingest(&work, 300, true);
    let lake = lake.to_str().unwrap();
    assert!(!text(&ingest).contains(KEY), "the signing key was logged");
    assert!(text(&ingest).contains(PUBLIC), "the public key is logged");

    let verify = authtrail(lake, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains("0 findings"), "{}", text(&verify));
    assert!(!text(&verify).contains(KEY));

    let wrong_key = authtrail(lake, &["verify", "--public-key", OTHER_PUBLIC]);
    assert_failed_saying(&wrong_key, "bad signature");

    let victim = support::parquet_files(&std::path::Path::new(lake).join("events"))
        .pop()
        .unwrap();
    std::fs::remove_file(&victim).unwrap();
    let verify = authtrail(lake, &["verify", "--public-key", PUBLIC]);
    assert_failed_saying(&verify, "missing: `events/");
    assert!(text(&verify).contains("1 findings"), "{}", text(&verify));
}

#[test]
fn maintain_compacts_then_expires_and_verify_still_passes() {
    let work = WorkDir::new();
    let (lake_dir, _) = ingest(&work, 2_000, false);
    let lake = lake_dir.to_str().unwrap();
    let files_before = support::parquet_files(&lake_dir.join("events")).len();
    let rows_before = support::row_count(&lake_dir, "events");

    // The events' hours (2026-11-23) are closed: compaction folds each hour's files into one.
    let config = work.path().join("authtrail.toml");
    std::fs::write(&config, "[lake.maintenance]\ncompact_min_files = 2\n").unwrap();
    let config = config.to_str().unwrap();
    let maintain = authtrail(lake, &["maintain", "--config", config]);
    assert!(maintain.status.success(), "{}", text(&maintain));
    let files_after = support::parquet_files(&lake_dir.join("events")).len();
    assert!(
        files_after < files_before,
        "{files_before} -> {files_after} files"
    );
    assert_eq!(support::row_count(&lake_dir, "events"), rows_before);
    let verify = authtrail(lake, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    // A one-day retention expires them all (they are older than a day).
    std::fs::write(
        config,
        "[lake.maintenance]\nretention_days = { events = 1, rejects = 1, alerts = 1 }\n",
    )
    .unwrap();
    let maintain = authtrail(lake, &["maintain", "--config", config]);
    assert!(maintain.status.success(), "{}", text(&maintain));
    assert_eq!(support::row_count(&lake_dir, "events"), 0);
    let verify = authtrail(lake, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}
