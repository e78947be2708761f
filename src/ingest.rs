//! `authtrail ingest`: wires a source, the pipeline and the lake, and stops cleanly on
//! SIGINT/SIGTERM (flush, then commit).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use authtrail_ingest::file::file_source_name;
use authtrail_ingest::{Detection, IngestStats, StatsSnapshot};
use authtrail_respond::Responder;
use authtrail_store::Lake;

use crate::cli::{Cli, IngestArgs};
use crate::config::Config;
use crate::respond::ResponderSink;

const DEFAULT_LAKE: &str = "./authtrail-data";

pub fn run(cli: &Cli, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    apply_flags(&mut config, args);
    let lake_root = lake_root(cli, &config);
    let key = crate::lake::manifest_key(&config)?;
    if let Some(key) = &key {
        tracing::info!(public_key = %key.public().to_hex(), "signing manifest records");
    }
    let lake = Lake::open(&lake_root, config.store)
        .with_context(|| format!("opening the lake at `{}`", lake_root.display()))?
        .with_manifest_key(key);
    let stats = Arc::new(IngestStats::default());
    // Started even with `--no-detect`, so undelivered alerts of earlier runs go out.
    let responder = if config.respond.enabled() {
        let responder = Responder::start(&lake_root, &config.respond)
            .context("starting the webhook responder")?;
        Some(Arc::new(responder))
    } else {
        None
    };
    let detection = if args.no_detect {
        None
    } else {
        let detection = Detection::open(&lake, &config.detect, stats.clone())
            .context("starting the detectors")?;
        Some(match &responder {
            Some(responder) => detection.with_sink(Box::new(ResponderSink(responder.clone()))),
            None => detection,
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    install_signal_handlers(stop.clone())?;

    let maintenance = crate::lake::spawn_maintenance(lake.handle(), &config, stop.clone());
    let result = match &args.from_file {
        Some(path) => ingest_file(lake, &config, path, detection, stats, &stop),
        None => ingest_kafka(lake, &config, detection, stats, &stop),
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(maintenance) = maintenance {
        let _ = maintenance.join();
    }
    if let Some(responder) = responder {
        // Deliveries in flight get `respond.drain_timeout`; the rest wait in the outbox.
        responder
            .shutdown()
            .context("stopping the webhook responder")?;
        let counts = responder.counts();
        let counts: Vec<String> = counts
            .iter()
            .map(|(state, n)| format!("{n} {}", state.as_str()))
            .collect();
        tracing::info!(outbox = counts.join(", "), "webhook responder stopped");
    }
    result
}

fn apply_flags(config: &mut Config, args: &IngestArgs) {
    if let Some(brokers) = &args.brokers {
        config.kafka.brokers = Some(brokers.clone());
    }
    if !args.topics.is_empty() {
        config.kafka.topics = args.topics.clone();
    }
    if let Some(group_id) = &args.group_id {
        config.kafka.group_id = group_id.clone();
    }
    if let Some(rows) = args.flush_rows {
        config.ingest.flush_rows = rows;
    }
    if let Some(age) = args.flush_age {
        config.ingest.flush_age = age;
    }
}

/// `--lake`, else `lake.path` from the config, else `./authtrail-data`.
pub fn lake_root(cli: &Cli, config: &Config) -> PathBuf {
    cli.lake
        .clone()
        .or_else(|| config.lake.path.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LAKE))
}

fn ingest_file(
    lake: Lake,
    config: &Config,
    path: &Path,
    detection: Option<Detection>,
    stats: Arc<IngestStats>,
    stop: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let from_stdin = path == Path::new("-");
    let (source, partition) = if from_stdin {
        // stdin cannot be replayed: every run is a new stream.
        ("stdin".to_owned(), lake.unused_partition("stdin"))
    } else {
        (file_source_name(path), 0)
    };
    let label = path.display().to_string();
    tracing::info!(input = %label, source, partition, lake = %lake.root().display(), "ingesting JSON lines");
    let result = if from_stdin {
        let stdin = std::io::stdin().lock();
        authtrail_ingest::ingest_lines(
            lake,
            &config.ingest,
            stdin,
            &label,
            &source,
            partition,
            detection,
            stats.clone(),
            stop,
        )
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("opening `{label}`"))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        authtrail_ingest::ingest_lines(
            lake,
            &config.ingest,
            reader,
            &label,
            &source,
            partition,
            detection,
            stats.clone(),
            stop,
        )
    };
    let totals = stats.snapshot();
    result.with_context(|| format!("ingesting `{label}`"))?;
    print_summary(&totals);
    if stop.load(Ordering::Relaxed) {
        eprintln!("authtrail: interrupted; everything read so far is in the lake");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest_kafka(
    mut lake: Lake,
    config: &Config,
    detection: Option<Detection>,
    stats: Arc<IngestStats>,
    stop: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    let kafka = &config.kafka;
    let (embedded, brokers) = crate::run::embedded_broker(&mut lake, kafka)?;
    if let Some(embedded) = &embedded {
        tracing::warn!("{}", embedded.notice(&kafka.topics));
        println!(
            "authtrail: embedded Kafka broker listening on {brokers}; produce JSON events to topic(s) {} ({} partitions each)",
            kafka.topics.join(", "),
            kafka.embedded_partitions
        );
    }
    let mut kafka = kafka.clone();
    if embedded.is_some() && !(kafka.settings.is_empty() && kafka.settings_from_env.is_empty()) {
        tracing::warn!("ignoring `kafka.settings` for the embedded broker");
        kafka.settings.clear();
        kafka.settings_from_env.clear();
    }
    tracing::info!(brokers, topics = ?kafka.topics, group_id = kafka.group_id, lake = %lake.root().display(), "ingesting from Kafka");
    let result = authtrail_ingest::ingest_kafka(
        lake,
        &config.ingest,
        &kafka,
        &brokers,
        detection,
        stats.clone(),
        stop,
    );
    print_summary(&stats.snapshot());
    drop(embedded);
    result?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(totals: &StatsSnapshot) {
    println!(
        "authtrail: {} received: {} events, {} rejects, {} already in the lake, {} redelivered, {} blank lines; {} alerts; {} files ({} bytes) in {} flushes",
        totals.received,
        totals.accepted,
        totals.rejected,
        totals.already_in_lake,
        totals.redelivered,
        totals.blank_lines,
        totals.alerts,
        totals.files,
        totals.bytes,
        totals.flushes
    );
}

/// SIGINT or SIGTERM asks for a clean stop (flush, commit); a second one exits at once.
fn install_signal_handlers(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    crate::signals::install(move || {
        tracing::info!("stopping: flushing and committing (signal again to exit at once)");
        stop.store(true, Ordering::Relaxed);
    })
}
