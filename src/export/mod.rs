//! `authtrail export --ocsf`: the lake's events as OCSF events (docs/ocsf.md), in JSON
//! lines or Parquet.
//!
//! The events are read with the query engine, so a `--from`/`--until` range opens only
//! the partitions of those hours, and streamed batch by batch: each batch of lake rows is
//! mapped (`ocsf.rs`) and written before the next is read, so the export holds a batch
//! (and, for Parquet, one row group) whatever the size of the lake.

mod ocsf;
// Lake rows as borrowed values; `authtrail rules backtest` reads events through it too.
pub(crate) mod row;
mod schema;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use arrow_array::RecordBatch;
use authtrail_model::time::{format_micros, parse_rfc3339};
use authtrail_model::Micros;
use authtrail_query::QueryEngine;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::cli::{escaped, Cli, ExportArgs, ExportFormat};
use crate::config::{lake_root, Config};

pub use schema::ocsf_schema;

/// Rows per Parquet row group: bounds what the writer buffers (a row group is held until
/// it is complete) while keeping groups large enough for readers to skip by statistics.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// `--from`/`--until`: an RFC 3339 time, as microseconds.
pub fn parse_time(text: &str) -> Result<Micros, String> {
    parse_rfc3339(text).ok_or_else(|| {
        format!("`{text}` is not an RFC 3339 time with offset (e.g. 2026-11-23T18:00:00Z)")
    })
}

/// The query that reads the events in `[from, until)`. The bounds are formatted from
/// parsed times, never copied from the command line.
fn events_query(from: Option<Micros>, until: Option<Micros>) -> String {
    let mut sql = format!("SELECT {} FROM events", row::columns().join(", "));
    let mut conditions = Vec::new();
    if let Some(from) = from {
        conditions.push(format!("time >= TIMESTAMP '{}'", format_micros(from)));
    }
    if let Some(until) = until {
        conditions.push(format!("time < TIMESTAMP '{}'", format_micros(until)));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql
}

/// Events exported per class, in [`ocsf::CLASSES`] order.
#[derive(Debug, Default)]
struct Counts([u64; ocsf::CLASSES.len()]);

impl Counts {
    fn add(&mut self, class_uid: u32) {
        if let Some(index) = ocsf::CLASSES.iter().position(|c| c.uid == class_uid) {
            self.0[index] += 1;
        }
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = ocsf::CLASSES
            .iter()
            .zip(self.0)
            .map(|(class, count)| format!("{} {count}", class.name))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Where mapped events go.
enum Sink<W: Write + Send> {
    Jsonl(W),
    Parquet(Box<ArrowWriter<W>>),
}

impl<W: Write + Send> Sink<W> {
    fn new(format: ExportFormat, out: W) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Jsonl => Sink::Jsonl(out),
            ExportFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                let writer = ArrowWriter::try_new(out, ocsf_schema(), Some(properties))
                    .context("starting the Parquet file")?;
                Sink::Parquet(Box::new(writer))
            }
        })
    }

    /// Maps and writes one batch of lake rows.
    fn write(&mut self, batch: &RecordBatch, counts: &mut Counts) -> anyhow::Result<()> {
        let columns = row::Columns::new(batch)?;
        let rows: Vec<row::Row<'_>> = (0..batch.num_rows()).map(|i| columns.row(i)).collect();
        let events = rows
            .iter()
            .map(ocsf::map)
            .collect::<anyhow::Result<Vec<_>>>()?;
        for event in &events {
            counts.add(event.class_uid);
        }
        match self {
            Sink::Jsonl(out) => {
                for event in &events {
                    serde_json::to_writer(&mut *out, event).context("writing JSON")?;
                    out.write_all(b"\n").context("writing JSON")?;
                }
            }
            Sink::Parquet(writer) => {
                let mut decoder = arrow_json::ReaderBuilder::new(ocsf_schema())
                    // An attribute the schema lacks is an error, not a silent drop.
                    .with_strict_mode(true)
                    .build_decoder()
                    .context("building the OCSF row encoder")?;
                decoder
                    .serialize(&events)
                    .context("encoding OCSF rows for Parquet")?;
                if let Some(ocsf) = decoder.flush().context("encoding OCSF rows")? {
                    writer.write(&ocsf).context("writing Parquet")?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Jsonl(mut out) => out.flush().context("writing JSON"),
            Sink::Parquet(writer) => {
                let mut out = writer.into_inner().context("finishing the Parquet file")?;
                out.flush().context("writing Parquet")
            }
        }
    }
}

/// Streams every event of the query to `sink`.
async fn export<W: Write + Send>(
    engine: &QueryEngine,
    sql: &str,
    mut sink: Sink<W>,
) -> anyhow::Result<Counts> {
    let mut stream = engine.stream(sql, None).await?;
    let mut counts = Counts::default();
    while let Some(batch) = stream.next().await {
        sink.write(&batch?, &mut counts)?;
    }
    sink.finish()?;
    Ok(counts)
}

/// `authtrail export --ocsf`: writes the events of the lake (or of `--from`/`--until`)
/// to `--out` and prints how many of each class went out.
pub fn run(cli: &Cli, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let (Some(from), Some(until)) = (args.from, args.until) {
        if from >= until {
            return Err(anyhow!("`--from` must be before `--until`"));
        }
    }
    // The engine adds the timeout to the clock; a timeout past the clock's range is a
    // mistake to report, not a panic.
    if tokio::time::Instant::now()
        .checked_add(args.timeout)
        .is_none()
    {
        return Err(anyhow!("`--timeout` is too large"));
    }
    config.query.timeout = args.timeout;
    let root = lake_root(cli, &config);
    let engine = QueryEngine::open(&root, config.query.clone())
        .with_context(|| format!("opening the lake at `{}`", root.display()))?;
    let sql = events_query(args.from, args.until);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let to_stdout = args.out == Path::new("-");
    let counts = if to_stdout {
        let sink = Sink::new(args.output_format, BufWriter::new(std::io::stdout()))?;
        runtime.block_on(export(&engine, &sql, sink))?
    } else {
        let path = &args.out;
        let file = File::create(path).with_context(|| format!("creating `{}`", path.display()))?;
        let result = Sink::new(args.output_format, BufWriter::new(file))
            .and_then(|sink| runtime.block_on(export(&engine, &sql, sink)));
        if result.is_err() {
            // A failed export leaves no half-written file that looks like a whole one.
            let _ = std::fs::remove_file(path);
        }
        result?
    };
    let destination = match to_stdout {
        true => "stdout".to_owned(),
        false => format!("`{}`", args.out.display()),
    };
    eprintln!(
        "{} OCSF {} events written to {} ({counts})",
        counts.total(),
        ocsf::OCSF_VERSION,
        escaped(&destination),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_written_from_parsed_times() {
        let from = parse_time("2026-11-23T18:00:00+01:00").unwrap();
        let until = parse_time("2026-11-23T18:30:00.5Z").unwrap();
        let sql = events_query(Some(from), Some(until));
        assert!(
            sql.ends_with(
                " FROM events WHERE time >= TIMESTAMP '2026-11-23T17:00:00Z' AND time < TIMESTAMP '2026-11-23T18:30:00.500Z'"
            ),
            "{sql}"
        );
        assert!(!events_query(None, None).contains("WHERE"));
        assert!(parse_time("2026-11-23' OR 1=1 --").is_err());
    }

    /// A lake row of `kind` with every field the contract has filled in.
    fn full_row(kind: &'static str) -> row::Row<'static> {
        row::Row {
            id: "e-1",
            time: 1_795_456_800_000_000,
            kind,
            principal: "user:alice",
            principal_type: Some("user"),
            service: Some("idp"),
            outcome: Some(if kind == "authz" { "allow" } else { "success" }),
            reason: Some("because"),
            source_ip: Some("203.0.113.7"),
            source_service: Some("web"),
            target_service: Some("payments"),
            resource: Some("/charges"),
            action: Some("POST"),
            token_id: Some("jti-1"),
            token_issuer: Some("https://idp.example.com"),
            token_audience: Some(vec!["payments"]),
            token_scopes: Some(vec!["payments:charge"]),
            required_scopes: Some(vec!["payments:charge"]),
            token_expires: Some(1_795_457_700_000_000),
            client_id: Some("web"),
            auth_method: Some("authorization_code"),
            mfa: Some(true),
            user_agent: Some("Mozilla/5.0"),
            session_id: Some("s-1"),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            attributes: vec![("tenant", Some("acme"))],
            ingest_topic: Some("auth-events"),
            ingest_time: Some(1_795_456_801_000_000),
        }
    }

    #[test]
    fn every_attribute_the_mapping_writes_is_in_the_parquet_schema() {
        let mut session_grant = full_row("authz");
        session_grant.resource = None;
        session_grant.action = None;
        let rows = [
            full_row("authn"),
            full_row("token_issue"),
            full_row("token_revoke"),
            full_row("authz"),
            session_grant,
        ];
        let events: Vec<_> = rows.iter().map(|row| ocsf::map(row).unwrap()).collect();
        // Strict mode: an attribute the schema lacks fails the encoding.
        let mut decoder = arrow_json::ReaderBuilder::new(ocsf_schema())
            .with_strict_mode(true)
            .build_decoder()
            .unwrap();
        decoder.serialize(&events).unwrap();
        let batch = decoder.flush().unwrap().unwrap();
        let classes: Vec<i32> = batch
            .column_by_name("class_uid")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(classes, [3002, 3002, 3002, 6003, 3003]);
    }
}
