//! `authtrail rules`: check and test Sigma rule packs, and backtest them over the lake.

mod backtest;
pub mod reload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use authtrail_detect::Detectors;
use authtrail_model::time::format_micros;
use authtrail_model::Micros;
use authtrail_query::QueryEngine;
use authtrail_rules::{run_tests, Error, Pack, Settings};

use crate::cli::{escaped, Cli};
use crate::config::{lake_root, Config};

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Check rule files (YAML, Sigma): syntax, fields against the event contract,
    /// references between rules. Prints every problem with its file and line.
    Check {
        /// Rule files or directories (searched recursively for *.yml and *.yaml).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run the test cases beside each rule file (`x.yml` → `x.tests.yml`); prints pass
    /// or fail per case and exits non-zero on any failure.
    Test {
        /// Rule files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Replay the lake's events of a time range, in event-time order, through a rule
    /// pack; print per rule the alerts it would have raised (per day, the first ones, the
    /// principals most often hit). Sends nothing.
    Backtest(BacktestArgs),
}

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Rule files or directories.
    #[arg(long, required = true, value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Replay events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::export::parse_time)]
    pub from: Micros,

    /// Replay events before this time (RFC 3339), exclusive.
    #[arg(long, value_name = "TIME", value_parser = crate::export::parse_time)]
    pub until: Micros,

    /// Configuration file (TOML), for `lake.path`, `[query]` and `[detect]`'s
    /// `allowed_lateness` and `max_keys`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Alerts listed per rule (the first ones in event time).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub first: usize,

    /// Principals listed per rule (the most often hit).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,

    /// Also run the built-in detectors (as `[detect]` of `--config` enables them) on the
    /// same events, as the detection stage does: their alerts are reported beside the
    /// rules', and the rules judge lateness by the detectors' clock.
    #[arg(long)]
    pub with_builtins: bool,
}

/// Runs one `authtrail rules` subcommand.
pub fn run(cli: &Cli, args: &RulesArgs) -> Result<ExitCode> {
    match &args.command {
        RulesCommand::Check { paths } => check(paths),
        RulesCommand::Test { paths } => test(paths),
        RulesCommand::Backtest(args) => backtest(cli, args),
    }
}

/// Loads the pack, or prints its problems and gives the exit code to end with.
fn load(paths: &[PathBuf]) -> Result<Result<Pack, ExitCode>> {
    match Pack::load(paths) {
        Ok(pack) => Ok(Ok(pack)),
        Err(Error::Invalid(problems)) => {
            for problem in &problems {
                println!("{}", escaped(&problem.to_string()));
            }
            println!("{} problem(s)", problems.len());
            Ok(Err(ExitCode::FAILURE))
        }
        Err(other) => Err(other.into()),
    }
}

fn check(paths: &[PathBuf]) -> Result<ExitCode> {
    let pack = match load(paths)? {
        Ok(pack) => pack,
        Err(code) => return Ok(code),
    };
    println!(
        "ok: {} detection and {} correlation rule(s) in {} file(s)",
        pack.detections.len(),
        pack.correlations.len(),
        pack.files.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn test(paths: &[PathBuf]) -> Result<ExitCode> {
    if let Err(code) = load(paths)? {
        return Ok(code);
    }
    let results = run_tests(paths)?;
    let failed = results.iter().filter(|result| !result.passed).count();
    for result in &results {
        let verdict = if result.passed { "pass" } else { "FAIL" };
        let line = format!(
            "{verdict} {}: {} ({})",
            result.file.display(),
            result.name,
            result.detail
        );
        println!("{}", escaped(&line));
    }
    println!(
        "{} case(s), {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long one hour of the range may take to read (the query engine's deadline covers a
/// whole stream; its default is meant for interactive queries).
const HOUR_TIMEOUT: Duration = Duration::from_secs(3_600);

fn backtest(cli: &Cli, args: &BacktestArgs) -> Result<ExitCode> {
    if args.from >= args.until {
        return Err(anyhow!("`--from` must be before `--until`"));
    }
    let pack = match load(&args.rules)? {
        Ok(pack) => Arc::new(pack),
        Err(code) => return Ok(code),
    };
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.query.timeout = HOUR_TIMEOUT;
    let settings = Settings {
        allowed_lateness: config.detect.allowed_lateness,
        max_keys: config.detect.max_keys,
        ..Settings::default()
    };
    let root = lake_root(cli, &config);
    let engine = QueryEngine::open(&root, config.query.clone())
        .with_context(|| format!("opening the lake at `{}`", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let builtins = if args.with_builtins {
        Some(Detectors::new(&config.detect).context("starting the built-in detectors")?)
    } else {
        None
    };
    let mut detectors = alerting_rules(&pack);
    let started = Instant::now();
    let report = runtime.block_on(backtest::backtest(
        &engine, pack, builtins, settings, args.from, args.until, args.first,
    ))?;
    let elapsed = started.elapsed();
    // Built-in detectors are listed when they raised something.
    detectors.extend(report.rules.keys().cloned());
    detectors.sort();
    detectors.dedup();
    print!("{}", escaped_lines(&render(&report, &detectors, args.top)));
    println!(
        "{} events replayed from {} until {} ({} rows skipped) in {:.1} s ({:.0} events/s); nothing was sent",
        report.events,
        format_micros(args.from),
        format_micros(args.until),
        report.skipped,
        elapsed.as_secs_f64(),
        report.events as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// The detector names of the rules that raise alerts, so rules that raised none are
/// reported too.
fn alerting_rules(pack: &Pack) -> Vec<String> {
    let detections = pack
        .detections
        .iter()
        .zip(&pack.generates)
        .filter(|(_, generates)| **generates)
        .map(|(rule, _)| rule.meta.detector.clone());
    let correlations = pack
        .correlations
        .iter()
        .map(|rule| rule.meta.detector.clone());
    let mut names: Vec<String> = detections.chain(correlations).collect();
    names.sort();
    names
}

fn render(report: &backtest::Report, detectors: &[String], top: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for detector in detectors {
        let Some(rule) = report.rules.get(detector) else {
            let _ = writeln!(out, "{detector}: 0 alerts");
            continue;
        };
        let _ = writeln!(out, "{detector}: {} alert(s)", rule.alerts);
        let days: Vec<String> = rule
            .per_day
            .iter()
            .map(|(day, count)| format!("{} {count}", &format_micros(*day)[..10]))
            .collect();
        let _ = writeln!(out, "  per day: {}", days.join(", "));
        for alert in &rule.first {
            let _ = writeln!(
                out,
                "  {} {} {} [{}] {}",
                format_micros(alert.time),
                alert.severity,
                alert.principal,
                alert.id,
                alert.summary
            );
        }
        let mut principals: Vec<(&String, &u64)> = rule.principals.iter().collect();
        principals.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let principals: Vec<String> = principals
            .into_iter()
            .take(top)
            .map(|(principal, count)| format!("{principal} {count}"))
            .collect();
        let _ = writeln!(out, "  top principals: {}", principals.join(", "));
    }
    out
}

/// Every line of `text` with its control characters escaped (lake values are reporters'
/// text).
fn escaped_lines(text: &str) -> String {
    text.lines().map(|line| escaped(line) + "\n").collect()
}
