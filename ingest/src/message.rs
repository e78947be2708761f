//! What sources hand to the pipeline, and what the pipeline hands back.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use authtrail_model::Micros;

/// Messages a source sends in one go (one channel operation per batch, not per message).
pub const SOURCE_BATCH: usize = 1024;

/// One message as read from a source.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Kafka topic, or the name of a file source.
    pub source: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The broker's timestamp of the message, if it has one.
    pub timestamp: Option<Micros>,
    /// The message value; `None` for a Kafka tombstone. Sources keep only the head of a
    /// message over the size limit (see `size`).
    pub payload: Option<Vec<u8>>,
    /// The value's full size in bytes.
    pub size: usize,
}

/// Offsets that are durable in the lake: the source may commit `next_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    pub source: Arc<str>,
    pub partition: i32,
    pub next_offset: i64,
}

/// What a source sends the pipeline.
pub enum Input {
    /// Messages in source order.
    Messages(Vec<RawMessage>),
    /// These partitions are being taken away (Kafka rebalance): flush them now and reply
    /// with their durable offsets, so they can be committed before another consumer
    /// takes over.
    Revoke {
        partitions: Vec<(Arc<str>, i32)>,
        reply: SyncSender<Vec<Durable>>,
    },
    /// These partitions were assigned (Kafka rebalance): the detectors hold expiry back
    /// for each until its first event arrives (or it turns out idle), so state another
    /// partition shares with it does not expire while it has not been read yet.
    Assign(Vec<(Arc<str>, i32)>),
}
