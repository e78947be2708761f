//! The file path on several threads (a pool of decoders, the detectors on a thread of
//! their own) writes the lake of the single-threaded path byte for byte and raises the
//! same alerts in the same order: generated traffic with every attack and look-alike, a
//! broken line now and then, read in two runs (the second resumes after what the first
//! left in the lake, so the already-stored path runs too), with the ingest clock fixed.
//! Manifests are compared without their wall-clock `recorded_at` (and the hash chaining
//! it, `prev`), detector checkpoints by header (see [`checkpoint_header`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use authtrail_detect::DetectConfig;
use authtrail_gen::{GenConfig, Generator, ScenarioKind};
use authtrail_ingest::file::{read_lines, FileInput};
use authtrail_ingest::{
    AlertSink, BoxError, Detection, IngestStats, Pipeline, PipelineConfig, StatsSnapshot,
};
use authtrail_model::lake::{CHECKPOINT_DIR, MANIFEST_DIR};
use authtrail_model::{Alert, Micros};
use authtrail_store::{EncodeOptions, Lake};
use tokio_util::sync::CancellationToken;

const SOURCE: &str = "file.traffic.jsonl";

/// 2026-12-01T00:00:00Z: after every generated event, so none is too far in the future.
fn fixed_clock() -> Micros {
    1_796_083_200_000_000
}

/// Generated traffic as JSON lines, with a broken line every 5,000 and a blank one
/// every 7,000 (rejects and skipped lines take offsets too).
fn traffic() -> Vec<u8> {
    let config = GenConfig {
        seed: 11,
        users: 300,
        ..GenConfig::default()
    };
    let mut lines = Vec::new();
    for (index, event) in Generator::new(config).unwrap().enumerate() {
        if index % 5_000 == 4_999 {
            lines.extend_from_slice(b"{\"id\": \"broken\", \"time\": \n");
        }
        if index % 7_000 == 6_999 {
            lines.push(b'\n');
        }
        lines.extend_from_slice(event.json.as_bytes());
        lines.push(b'\n');
    }
    lines
}

/// Keeps every alert in the order raised.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<Alert>>>);

impl AlertSink for Recorded {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }

    fn sync(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Reads `input` as the file path does into the lake at `root`, with all detectors and
/// `decode_threads` decoders (0: everything on the pipeline thread).
fn ingest(root: &Path, input: &[u8], decode_threads: usize, alerts: &Recorded) -> StatsSnapshot {
    let stats = Arc::new(IngestStats::default());
    let lake = Lake::open(root, EncodeOptions::default()).unwrap();
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone())
        .unwrap()
        .with_sink(Box::new(alerts.clone()));
    let config = PipelineConfig {
        // Flushes by row count only, so both runs cut the same segments and checkpoints.
        flush_rows: 20_000,
        flush_age: Duration::from_secs(3_600),
        decode_threads: Some(decode_threads),
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::new(
        lake,
        config.clone(),
        stats.clone(),
        Box::new(|_| {}),
        Some(detection),
    )
    .with_clock(fixed_clock);
    let (sender, receiver) = sync_channel(config.queue_batches);
    let worker = thread::spawn(move || pipeline.run(receiver));
    let file = FileInput {
        label: "traffic.jsonl",
        source: Arc::from(SOURCE),
        partition: 0,
        keep_bytes: config.max_message_bytes,
    };
    read_lines(
        Cursor::new(input),
        &file,
        &sender,
        &stats,
        &CancellationToken::new(),
    )
    .unwrap();
    drop(sender);
    worker.join().unwrap().unwrap();
    stats.snapshot()
}

/// Every file of the lake by its path: Parquet files and checkpoints as they are,
/// manifests without the wall-clock time each entry was recorded at.
fn lake_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let bytes = if path.extension().is_some_and(|ext| ext == "jsonl") {
                without_wall_clock(&bytes)
            } else if name.starts_with(CHECKPOINT_DIR) {
                checkpoint_header(&bytes)
            } else {
                bytes
            };
            files.insert(name, bytes);
        }
    }
    files
}

/// A detector checkpoint's header: its number and the offsets it covers. The detectors'
/// state after it is not reproducible between any two runs, two single-threaded ones
/// included (tables written in hash order, clocks read from the wall), so it is not
/// compared; the alerts it leads to are.
fn checkpoint_header(checkpoint: &[u8]) -> Vec<u8> {
    let end = checkpoint.iter().position(|&b| b == b'\n').unwrap();
    checkpoint[..end].to_vec()
}

fn without_wall_clock(manifest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in manifest
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
    {
        let mut entry: serde_json::Value = serde_json::from_slice(line).unwrap();
        if let Some(fields) = entry.as_object_mut() {
            fields.remove("recorded_at");
            // The hash of the entry before, which holds that entry's `recorded_at`.
            fields.remove("prev");
        }
        out.extend(serde_json::to_vec(&entry).unwrap());
        out.push(b'\n');
    }
    out
}

#[test]
fn decoding_and_detecting_on_threads_writes_the_lake_and_alerts_of_one_thread() {
    let input = traffic();
    // The first run stops mid-file, on a line boundary; the second reads the whole file.
    let cut = input[..input.len() * 3 / 5]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let work = tempfile::tempdir().unwrap();
    let mut lakes = Vec::new();
    for decode_threads in [0, 3] {
        let root = work.path().join(format!("lake-{decode_threads}"));
        let alerts = Recorded::default();
        let first = ingest(&root, &input[..cut], decode_threads, &alerts);
        let second = ingest(&root, &input, decode_threads, &alerts);
        let alerts = std::mem::take(&mut *alerts.0.lock().unwrap());
        lakes.push((lake_files(&root), alerts, first, second));
    }
    let (serial, threaded) = (&lakes[0], &lakes[1]);

    // The traffic exercises what it should: every detector, rejects, a resumed file.
    let fired: BTreeSet<_> = serial
        .1
        .iter()
        .map(|alert| alert.detector.as_str())
        .collect();
    let expected: BTreeSet<_> = ScenarioKind::ATTACKS
        .iter()
        .flat_map(|attack| attack.expect().iter().copied())
        .collect();
    assert!(
        fired.is_superset(&expected),
        "every attack is detected: {fired:?}"
    );
    assert!(serial.2.rejected > 0 && serial.3.rejected > 0);
    assert!(serial.3.already_in_lake > 0);
    let parquet = serial.0.keys().filter(|name| name.ends_with(".parquet"));
    assert!(parquet.count() > 10, "several segments and alert files");
    assert!(serial.0.keys().any(|name| name.starts_with(MANIFEST_DIR)));
    assert!(serial.0.keys().any(|name| name.starts_with(CHECKPOINT_DIR)));

    assert_eq!(
        serial.0.keys().collect::<Vec<_>>(),
        threaded.0.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &serial.0 {
        assert!(
            threaded.0[name] == *bytes,
            "`{name}` differs between the paths"
        );
    }
    assert_eq!(serial.1.len(), threaded.1.len(), "as many alerts");
    assert!(serial.1 == threaded.1, "the same alerts in the same order");
    for (serial, threaded) in [(&serial.2, &threaded.2), (&serial.3, &threaded.3)] {
        assert_eq!(
            (
                serial.received,
                serial.accepted,
                serial.rejected,
                serial.already_in_lake,
                serial.alerts
            ),
            (
                threaded.received,
                threaded.accepted,
                threaded.rejected,
                threaded.already_in_lake,
                threaded.alerts
            ),
        );
    }
}
