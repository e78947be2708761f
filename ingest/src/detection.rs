//! Live detection inside the pipeline: every accepted event goes through the detectors the
//! moment it is decoded, so an alert exists within microseconds of the event that completes
//! its pattern (logged at once; written to the lake's `alerts` table at the next flush).
//!
//! Restart safety: at every flush, after the lake holds the flushed events and before the
//! source commits their offsets, the detector state is saved as a checkpoint together with
//! the offsets it covers, and the alerts raised since the previous checkpoint are written
//! under that checkpoint's number. After a crash, the lake may hold events the restored
//! state never saw (flushed after the last checkpoint); the pipeline feeds those to the
//! detectors again without storing them twice, so a pattern that straddles the crash is
//! still caught. Alerts raised again by that replay carry the same ids and land in the
//! same file name.
//!
//! An [`AlertSink`] (the binary plugs in the webhook responder) gets each alert the moment
//! it is raised, and is synced at every checkpoint, before the offsets are committed.
//!
//! The checkpoint is cut where the detectors run (the pipeline thread, or their own thread:
//! [`crate::detect_stage`]) when a flush is handed to the writer (so it covers exactly the
//! offsets of that flush and earlier ones), and saved by the writer after it committed that
//! flush's lake files.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use authtrail_detect::{DetectConfig, DetectorStats, Detectors, SourceId, TableStats};
use authtrail_metrics::LatencyRecorder;
use authtrail_model::lake::checkpoint_path;
use authtrail_model::time::hour_of;
use authtrail_model::{Alert, AlertBatchBuilder, Event};
use authtrail_rules::{Pack, RuleSet};
use authtrail_store::Lake;
use serde::{Deserialize, Serialize};

use crate::stats::{lock, IngestStats};
use crate::{Error, Result};

/// The detectors' checkpoint under the lake's checkpoint directory.
const CHECKPOINT_NAME: &str = "detect";
const CHECKPOINT_VERSION: u32 = 1;
/// How often the detectors publish their latency and state sizes.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The first line of the checkpoint file; the detector state's bytes follow it.
#[derive(Serialize, Deserialize)]
struct CheckpointHeader {
    version: u32,
    /// Increases by one with every checkpoint; names the alerts files written with it.
    number: u64,
    /// Per source partition, the first offset the saved state has not seen.
    covered: Vec<(String, i32, i64)>,
    /// Bytes of Sigma rule state at the end, after the detectors'; absent when no rules ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rules: Option<usize>,
}

/// Where raised alerts go besides the lake: recorded at once (without waiting on the
/// network), made durable by `sync` before the source commits the offsets that raised them.
///
/// `record` is called where the detectors run (the pipeline thread, or their own) and `sync`
/// on the writer thread, at the same time: `sync` must make at least every alert whose
/// `record` returned durable.
pub trait AlertSink: Send + Sync {
    /// Takes a newly raised alert (possibly one raised again by a replay: same id).
    fn record(&self, alert: &Alert) -> Result<(), BoxError>;
    /// Makes every recorded alert durable.
    fn sync(&self) -> Result<(), BoxError>;
}

/// The error of an [`AlertSink`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The detectors, the offsets their state covers, and the alerts not yet in the lake.
pub struct Detection {
    detectors: Detectors,
    /// The Sigma rules of `[detect] rules`, run after the detectors on each event.
    rules: Option<RuleSet>,
    /// Where a reload of those rules is handed in (none without rules).
    reload: Option<Arc<RulesReload>>,
    covered: HashMap<(String, i32), i64>,
    last_checkpoint: u64,
    pending: BTreeMap<i64, AlertBatchBuilder>,
    raised: Vec<Alert>,
    stats: Arc<IngestStats>,
    sink: Option<Arc<dyn AlertSink>>,
    /// Per-event detector latency, recorded without synchronisation.
    latency: LatencyRecorder,
    published: Instant,
}

impl Detection {
    /// Detectors configured by `config`, resumed from the lake's checkpoint if it has one.
    pub fn open(lake: &Lake, config: &DetectConfig, stats: Arc<IngestStats>) -> Result<Self> {
        let reload = (!config.rules.is_empty()).then(|| {
            Arc::new(RulesReload {
                paths: config.rules.clone(),
                settings: rule_settings(config),
                pending: Mutex::new(None),
            })
        });
        let detection = |detectors, rules, covered, last_checkpoint| Detection {
            detectors,
            rules,
            reload: reload.clone(),
            covered,
            last_checkpoint,
            pending: BTreeMap::new(),
            raised: Vec::new(),
            stats: stats.clone(),
            sink: None,
            latency: LatencyRecorder::default(),
            published: Instant::now(),
        };
        let Some(bytes) = lake.load_checkpoint(CHECKPOINT_NAME)? else {
            let detectors = Detectors::new(config)?;
            let rules = open_rules(config, None)?;
            return Ok(detection(detectors, rules, HashMap::new(), 0));
        };
        let split = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| Error::Checkpoint("no header line".into()))?;
        let header: CheckpointHeader = serde_json::from_slice(&bytes[..split])
            .map_err(|error| Error::Checkpoint(error.to_string()))?;
        if header.version != CHECKPOINT_VERSION {
            return Err(Error::Checkpoint(format!(
                "version {} is not {CHECKPOINT_VERSION}",
                header.version
            )));
        }
        let state = &bytes[split + 1..];
        let rules_len = header.rules.unwrap_or(0).min(state.len());
        let (detector_state, rules_state) = state.split_at(state.len() - rules_len);
        let detectors = Detectors::restore(config, detector_state).map_err(|error| {
            match error {
                // Written by an older build (version 2 kept one clock for all partitions):
                // say what to do rather than only what is wrong.
                authtrail_detect::Error::CheckpointVersion { .. } => Error::Checkpoint(format!(
                    "{error}; remove `{}` in the lake to start the detectors afresh (the lake \
                     keeps every event)",
                    checkpoint_path(CHECKPOINT_NAME).display()
                )),
                other => Error::Detect(other),
            }
        })?;
        let covered = header
            .covered
            .into_iter()
            .map(|(source, partition, next)| ((source, partition), next))
            .collect();
        let rules = open_rules(config, header.rules.map(|_| rules_state))?;
        tracing::info!(checkpoint = header.number, "detector state restored");
        Ok(detection(detectors, rules, covered, header.number))
    }

    /// The handle that reloads the Sigma rules while this stage runs; `None` without
    /// `[detect] rules`.
    pub fn rules_reload(&self) -> Option<Arc<RulesReload>> {
        self.reload.clone()
    }

    /// Hands every alert raised from now on to `sink` as well.
    pub fn with_sink(mut self, sink: Box<dyn AlertSink>) -> Self {
        self.sink = Some(Arc::from(sink));
        self
    }

    /// The first offset of a partition the detector state has not seen, if it saw any.
    pub(crate) fn covered(&self, source: &str, partition: i32) -> Option<i64> {
        self.covered.get(&(source.to_owned(), partition)).copied()
    }

    /// The detectors' watermark of a source partition (registered at its first message;
    /// restored ones keep the watermark of the checkpoint).
    pub(crate) fn source(&mut self, source: &str, partition: i32) -> SourceId {
        self.detectors.source(source, partition)
    }

    /// Registers assigned partitions: each holds expiry back until its first event (or
    /// until it turns out idle), so shared state a partition read later still needs is
    /// not expired by the partitions read first.
    pub(crate) fn assign(&mut self, partitions: &[(Arc<str>, i32)]) {
        for (source, partition) in partitions {
            self.detectors.source(source, *partition);
        }
    }

    /// Forgets revoked partitions' watermarks: their events go to another consumer now,
    /// so they must not hold expiry back (also when assigned but never delivered here).
    pub(crate) fn revoke(&mut self, partitions: &[(Arc<str>, i32)]) {
        for (source, partition) in partitions {
            let source = self.detectors.source(source, *partition);
            self.detectors.release(source);
        }
    }

    /// Tells the detectors the wall-clock time: partitions silent for `source_idle_after`
    /// stop holding expiry back. Called per batch of messages and when idle.
    pub(crate) fn tick(&mut self) {
        self.detectors.tick(Instant::now());
        self.take_reload();
    }

    /// Swaps in a reloaded rule set, if one is waiting: the state of every rule whose name
    /// is in the new set too is carried over (`RuleSet::restore`), the rest starts empty.
    fn take_reload(&mut self) {
        let (Some(reload), Some(rules)) = (&self.reload, &mut self.rules) else {
            return;
        };
        let Some((pack, reply)) = lock(&reload.pending).take() else {
            return;
        };
        let counts = (pack.detections.len(), pack.correlations.len());
        let state = rules.checkpoint();
        let outcome = match RuleSet::restore(Arc::new(pack), reload.settings, &state) {
            Ok(reloaded) => {
                *rules = reloaded;
                tracing::info!(
                    detection = counts.0,
                    correlation = counts.1,
                    "sigma rules reloaded"
                );
                Ok(format!(
                    "{} detection and {} correlation rules",
                    counts.0, counts.1
                ))
            }
            Err(error) => Err(format!(
                "the running state does not carry over to the new rules: {error}"
            )),
        };
        // The caller may have given up waiting; the swap stands either way.
        let _ = reply.send(outcome);
    }

    /// Runs the detectors on one event of `source`; alerts are logged and handed to the
    /// sink now, and kept for the lake.
    pub(crate) fn observe(&mut self, source: SourceId, event: &Event<'_>) -> Result<()> {
        let started = Instant::now();
        self.detectors.observe_from(source, event, &mut self.raised);
        if let Some(rules) = &mut self.rules {
            // The rules follow the detectors' watermarks: late for the event's own
            // partition, windows swept by the slowest active one's clock.
            rules.observe_at(event, self.detectors.last_reading(), &mut self.raised);
        }
        self.latency.record(started.elapsed());
        for alert in self.raised.drain(..) {
            IngestStats::add(&self.stats.alerts, 1);
            *lock(&self.stats.alerts_by)
                .entry((alert.detector.clone(), alert.severity.as_str()))
                .or_insert(0) += 1;
            tracing::warn!(
                target: "authtrail::alert",
                alert_id = %alert.id,
                detector = %alert.detector,
                severity = alert.severity.as_str(),
                principal = %alert.principal,
                token_id = alert.token_id.as_deref(),
                source_ip = alert.source_ip.map(|ip| ip.to_string()),
                target_service = alert.target_service.as_deref(),
                attack = %alert.attack_technique,
                suppressed = alert.suppressed_count,
                evidence = alert.evidence_ids.len(),
                "{}",
                alert.summary
            );
            if let Some(sink) = &self.sink {
                sink.record(&alert).map_err(Error::AlertSink)?;
            }
            self.pending
                .entry(hour_of(alert.time))
                .or_default()
                .append(&alert);
        }
        Ok(())
    }

    /// Publishes detector latency and state sizes for the metrics endpoint, at most once a
    /// second unless `now` (idle, or stopping).
    pub(crate) fn publish_metrics(&mut self, now: bool) {
        if !now && self.published.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.published = Instant::now();
        self.stats.detect_latency.publish(&mut self.latency);
        let mut state = self.detectors.stats();
        if let Some(rules) = &self.rules {
            let stats = rules.stats();
            state.tables.push(DetectorStats {
                name: "sigma_rules",
                state: TableStats {
                    live_keys: stats.groups as usize,
                    expired: 0,
                    evicted: stats.evicted,
                },
            });
        }
        *lock(&self.stats.detect_state) = Some(state);
    }

    /// Records how long the detectors stopped to hand a flush to the writer.
    pub(crate) fn record_pause(&self, paused: Duration) {
        let micros = u64::try_from(paused.as_micros()).unwrap_or(u64::MAX);
        self.stats.detect_pause_micros.observe(micros);
    }

    /// Cuts a checkpoint covering `positions` (source, partition, next offset) — called
    /// when the events observed so far are handed to the writer — with the alerts raised
    /// since the previous one. The writer saves it once the lake holds those events.
    pub(crate) fn cut<'a>(
        &mut self,
        positions: impl Iterator<Item = (&'a str, i32, i64)>,
    ) -> Result<Checkpoint> {
        for (source, partition, next) in positions {
            let entry = self
                .covered
                .entry((source.to_owned(), partition))
                .or_insert(next);
            *entry = (*entry).max(next);
        }
        let number = self.last_checkpoint + 1;
        let mut alerts = Vec::with_capacity(self.pending.len());
        for (hour, mut builder) in std::mem::take(&mut self.pending) {
            alerts.push((
                hour,
                builder.finish().map_err(authtrail_store::Error::from)?,
            ));
        }
        let rules_state = self.rules.as_ref().map(RuleSet::checkpoint);
        let header = CheckpointHeader {
            version: CHECKPOINT_VERSION,
            number,
            rules: rules_state.as_ref().map(Vec::len),
            covered: self
                .covered
                .iter()
                .map(|((source, partition), next)| (source.clone(), *partition, *next))
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&header).expect("header serializes");
        bytes.push(b'\n');
        bytes.extend(self.detectors.checkpoint());
        bytes.extend(rules_state.unwrap_or_default());
        self.last_checkpoint = number;
        Ok(Checkpoint {
            number,
            alerts,
            bytes,
        })
    }

    /// The sink, for the writer to sync at every checkpoint.
    pub(crate) fn sink(&self) -> Option<Arc<dyn AlertSink>> {
        self.sink.clone()
    }
}

/// The Sigma rules `config.rules` names (none when it is empty), resumed from `saved`
/// state when the checkpoint has some. Runs with the detectors' lateness and key cap.
fn open_rules(config: &DetectConfig, saved: Option<&[u8]>) -> Result<Option<RuleSet>> {
    if config.rules.is_empty() {
        return Ok(None);
    }
    let pack = Pack::load(&config.rules)
        .map_err(|error| Error::Config(format!("`[detect] rules`: {error}")))?;
    let settings = rule_settings(config);
    let pack = Arc::new(pack);
    let rules = match saved {
        Some(state) => RuleSet::restore(pack, settings, state)
            .map_err(|error| Error::Checkpoint(format!("sigma rules: {error}")))?,
        None => RuleSet::new(pack, settings),
    };
    tracing::info!(
        detection = rules.pack().detections.len(),
        correlation = rules.pack().correlations.len(),
        "sigma rules loaded"
    );
    Ok(Some(rules))
}

/// The rules run with the detectors' lateness and key cap.
fn rule_settings(config: &DetectConfig) -> authtrail_rules::Settings {
    authtrail_rules::Settings {
        allowed_lateness: config.allowed_lateness,
        max_keys: config.max_keys,
        ..Default::default()
    }
}

/// Reloading the Sigma rules of a running detection stage (SIGHUP, `POST
/// /api/v1/rules/reload`). The files are read and checked on the caller's thread, so a
/// broken set is refused with its reasons while the running one goes on; a good set is
/// handed to the pipeline thread, which swaps it in between two batches of messages.
pub struct RulesReload {
    paths: Vec<PathBuf>,
    settings: authtrail_rules::Settings,
    pending: Mutex<Option<PendingReload>>,
}

/// A checked rule set waiting for the pipeline, and where to say what became of it (what
/// now runs, or why the state did not carry over).
type PendingReload = (Pack, SyncSender<std::result::Result<String, String>>);

/// Why a reload did not happen; the running rules go on in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files on disk do not make a valid set (the reasons, with files and lines).
    #[error("the rules were refused: {0}")]
    Invalid(String),
    /// The pipeline did not take the set in time (it is stopping, or stalled).
    #[error("the pipeline did not take the new rules within {0:?}")]
    NotTaken(Duration),
}

impl RulesReload {
    /// Reads and checks the rule files again and, when they make a valid set, waits up to
    /// `timeout` for the pipeline to swap it in; returns what is now running.
    pub fn reload(&self, timeout: Duration) -> std::result::Result<String, ReloadError> {
        let pack =
            Pack::load(&self.paths).map_err(|error| ReloadError::Invalid(error.to_string()))?;
        let (reply, taken) = sync_channel(1);
        // A newer request replaces one not taken yet: its caller is told it was not taken.
        *lock(&self.pending) = Some((pack, reply));
        match taken.recv_timeout(timeout) {
            Ok(Ok(running)) => Ok(running),
            Ok(Err(reason)) => Err(ReloadError::Invalid(reason)),
            Err(_) => {
                lock(&self.pending).take();
                Err(ReloadError::NotTaken(timeout))
            }
        }
    }
}

/// A detector checkpoint cut where the detectors run, saved by the writer.
pub(crate) struct Checkpoint {
    number: u64,
    alerts: Vec<(i64, RecordBatch)>,
    bytes: Vec<u8>,
}

impl Checkpoint {
    /// Syncs the sink, writes the alerts, then replaces the checkpoint file — called once
    /// the lake holds every event the checkpoint covers.
    pub(crate) fn save(&self, lake: &mut Lake, sink: Option<&dyn AlertSink>) -> Result<()> {
        if let Some(sink) = sink {
            sink.sync().map_err(Error::AlertSink)?;
        }
        if !self.alerts.is_empty() {
            let summary = lake.write_alerts(self.number, &self.alerts)?;
            tracing::info!(
                alerts = summary.rows,
                files = summary.files.len(),
                checkpoint = self.number,
                "alerts written to the lake"
            );
        }
        lake.save_checkpoint(CHECKPOINT_NAME, &self.bytes)
            .map_err(Error::from)
    }
}
