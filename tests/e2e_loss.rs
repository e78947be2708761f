//! Loss is never silent, against a real broker process: tansu (durable sqlite storage)
//! deletes messages by retention, and `authtrail run` reports each loss with an ERROR
//! line, `authtrail_events_lost_total` and a manifest record that `authtrail verify`
//! turns into a finding.
//!
//! tansu 0.6.0 cannot delete records on request (its engines leave DeleteRecords
//! unimplemented: the call panics), but its sqlite engine applies time-based retention
//! at each maintenance, which runs when the broker starts. So the test produces messages
//! with timestamps older than the topic's `retention.ms` and restarts the broker to have
//! them deleted, leaving newer ones after them: the oldest messages of a log, gone, as
//! retention leaves it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::run::{printed, start, wait_for, write_config};
use support::{
    assert_exactly_once, free_port, good_event, python, repo_file, start_durable_broker,
    wait_for_rows, WorkDir,
};

const SIGTERM: i32 = 15;
/// A fresh group on this topic finds its first messages deleted.
const FRESH: &str = "fresh-topic";
/// The group reads this topic, stops, and its committed offset falls off the log.
const RESUMED: &str = "resumed-topic";
const HOUR_MS: u64 = 3_600_000;

fn retention(brokers: &str, args: &[&str]) -> String {
    let mut script = Command::new(python());
    script.arg(repo_file("tests/e2e/kafka_retention.py"));
    script.arg(args[0]).arg(brokers).args(&args[1..]);
    let output = support::succeeded(&mut script, &format!("kafka_retention.py {args:?}"));
    String::from_utf8(output.stdout).unwrap()
}

/// Produces events `ids` to `topic`, timestamped `age_ms` ago; returns their ids.
fn produce(
    dir: &Path,
    brokers: &str,
    topic: &str,
    ids: std::ops::Range<usize>,
    age_ms: u64,
) -> Vec<String> {
    let path = dir.join(format!("{topic}-{}.jsonl", ids.start));
    let lines: Vec<String> = ids.clone().map(good_event).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    retention(
        brokers,
        &[
            "produce",
            topic,
            path.to_str().unwrap(),
            &age_ms.to_string(),
        ],
    );
    ids.map(|i| format!("e-{i}")).collect()
}

fn log_start(brokers: &str, topic: &str) -> i64 {
    let text = retention(brokers, &["log-start", topic]);
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn messages_retention_deleted_before_authtrail_read_them_are_reported_counted_and_verified() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut tansu = start_durable_broker(work.path(), port, "first");
    for topic in [FRESH, RESUMED] {
        retention(&brokers, &["create", topic, &HOUR_MS.to_string()]);
    }
    let config = write_config(
        work.path(),
        &lake,
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{FRESH}\", \"{RESUMED}\"]\ngroup_id = \"loss\"\n"
        ),
    );

    // The group reads offsets 0..5 of RESUMED (still within retention: maintenance ran
    // when the broker started, before they existed) and stops: committed offset 5.
    let mut kept = produce(work.path(), &brokers, RESUMED, 0..5, 2 * HOUR_MS);
    let mut first = start(work.path(), "run-first", &config);
    wait_for_rows(&lake, 5, Duration::from_secs(120));
    first.signal(SIGTERM);
    assert!(first.wait(Duration::from_secs(60)).success(), "clean exit");

    // While it is away: RESUMED 5..10 (old) and 10..15, FRESH 0..5 (old) and 5..10. The
    // broker restarts, and its maintenance deletes every message older than an hour.
    produce(work.path(), &brokers, RESUMED, 5..10, 2 * HOUR_MS);
    kept.extend(produce(work.path(), &brokers, RESUMED, 10..15, 0));
    produce(work.path(), &brokers, FRESH, 100..105, 2 * HOUR_MS);
    kept.extend(produce(work.path(), &brokers, FRESH, 105..110, 0));
    tansu.signal(SIGTERM);
    tansu.wait(Duration::from_secs(30));
    let _tansu = start_durable_broker(work.path(), port, "second");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (log_start(&brokers, RESUMED), log_start(&brokers, FRESH)) != (10, 5) {
        assert!(
            Instant::now() < deadline,
            "tansu's retention deleted nothing"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut run = start(work.path(), "run-second", &config);
    let address = printed(work.path(), "run-second", "on http://");
    wait_for_rows(&lake, kept.len(), Duration::from_secs(120));
    let metrics = wait_for(&address, "/metrics", "the losses counted", |body| {
        body.contains(&format!(
            "authtrail_events_lost_total{{topic=\"{FRESH}\",partition=\"0\"}} 5"
        )) && body.contains(&format!(
            "authtrail_events_lost_total{{topic=\"{RESUMED}\",partition=\"0\"}} 5"
        ))
    });
    let gaps = metrics
        .lines()
        .find(|line| line.starts_with("authtrail_offset_gaps_total"))
        .unwrap();
    assert_eq!(gaps, "authtrail_offset_gaps_total 2");
    run.signal(SIGTERM);
    assert!(run.wait(Duration::from_secs(60)).success(), "clean exit");

    let log = std::fs::read_to_string(work.path().join("run-second.log")).unwrap();
    for topic in [FRESH, RESUMED] {
        assert!(
            log.lines().any(|line| line.contains("ERROR")
                && line.contains(topic)
                && line.contains("5 messages lost")),
            "no ERROR line for {topic}:\n{log}"
        );
    }
    assert_exactly_once(&lake, &kept);

    let verify = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["--lake", lake.to_str().unwrap(), "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        !verify.status.success(),
        "verify passed a lake missing data:\n{stdout}"
    );
    for expected in [
        format!("lost: `{FRESH}` partition 0 offsets 0 to 4 (5 messages)"),
        format!("lost: `{RESUMED}` partition 0 offsets 5 to 9 (5 messages)"),
    ] {
        assert!(stdout.contains(&expected), "no `{expected}` in:\n{stdout}");
    }
    assert!(stdout.contains("2 findings"), "{stdout}");
}
