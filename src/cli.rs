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
    /// Generate realistic identity traffic of a microservice system, with attacks and
    /// benign look-alikes, to a JSON-lines file, stdout or Kafka; the labels go to a
    /// separate ground-truth file.
    Gen(GenArgs),
    /// Replay a labelled stream through the detectors and print precision, recall,
    /// time to detect and false alerts per detector.
    Eval(EvalArgs),
    /// Everything on this machine, nothing else needed: the embedded broker, generated
    /// traffic with attacks, the pipeline, a local webhook receiver printing revocations,
    /// and the web UI. Prints the URL, an API key and example queries.
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the web UI and API.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Stop after this long (e.g. 2m) [default: at Ctrl-C].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Wall-clock time over which the traffic after the learning period (attacks and
    /// look-alikes among it) is replayed.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "60s")]
    pub replay: Duration,

    /// People with an account in the generated system.
    #[arg(long, default_value_t = 300)]
    pub users: usize,

    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
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
pub struct GenArgs {
    /// Seed of every random choice: the same flags and seed give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Event time of the first event (RFC 3339) [default: now minus `--duration`, on the
    /// hour, so the whole stream lies in the past].
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,

    /// Event time the stream covers.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "26h")]
    pub duration: Duration,

    /// The detectors' learning period (`detect.new_service_edge.learning`); attacks and
    /// look-alikes come after it.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "24h")]
    pub learning: Duration,

    /// People with an account.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,

    /// Sessions per user and day, on average.
    #[arg(long, default_value_t = 3.0)]
    pub sessions_per_user_day: f64,

    /// Calls per second each calling service makes at the daily peak.
    #[arg(long, default_value_t = 0.2)]
    pub service_calls_per_second: f64,

    /// Attacks to inject: `all`, `none`, or a comma-separated list of scenario names
    /// (`brute_force,token_replay_addresses,...`).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub attacks: String,

    /// Leave out the benign look-alikes.
    #[arg(long)]
    pub no_lookalikes: bool,

    /// Write the events to this file (`-` for stdout) [default: stdout, unless `--brokers`].
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Write the ground truth (JSON lines) to this file.
    #[arg(long, value_name = "PATH")]
    pub truth: Option<PathBuf>,

    /// Produce to Kafka at these bootstrap servers instead of writing lines.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// Topic to produce to [default: the first of `kafka.topics`].
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Events per second of wall-clock time when producing [default: as fast as the
    /// broker takes them].
    #[arg(long, value_name = "EVENTS")]
    pub rate: Option<f64>,

    /// Configuration file (TOML), for `kafka.topics` and `kafka.settings`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The ground truth written by `authtrail gen --truth`.
    #[arg(long, value_name = "PATH")]
    pub truth: PathBuf,

    /// The events, JSON lines (`-` for stdin).
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub events: PathBuf,

    /// Configuration file (TOML), for the `[detect]` section; the learning period is
    /// taken from the ground truth, which placed the scenarios after it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print every alert too.
    #[arg(long)]
    pub alerts: bool,
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
