//! A segment: everything one flush writes for one source partition — a contiguous offset
//! range, its accepted events and its rejects, split by the hour they belong to.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use authtrail_model::time::hour_of;
use authtrail_model::{
    ContractError, Event, EventBatchBuilder, IngestMeta, Micros, RejectBatchBuilder,
};

use crate::Result;
use authtrail_model::lake::Table;

/// Accumulates one source partition's rows until the pipeline flushes them.
pub struct SegmentBuilder {
    source: String,
    partition: i32,
    max_reject_raw_bytes: usize,
    first_offset: Option<i64>,
    last_offset: i64,
    rows: usize,
    events: BTreeMap<i64, EventBatchBuilder>,
    rejects: BTreeMap<i64, RejectBatchBuilder>,
    /// The largest events builder of the last flush, kept for the next segment: a finished
    /// builder is sized like the batch it made, so the next one fills without regrowing.
    spare_events: Option<EventBatchBuilder>,
}

/// The finished rows of one offset range, ready to be written.
pub struct Segment {
    pub source: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// One batch per table and hour, in a fixed order.
    pub batches: Vec<(Table, i64, RecordBatch)>,
    /// Offsets up to `last_offset` the source had deleted before they were read; the
    /// commit records them in the manifest (see [`crate::LostRange`]).
    pub lost: Vec<crate::LostRange>,
}

impl SegmentBuilder {
    /// An empty segment of `source` partition `partition`.
    pub fn new(source: &str, partition: i32, max_reject_raw_bytes: usize) -> Self {
        SegmentBuilder {
            source: source.to_owned(),
            partition,
            max_reject_raw_bytes,
            first_offset: None,
            last_offset: -1,
            rows: 0,
            events: BTreeMap::new(),
            rejects: BTreeMap::new(),
            spare_events: None,
        }
    }

    /// Rows buffered (events and rejects).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether nothing was recorded since the last flush.
    pub fn is_empty(&self) -> bool {
        self.first_offset.is_none()
    }

    fn cover(&mut self, offset: i64) {
        debug_assert!(offset > self.last_offset, "offsets arrive in order");
        self.first_offset.get_or_insert(offset);
        self.last_offset = offset;
    }

    /// Buffers an accepted event; its hour partition is its event time.
    pub fn push_event(&mut self, event: &Event<'_>, meta: &IngestMeta<'_>) {
        self.cover(meta.offset);
        self.rows += 1;
        self.events
            .entry(hour_of(event.time))
            .or_insert_with(|| self.spare_events.take().unwrap_or_default())
            .append(event, meta);
    }

    /// Buffers a rejected message. `partition_time` picks its hour partition: the message's
    /// broker timestamp when it has one (stable across replays), else the ingest time.
    pub fn push_reject(
        &mut self,
        raw: &[u8],
        raw_bytes: usize,
        error: &ContractError,
        meta: &IngestMeta<'_>,
        partition_time: Micros,
    ) {
        self.cover(meta.offset);
        self.rows += 1;
        let max_raw = self.max_reject_raw_bytes;
        self.rejects
            .entry(hour_of(partition_time))
            .or_insert_with(|| RejectBatchBuilder::new(max_raw))
            .append(raw, raw_bytes, error, meta);
    }

    /// Records an offset that produced no row (a blank line), so the range covers it.
    pub fn push_empty(&mut self, offset: i64) {
        self.cover(offset);
    }

    /// The buffered rows as a [`Segment`], or `None` when nothing was recorded; the builder
    /// is empty afterwards.
    pub fn finish(&mut self) -> Result<Option<Segment>> {
        let Some(first_offset) = self.first_offset.take() else {
            return Ok(None);
        };
        let mut batches = Vec::with_capacity(self.events.len() + self.rejects.len());
        let mut largest = 0;
        for (hour, mut builder) in std::mem::take(&mut self.events) {
            let rows = builder.len();
            batches.push((Table::Events, hour, builder.finish()?));
            if rows > largest {
                largest = rows;
                self.spare_events = Some(builder);
            }
        }
        for (hour, mut builder) in std::mem::take(&mut self.rejects) {
            batches.push((Table::Rejects, hour, builder.finish()?));
        }
        self.rows = 0;
        Ok(Some(Segment {
            source: self.source.clone(),
            partition: self.partition,
            first_offset,
            last_offset: self.last_offset,
            batches,
            lost: Vec::new(),
        }))
    }
}
