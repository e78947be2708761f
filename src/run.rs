//! `authtrail run`: ingest, store, detect, respond and the HTTP API, metrics and web UI in
//! one process, stopped cleanly by SIGINT/SIGTERM within `run.shutdown_timeout`.
//!
//! [`start`] is the in-process entry point (other commands, like a demo, call it with their
//! own configuration and cancellation token); the `run` command adds signals and the
//! shutdown deadline around it. Shutdown order: stop consuming, let the pipeline flush
//! (lake files, detector checkpoint, outbox sync) and commit the offsets, drain webhook
//! deliveries for `respond.drain_timeout`, and only then stop the HTTP server, so
//! `/metrics` and `/readyz` answer until the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use authtrail_ingest::kafka::{EmbeddedKafka, KafkaConfig};
use authtrail_ingest::{Detection, IngestStats, StatsSnapshot};
use authtrail_query::api::{serve_connections, AppState};
use authtrail_query::QueryEngine;
use authtrail_respond::Responder;
use authtrail_store::Lake;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, RunArgs};
use crate::config::Config;
use crate::live::{LiveAlerts, RunSink};
use crate::metrics::{HttpMetrics, Sources};

/// `/readyz` fails when the source has not polled for this long (a stuck consumer, or a
/// writer so slow that backpressure stopped the source).
const READY_SILENCE: Duration = Duration::from_secs(30);
/// At shutdown, how long requests still in flight (long polls) may take.
const HTTP_DRAIN: Duration = Duration::from_secs(2);

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

/// Starts every stage on the lake at `lake_root` and returns once the HTTP server listens
/// (`api.listen`; port 0 picks a free one, see [`Running::address`]). Cancelling `shutdown`
/// stops it cleanly; [`Running::wait`] waits for that. With no `kafka.brokers`, an embedded
/// broker is started ([`Running::brokers`]).
pub fn start(
    config: Config,
    lake_root: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let keys = config.api.load_keys()?;
    let key = crate::lake::manifest_key(&config)?;
    if let Some(key) = &key {
        tracing::info!(public_key = %key.public().to_hex(), "signing manifest records");
    }
    let mut lake = Lake::open(lake_root, config.store)
        .with_context(|| format!("opening the lake at `{}`", lake_root.display()))?
        .with_manifest_key(key);
    let engine = QueryEngine::open(lake_root, config.query.clone())
        .with_context(|| format!("opening the lake at `{}` for queries", lake_root.display()))?;
    let stats = Arc::new(IngestStats::default());
    let responder = if config.respond.enabled() {
        let responder = Responder::start(lake_root, &config.respond)
            .context("starting the webhook responder")?;
        Some(Arc::new(responder))
    } else {
        None
    };
    let live = Arc::new(LiveAlerts::default());
    let detection = Detection::open(&lake, &config.detect, stats.clone())
        .context("starting the detectors")?
        .with_sink(Box::new(RunSink {
            responder: responder.clone(),
            live: live.clone(),
        }));

    let mut kafka = config.kafka.clone();
    if kafka.brokers.is_none() {
        // The embedded broker's settings are authtrail's own.
        kafka.settings.clear();
        kafka.settings_from_env.clear();
    }
    // Fail now, not on the supervisor thread, when the consumer settings are wrong.
    kafka.client_config(kafka.brokers.as_deref().unwrap_or("localhost:9092"))?;

    let listener = std::net::TcpListener::bind(&config.api.listen)
        .with_context(|| format!("listening on `{}`", config.api.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("authtrail-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let sources = Arc::new(Sources {
        ingest: stats.clone(),
        responder: responder.clone(),
        http: HttpMetrics::default(),
        ready_silence_ms: READY_SILENCE.as_millis() as u64,
    });
    let connection_limits = config.api.connection_limits(config.query.timeout);
    let app = crate::http::app(AppState::new(Arc::new(engine), keys), sources, live);
    let http_stop = CancellationToken::new();
    let server = {
        let http_stop = http_stop.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            serve_connections(
                listener,
                app,
                connection_limits,
                http_stop.cancelled_owned(),
            )
            .await
        })
    };
    tracing::info!(%address, lake = %lake_root.display(), "serving the HTTP API, /metrics and the web UI");

    let stop = Arc::new(AtomicBool::new(false));
    runtime.spawn({
        let stop = stop.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!("stopping: flushing, checkpointing and committing");
            stop.store(true, Ordering::Relaxed);
        }
    });
    let maintenance = crate::lake::spawn_maintenance(lake.handle(), &config, stop.clone());
    let ingest = config.ingest.clone();
    // The embedded broker lives on the supervisor's thread, which reports its address (or
    // why it did not start) before consuming, and stops it only after the last commit.
    let (started, address_of) = std::sync::mpsc::sync_channel(1);
    let supervisor = std::thread::Builder::new()
        .name("authtrail-run".into())
        .spawn(move || {
            let (embedded, brokers) = match embedded_broker(&mut lake, &kafka) {
                Ok(found) => found,
                Err(error) => {
                    let _ = started.send(Err(error));
                    stop.store(true, Ordering::Relaxed);
                    http_stop.cancel();
                    return Err(anyhow::anyhow!("the embedded broker did not start"));
                }
            };
            let notice = embedded
                .as_ref()
                .map(|embedded| embedded.notice(&kafka.topics));
            let _ = started.send(Ok((brokers.clone(), notice)));
            tracing::info!(brokers, topics = ?kafka.topics, group_id = kafka.group_id, "ingesting from Kafka");
            let result = authtrail_ingest::ingest_kafka(
                lake,
                &ingest,
                &kafka,
                &brokers,
                Some(detection),
                stats.clone(),
                &stop,
            );
            drop(embedded);
            stop.store(true, Ordering::Relaxed);
            if let Some(maintenance) = maintenance {
                let _ = maintenance.join();
            }
            let stopped = responder.map_or(Ok(()), |responder| responder.shutdown());
            http_stop.cancel();
            let served = runtime.block_on(async { tokio::time::timeout(HTTP_DRAIN, server).await });
            runtime.shutdown_timeout(Duration::from_millis(100));
            result.context("ingesting")?;
            stopped.context("stopping the webhook responder")?;
            if let Ok(Ok(Err(error))) = served {
                return Err(anyhow::Error::from(error).context("serving HTTP"));
            }
            Ok(stats.snapshot())
        })
        .context("spawning the supervisor thread")?;
    let (brokers, embedded_notice) = match address_of.recv() {
        Ok(brokers) => brokers?,
        Err(_) => return Err(supervisor_failed(supervisor)),
    };
    Ok(Running {
        address,
        embedded_notice,
        brokers,
        supervisor,
    })
}

/// The configured brokers, or an embedded one beside the lake.
pub(crate) fn embedded_broker(
    lake: &mut Lake,
    kafka: &KafkaConfig,
) -> anyhow::Result<(Option<EmbeddedKafka>, String)> {
    if let Some(brokers) = &kafka.brokers {
        return Ok((None, brokers.clone()));
    }
    let embedded =
        EmbeddedKafka::start(kafka, lake).context("starting the embedded Kafka broker")?;
    let brokers = embedded.bootstrap_servers();
    Ok((Some(embedded), brokers))
}

fn supervisor_failed(supervisor: JoinHandle<anyhow::Result<StatsSnapshot>>) -> anyhow::Error {
    match supervisor.join() {
        Ok(Err(error)) => error,
        _ => anyhow::anyhow!("the authtrail supervisor thread stopped before starting"),
    }
}

/// The `run` command: [`start`], signals, the shutdown deadline, a summary.
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
    let lake_root: PathBuf = crate::ingest::lake_root(cli, &config);
    let shutdown = CancellationToken::new();
    install_signal_handlers(shutdown.clone(), config.run.shutdown_timeout)?;
    let running = start(config.clone(), &lake_root, shutdown)?;
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

/// First SIGINT/SIGTERM: cancel `shutdown` and arm the deadline (past it, exit 1 with
/// whatever is committed); a second one exits at once.
pub fn install_signal_handlers(
    shutdown: CancellationToken,
    deadline: Duration,
) -> anyhow::Result<()> {
    crate::signals::install(move || {
        shutdown.cancel();
        let started = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(deadline = ?deadline, elapsed = ?started.elapsed(), "clean shutdown did not finish within `run.shutdown_timeout`; exiting; uncommitted input is read again at the next start");
            std::process::exit(1);
        });
    })
}
