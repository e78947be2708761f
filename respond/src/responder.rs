//! The [`Responder`]: records alerts in the outbox on the caller's thread and delivers them
//! as tasks on the runtime it is given (the process's one runtime), so the pipeline never
//! waits on HTTP.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use authtrail_metrics::Exposition;
use authtrail_model::Alert;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RespondConfig;
use crate::deliver::deliver;
use crate::error::Error;
use crate::outbox::{self, requests, Key, Outbox, State};
use crate::webhook::{redacted_url, Sink, Target};
use crate::Result;

/// How often the running process looks for operator requests and syncs delivery state.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

pub(crate) struct Shared {
    pub outbox: Mutex<Outbox>,
    pub sinks: Vec<Arc<Sink>>,
    pub client: reqwest::Client,
    pub cancel: CancellationToken,
    /// Cancelled when the drain deadline passes: deliveries still in flight are dropped
    /// (they stay in the outbox for the next start).
    pub abort: CancellationToken,
    pub tasks: TaskTracker,
    pub config: RespondConfig,
}

impl Shared {
    pub fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock cannot leave the log half-written (appends are
        // single writes), so the state is still usable.
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a delivery task for `key`.
    pub fn spawn(self: &Arc<Self>, runtime: &tokio::runtime::Handle, key: Key) {
        let Some(sink) = self.sinks.iter().find(|s| s.config.name == key.1).cloned() else {
            tracing::warn!(
                alert_id = key.0,
                webhook = key.1,
                "outbox entry for a webhook no longer configured; left as it is"
            );
            return;
        };
        let abort = self.abort.clone();
        let delivery = deliver(self.clone(), sink, key);
        self.tasks.spawn_on(
            async move {
                tokio::select! {
                    _ = delivery => {}
                    _ = abort.cancelled() => {}
                }
            },
            runtime,
        );
    }
}

/// Alerts to webhooks: durable outbox, delivery tasks, operator requests.
pub struct Responder {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    stopped: AtomicBool,
}

impl Responder {
    /// Loads the sinks' secrets, opens the outbox under `lake_root`, and resumes every
    /// undelivered entry; deliveries run as tasks on `runtime` (a multi-threaded one).
    /// Fails if another process holds the outbox.
    pub fn start(
        lake_root: &Path,
        config: &RespondConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Responder> {
        let mut sinks = Vec::with_capacity(config.webhooks.len());
        for webhook in &config.webhooks {
            if sinks
                .iter()
                .any(|s: &Arc<Sink>| s.config.name == webhook.name)
            {
                return Err(Error::config(&webhook.name, "two webhooks have this name"));
            }
            sinks.push(Arc::new(Sink::new(webhook, config.max_in_flight)?));
        }
        if let Some(kafka) = &config.kafka {
            if sinks.iter().any(|s| s.config.name == kafka.name) {
                return Err(Error::config(
                    &kafka.name,
                    "a webhook has the Kafka sink's name",
                ));
            }
            sinks.push(Arc::new(Sink::kafka(kafka, config.max_in_flight)?));
        }
        let dir = outbox::outbox_dir(lake_root);
        let mut outbox = Outbox::open(&dir)?.ok_or_else(|| Error::Io {
            path: dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another authtrail process holds the outbox",
            ),
        })?;
        requests::apply_waiting(&mut outbox)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .user_agent(concat!("authtrail/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let resume: Vec<Key> = outbox
            .entries()
            .filter(|e| e.state.is_active())
            .map(|e| (e.alert_id.clone(), e.webhook.clone()))
            .collect();
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            sinks,
            client,
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config: config.clone(),
        });
        for sink in &shared.sinks {
            if let Target::Kafka { topic, .. } = &sink.target {
                tracing::info!(sink = sink.config.name, topic, "kafka alert sink ready");
                continue;
            }
            tracing::info!(
                webhook = sink.config.name,
                url = redacted_url(&sink.config.url),
                action = sink.config.action.as_str(),
                dry_run = sink.config.dry_run,
                "webhook sink ready"
            );
        }
        if !resume.is_empty() {
            tracing::info!(
                entries = resume.len(),
                "resuming undelivered outbox entries"
            );
        }
        for key in resume {
            shared.spawn(&runtime, key);
        }
        // Tracked with the deliveries, so that shutdown waits for it to let go of the outbox.
        shared
            .tasks
            .spawn_on(housekeeping(shared.clone(), runtime.clone()), &runtime);
        Ok(Responder {
            shared,
            handle: runtime,
            stopped: AtomicBool::new(false),
        })
    }

    /// Records `alert` for every sink that takes it (a `write` to the outbox log, so it
    /// survives this process being killed) and starts its delivery at once. An alert
    /// already recorded (raised again by a replay) is not sent again.
    pub fn record(&self, alert: &Alert) -> Result<()> {
        let runtime = &self.handle;
        for sink in &self.shared.sinks {
            if !sink.config.accepts(alert) {
                continue;
            }
            let new = self.shared.outbox().insert(&sink.config.name, alert)?;
            if new {
                self.shared
                    .spawn(runtime, (alert.id.clone(), sink.config.name.clone()));
            } else {
                tracing::debug!(alert_id = %alert.id, webhook = sink.config.name, "alert already in the outbox");
            }
        }
        Ok(())
    }

    /// Makes every recorded alert durable (fsync); called before offsets are committed.
    pub fn sync(&self) -> Result<()> {
        let handle = self.shared.outbox().sync_handle()?;
        handle.sync()
    }

    /// Counts of entries per state (for tests and the summary line).
    pub fn counts(&self) -> Vec<(State, usize)> {
        let outbox = self.shared.outbox();
        let mut counts: Vec<(State, usize)> = Vec::new();
        for entry in outbox.entries() {
            match counts.iter_mut().find(|(state, _)| *state == entry.state) {
                Some((_, n)) => *n += 1,
                None => counts.push((entry.state, 1)),
            }
        }
        counts
    }

    /// Writes the delivery and outbox families into a `/metrics` scrape.
    pub fn expose(&self, out: &mut Exposition) {
        crate::metrics::expose(&self.shared.sinks, &self.counts(), out);
    }

    /// Stops: deliveries waiting to retry stop at once; requests in flight get up to
    /// `drain_timeout`; everything not delivered stays in the outbox for the next start.
    /// Alerts recorded afterwards stay pending in the outbox, which stays locked until the
    /// responder is dropped. It may be called on a runtime worker or off the runtime (the
    /// wait runs on a thread of its own); only the first call waits.
    pub fn shutdown(&self) -> Result<()> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        let drain = self.shared.config.drain_timeout;
        if !self.wait_for_tasks(drain) {
            tracing::warn!(timeout = ?drain, "deliveries still in flight at shutdown; they resume at the next start");
        }
        // The rest are dropped, and with them their hold on the outbox.
        self.shared.abort.cancel();
        self.wait_for_tasks(Duration::from_millis(100));
        self.sync()
    }

    /// Waits up to `timeout` for every task to end; false if some still run.
    fn wait_for_tasks(&self, timeout: Duration) -> bool {
        let tasks = &self.shared.tasks;
        let handle = &self.handle;
        // `Handle::block_on` may not run on a runtime thread (the last `Arc` of a responder
        // can be dropped on one), so the wait has a thread of its own.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    handle
                        .block_on(async { tokio::time::timeout(timeout, tasks.wait()).await })
                        .is_ok()
                })
                .join()
                .unwrap_or(false)
        })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "stopping the responder");
        }
    }
}

/// Picks up operator requests, syncs delivery state, compacts the log.
async fn housekeeping(shared: Arc<Shared>, runtime: tokio::runtime::Handle) {
    let keep = i64::try_from(shared.config.keep_delivered.as_micros()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    let mut synced_at = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.cancel.cancelled() => return,
        }
        let (moved, handle) = {
            let mut outbox = shared.outbox();
            let moved = requests::apply_waiting(&mut outbox);
            if let Err(error) = outbox.maybe_compact(shared.config.compact_bytes, keep) {
                tracing::error!(%error, "compacting the outbox failed");
            }
            let appended = outbox.appended();
            let handle = (appended != synced_at).then(|| outbox.sync_handle());
            synced_at = appended;
            (moved, handle)
        };
        // Delivery state is synced here, off the lock: losing the last transitions to a
        // power cut only means an alert is sent again with the same id. The fsync runs on a
        // blocking thread: behind a lake flush's fsyncs it can take a second, and on the
        // runtime's one worker it would hold every delivery that long.
        let synced = match handle {
            Some(Ok(handle)) => tokio::task::spawn_blocking(move || handle.sync())
                .await
                .unwrap_or_else(|_| {
                    tracing::error!("the outbox sync task panicked");
                    Ok(())
                }),
            Some(Err(error)) => Err(error),
            None => Ok(()),
        };
        if let Err(error) = synced {
            tracing::error!(%error, "syncing the outbox failed");
        }
        match moved {
            Ok(keys) => keys.into_iter().for_each(|key| shared.spawn(&runtime, key)),
            Err(error) => tracing::error!(%error, "applying operator requests failed"),
        }
    }
}
