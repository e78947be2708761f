//! `authtrail report trust|privilege`: the reports of `authtrail_query::reports` over the
//! lake, written to stdout.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use authtrail_query::reports::{self, ReportFormat, Window};

use crate::cli::{Cli, ReportArgs, ReportKind, ReportOutput};
use crate::config::Config;
use crate::query::open_engine;

pub fn run(cli: &Cli, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let report_config = config.reports();
    report_config.validate()?;
    let engine = open_engine(cli, &config)?;
    let until = match &args.until {
        None => authtrail_model::time::now_micros(),
        Some(text) => authtrail_model::time::parse_rfc3339(text)
            .with_context(|| format!("`--until {text}` is not an RFC 3339 time"))?,
    };
    let (name, since, service) = match &args.report {
        ReportKind::Trust { since, service } => ("trust", since, service.as_deref()),
        ReportKind::Privilege { since } => ("privilege", since, None),
    };
    let window = Window::before(until, reports::parse_since("since", since)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut out = std::io::stdout().lock();
    if args.explain {
        let plans = runtime.block_on(reports::explain(&engine, &report_config, name, window))?;
        for (query, plan) in plans {
            writeln!(out, "-- {name} report, query `{query}`\n{plan}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = runtime.block_on(async {
        match name {
            "trust" => reports::trust(&engine, &report_config, window, service).await,
            _ => reports::privilege(&engine, &report_config, window).await,
        }
    })?;
    let format = match args.format {
        ReportOutput::Table => ReportFormat::Table,
        ReportOutput::Json => ReportFormat::Json,
        ReportOutput::Csv => ReportFormat::Csv,
        ReportOutput::Markdown => ReportFormat::Markdown,
    };
    report.write(format, out)?;
    Ok(ExitCode::SUCCESS)
}
