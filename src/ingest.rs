//! `authtrail ingest`: flag handling around [`Stages`]: a source (Kafka, embedded or
//! configured, or JSON lines from a file or stdin) into the lake, stopped cleanly by
//! SIGINT/SIGTERM (flush, then commit) within `run.shutdown_timeout`.

use std::io::BufReader;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use authtrail_ingest::file::file_source_name;
use authtrail_ingest::{IngestStats, StatsSnapshot};
use authtrail_model::adapt::Format;
use authtrail_pipeline::Stages;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, IngestArgs};
use crate::config::{lake_location, Config};

pub fn run(cli: &Cli, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    apply_flags(&mut config, args);
    let lake = lake_location(cli, &config)?;
    let runtime = authtrail_pipeline::runtime().context("starting the async runtime")?;
    let shutdown = CancellationToken::new();
    // Detection is off with `--no-detect`; the responder still starts, so undelivered
    // alerts of earlier runs go out.
    let stages = Stages::open(
        config.stages(&lake, !args.no_detect),
        runtime,
        shutdown.clone(),
        Vec::new(),
    )?;
    crate::signals::install(stages.handle(), shutdown, config.run.shutdown_timeout)?;
    if let Some(reload) = stages.rules_reload() {
        crate::rules::reload::on_sighup(stages.handle(), reload)?;
    }
    match &args.from_file {
        Some(path) => {
            let format = Format::load(&args.format)?;
            ingest_file(stages, path, format)
        }
        None => ingest_kafka(stages, &config),
    }
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

fn ingest_file(stages: Stages, path: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let from_stdin = path == Path::new("-");
    let (source, partition) = if from_stdin {
        // stdin cannot be replayed: every run is a new stream.
        ("stdin".to_owned(), stages.lake().unused_partition("stdin")?)
    } else {
        (file_source_name(path), 0)
    };
    let label = path.display().to_string();
    tracing::info!(input = %label, source, partition, format = format.name(), lake = %stages.location(), "ingesting a file");
    let stopped = if from_stdin {
        let stdin = std::io::stdin().lock();
        stages.consume_lines(stdin, &label, &source, partition, format)
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("opening `{label}`"))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        stages.consume_lines(reader, &label, &source, partition, format)
    };
    let stopped = stopped.with_context(|| format!("ingesting `{label}`"))?;
    print_summary(&stopped.totals);
    if stopped.interrupted {
        eprintln!("authtrail: interrupted; everything read so far is in the lake");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn ingest_kafka(mut stages: Stages, config: &Config) -> anyhow::Result<ExitCode> {
    let broker = stages.broker()?;
    if let Some(notice) = broker.notice() {
        tracing::warn!("{notice}");
        println!(
            "authtrail: embedded Kafka broker listening on {}; produce JSON events to topic(s) {} ({} partitions each)",
            broker.bootstrap_servers(),
            config.kafka.topics.join(", "),
            config.kafka.embedded_partitions
        );
    }
    let stats: Arc<IngestStats> = stages.stats().clone();
    let stopped = stages.consume_kafka(broker);
    print_summary(&stats.snapshot());
    stopped?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(totals: &StatsSnapshot) {
    println!(
        "authtrail: {} received: {} events, {} rejects, {} already in the lake, {} redelivered, {} duplicate ids, {} not events, {} unmapped skipped, {} blank lines; {} alerts; {} files ({} bytes) in {} flushes",
        totals.received,
        totals.accepted,
        totals.rejected,
        totals.already_in_lake,
        totals.redelivered,
        totals.duplicate_ids,
        totals.not_events,
        totals.unmapped_skipped,
        totals.blank_lines,
        totals.alerts,
        totals.files,
        totals.bytes,
        totals.flushes
    );
}
