//! [`Stages`]: every stage opened once from the configuration, run, and stopped by one
//! shutdown sequence.

use std::future::Future;
use std::io::BufRead;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use authtrail_ingest::kafka::{EmbeddedKafka, KafkaConfig};
use authtrail_ingest::{
    AlertSink, BoxError, Detection, IngestStats, PipelineConfig, RulesReload, StatsSnapshot,
};
use authtrail_respond::Responder;
use authtrail_store::{Lake, LakeLocation, MaintenanceConfig};
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;

use crate::config::StagesConfig;
use crate::key::manifest_key;
use crate::maintenance::spawn_maintenance;
use crate::sinks::{ResponderSink, Sinks};
use crate::{Error, Result};

/// At shutdown, how long a service's requests still in flight (long polls) may take.
const SERVICE_DRAIN: Duration = Duration::from_secs(2);

/// The process's one tokio runtime: signals, the HTTP server and webhook deliveries run on
/// it. (The query engine keeps its own pool, so a hostile query cannot starve them.)
pub fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .thread_name("authtrail")
        .enable_all()
        .build()
}

/// The Kafka cluster the stages consume: the configured one, or the embedded broker
/// started beside the lake (it stops when this is dropped, after the last commit).
pub struct Broker {
    embedded: Option<EmbeddedKafka>,
    brokers: String,
    kafka: KafkaConfig,
}

impl Broker {
    /// The bootstrap servers consumed.
    pub fn bootstrap_servers(&self) -> &str {
        &self.brokers
    }

    /// The embedded broker's one-time notice (where it keeps data, its bound), if this
    /// process started one.
    pub fn notice(&self) -> Option<String> {
        self.embedded
            .as_ref()
            .map(|embedded| embedded.notice(&self.kafka.all_topics()))
    }

    /// The Kafka settings consumed with (the embedded broker's are authtrail's own).
    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }
}

/// How the stages stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The ingest totals.
    pub totals: StatsSnapshot,
    /// Whether the cancellation token stopped them (rather than the input ending).
    pub interrupted: bool,
}

/// A service on the runtime (the HTTP server), stopped last.
struct Service {
    name: &'static str,
    task: tokio::task::JoinHandle<Result<(), BoxError>>,
}

/// Every stage, opened once from the configuration. Fields drop in order: the stages
/// before the runtime they run on.
pub struct Stages {
    location: LakeLocation,
    lake: Lake,
    ingest: PipelineConfig,
    kafka: KafkaConfig,
    maintenance: MaintenanceConfig,
    stats: Arc<IngestStats>,
    detection: Option<Detection>,
    /// Reloads the detection stage's Sigma rules while it runs (none without rules).
    rules_reload: Option<Arc<RulesReload>>,
    responder: Option<Arc<Responder>>,
    services: Vec<Service>,
    services_stop: CancellationToken,
    shutdown: CancellationToken,
    runtime: Runtime,
}

impl Stages {
    /// Opens the manifest key, the lake, the responder (started even without detection, so
    /// undelivered alerts of earlier runs go out; its deliveries run on `runtime`) and the
    /// detectors, which feed the responder and then each of `sinks`. Cancelling `shutdown`
    /// stops the stages cleanly (see [`Stages::consume_kafka`]).
    pub fn open(
        config: StagesConfig,
        runtime: Runtime,
        shutdown: CancellationToken,
        sinks: Vec<Box<dyn AlertSink>>,
    ) -> Result<Stages> {
        let location = config.lake_location;
        let key = manifest_key(config.lake.signing_key_file.as_deref())?;
        if let Some(key) = &key {
            tracing::info!(public_key = %key.public().to_hex(), "signing manifest records");
        }
        let lake = Lake::open_at(location.clone(), config.store)
            .map_err(|source| Error::Lake {
                lake: location.to_string(),
                source,
            })?
            .with_manifest_key(key);
        let stats = Arc::new(IngestStats::default());
        let responder = if config.respond.enabled() {
            // The outbox is a directory of the lake: a lake on object storage has none yet.
            let root = location.local_root().ok_or(Error::OutboxNeedsLocalLake)?;
            let responder = Responder::start(root, &config.respond, runtime.handle().clone())
                .map_err(Error::Responder)?;
            Some(Arc::new(responder))
        } else {
            None
        };
        let detection = match &config.detect {
            None => None,
            Some(detect) => {
                let detection =
                    Detection::open(&lake, detect, stats.clone()).map_err(Error::Detection)?;
                let mut all: Vec<Box<dyn AlertSink>> = Vec::with_capacity(sinks.len() + 1);
                if let Some(responder) = &responder {
                    all.push(Box::new(ResponderSink(responder.clone())));
                }
                all.extend(sinks);
                Some(detection.with_sink(Box::new(Sinks(all))))
            }
        };
        let rules_reload = detection.as_ref().and_then(Detection::rules_reload);
        Ok(Stages {
            location,
            lake,
            rules_reload,
            ingest: config.ingest,
            kafka: config.kafka,
            maintenance: config.lake.maintenance,
            stats,
            detection,
            responder,
            services: Vec::new(),
            services_stop: CancellationToken::new(),
            shutdown,
            runtime,
        })
    }

    /// The handle that reloads the Sigma rules of `[detect] rules` while consuming runs;
    /// `None` without rules (or without detection).
    pub fn rules_reload(&self) -> Option<Arc<RulesReload>> {
        self.rules_reload.clone()
    }

    /// The runtime every stage's async work runs on.
    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    /// Where the lake lives.
    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The ingest counters (for `/metrics` and the summary).
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// The webhook responder, when `respond` has a sink.
    pub fn responder(&self) -> Option<&Arc<Responder>> {
        self.responder.as_ref()
    }

    /// The configured Kafka cluster (`kafka.brokers`), or, when none is, the embedded
    /// broker started beside the lake. Fails now, not while consuming, when the consumer
    /// settings are wrong.
    pub fn broker(&mut self) -> Result<Broker> {
        let mut kafka = self.kafka.clone();
        let (embedded, brokers) = match &kafka.brokers {
            Some(brokers) => (None, brokers.clone()),
            None => {
                let embedded =
                    EmbeddedKafka::start(&kafka, &mut self.lake).map_err(Error::Broker)?;
                let brokers = embedded.bootstrap_servers();
                (Some(embedded), brokers)
            }
        };
        if embedded.is_some() && !(kafka.settings.is_empty() && kafka.settings_from_env.is_empty())
        {
            tracing::warn!("ignoring `kafka.settings` for the embedded broker");
            kafka.settings.clear();
            kafka.settings_from_env.clear();
        }
        kafka.client_config(&brokers).map_err(Error::Kafka)?;
        Ok(Broker {
            embedded,
            brokers,
            kafka,
        })
    }

    /// Runs a service (the HTTP server) on the runtime. It gets a token that is cancelled
    /// at the end of the shutdown sequence, after the webhooks drained (so `/metrics`
    /// answers until then), and then up to two seconds to finish.
    pub fn serve<F>(&mut self, name: &'static str, make: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let task = self.runtime.spawn(make(self.services_stop.clone()));
        self.services.push(Service { name, task });
    }

    /// Consumes `kafka.topics` from `broker` into the lake until the cancellation token is
    /// cancelled (or a stage fails), then stops (see [`Stages::stop`]).
    pub fn consume_kafka(mut self, broker: Broker) -> Result<Stopped> {
        let (stop, maintenance) = self.start_stopping();
        tracing::info!(brokers = broker.brokers, topics = ?broker.kafka.all_topics(), group_id = broker.kafka.group_id, lake = %self.location, "ingesting from Kafka");
        let result = authtrail_ingest::ingest_kafka(
            self.take_lake(),
            &self.ingest,
            &broker.kafka,
            &broker.brokers,
            self.detection.take(),
            self.stats.clone(),
            &stop,
        );
        let interrupted = self.shutdown.is_cancelled();
        // The embedded broker stops only after the last commit.
        drop(broker);
        self.stop(stop, maintenance, result, interrupted)
    }

    /// Reads records of `format` (contract JSON lines, or a native format's records) from
    /// `reader` into the lake as `source` / `partition` until the input ends or the
    /// cancellation token is cancelled, then stops (see [`Stages::stop`]).
    pub fn consume_lines(
        mut self,
        reader: impl BufRead,
        label: &str,
        source: &str,
        partition: i32,
        format: authtrail_model::adapt::Format,
    ) -> Result<Stopped> {
        let (stop, maintenance) = self.start_stopping();
        let result = authtrail_ingest::ingest_lines(
            self.take_lake(),
            &self.ingest,
            reader,
            label,
            source,
            partition,
            format,
            self.detection.take(),
            self.stats.clone(),
            &stop,
        );
        let interrupted = self.shutdown.is_cancelled();
        self.stop(stop, maintenance, result, interrupted)
    }

    /// The lake itself, for the pipeline (a handle stays behind).
    fn take_lake(&mut self) -> Lake {
        let handle = self.lake.handle();
        std::mem::replace(&mut self.lake, handle)
    }

    /// The token the ingest loops and maintenance check (cancelled with `shutdown`, and
    /// when consuming ends by itself), and the maintenance thread.
    fn start_stopping(&self) -> (CancellationToken, Option<JoinHandle<()>>) {
        let stop = self.shutdown.child_token();
        let shutdown = self.shutdown.clone();
        let done = stop.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    tracing::info!("stopping: flushing, checkpointing and committing");
                }
                _ = done.cancelled() => {}
            }
        });
        let maintenance = spawn_maintenance(self.lake.handle(), &self.maintenance, stop.clone());
        (stop, maintenance)
    }

    /// The one shutdown sequence, once consuming stopped (and so flushed, checkpointed and
    /// committed): stop maintenance, drain webhook deliveries for `respond.drain_timeout`
    /// (the rest wait in the outbox), stop the services, stop the runtime. The first error
    /// is returned: consuming's, then the responder's, then a service's.
    fn stop(
        self,
        stop: CancellationToken,
        maintenance: Option<JoinHandle<()>>,
        consumed: authtrail_ingest::Result<()>,
        interrupted: bool,
    ) -> Result<Stopped> {
        stop.cancel();
        if let Some(maintenance) = maintenance {
            let _ = maintenance.join();
        }
        let Stages {
            stats,
            detection,
            responder,
            services,
            services_stop,
            runtime,
            ..
        } = self;
        drop(detection);
        let stopped = match &responder {
            Some(responder) => {
                let stopped = responder.shutdown();
                let counts: Vec<String> = responder
                    .counts()
                    .iter()
                    .map(|(state, n)| format!("{n} {}", state.as_str()))
                    .collect();
                tracing::info!(outbox = counts.join(", "), "webhook responder stopped");
                stopped
            }
            None => Ok(()),
        };
        services_stop.cancel();
        let mut served = Ok(());
        for Service { name, task } in services {
            let outcome =
                runtime.block_on(async { tokio::time::timeout(SERVICE_DRAIN, task).await });
            match outcome {
                Ok(Ok(Err(source))) if served.is_ok() => {
                    served = Err(Error::Service { name, source });
                }
                Ok(Err(join)) if join.is_panic() && served.is_ok() => {
                    served = Err(Error::Panicked(name));
                }
                Err(_) => tracing::warn!(service = name, "still serving at shutdown; stopped"),
                _ => {}
            }
        }
        drop(responder);
        runtime.shutdown_timeout(Duration::from_millis(100));
        consumed.map_err(Error::Ingest)?;
        stopped.map_err(Error::StopResponder)?;
        served?;
        Ok(Stopped {
            totals: stats.snapshot(),
            interrupted,
        })
    }
}
