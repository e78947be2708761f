//! `authtrail ingest --from-file`: every line accounted for, exit code 0, and a second run
//! of the same file adds nothing; stdin runs are separate streams.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{column_counts, good_event, row_count, WorkDir};

fn ingest_file(lake: &str, file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["--lake", lake, "ingest", "--from-file", file])
        .output()
        .unwrap()
}

#[test]
fn file_ingest_accounts_for_every_line_and_is_idempotent() {
    let work = WorkDir::new();
    let input = work.path().join("events.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for i in 0..1_000 {
        writeln!(file, "{}", good_event(i)).unwrap();
        if i % 100 == 0 {
            writeln!(file, "{{\"broken\": ").unwrap();
            writeln!(file).unwrap();
        }
    }
    drop(file);
    let lake = work.path().join("lake");
    let (lake_arg, input_arg) = (lake.to_string_lossy(), input.to_string_lossy());

    let first = ingest_file(&lake_arg, &input_arg);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(
        summary.contains("1010 received: 1000 events, 10 rejects"),
        "{summary}"
    );
    assert!(summary.contains("10 blank lines"), "{summary}");
    assert_eq!(row_count(&lake, "events"), 1_000);
    assert_eq!(row_count(&lake, "rejects"), 10);

    let second = ingest_file(&lake_arg, &input_arg);
    assert!(second.status.success());
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.contains("1010 already in the lake"), "{summary}");
    assert_eq!(row_count(&lake, "events"), 1_000);
}

#[test]
fn each_stdin_run_is_a_new_stream() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    for _ in 0..2 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .args([
                "--lake",
                &lake.to_string_lossy(),
                "ingest",
                "--from-file",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..50 {
            writeln!(stdin, "{}", good_event(i)).unwrap();
        }
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }
    let partitions = column_counts(&lake, "events", "ingest_topic");
    assert_eq!(partitions.get("stdin"), Some(&100));
    assert!(lake.join("_manifest/stdin-0.jsonl").exists());
    assert!(lake.join("_manifest/stdin-1.jsonl").exists());
}
