//! The query bench's lake: the lake_write mix spread over three days, written once through
//! the real store (`SegmentBuilder`, `Lake::commit` at the pipeline's default flush size)
//! and cached, plus synthetic alerts whose evidence ids name real events.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use authtrail_model::time::hour_of;
use authtrail_model::{
    parse_event, Alert, AlertBatchBuilder, ContractLimits, IngestMeta, Severity,
};
use authtrail_store::{EncodeOptions, Lake, SegmentBuilder};
use serde::{Deserialize, Serialize};

use crate::mix;

/// Bumped when the lake built from the same mix changes (layout, alerts, picks).
const LAKE_VERSION: u32 = 1;
/// The pipeline's default flush size.
const SEGMENT_ROWS: usize = 100_000;
const TOPIC: &str = "auth-events";
/// One alert per this many events.
const EVENTS_PER_ALERT: usize = 5_000;
/// The span the events cover.
const SPAN_MICROS: i64 = 3 * 24 * 3_600 * 1_000_000;

/// Values the queries look up, picked from the generated events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Picks {
    pub events: usize,
    pub files: usize,
    pub bytes: u64,
    pub token_id: String,
    pub principal: String,
    pub source_ip: String,
}

/// The cached lake for `events` events, built if missing. Returns its root and the picks.
pub fn lake(events: usize) -> (PathBuf, Picks) {
    let cache = std::env::var_os("LAKE_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                .join(".cache/authtrail-bench")
        },
        PathBuf::from,
    );
    let root = cache.join(format!(
        "lake_query-mix{}-lake{LAKE_VERSION}-{events}",
        mix::VERSION
    ));
    let picks_path = root.join("bench-picks.json");
    if let Ok(text) = std::fs::read_to_string(&picks_path) {
        let picks: Picks = serde_json::from_str(&text).expect("cached picks parse");
        return (root, picks);
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("remove an incomplete cached lake");
    }
    let start = Instant::now();
    eprintln!(
        "building a {events}-event lake at {} (once)",
        root.display()
    );
    let picks = build(&root, events);
    std::fs::write(&picks_path, serde_json::to_string_pretty(&picks).unwrap()).unwrap();
    eprintln!("built in {:.0?}: {picks:?}", start.elapsed());
    (root, picks)
}

fn build(root: &Path, events: usize) -> Picks {
    let mut lake = Lake::open(root, EncodeOptions::default()).expect("open lake");
    let mut log = lake.open_partition(TOPIC, 0).expect("open partition");
    let limits = ContractLimits::default();
    // The ingest clock: after the last event, so the future-skew check passes.
    let now = 1_795_420_800_000_000 + SPAN_MICROS + 86_400_000_000;
    let mut generator = mix::Mix::with_step(SPAN_MICROS / events as i64);
    let mut segment = SegmentBuilder::new(TOPIC, 0, 64 * 1024);
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut line = String::new();
    let mut recent: VecDeque<String> = VecDeque::with_capacity(3);
    let mut alerts: BTreeMap<i64, AlertBatchBuilder> = BTreeMap::new();
    let mut picks = None;
    let detectors = [
        "brute_force",
        "token_reuse",
        "denied_burst",
        "impossible_travel",
    ];
    for offset in 0..events {
        line.clear();
        generator.next_line(&mut line);
        let event = parse_event(line.trim_end().as_bytes(), now, &limits).expect("good event");
        if recent.len() == 3 {
            recent.pop_front();
        }
        recent.push_back(event.id.to_string());
        if offset % EVENTS_PER_ALERT == EVENTS_PER_ALERT - 1 {
            let alert = Alert {
                id: format!("alert-{offset}"),
                detector: detectors[(offset / EVENTS_PER_ALERT) % detectors.len()].into(),
                severity: [Severity::Low, Severity::Medium, Severity::High][offset % 3],
                time: event.time,
                principal: event.principal.to_string(),
                token_id: event.token_id.as_deref().map(str::to_owned),
                source_ip: event.source_ip,
                target_service: event.target_service.as_deref().map(str::to_owned),
                key: event.principal.to_string(),
                summary: "synthetic alert for the query bench".into(),
                evidence_ids: recent.iter().cloned().collect(),
                attack_technique: "T1078".into(),
                suppressed_count: 0,
            };
            alerts
                .entry(hour_of(alert.time))
                .or_default()
                .append(&alert);
        }
        // A user's token presented at a gateway, halfway through: a typical lookup.
        if picks.is_none()
            && offset >= events / 2
            && event.kind.as_str() == "authz"
            && event.principal.starts_with("user:")
        {
            picks = Some(Picks {
                events,
                files: 0,
                bytes: 0,
                token_id: event
                    .token_id
                    .as_deref()
                    .expect("authz has a token")
                    .to_owned(),
                principal: event.principal.to_string(),
                source_ip: event.source_ip.expect("authz has an ip").to_string(),
            });
        }
        let meta = IngestMeta {
            topic: TOPIC,
            partition: 0,
            offset: offset as i64,
            ingest_time: now,
        };
        segment.push_event(&event, &meta);
        if segment.rows() >= SEGMENT_ROWS || offset + 1 == events {
            let finished = segment.finish().expect("finish").expect("rows");
            let summary = lake.commit(&mut log, finished).expect("commit");
            files += summary.files.len();
            bytes += summary.bytes;
        }
    }
    let batches: Vec<_> = alerts
        .into_iter()
        .map(|(hour, mut builder)| (hour, builder.finish().expect("alerts batch")))
        .collect();
    lake.write_alerts(1, &batches).expect("write alerts");
    let mut picks = picks.expect("the mix has user authz events");
    picks.files = files;
    picks.bytes = bytes;
    picks
}
