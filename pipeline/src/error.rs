//! The pipeline crate's error type: what failed while opening, running or stopping the
//! stages (the cause is its source).

use authtrail_ingest::BoxError;

use crate::key::SIGNING_KEY_ENV;

/// What stops the stages from opening, running or stopping cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{SIGNING_KEY_ENV}` is not valid UTF-8")]
    KeyNotUtf8,
    #[error("reading `{SIGNING_KEY_ENV}`")]
    KeyEnv(#[source] authtrail_store::Error),
    #[error(transparent)]
    KeyFile(authtrail_store::Error),
    #[error("opening the lake at `{lake}`")]
    Lake {
        lake: String,
        #[source]
        source: authtrail_store::Error,
    },
    #[error(
        "webhooks need a local lake for their outbox (`_outbox/`); with a lake on object \
         storage, leave `[[respond.webhooks]]` out"
    )]
    OutboxNeedsLocalLake,
    #[error("starting the webhook responder")]
    Responder(#[source] authtrail_respond::Error),
    #[error("starting the detectors")]
    Detection(#[source] authtrail_ingest::Error),
    #[error("starting the embedded Kafka broker")]
    Broker(#[source] authtrail_ingest::Error),
    #[error(transparent)]
    Kafka(authtrail_ingest::Error),
    #[error("ingesting")]
    Ingest(#[source] authtrail_ingest::Error),
    #[error("stopping the webhook responder")]
    StopResponder(#[source] authtrail_respond::Error),
    #[error("serving {name}")]
    Service {
        name: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the {0} task panicked")]
    Panicked(&'static str),
}
