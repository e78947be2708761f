//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// authtrail: the audit trail and tripwire for identity in a microservice system.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Root directory of the lake, for this and every command [default: ./authtrail-data,
    /// or `lake.path` from the config file].
    #[arg(long, global = true, value_name = "DIR")]
    pub lake: Option<PathBuf>,

    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest events into the lake: from Kafka (an embedded broker when none is
    /// configured), or from a JSON-lines file or stdin.
    Ingest(IngestArgs),
    /// List the alerts in the webhook outbox, retry dead letters, release held alerts.
    /// Works while `authtrail ingest` runs on the same lake.
    Alerts(AlertsArgs),
    /// Run one read-only SQL query over the lake (tables `events`, `alerts`, `rejects`).
    Query(QueryArgs),
    /// Serve the HTTP API (SQL and forensic endpoints) over the lake.
    Serve(ServeArgs),
    /// Check every lake file against the manifests, their hash chain and signatures;
    /// exits non-zero on any modified, missing or unexpected file or broken record.
    Verify(VerifyArgs),
    /// Apply retention (`lake.maintenance.retention_days`) and compact the small files of
    /// closed hours; both are recorded in the manifest. Safe while `authtrail ingest` runs.
    Maintain(MaintainArgs),
    /// Run everything in one process: ingest from Kafka (an embedded broker when none is
    /// configured), store, detect, respond, and serve the API, /metrics and the web UI.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct MaintainArgs {
    /// Configuration file (TOML), for `lake.path`, `[lake.maintenance]` and the signing key.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Configuration file (TOML), for `lake.path` and the keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Ed25519 public key (64 hex characters) to check signatures with; overrides
    /// `lake.public_key`.
    #[arg(long, value_name = "HEX")]
    pub public_key: Option<String>,

    /// Accept unsigned records even with a key (records written before signing was on).
    #[arg(long)]
    pub allow_unsigned: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see authtrail.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP API, metrics and UI; overrides `api.listen`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Kafka bootstrap servers; overrides `kafka.brokers`.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// Configuration file (TOML), for `lake.path`.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// List only entries in this state: pending, retrying, delivered, dead or held.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,

    #[command(subcommand)]
    pub action: Option<AlertsAction>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Move dead letters back to pending, to be delivered again (same webhook-id).
    Retry(Target),
    /// Release held alerts (over the rate limit) for delivery.
    Release(Target),
}

/// Which entries: one alert id (all its webhooks), or `--all`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The alert id.
    pub id: Option<String>,
    /// Every entry in the state the command applies to.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The query: SELECT, WITH or EXPLAIN.
    pub sql: String,

    /// Configuration file (TOML); see authtrail.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Write the result to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Return at most this many rows.
    #[arg(long, value_name = "ROWS")]
    pub limit: Option<usize>,

    /// Cancel the query after this long (e.g. 30s); overrides `query.timeout`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

/// How `authtrail query` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Jsonl,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see authtrail.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on; overrides `api.listen`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Configuration file (TOML); see authtrail.example.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers; overrides `kafka.brokers`.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// Topic to consume (repeatable); overrides `kafka.topics`.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Consumer group id; overrides `kafka.group_id`.
    #[arg(long, value_name = "ID")]
    pub group_id: Option<String>,

    /// Read JSON lines from this file (`-` for stdin) instead of Kafka; exits when the
    /// input ends and everything is flushed.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,

    /// Flush after this many buffered rows; overrides `ingest.flush_rows`.
    #[arg(long, value_name = "ROWS")]
    pub flush_rows: Option<usize>,

    /// Flush when the oldest buffered row is this old (e.g. 10s); overrides
    /// `ingest.flush_age`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub flush_age: Option<Duration>,

    /// Store events only; do not run the detectors.
    #[arg(long)]
    pub no_detect: bool,
}

/// Installs the tracing subscriber: stderr, `RUST_LOG` filter (default `info`).
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
