//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// authtrail: the audit trail and tripwire for identity in a microservice system.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The lake, for this and every command: a directory, or for ingest, run, serve,
    /// query, verify and maintain an object store (`s3://bucket/prefix`, `gs://…`,
    /// `az://…`; credentials from the environment) [default: ./authtrail-data, or
    /// `lake.path` from the config file].
    #[arg(long, global = true, value_name = "DIR|URL")]
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
    /// Sigma rules: check a pack, run its tests, or backtest it over the lake's events.
    Rules(crate::rules::RulesArgs),
    /// Everything on this machine, nothing else needed: the embedded broker, generated
    /// traffic with attacks, the pipeline, a local webhook receiver printing revocations,
    /// and the web UI. Prints the URL, an API key and example queries.
    Demo(DemoArgs),
    /// A stand-alone HTTP collector in front of a Kafka cluster: identity records posted
    /// to /api/v1/collect/{format} (JSON lines, arrays, Kubernetes EventLists, gzip) are
    /// produced to their format's topic and answered 200 once the broker has them all.
    Collect(CollectArgs),
    /// Export the lake's events as OCSF 1.1.0 (Authentication, Authorize Session and API
    /// Activity classes) in JSON lines or Parquet, for Security Lake, Splunk or any OCSF
    /// reader (docs/ocsf.md).
    Export(ExportArgs),
    /// Reports over the lake about the services themselves: `trust` (where a service
    /// accepts what it should not) and `privilege` (what each client was granted against
    /// what it used), with a recommendation per finding (docs/reports.md).
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportKind,

    /// Configuration file (TOML): `lake.path`, `[query]` limits and `[report]` settings.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// The window ends here (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME", global = true)]
    pub until: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportOutput::Table, global = true)]
    pub format: ReportOutput,

    /// Print the physical plan of each of the report's queries instead of running them.
    #[arg(long, global = true)]
    pub explain: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Per service: tokens accepted while revoked, expired or for another audience;
    /// tokens a peer rejected; calls allowed with no identity; decisions that depend on
    /// the calling service; identity dropped along a trace.
    Trust {
        /// The window: this long before `--until`.
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        since: String,
        /// Only findings about this service.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
    },
    /// Per client and service principal: scopes and audiences granted and never used,
    /// reach beyond its peers, dormant holders, over-broad and long-lived tokens.
    Privilege {
        /// The window: this long before `--until`.
        #[arg(long, value_name = "DURATION", default_value = "30d")]
        since: String,
    },
}

/// How `authtrail report` writes a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    /// A text table per section.
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write OCSF events (the only export schema; required so the format is explicit).
    #[arg(long, required = true)]
    pub ocsf: bool,

    /// Configuration file (TOML), for `lake.path` and the `[query]` engine settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Export events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::export::parse_time)]
    pub from: Option<i64>,

    /// Export events before this time (RFC 3339), exclusive.
    #[arg(long, value_name = "TIME", value_parser = crate::export::parse_time)]
    pub until: Option<i64>,

    /// File format of the export.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub output_format: ExportFormat,

    /// Where to write the export (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,

    /// Cancel the export after this long; an export reads the whole range, so it is not
    /// bound by `query.timeout`, which is meant for interactive queries.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1h")]
    pub timeout: Duration,
}

/// How `authtrail export` writes its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// A zstd-compressed Parquet file with nested (struct) columns.
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Configuration file (TOML): `[collect]`, `kafka.brokers`, `[api]` (keys for
    /// /metrics, connection limits).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on; overrides `collect.listen`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// Kafka bootstrap servers to produce to; overrides `kafka.brokers`. Required one way
    /// or the other: a collector tier fronts a real cluster.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,
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

    /// Write the events as `authtrail` (the event contract), or in a native log format an
    /// adapter reads: `keycloak` (Keycloak events: logins, token issues and revokes) or
    /// `k8s_audit` (Kubernetes audit events: authorization decisions). A native format
    /// writes only the events it can express and counts the rest on stderr.
    #[arg(long, value_name = "FORMAT", default_value = "authtrail")]
    pub format: authtrail_gen::Format,

    /// Produce to Kafka at these bootstrap servers instead of writing lines.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// Topic to produce to [default: the first of `kafka.topics`].
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Native formats (`keycloak,k8s_audit`) whose events go to their own topics
    /// (`keycloak-events`, `k8s-audit`) in that format; the rest go to `--topic` as
    /// contract events.
    #[arg(long, value_name = "LIST", requires = "brokers")]
    pub native: Option<String>,

    /// The topic of a `--native` format instead of its default (repeatable).
    #[arg(long, value_name = "FORMAT=TOPIC", requires = "native")]
    pub native_topic: Vec<String>,

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

    /// Format of the file's records: `authtrail` (the event contract), a built-in adapter
    /// (`okta`, `auth0`, `keycloak`, `k8s_audit`, `opa`, `ocsf`) or a mapping file
    /// (`*.toml`). Native records may be JSON lines, JSON arrays or list objects
    /// (`EventList`).
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "authtrail",
        requires = "from_file"
    )]
    pub format: String,

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
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => text_subscriber(filter, std::io::stderr).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .init(),
    }
}

/// The text format: one line per record whatever the fields hold. A principal, a reason
/// or an error message comes from whoever sent the event; written raw, a newline in it
/// would forge a log line and an escape sequence would drive the reader's terminal. No
/// colours either: the formatter's own escape sequences would be escaped with the rest.
/// The formatter's partial sanitising (ESC and BEL in messages, as `\x1b`) is left to the
/// writer, so that every escape reads the same.
fn text_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_ansi_sanitization(false)
        .with_writer(EscapeControls(writer))
        .finish()
}

/// Makes writers, or is one, that escape control characters in each record written.
///
/// The fmt layer formats a whole record and hands it over in one `write_all`, so each
/// `write` here is one record: everything in it is escaped but its final newline. Escaped
/// are C0 controls and DEL (`\n`, `\r`, `\t`, else `\u{1b}` as Rust writes them), C1
/// controls, the Unicode line and paragraph separators and the bidirectional marks,
/// embeddings, overrides and isolates (which reorder what a reader sees). A backslash is
/// left as it is: fields written with `?` already escape theirs.
struct EscapeControls<W>(W);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for EscapeControls<M>
{
    type Writer = EscapeControls<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapeControls(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EscapeControls(self.0.make_writer_for(meta))
    }
}

impl<W: std::io::Write> std::io::Write for EscapeControls<W> {
    fn write(&mut self, record: &[u8]) -> std::io::Result<usize> {
        let (line, newline) = match record.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (record, false),
        };
        match escape_controls(line) {
            None => self.0.write_all(record)?,
            Some(mut escaped) => {
                if newline {
                    escaped.push(b'\n');
                }
                self.0.write_all(&escaped)?;
            }
        }
        Ok(record.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `text` with its control characters escaped as in text logs (a newline as `\n`).
pub fn escaped(text: &str) -> String {
    match escape_controls(text.as_bytes()) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => text.to_owned(),
    }
}

/// `text` with its control characters escaped, or `None` when it has none.
fn escape_controls(text: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut out: Option<Vec<u8>> = None;
    let (mut at, mut copied) = (0, 0);
    while at < text.len() {
        let next = |i: usize| text.get(at + i).copied().unwrap_or(0);
        // (length in bytes, code point) of a character to escape; UTF-8 decoded by hand
        // for the few multi-byte ones, so that invalid UTF-8 passes through unchanged.
        let (length, code) = match text[at] {
            byte @ (0x00..=0x1f | 0x7f) => (1, u32::from(byte)),
            0xc2 if (0x80..=0x9f).contains(&next(1)) => (2, u32::from(next(1))),
            0xe2 if matches!(
                (next(1), next(2)),
                (0x80, 0x8e | 0x8f | 0xa8..=0xae) | (0x81, 0xa6..=0xa9)
            ) =>
            {
                (
                    3,
                    0x2000 | (u32::from(next(1) & 0x3f) << 6) | u32::from(next(2) & 0x3f),
                )
            }
            _ => {
                at += 1;
                continue;
            }
        };
        let out = out.get_or_insert_with(|| Vec::with_capacity(text.len() + 16));
        out.extend_from_slice(&text[copied..at]);
        match code {
            0x0a => out.extend_from_slice(b"\\n"),
            0x0d => out.extend_from_slice(b"\\r"),
            0x09 => out.extend_from_slice(b"\\t"),
            // Writing to a Vec cannot fail.
            _ => write!(out, "\\u{{{code:x}}}").unwrap_or(()),
        }
        at += length;
        copied = at;
    }
    let mut out = out?;
    out.extend_from_slice(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log line's worth of attack: a forged record after CR/LF, a terminal title and
    /// screen clear, a bell, a C1 CSI, a line separator and a right-to-left override.
    const FORGED: &str = "user:mallory\r\n2026-12-07T06:00:00.000000Z ERROR authtrail::forged: all clear\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{2028}\u{202e}";

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = text_subscriber(tracing_subscriber::EnvFilter::new("info"), move || {
            writer.clone()
        });
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn assert_one_clean_line(output: &str) {
        assert_eq!(output.matches('\n').count(), 1, "{output:?}");
        assert!(output.ends_with('\n'), "{output:?}");
        let bad = output[..output.len() - 1].chars().find(|&c| {
            c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}')
        });
        assert_eq!(bad, None, "{output:?}");
    }

    #[test]
    fn a_forged_line_in_any_field_or_the_message_stays_on_its_line() {
        let output = logged(|| {
            tracing::warn!(
                target: "authtrail::alert",
                principal = %FORGED,
                token_id = FORGED,
                reason = ?FORGED,
                "brute force on {FORGED}"
            );
        });
        assert_one_clean_line(&output);
        assert!(output.contains(" WARN authtrail::alert: brute force on user:mallory\\r\\n2026-12-07T06:00:00.000000Z ERROR authtrail::forged"), "{output}");
        assert!(output.contains("\\u{1b}[2J"), "{output}");
        assert_eq!(
            output.matches("all clear\\u{1b}]0;owned\\u{7}").count(),
            4,
            "the message and the fields, however recorded, escape alike: {output}"
        );
        assert!(output.contains("\\u{9b}31m\\u{2028}\\u{202e}"), "{output}");
    }

    #[test]
    fn span_fields_and_errors_are_escaped_too() {
        let error = std::io::Error::other(FORGED);
        let output = logged(|| {
            let span = tracing::info_span!("consume", principal = %FORGED);
            let _entered = span.enter();
            tracing::error!(%error, "failed");
        });
        assert_one_clean_line(&output);
    }

    #[test]
    fn ordinary_lines_are_written_unchanged() {
        let output =
            logged(|| tracing::info!(principal = "user:émile", path = "C:\\lake", "ready"));
        assert_one_clean_line(&output);
        assert!(
            output.ends_with("::cli::tests: ready principal=\"user:émile\" path=\"C:\\\\lake\"\n"),
            "{output}"
        );
    }

    #[test]
    fn escapes_controls_and_keeps_other_bytes() {
        assert_eq!(escape_controls(b"plain \xff text \xc3\xa9"), None);
        assert_eq!(
            escape_controls(b"a\tb\x00c\x7f\xc2\x85\xe2\x80\xa9\xe2\x81\xa6\xe2\x80\xa0").unwrap(),
            b"a\\tb\\u{0}c\\u{7f}\\u{85}\\u{2029}\\u{2066}\xe2\x80\xa0".to_vec()
        );
    }
}
