//! The pipeline on its own: redelivered and skipped offsets, tombstones, oversized
//! messages, and resuming where the lake ends.

use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use authtrail_ingest::{Durable, IngestStats, Input, Pipeline, PipelineConfig, RawMessage};
use authtrail_store::{EncodeOptions, Lake};

fn message(offset: i64, payload: Option<&str>) -> RawMessage {
    let payload = payload.map(|text| text.as_bytes().to_vec());
    RawMessage {
        source: Arc::from("auth-events"),
        partition: 0,
        offset,
        timestamp: Some(1_795_456_800_000_000),
        size: payload.as_ref().map_or(0, Vec::len),
        payload,
    }
}

fn event(offset: i64) -> RawMessage {
    let text = format!(
        r#"{{"id":"e-{offset}","time":"2026-11-23T18:00:00Z","kind":"token_revoke","principal":"user:a"}}"#
    );
    message(offset, Some(&text))
}

/// Runs a pipeline over `messages`; returns its stats and the durable offsets it reported.
fn run(
    lake: &std::path::Path,
    messages: Vec<RawMessage>,
) -> (authtrail_ingest::StatsSnapshot, Vec<Durable>) {
    let stats = Arc::new(IngestStats::default());
    let durable = Arc::new(Mutex::new(Vec::new()));
    let reported = durable.clone();
    let pipeline = Pipeline::new(
        Lake::open(lake, EncodeOptions::default()).unwrap(),
        PipelineConfig::default(),
        stats.clone(),
        Box::new(move |offsets: &[Durable]| reported.lock().unwrap().extend_from_slice(offsets)),
    );
    let (sender, receiver) = sync_channel(4);
    sender.send(Input::Messages(messages)).unwrap();
    drop(sender);
    pipeline.run(receiver).unwrap();
    let durable = durable.lock().unwrap().clone();
    (stats.snapshot(), durable)
}

#[test]
fn redelivered_offsets_are_written_once_and_gaps_are_counted() {
    let lake = tempfile::tempdir().unwrap();
    let messages = [0, 1, 2, 1, 2, 3, 7].into_iter().map(event).collect();
    let (stats, durable) = run(lake.path(), messages);
    assert_eq!(stats.accepted, 5);
    assert_eq!(stats.redelivered, 2);
    assert_eq!(stats.offset_gaps, 1);
    assert_eq!(durable.len(), 1);
    assert_eq!(durable[0].next_offset, 8);
}

#[test]
fn a_second_run_skips_what_the_lake_holds_and_continues_after_it() {
    let lake = tempfile::tempdir().unwrap();
    run(lake.path(), (0..10).map(event).collect());
    let (stats, durable) = run(lake.path(), (5..15).map(event).collect());
    assert_eq!(stats.already_in_lake, 5);
    assert_eq!(stats.accepted, 5);
    assert_eq!(durable[0].next_offset, 15);
}

#[test]
fn tombstones_and_oversized_messages_are_rejected_with_their_reason() {
    let lake = tempfile::tempdir().unwrap();
    let mut oversized = message(1, Some("{\"id\":"));
    oversized.size = 5 * 1024 * 1024; // the source kept only the head
    let (stats, _) = run(lake.path(), vec![message(0, None), oversized, event(2)]);
    assert_eq!(stats.rejected, 2);
    assert_eq!(stats.accepted, 1);
}
