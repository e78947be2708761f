//! Where the pipeline runs its detectors: inline on the pipeline thread, or on a thread of
//! their own that the pipeline thread feeds in its own order.
//!
//! On their own thread the detectors see exactly the sequence they would see inline: the
//! events in the order the pipeline thread accepted them (so per source partition in
//! offset order), with the ticks, assignments and revocations between the same events.
//! Each flush travels the same road: the pipeline thread hands it to the detection thread,
//! which cuts the checkpoint once it has observed every event before the flush, and passes
//! both on to the writer. A checkpoint therefore still covers exactly its flush's offsets,
//! and the writer receives flushes in order.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use authtrail_detect::SourceId;
use authtrail_model::Event;

use crate::detection::Detection;
use crate::message::SOURCE_BATCH;
use crate::writer::{Flush, PartitionKey};
use crate::{Error, Result};

/// Where a checkpoint ends, per source partition: its name, number and next offset.
pub(crate) type Positions = Vec<(Arc<str>, i32, i64)>;

/// Commands queued for the detection thread besides the one it works on: each holds at
/// most a source batch of events, so this bounds the events in flight.
const QUEUED_COMMANDS: usize = 4;

/// The detectors, inline or on their own thread.
pub(crate) enum DetectStage {
    Inline(Box<Detection>),
    Thread(DetectionThread),
}

/// The pipeline thread's handle on the detection thread.
pub(crate) struct DetectionThread {
    commands: SyncSender<Command>,
    /// Events accepted since the last command, sent together.
    events: Vec<(SourceId, Event<'static>)>,
    thread: JoinHandle<Result<()>>,
}

enum Command {
    Observe(Vec<(SourceId, Event<'static>)>),
    /// After a batch of messages (`idle: false`), or when none came (`idle: true`).
    Tick {
        idle: bool,
    },
    Assign(Vec<PartitionKey>),
    Revoke(Vec<PartitionKey>),
    Open {
        source: Arc<str>,
        partition: i32,
        reply: SyncSender<(Option<i64>, SourceId)>,
    },
    /// Cut a checkpoint at `positions` (when given) into the flush, then hand it to the
    /// writer.
    Flush {
        flush: Box<Flush>,
        positions: Option<Positions>,
    },
}

impl DetectStage {
    /// Moves the detectors to a thread of their own, which hands flushes on to `writer`.
    pub fn on_own_thread(self, writer: SyncSender<Flush>) -> Result<Self> {
        let detection = match self {
            DetectStage::Inline(detection) => *detection,
            thread @ DetectStage::Thread(_) => return Ok(thread),
        };
        let (commands, queue) = sync_channel::<Command>(QUEUED_COMMANDS);
        let thread = thread::Builder::new()
            .name("authtrail-detect".into())
            .spawn(move || {
                let mut detection = detection;
                let result = queue
                    .into_iter()
                    .try_for_each(|command| run(&mut detection, command, &writer));
                detection.publish_metrics(true);
                result
            })
            .map_err(Error::Thread)?;
        Ok(DetectStage::Thread(DetectionThread {
            commands,
            events: Vec::with_capacity(SOURCE_BATCH),
            thread,
        }))
    }

    /// Where the detectors' state of a partition ends (the first offset it has not seen,
    /// if it saw any), and the partition's watermark, registered now if new.
    pub fn open(&mut self, source: &Arc<str>, partition: i32) -> Result<(Option<i64>, SourceId)> {
        match self {
            DetectStage::Inline(detection) => Ok(open(detection, source, partition)),
            DetectStage::Thread(thread) => {
                let (reply, answer) = sync_channel(1);
                thread.send(Command::Open {
                    source: source.clone(),
                    partition,
                    reply,
                })?;
                answer.recv().map_err(|_| Error::PipelineGone)
            }
        }
    }

    /// Runs the detectors on `event` of partition watermark `source`.
    pub fn observe(&mut self, source: SourceId, event: Event<'_>) -> Result<()> {
        match self {
            DetectStage::Inline(detection) => detection.observe(source, &event),
            DetectStage::Thread(thread) => {
                thread.events.push((source, event.into_owned()));
                if thread.events.len() >= SOURCE_BATCH {
                    thread.send_events()?;
                }
                Ok(())
            }
        }
    }

    /// After each batch of messages (`idle: false`) or a wait without any (`idle: true`):
    /// tells the detectors the wall-clock time and publishes their metrics (at once when
    /// idle, else at most once a second).
    pub fn tick(&mut self, idle: bool) -> Result<()> {
        match self {
            DetectStage::Inline(detection) => {
                tick(detection, idle);
                Ok(())
            }
            DetectStage::Thread(thread) => thread.send(Command::Tick { idle }),
        }
    }

    /// Registers assigned partitions (see [`Detection::assign`]).
    pub fn assign(&mut self, partitions: Vec<PartitionKey>) -> Result<()> {
        match self {
            DetectStage::Inline(detection) => {
                detection.assign(&partitions);
                Ok(())
            }
            DetectStage::Thread(thread) => thread.send(Command::Assign(partitions)),
        }
    }

    /// Forgets revoked partitions (see [`Detection::revoke`]).
    pub fn revoke(&mut self, partitions: Vec<PartitionKey>) -> Result<()> {
        match self {
            DetectStage::Inline(detection) => {
                detection.revoke(&partitions);
                Ok(())
            }
            DetectStage::Thread(thread) => thread.send(Command::Revoke(partitions)),
        }
    }

    /// Hands `flush` to `writer`, with a checkpoint cut at `positions` when given, once
    /// the detectors have observed every event accepted before it.
    pub fn hand_over(
        &mut self,
        flush: Flush,
        positions: Option<Positions>,
        writer: &SyncSender<Flush>,
    ) -> Result<()> {
        match self {
            DetectStage::Inline(detection) => hand_to_writer(detection, flush, positions, writer),
            DetectStage::Thread(thread) => thread.send(Command::Flush {
                flush: Box::new(flush),
                positions,
            }),
        }
    }

    /// Stops the stage: publishes the metrics one last time and, on a thread, waits for
    /// it to hand over everything it was sent; its error, if it stopped on one.
    pub fn finish(self) -> Result<()> {
        match self {
            DetectStage::Inline(mut detection) => {
                detection.publish_metrics(true);
                Ok(())
            }
            DetectStage::Thread(thread) => {
                let DetectionThread {
                    commands,
                    events,
                    thread,
                } = thread;
                debug_assert!(
                    events.is_empty(),
                    "the last flush sent every accepted event"
                );
                drop(commands);
                thread.join().map_err(|_| Error::PipelineGone)?
            }
        }
    }
}

impl DetectionThread {
    /// Sends `command` after the events accepted before it.
    fn send(&mut self, command: Command) -> Result<()> {
        self.send_events()?;
        self.commands.send(command).map_err(|_| Error::PipelineGone)
    }

    fn send_events(&mut self) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(SOURCE_BATCH));
        self.commands
            .send(Command::Observe(events))
            .map_err(|_| Error::PipelineGone)
    }
}

/// One command on the detection thread.
fn run(detection: &mut Detection, command: Command, writer: &SyncSender<Flush>) -> Result<()> {
    match command {
        Command::Observe(events) => {
            for (source, event) in &events {
                detection.observe(*source, event)?;
            }
        }
        Command::Tick { idle } => tick(detection, idle),
        Command::Assign(partitions) => detection.assign(&partitions),
        Command::Revoke(partitions) => detection.revoke(&partitions),
        Command::Open {
            source,
            partition,
            reply,
        } => {
            // The pipeline thread waits for this; it only fails if that thread is gone.
            let _ = reply.send(open(detection, &source, partition));
        }
        Command::Flush { flush, positions } => {
            hand_to_writer(detection, *flush, positions, writer)?;
        }
    }
    Ok(())
}

fn open(detection: &mut Detection, source: &str, partition: i32) -> (Option<i64>, SourceId) {
    (
        detection.covered(source, partition),
        detection.source(source, partition),
    )
}

fn tick(detection: &mut Detection, idle: bool) {
    detection.tick();
    detection.publish_metrics(idle);
}

/// Cuts the checkpoint at `positions` (when given) into `flush` and hands it to the
/// writer, waiting while the writer is a full flush behind. The detectors observe nothing
/// meanwhile, so the time is recorded: it is a floor under the alert latency of every
/// event that arrives during it.
fn hand_to_writer(
    detection: &mut Detection,
    mut flush: Flush,
    positions: Option<Positions>,
    writer: &SyncSender<Flush>,
) -> Result<()> {
    let started = Instant::now();
    if let Some(positions) = positions {
        let positions = positions
            .iter()
            .map(|(source, partition, next)| (source.as_ref(), *partition, *next));
        flush.checkpoint = Some(detection.cut(positions)?);
    }
    let cut = started.elapsed();
    writer.send(flush).map_err(|_| Error::PipelineGone)?;
    let paused = started.elapsed();
    detection.record_pause(paused);
    tracing::debug!(
        cut_us = cut.as_micros() as u64,
        writer_wait_us = (paused - cut).as_micros() as u64,
        "flush handed to the writer"
    );
    Ok(())
}
