//! `authtrail ingest` with no brokers configured: the embedded broker accepts events from a
//! real Kafka client (confluent-kafka), and a restart never overwrites what earlier runs
//! wrote.

mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{authtrail, column_counts, good_event, wait_for_rows, Broker, WorkDir};

const SIGINT: i32 = 2;

fn embedded_address(stdout: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(stdout).unwrap_or_default();
        if let Some(start) = text.find("127.0.0.1:") {
            let end = text[start..]
                .find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())
                .map_or(text.len(), |len| start + len);
            return text[start..end].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no broker address printed: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_once(work: &Path, name: &'static str, ids: std::ops::Range<usize>, expect_rows: usize) {
    let input = work.join(format!("{name}.jsonl"));
    let mut file = std::fs::File::create(&input).unwrap();
    for i in ids {
        writeln!(file, "{}", good_event(i)).unwrap();
    }
    let lake = work.join("lake").to_string_lossy().into_owned();
    let mut ingest = authtrail(
        work,
        name,
        &["--lake", &lake, "ingest", "--flush-age", "200ms"],
    );
    let address = embedded_address(&work.join(format!("{name}.out")));
    Broker::existing(&address).produce("auth-events", &input, None);
    wait_for_rows(&work.join("lake"), expect_rows, Duration::from_secs(60));
    ingest.signal(SIGINT);
    assert!(
        ingest.wait(Duration::from_secs(30)).success(),
        "clean exit on SIGINT"
    );
}

#[test]
fn embedded_broker_takes_events_from_a_real_client_across_restarts() {
    let work = WorkDir::new();
    run_once(work.path(), "first", 0..500, 500);
    run_once(work.path(), "second", 500..900, 900);
    let ids = column_counts(&work.path().join("lake"), "events", "id");
    assert_eq!(ids.len(), 900);
    assert!(ids.values().all(|&n| n == 1));
}
