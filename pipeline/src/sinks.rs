//! Where raised alerts go: the webhook responder and the caller's sinks, behind the one
//! [`AlertSink`] the detectors feed. `respond` does not depend on `ingest`; they meet here.

use std::sync::Arc;

use authtrail_ingest::{AlertSink, BoxError};
use authtrail_model::Alert;
use authtrail_respond::Responder;

/// The responder as the pipeline's alert sink.
pub struct ResponderSink(pub Arc<Responder>);

impl AlertSink for ResponderSink {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        Ok(self.0.record(alert)?)
    }

    fn sync(&self) -> Result<(), BoxError> {
        Ok(self.0.sync()?)
    }
}

/// Every sink, in order: an alert is recorded in each, and each is synced before the
/// offsets are committed.
pub(crate) struct Sinks(pub Vec<Box<dyn AlertSink>>);

impl AlertSink for Sinks {
    fn record(&self, alert: &Alert) -> Result<(), BoxError> {
        self.0.iter().try_for_each(|sink| sink.record(alert))
    }

    fn sync(&self) -> Result<(), BoxError> {
        self.0.iter().try_for_each(|sink| sink.sync())
    }
}
