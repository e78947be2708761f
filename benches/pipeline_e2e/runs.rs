//! The pipeline's two runs of the bench, through the broker and from the file, and what
//! each cost.

use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authtrail_detect::DetectConfig;
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::{Detection, IngestStats, PipelineConfig};
use authtrail_respond::{Action, RespondConfig, Responder, WebhookConfig};
use authtrail_store::{EncodeOptions, Lake};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::latency::{Measure, Sink};
use crate::process;

const SECRET: &str = "whsec_YmVuY2htYXJrLXNpZ25pbmcta2V5LTAxMjM0NTY3";

/// What one pipeline run cost.
pub struct Run {
    pub events: u64,
    /// From the first event received to the last.
    pub streaming: Duration,
    /// Including joining the group (Kafka) and the final flush.
    pub total: Duration,
    pub cpu: f64,
    pub peak_rss: f64,
    /// Resident set size when the phase started (the bench's own data included).
    pub start_rss: f64,
    pub lake_bytes: u64,
    pub alerts: u64,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.streaming.as_secs_f64()
    }
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu * 1e6 / self.events as f64
    }
}

pub fn responder(root: &Path, url: &str, detectors: Vec<String>) -> Arc<Responder> {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("secret"), SECRET).unwrap();
    let mut hook = WebhookConfig::new("idp", url, Action::RevokeToken);
    hook.secret_file = Some(root.join("secret"));
    hook.detectors = detectors;
    hook.rate_limit = 0;
    let respond = RespondConfig {
        webhooks: vec![hook],
        ..RespondConfig::default()
    };
    Arc::new(Responder::start(root, &respond, delivery_runtime()).unwrap())
}

/// The runtime the responder delivers on (the binary's is its one runtime).
fn delivery_runtime() -> tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("authtrail-respond")
                .enable_all()
                .build()
                .unwrap()
        })
        .handle()
        .clone()
}

pub fn kafka_config(topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        topics: vec![topic.to_owned()],
        group_id: group.to_owned(),
        ..KafkaConfig::default()
    }
}

/// Phase 4: the pipeline consumes `count` events of `topic`.
pub fn through_broker(broker: &Broker, topic: &str, count: u64, root: &Path, url: &str) -> Run {
    let lake = Lake::open(root, EncodeOptions::default()).unwrap();
    let stats = Arc::new(IngestStats::default());
    let responder = responder(root, url, Vec::new());
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone())
        .unwrap()
        .with_sink(Box::new(Sink(
            responder.clone(),
            Arc::new(Measure::default()),
        )));
    let stop = CancellationToken::new();
    process::reset_peak_rss();
    let start_rss = process::rss_mib();
    let cpu = process::cpu_seconds();
    let started = Instant::now();
    let worker = {
        let (stats, stop, brokers) = (stats.clone(), stop.clone(), broker.address.clone());
        let kafka = kafka_config(topic, "authtrail-e2e");
        std::thread::spawn(move || {
            let config = PipelineConfig::default();
            authtrail_ingest::ingest_kafka(
                lake,
                &config,
                &kafka,
                &brokers,
                Some(detection),
                stats,
                &stop,
            )
        })
    };
    let mut first = None;
    let deadline = started + Duration::from_secs(1_800);
    loop {
        let received = stats.received.load(Ordering::Relaxed);
        if received > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if received >= count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pipeline stalled at {received}/{count}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let streaming = first.unwrap().elapsed();
    stop.cancel();
    worker.join().unwrap().unwrap();
    let total = started.elapsed();
    let cpu = process::cpu_seconds() - cpu;
    responder.shutdown().unwrap();
    let totals = stats.snapshot();
    Run {
        events: totals.received,
        streaming,
        total,
        cpu,
        peak_rss: process::peak_rss_mib(),
        start_rss,
        lake_bytes: process::bytes_under(&root.join("events"), ".parquet"),
        alerts: totals.alerts,
    }
}

/// Phase 6: the pipeline reads the JSON-lines file.
pub fn from_file(path: &Path, root: &Path) -> Run {
    let lake = Lake::open(root, EncodeOptions::default()).unwrap();
    let stats = Arc::new(IngestStats::default());
    let detection = Detection::open(&lake, &DetectConfig::default(), stats.clone()).unwrap();
    process::reset_peak_rss();
    let start_rss = process::rss_mib();
    let cpu = process::cpu_seconds();
    let started = Instant::now();
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let config = PipelineConfig::default();
    let stop = CancellationToken::new();
    authtrail_ingest::ingest_lines(
        lake,
        &config,
        reader,
        "events.jsonl",
        "events.jsonl",
        0,
        authtrail_model::adapt::Format::contract(),
        Some(detection),
        stats.clone(),
        &stop,
    )
    .unwrap();
    let total = started.elapsed();
    let totals = stats.snapshot();
    Run {
        events: totals.received,
        streaming: total,
        total,
        cpu: process::cpu_seconds() - cpu,
        peak_rss: process::peak_rss_mib(),
        start_rss,
        lake_bytes: process::bytes_under(&root.join("events"), ".parquet"),
        alerts: totals.alerts,
    }
}
