//! The consumer loop and its rebalance handling.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use authtrail_model::time::now_micros;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::PipelineConfig;
use crate::message::{Durable, Input, RawMessage, SOURCE_BATCH};
use crate::partition::SourceLog;
use crate::pipeline::OnDurable;
use crate::stats::IngestStats;
use crate::{Error, Result};

/// A Kafka consumer group member feeding the pipeline.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<IngestContext>>,
    topics: Vec<String>,
    keep: PayloadLimits,
    /// Whether a partition without a committed offset is read from its beginning
    /// (`auto.offset.reset` earliest, authtrail's default).
    from_earliest: bool,
}

#[derive(Clone, Copy)]
struct PayloadLimits {
    max_message_bytes: usize,
    max_reject_raw_bytes: usize,
}

/// Receives librdkafka's rebalance callbacks on the polling thread.
struct IngestContext {
    /// Taken (set to `None`) at shutdown so the pipeline sees its input end.
    pipeline: Mutex<Option<SyncSender<Input>>>,
    stats: Arc<IngestStats>,
}

impl ClientContext for IngestContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): keeps each assigned
    /// partition's lag behind the log end, for the metrics endpoint.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = crate::stats::lock(&self.stats.consumer_lag);
        lag.clear();
        for (topic, stats) in statistics.topics {
            for (partition, stats) in stats.partitions {
                // -1: the internal unassigned partition; negative lag: not known yet.
                if partition >= 0 && stats.consumer_lag >= 0 {
                    lag.insert((topic.clone(), partition), stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => self.flush_revoked(consumer, partitions),
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions assigned");
                self.stats
                    .assigned_partitions
                    .fetch_add(partitions.count() as u64, Ordering::Relaxed);
                let pipeline = self.pipeline.lock().expect("not poisoned").clone();
                if let Some(pipeline) = pipeline {
                    // Gone: shutting down, nothing to hold back.
                    let _ = pipeline.send(Input::Assign(elements(partitions)));
                }
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }
}

impl IngestContext {
    /// Makes the revoked partitions' buffered rows durable and commits their offsets
    /// before librdkafka hands them to another member, so nobody re-reads them and
    /// nothing uncommitted is lost.
    fn flush_revoked(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        tracing::info!(partitions = %describe(partitions), "partitions revoked");
        let revoked = partitions.count() as u64;
        let _ = self.stats.assigned_partitions.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |assigned| Some(assigned.saturating_sub(revoked)),
        );
        let Some(pipeline) = self.pipeline.lock().expect("not poisoned").clone() else {
            return; // Shutting down: the pipeline already flushed everything.
        };
        let (reply, durable) = sync_channel(1);
        if pipeline
            .send(Input::Revoke {
                partitions: elements(partitions),
                reply,
            })
            .is_err()
        {
            return;
        }
        if let Ok(durable) = durable.recv() {
            commit(consumer, &durable, CommitMode::Sync);
        }
    }
}

impl KafkaSource {
    /// A consumer for `topics` that will send what it reads to `pipeline`.
    pub fn new(
        client: rdkafka::ClientConfig,
        topics: Vec<String>,
        pipeline: SyncSender<Input>,
        limits: &PipelineConfig,
        stats: Arc<IngestStats>,
    ) -> Result<Self> {
        let (max_message_bytes, max_reject_raw_bytes) =
            (limits.max_message_bytes, limits.max_reject_raw_bytes);
        // librdkafka's default is `latest`; its aliases of `earliest` count as earliest.
        let from_earliest = matches!(
            client.get("auto.offset.reset"),
            Some("earliest" | "smallest" | "beginning")
        );
        let context = IngestContext {
            pipeline: Mutex::new(Some(pipeline)),
            stats,
        };
        let consumer: BaseConsumer<IngestContext> = client.create_with_context(context)?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            topics,
            keep: PayloadLimits {
                max_message_bytes,
                max_reject_raw_bytes,
            },
            from_earliest,
        })
    }

    /// What the pipeline asks about this consumer's partitions to tell messages lost to
    /// retention from legitimate offset gaps (see [`SourceLog`]).
    pub fn source_log(&self) -> Box<dyn SourceLog> {
        Box::new(KafkaLog {
            consumer: self.consumer.clone(),
            from_earliest: self.from_earliest,
        })
    }

    /// The callback the pipeline calls after each flush: commits the durable offsets.
    pub fn committer(&self) -> OnDurable {
        let consumer = self.consumer.clone();
        Box::new(move |durable: &[Durable]| {
            commit(&consumer, durable, CommitMode::Sync);
        })
    }

    /// Consumes until `stop` is cancelled, then lets the pipeline's input end.
    pub fn run(&self, stop: &CancellationToken) -> Result<()> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics)?;
        let result = self.consume(stop);
        // Dropping the last sender ends the pipeline's loop (final flush and commit).
        self.consumer
            .context()
            .pipeline
            .lock()
            .expect("not poisoned")
            .take();
        result
    }

    fn consume(&self, stop: &CancellationToken) -> Result<()> {
        // Per topic: its shared name, looked up without allocating.
        let mut topics: HashMap<String, Arc<str>> = HashMap::new();
        let mut batch: Vec<RawMessage> = Vec::with_capacity(SOURCE_BATCH);
        while !stop.is_cancelled() {
            self.consumer.context().stats.heartbeat();
            let timeout = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(timeout) {
                Some(Ok(message)) => {
                    if !topics.contains_key(message.topic()) {
                        let name = message.topic();
                        topics.insert(name.to_owned(), Arc::from(name));
                    }
                    let topic = &topics[message.topic()];
                    batch.push(self.raw_message(topic.clone(), &message));
                    if batch.len() < SOURCE_BATCH {
                        continue;
                    }
                }
                Some(Err(error)) => {
                    // librdkafka retries connection problems itself; keep polling.
                    tracing::warn!(%error, "kafka consumer error");
                }
                None => {}
            }
            if !batch.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(SOURCE_BATCH));
                self.send(Input::Messages(full))?;
            }
        }
        if !batch.is_empty() {
            self.send(Input::Messages(batch))?;
        }
        Ok(())
    }

    fn send(&self, input: Input) -> Result<()> {
        let pipeline = self
            .consumer
            .context()
            .pipeline
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or(Error::PipelineGone)?;
        // Blocks while the pipeline is busy: backpressure reaches Kafka as unpolled
        // messages (bounded by `queued.max.messages.kbytes`) instead of memory. How long,
        // is what tells a late poll from a late broker in the record age.
        let started = Instant::now();
        pipeline.send(input).map_err(|_| Error::PipelineGone)?;
        let blocked = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.consumer
            .context()
            .stats
            .source_blocked_micros
            .observe(blocked);
        Ok(())
    }

    fn raw_message(&self, topic: Arc<str>, message: &impl Message) -> RawMessage {
        let payload = message.payload().map(|bytes| {
            let keep = if bytes.len() > self.keep.max_message_bytes {
                self.keep.max_reject_raw_bytes
            } else {
                bytes.len()
            };
            bytes[..keep.min(bytes.len())].to_vec()
        });
        let timestamp = message.timestamp().to_millis().map(|millis| millis * 1_000);
        if let Some(timestamp) = timestamp {
            // A producer's clock ahead of ours gives no age rather than a negative one.
            if let Ok(age) = u64::try_from(now_micros() - timestamp) {
                self.consumer.context().stats.record_age_micros.observe(age);
            }
        }
        RawMessage {
            source: topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
            payload,
            size: message.payload().map_or(0, <[u8]>::len),
        }
    }
}

/// How long the pipeline waits for a partition's watermarks before judging its gaps
/// without them (a flush waits meanwhile; it happens only when offsets jumped).
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(5);

/// The brokers' view of a partition's log, for the pipeline's gap check.
struct KafkaLog {
    consumer: Arc<BaseConsumer<IngestContext>>,
    from_earliest: bool,
}

impl SourceLog for KafkaLog {
    fn first_offset(&self) -> Option<i64> {
        // With `latest`, a new group skips what the log holds on purpose.
        self.from_earliest.then_some(0)
    }

    fn log_start(&mut self, topic: &str, partition: i32) -> Option<i64> {
        // A ListOffsets request of its own (librdkafka answers it on its broker threads),
        // so it works while the polling thread waits in a rebalance callback.
        match self
            .consumer
            .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
        {
            Ok((low, _high)) => Some(low),
            Err(error) => {
                tracing::warn!(topic, partition, %error, "cannot ask the broker where the partition's log starts; judging its offset gap without it");
                None
            }
        }
    }
}

fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, durable: &[Durable], mode: CommitMode) {
    if durable.is_empty() {
        return;
    }
    let mut offsets = TopicPartitionList::new();
    for entry in durable {
        if let Err(error) = offsets.add_partition_offset(
            &entry.source,
            entry.partition,
            Offset::Offset(entry.next_offset),
        ) {
            tracing::warn!(%error, "cannot build offset list");
            return;
        }
    }
    // A failed commit loses nothing: the lake's manifest knows where each partition ends,
    // and a replay skips what the lake already holds.
    match consumer.commit(&offsets, mode) {
        Ok(()) => tracing::debug!(partitions = durable.len(), "offsets committed"),
        Err(error) => {
            tracing::warn!(%error, "offset commit failed; the lake's manifest stays authoritative")
        }
    }
}

fn elements(partitions: &TopicPartitionList) -> Vec<(Arc<str>, i32)> {
    partitions
        .elements()
        .iter()
        .map(|element| (Arc::from(element.topic()), element.partition()))
        .collect()
}

fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|element| format!("{}/{}", element.topic(), element.partition()))
        .collect::<Vec<_>>()
        .join(",")
}
