//! The formats the collector takes (the adapters' built-in formats), each with its
//! adapter, its topic and its counters.

use std::collections::BTreeMap;

use authtrail_model::adapt::{default_topic, Format, BUILTIN_FORMATS};

use crate::metrics::FormatMetrics;
use crate::{CollectConfig, Error};

/// One format the collector takes.
pub(crate) struct Route {
    /// The adapter that checks each record (the record is produced unchanged either way).
    pub format: Format,
    /// Where its records are produced.
    pub topic: String,
    pub metrics: FormatMetrics,
}

/// The names of the formats the collector takes.
pub fn known() -> impl Iterator<Item = &'static str> {
    BUILTIN_FORMATS.into_iter()
}

/// The topic `format`'s records go to under `topics` (`[collect.topics]`), if it is one
/// the collector takes.
pub(crate) fn topic(topics: &BTreeMap<String, String>, format: &str) -> Option<String> {
    known().find(|known| *known == format)?;
    Some(
        topics
            .get(format)
            .cloned()
            .unwrap_or_else(|| default_topic(format)),
    )
}

/// Every format's route.
pub(crate) fn routes(config: &CollectConfig) -> Result<BTreeMap<&'static str, Route>, Error> {
    known()
        .map(|name| {
            let format = Format::builtin(name)
                .ok_or_else(|| Error::Config(format!("no built-in format `{name}`")))?;
            let topic = config
                .topic(name)
                .ok_or_else(|| Error::Config(format!("no topic for format `{name}`")))?;
            let route = Route {
                format,
                topic,
                metrics: FormatMetrics::new(),
            };
            Ok((name, route))
        })
        .collect()
}
