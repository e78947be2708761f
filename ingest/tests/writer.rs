//! The pipeline's writer thread: decoding goes on while a flush is written, offsets are
//! reported only once their flush is committed, and a stuck writer stops the source
//! instead of letting flushes pile up in memory.

use std::sync::mpsc::{channel, sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authtrail_ingest::{Durable, IngestStats, Input, Pipeline, PipelineConfig, RawMessage};
use authtrail_store::{EncodeOptions, Lake};

fn event(offset: i64) -> RawMessage {
    let text = format!(
        r#"{{"id":"e-{offset}","time":"2026-11-23T18:00:00Z","kind":"token_revoke","principal":"user:a"}}"#
    );
    RawMessage {
        source: Arc::from("auth-events"),
        partition: 0,
        offset,
        timestamp: Some(1_795_456_800_000_000),
        size: text.len(),
        payload: Some(text.into_bytes()),
    }
}

fn batch(offsets: std::ops::Range<i64>) -> Input {
    Input::Messages(offsets.map(event).collect())
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    authtrail_testkit::wait_for(what, Duration::from_secs(60), condition);
}

fn wait_signal(signal: &Receiver<()>, what: &str) {
    signal
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[test]
fn decoding_goes_on_while_the_writer_is_blocked_and_a_stuck_writer_stops_the_source() {
    let lake = tempfile::tempdir().unwrap();
    let stats = Arc::new(IngestStats::default());
    let durable = Arc::new(Mutex::new(Vec::<Durable>::new()));
    let reported = durable.clone();
    let config = PipelineConfig {
        flush_rows: 10,
        ..PipelineConfig::default()
    };
    // The writer announces each flush it is about to write, then waits for the gate.
    let (entered_tx, entered) = channel();
    let (gate, gate_rx) = channel::<()>();
    let pipeline = Pipeline::new(
        Lake::open(lake.path(), EncodeOptions::default()).unwrap(),
        config,
        stats.clone(),
        Box::new(move |offsets: &[Durable]| reported.lock().unwrap().extend_from_slice(offsets)),
        None,
    )
    .with_write_hook(Box::new(move || {
        let _ = entered_tx.send(());
        let _ = gate_rx.recv();
    }));
    let (sender, receiver) = sync_channel(1);
    let worker = std::thread::spawn(move || pipeline.run(receiver));
    let received = || stats.snapshot().received;

    // Flush 1 reaches the writer, which holds it.
    sender.send(batch(0..10)).unwrap();
    wait_signal(&entered, "the writer to take flush 1");
    // Meanwhile the decode thread decodes two more batches: flush 2 waits in the queue, and
    // five rows are buffered.
    sender.send(batch(10..20)).unwrap();
    sender.send(batch(20..25)).unwrap();
    wait_for("25 messages decoded", || received() == 25);
    assert!(
        durable.lock().unwrap().is_empty(),
        "nothing is reported durable before the writer committed it"
    );

    // Flush 3 cannot be queued behind flush 2, so the decode thread stops; then the source's
    // channel (depth 1) fills and refuses more.
    sender.send(batch(25..35)).unwrap();
    wait_for("35 messages decoded", || received() == 35);
    sender.try_send(batch(35..40)).unwrap();
    assert!(
        matches!(sender.try_send(batch(40..45)), Err(TrySendError::Full(_))),
        "a stuck writer must stop the source"
    );
    assert_eq!(received(), 35);
    assert!(durable.lock().unwrap().is_empty());

    // Let the writer go: every flush lands, in order, and the rest follows.
    for _ in 0..10 {
        gate.send(()).unwrap();
    }
    sender.send(batch(40..45)).unwrap();
    drop(sender);
    worker.join().unwrap().unwrap();
    let durable = durable.lock().unwrap();
    let offsets: Vec<i64> = durable.iter().map(|d| d.next_offset).collect();
    assert_eq!(offsets.first(), Some(&10));
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "{offsets:?}"
    );
    assert_eq!(offsets.last(), Some(&45));
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.accepted, 45);
    assert_eq!(snapshot.flushes as usize, offsets.len());
}
