//! What the stages are opened from: the sections of `authtrail.toml` they use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use authtrail_detect::DetectConfig;
use authtrail_ingest::kafka::KafkaConfig;
use authtrail_ingest::PipelineConfig;
use authtrail_respond::RespondConfig;
use authtrail_store::{EncodeOptions, LakeLocation, MaintenanceConfig};
use serde::Deserialize;

/// `[lake]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// The lake: a directory, or an object store URL (`s3://bucket/prefix`, `gs://…`,
    /// `az://…`); `--lake` overrides it. Default `./authtrail-data`.
    pub path: Option<PathBuf>,
    /// `[lake.storage]`: settings of an object store lake, keys as the `object_store`
    /// crate names them (`aws_region`, `aws_endpoint`, `google_service_account`, …). They
    /// override the provider's environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`);
    /// keep secrets in the environment rather than here.
    pub storage: BTreeMap<String, String>,
    /// File holding the Ed25519 key (64 hex characters) that signs every manifest record;
    /// the `AUTHTRAIL_SIGNING_KEY` environment variable (the key itself) overrides it.
    /// Unset: records are hash-chained but not signed.
    pub signing_key_file: Option<PathBuf>,
    /// Public key (64 hex characters) `authtrail verify` checks signatures with; derived
    /// from the signing key when unset.
    pub public_key: Option<String>,
    /// `[lake.maintenance]`: how long each table is kept, and compaction of closed hours.
    pub maintenance: MaintenanceConfig,
}

/// The sections [`crate::Stages::open`] uses, and the lake's location (already resolved from
/// `--lake` and `lake.path`).
#[derive(Debug, Clone)]
pub struct StagesConfig {
    /// Where the lake lives.
    pub lake_location: LakeLocation,
    /// `[lake]`: signing key and maintenance.
    pub lake: LakeConfig,
    /// `[store]`: Parquet encoding.
    pub store: EncodeOptions,
    /// `[ingest]`: flush policy and contract limits.
    pub ingest: PipelineConfig,
    /// `[kafka]`: brokers (none: the embedded one), topics, consumer group.
    pub kafka: KafkaConfig,
    /// `[detect]`; `None` runs no detectors (`authtrail ingest --no-detect`).
    pub detect: Option<DetectConfig>,
    /// `[respond]`: webhooks and the outbox.
    pub respond: RespondConfig,
}
