//! `authtrail run`: ingest, store, detect, respond and the HTTP API, metrics and web UI in
//! one process, stopped cleanly by SIGINT/SIGTERM within `run.shutdown_timeout`.
//!
//! [`start`] is the in-process entry point (other commands, like a demo, call it with their
//! own configuration, runtime and cancellation token): [`Stages`] plus the HTTP server as
//! one of its services; the `run` command adds flags, signals and a summary around it.
//! Shutdown is the stages' one sequence: stop consuming, let the pipeline flush (lake
//! files, detector checkpoint, outbox sync) and commit the offsets, drain webhook
//! deliveries for `respond.drain_timeout`, and only then stop the HTTP server, so
//! `/metrics` and `/readyz` answer until the end.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use authtrail_ingest::kafka::TopicSource;
use authtrail_ingest::{BoxError, StatsSnapshot};
use authtrail_pipeline::Stages;
use authtrail_query::api::{serve_connections, AppState};
use authtrail_query::QueryEngine;
use authtrail_store::LakeLocation;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, RunArgs};
use crate::config::{lake_location, Config};
use crate::live::{LiveAlerts, LiveSink};
use crate::metrics::{HttpMetrics, Sources};

/// `/readyz` fails when the source has not polled for this long (a stuck consumer, or a
/// writer so slow that backpressure stopped the source).
const READY_SILENCE: Duration = Duration::from_secs(30);

/// A running authtrail, from [`start`].
pub struct Running {
    /// Where the HTTP API, `/metrics` and the web UI listen.
    pub address: SocketAddr,
    /// The Kafka bootstrap servers consumed: the embedded broker's when none is configured.
    pub brokers: String,
    /// The embedded broker's one-time notice (where it keeps data, its bound), if this
    /// process started one (then `brokers` is its address).
    pub embedded_notice: Option<String>,
    supervisor: JoinHandle<anyhow::Result<StatsSnapshot>>,
}

impl Running {
    /// Waits until everything stopped (after `shutdown` was cancelled, or a stage failed);
    /// returns the ingest totals.
    pub fn wait(self) -> anyhow::Result<StatsSnapshot> {
        self.supervisor
            .join()
            .map_err(|_| anyhow::anyhow!("the authtrail supervisor thread panicked"))?
    }
}

/// Opens every stage on the lake at `lake` on `runtime` (see
/// [`authtrail_pipeline::runtime`]) and returns once the HTTP server listens (`api.listen`;
/// port 0 picks a free one, see [`Running::address`]). Cancelling `shutdown` stops it
/// cleanly; [`Running::wait`] waits for that. With no `kafka.brokers`, an embedded broker
/// is started ([`Running::brokers`]).
pub fn start(
    config: Config,
    lake: &LakeLocation,
    runtime: Runtime,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let keys = config.api.load_keys()?;
    let mut config = config;
    let collect_keys = config.collect.load_keys()?;
    if !collect_keys.is_empty() {
        consume_collected_topics(&mut config);
    }
    let live = Arc::new(LiveAlerts::default());
    let mut stages = Stages::open(
        config.stages(lake, true),
        runtime,
        shutdown,
        vec![Box::new(LiveSink(live.clone()))],
    )?;
    let engine = QueryEngine::open_at(lake, config.query.clone())
        .with_context(|| format!("opening the lake at `{lake}` for queries"))?;
    let broker = stages.broker()?;
    let collector =
        crate::collect::for_run(&config, &collect_keys, &keys, broker.bootstrap_servers())?;

    let listener = std::net::TcpListener::bind(&config.api.listen)
        .with_context(|| format!("listening on `{}`", config.api.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let sources = Arc::new(Sources {
        ingest: stages.stats().clone(),
        responder: stages.responder().cloned(),
        collect: collector.clone(),
        http: HttpMetrics::default(),
        ready_silence_ms: READY_SILENCE.as_millis() as u64,
    });
    if let Some(reload) = stages.rules_reload() {
        crate::rules::reload::on_sighup(stages.handle(), reload)?;
    }
    let connection_limits = config.api.connection_limits(config.query.timeout);
    let app = crate::http::app(
        AppState::new(Arc::new(engine), keys).with_reports(config.reports()),
        sources,
        live,
        collector,
        stages.rules_reload(),
    );
    stages.serve("HTTP", move |stop| async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        serve_connections(listener, app, connection_limits, stop.cancelled_owned())
            .await
            .map_err(BoxError::from)
    });
    tracing::info!(%address, %lake, "serving the HTTP API, /metrics and the web UI");

    let brokers = broker.bootstrap_servers().to_owned();
    let embedded_notice = broker.notice();
    let supervisor = std::thread::Builder::new()
        .name("authtrail-run".into())
        .spawn(move || {
            let stopped = stages.consume_kafka(broker)?;
            Ok(stopped.totals)
        })
        .context("spawning the supervisor thread")?;
    Ok(Running {
        address,
        embedded_notice,
        brokers,
        supervisor,
    })
}

/// The `run` command: flags, [`start`], signals with the shutdown deadline, a summary.
pub fn command(cli: &Cli, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &args.listen {
        config.api.listen = listen.clone();
    }
    if let Some(brokers) = &args.brokers {
        config.kafka.brokers = Some(brokers.clone());
    }
    let lake = lake_location(cli, &config)?;
    let runtime = authtrail_pipeline::runtime().context("starting the async runtime")?;
    let shutdown = CancellationToken::new();
    crate::signals::install(
        runtime.handle(),
        shutdown.clone(),
        config.run.shutdown_timeout,
    )?;
    let running = start(config.clone(), &lake, runtime, shutdown)?;
    if let Some(notice) = &running.embedded_notice {
        tracing::warn!("{notice}");
        println!(
            "authtrail: embedded Kafka broker listening on {}; produce JSON events to topic(s) {}",
            running.brokers,
            config.kafka.topics.join(", ")
        );
    }
    println!(
        "authtrail: serving the API, /metrics and the web UI on http://{}/",
        running.address
    );
    let totals = running.wait()?;
    println!(
        "authtrail: stopped cleanly: {} received, {} events, {} rejects, {} alerts, {} files in {} flushes",
        totals.received, totals.accepted, totals.rejected, totals.alerts, totals.files, totals.flushes
    );
    Ok(ExitCode::SUCCESS)
}

/// With the collector on (it has keys), the topics it produces to are consumed here too,
/// each in its format, so what is posted to `/api/v1/collect/{format}` reaches the lake:
/// every topic the collector names that `kafka.topics` and `[[kafka.sources]]` do not.
fn consume_collected_topics(config: &mut Config) {
    for (topic, format) in config.collect.topics_by_format() {
        let listed = config.kafka.topics.contains(&topic)
            || config
                .kafka
                .sources
                .iter()
                .any(|source| source.topic == topic);
        if !listed {
            config.kafka.sources.push(TopicSource {
                topic,
                format,
                skip_unmapped: false,
            });
        }
    }
}
