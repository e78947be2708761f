//! End to end against a separate broker process (tansu): events produced by a real client
//! (confluent-kafka) across several partitions, ingested by the real `authtrail` binary,
//! read back with the parquet crate and with DuckDB. Includes SIGKILL mid-stream.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use support::{
    assert_exactly_once, authtrail, column_counts, duckdb_report, good_event, wait_for_rows, Broker,
};

const TOPIC: &str = "auth-events";
const PARTITIONS: i32 = 6;
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// Messages that break the contract, each with the reject class it must get. The size
/// limit is lowered to 4 KiB by the test config so an oversized message stays small.
fn bad_messages() -> Vec<(Vec<u8>, &'static str)> {
    let event =
        |rest: &str| format!(r#"{{"time":"2026-11-23T18:00:00Z","principal":"user:x",{rest}}}"#);
    vec![
        (b"{not json".to_vec(), "invalid_json"),
        (b"[1,2,3]".to_vec(), "invalid_json"),
        (b"".to_vec(), "invalid_json"),
        (
            b"{\"id\":\"u\xff\",\"kind\":\"authn\"}".to_vec(),
            "invalid_utf8",
        ),
        (
            event(r#""id":"b1","id":"b2","kind":"authn","outcome":"success""#).into_bytes(),
            "duplicate_key",
        ),
        (
            event(r#""kind":"authn","outcome":"success""#).into_bytes(),
            "missing_field",
        ),
        (
            event(r#""id":"b3","kind":"authn","outcome":"success","mfa":"yes""#).into_bytes(),
            "wrong_type",
        ),
        (
            event(r#""id":"b4","kind":"teleport""#).into_bytes(),
            "unknown_kind",
        ),
        (
            event(r#""id":"b5","kind":"authz","outcome":"success""#).into_bytes(),
            "invalid_value",
        ),
        (
            br#"{"id":"b6","time":"yesterday","kind":"token_revoke","principal":"p"}"#.to_vec(),
            "invalid_time",
        ),
        (
            br#"{"id":"b7","time":"2099-01-01T00:00:00Z","kind":"token_revoke","principal":"p"}"#
                .to_vec(),
            "time_out_of_range",
        ),
        (
            event(r#""id":"b8","kind":"token_revoke","source_ip":"999.1.1.1""#).into_bytes(),
            "invalid_source_ip",
        ),
        (
            event(&format!(
                r#""id":"b9","kind":"token_revoke","reason":"{}""#,
                "x".repeat(5000)
            ))
            .into_bytes(),
            "too_large",
        ),
    ]
}

/// Writes `count` good events (ids `e-{start}`…) with the bad messages spread among them.
fn write_input(path: &Path, start: usize, count: usize, with_bad: bool) -> Vec<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let bad = if with_bad { bad_messages() } else { Vec::new() };
    let every = count / (bad.len() + 1);
    let mut ids = Vec::with_capacity(count);
    for i in start..start + count {
        if every > 0 && (i - start) % every == every - 1 {
            if let Some((message, _)) = bad.get((i - start) / every) {
                file.write_all(message).unwrap();
                file.write_all(b"\n").unwrap();
            }
        }
        writeln!(file, "{}", good_event(i)).unwrap();
        ids.push(format!("e-{i}"));
    }
    ids
}

/// `authtrail ingest` into `lake` from `broker`, with the config `write_config` puts in
/// `dir`.
fn ingest_args(dir: &Path, lake: &Path, broker: &Broker) -> [String; 7] {
    [
        "--lake".into(),
        lake.to_string_lossy().into_owned(),
        "ingest".into(),
        "--config".into(),
        write_config(dir),
        "--brokers".into(),
        broker.address.clone(),
    ]
}

fn write_config(dir: &Path) -> String {
    let path = dir.join("authtrail.toml");
    std::fs::write(
        &path,
        concat!(
            "[ingest]\nflush_rows = 2000\nflush_age = \"300ms\"\nmax_message_bytes = 4096\n\n",
            "[kafka]\ntopics = [\"auth-events\"]\ngroup_id = \"e2e\"\n\n",
            // A killed member holds its partitions until its session times out.
            "[kafka.settings]\n\"session.timeout.ms\" = \"6000\"\n",
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn events_from_a_real_broker_land_exactly_once_and_bad_ones_in_rejects() {
    let work = support::WorkDir::new();
    let lake = work.path().join("lake");
    let broker = Broker::start(work.path());
    let input = work.path().join("events.jsonl");
    let ids = write_input(&input, 0, 20_000, true);
    broker.produce(TOPIC, &input, Some(PARTITIONS));
    let bad = bad_messages();

    let args = ingest_args(work.path(), &lake, &broker);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ingest = authtrail(work.path(), "ingest", &args);
    wait_for_rows(&lake, ids.len() + bad.len(), Duration::from_secs(120));
    ingest.signal(SIGTERM);
    assert!(
        ingest.wait(Duration::from_secs(30)).success(),
        "clean exit on SIGTERM"
    );

    // The parquet crate's view.
    assert_exactly_once(&lake, &ids);
    let partitions = column_counts(&lake, "events", "ingest_topic");
    assert_eq!(partitions.get(TOPIC), Some(&ids.len()));

    // DuckDB's view, with hive partitioning.
    let report = duckdb_report(&lake);
    let duck_ids = report["event_ids"].as_object().unwrap();
    assert_eq!(duck_ids.len(), ids.len());
    assert!(duck_ids.values().all(|n| n == 1));
    assert_eq!(
        report["hour_matches_time"], true,
        "hour partitions follow event time"
    );
    let rejects = report["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), bad.len());
    let mut kind_by_raw: HashMap<String, String> = HashMap::new();
    for reject in rejects {
        assert_eq!(reject[0], TOPIC);
        assert!(
            !reject[4].as_str().unwrap().is_empty(),
            "reject carries its reason"
        );
        kind_by_raw.insert(
            reject[5].as_str().unwrap().to_owned(),
            reject[3].as_str().unwrap().to_owned(),
        );
    }
    for (message, kind) in &bad {
        let raw = String::from_utf8_lossy(message);
        let raw = if *kind == "too_large" {
            // Only the head of an oversized message is kept.
            kind_by_raw
                .keys()
                .find(|kept| raw.starts_with(kept.as_str()) && !kept.is_empty())
                .cloned()
                .unwrap_or_default()
        } else {
            raw.into_owned()
        };
        assert_eq!(
            kind_by_raw.get(&raw).map(String::as_str),
            Some(*kind),
            "reject of {:.60}",
            raw
        );
    }
}

#[test]
fn sigkill_mid_stream_then_restart_keeps_exactly_once() {
    let work = support::WorkDir::new();
    let lake = work.path().join("lake");
    let broker = Broker::start(work.path());
    let args = ingest_args(work.path(), &lake, &broker);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // zstd here, lz4 in the other test: both codecs the issue names reach the consumer.
    let first = work.path().join("first.jsonl");
    let mut ids = write_input(&first, 0, 30_000, false);
    broker.produce_compressed(TOPIC, &first, Some(PARTITIONS), "zstd");

    let mut ingest = authtrail(work.path(), "ingest-1", &args);
    // Kill once part of the stream is in the lake: some flushes done, more in flight.
    wait_for_rows(&lake, 6_000, Duration::from_secs(120));
    ingest.signal(SIGKILL);
    ingest.wait(Duration::from_secs(10));
    let after_kill = support::row_count(&lake, "events");
    assert!(
        after_kill < ids.len(),
        "killed before the end ({after_kill} rows)"
    );

    // Let the killed member's session (`session.timeout.ms` = 6 s) expire before the
    // restart joins. Observed with tansu 0.6.0: a member that joins while a dead member
    // still holds the partitions is assigned none, and no rebalance follows when the dead
    // member expires, so the restarted process would wait forever. (Kafka rebalances then.)
    std::thread::sleep(Duration::from_secs(7));

    // More events arrive while authtrail is down.
    let second = work.path().join("second.jsonl");
    ids.extend(write_input(&second, 30_000, 10_000, false));
    broker.produce_compressed(TOPIC, &second, None, "zstd");

    let mut restarted = authtrail(work.path(), "ingest-2", &args);
    wait_for_rows(&lake, ids.len(), Duration::from_secs(120));
    restarted.signal(SIGTERM);
    assert!(restarted.wait(Duration::from_secs(30)).success());
    assert_exactly_once(&lake, &ids);
    let report = duckdb_report(&lake);
    assert_eq!(report["event_ids"].as_object().unwrap().len(), ids.len());
}
