//! Which format each source's records are in (the contract, unless a `[[kafka.sources]]`
//! entry or `authtrail ingest --format` names another), and the recent records of adapted
//! sources, so a record shipped twice (a collector's sender retrying after a 503 that came
//! after the broker had taken part of the request) is kept once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use authtrail_model::adapt::Format;

use crate::kafka::KafkaConfig;
use crate::{Error, Result};

/// A source's format and what to do with its unmapped records.
#[derive(Debug)]
pub struct SourceFormat {
    pub format: Format,
    /// Count unmapped native records and keep nothing, instead of keeping each in
    /// `rejects` (for sources that carry many event types authtrail has no use for).
    pub skip_unmapped: bool,
}

/// The format of every source; sources not named read the contract.
#[derive(Debug, Clone)]
pub struct SourceFormats {
    by_source: HashMap<String, Arc<SourceFormat>>,
    contract: Arc<SourceFormat>,
}

impl SourceFormats {
    /// Every source reads the contract.
    pub fn contract() -> Self {
        SourceFormats {
            by_source: HashMap::new(),
            contract: Arc::new(SourceFormat {
                format: Format::contract(),
                skip_unmapped: false,
            }),
        }
    }

    /// `source` reads `format`.
    pub fn with(mut self, source: &str, format: Format, skip_unmapped: bool) -> Self {
        self.by_source.insert(
            source.to_owned(),
            Arc::new(SourceFormat {
                format,
                skip_unmapped,
            }),
        );
        self
    }

    /// The formats `[[kafka.sources]]` names (built-in names or mapping files), loaded and
    /// checked.
    pub fn from_kafka(kafka: &KafkaConfig) -> Result<Self> {
        let mut formats = SourceFormats::contract();
        for source in &kafka.sources {
            let format = Format::load(&source.format).map_err(|error| {
                Error::Config(format!("`kafka.sources` topic `{}`: {error}", source.topic))
            })?;
            formats = formats.with(&source.topic, format, source.skip_unmapped);
        }
        Ok(formats)
    }

    /// The format of `source`.
    pub fn of(&self, source: &str) -> &Arc<SourceFormat> {
        if self.by_source.is_empty() {
            return &self.contract;
        }
        self.by_source.get(source).unwrap_or(&self.contract)
    }
}

/// An adapted source's most recent records, oldest forgotten first, each known by its
/// event id and its bytes: a resend is the same id with the same bytes, while records that
/// merely share an id (test data that reuses one uuid, the stages of one Kubernetes
/// request) are different records and all kept. Kept as 64-bit hashes (a false "seen"
/// among a million records has odds of about 3 in 10^8).
#[derive(Debug)]
pub(crate) struct RecentIds {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

/// Records remembered per adapted source: about 24 bytes each, so 5 MiB per source.
pub(crate) const RECENT_RECORDS: usize = 200_000;

impl RecentIds {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentIds {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers the record `bytes` with event id `id`; false if it was already
    /// remembered.
    pub(crate) fn insert(&mut self, id: &str, bytes: &[u8]) -> bool {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        if !self.seen.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_first() {
        let mut ids = RecentIds::new(2);
        assert!(ids.insert("a", b"{}"));
        assert!(!ids.insert("a", b"{}"));
        assert!(ids.insert("a", b"{\"other\":1}"), "same id, another record");
        assert!(ids.insert("c", b"{}"), "the first a is forgotten");
        assert!(ids.insert("a", b"{}"));
        assert!(!ids.insert("c", b"{}"));
    }

    #[test]
    fn unnamed_sources_read_the_contract() {
        let formats =
            SourceFormats::contract().with("k8s", Format::builtin("k8s_audit").unwrap(), true);
        assert_eq!(formats.of("k8s").format.name(), "k8s_audit");
        assert!(formats.of("k8s").skip_unmapped);
        assert!(formats.of("auth-events").format.is_contract());
    }
}
