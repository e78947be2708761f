//! `authtrail query` and `authtrail serve`: the query engine over the lake, from the
//! command line or over HTTP.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use authtrail_query::api::{self, AppState};
use authtrail_query::output::{export, Format};
use authtrail_query::QueryEngine;

use crate::cli::{Cli, OutputFormat, QueryArgs, ServeArgs};
use crate::config::lake_location;
use crate::config::Config;

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The query engine over the lake of `--lake` / `lake.path`: a directory or an object store.
pub fn open_engine(cli: &Cli, config: &Config) -> anyhow::Result<QueryEngine> {
    let lake = lake_location(cli, config)?;
    QueryEngine::open_at(&lake, config.query.clone())
        .with_context(|| format!("opening the lake at `{lake}`"))
}

pub fn run(cli: &Cli, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(timeout) = args.timeout {
        config.query.timeout = timeout;
    }
    let engine = open_engine(cli, &config)?;
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
        OutputFormat::Jsonl => Format::Jsonl,
        OutputFormat::Parquet => Format::Parquet,
    };
    let runtime = runtime()?;
    match &args.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating `{}`", path.display()))?;
            let result = runtime.block_on(export(
                &engine,
                &args.sql,
                args.limit,
                format,
                BufWriter::new(file),
            ));
            if result.is_err() {
                // A failed query leaves no half-written file that looks like a result.
                let _ = std::fs::remove_file(path);
            }
            let rows = result?;
            eprintln!("{rows} rows written to `{}`", path.display());
        }
        None => {
            let stdout = std::io::stdout();
            runtime.block_on(export(
                &engine,
                &args.sql,
                args.limit,
                format,
                BufWriter::new(stdout),
            ))?;
            std::io::stdout().flush().ok();
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(listen) = &args.listen {
        config.api.listen = listen.clone();
    }
    let keys = config.api.load_keys()?;
    let engine = Arc::new(open_engine(cli, &config)?);
    let state = AppState::new(engine, keys).with_reports(config.reports());
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down the HTTP API");
        };
        api::serve(&config.api, state, shutdown)
            .await
            .context("serving the HTTP API")
    })?;
    Ok(ExitCode::SUCCESS)
}
