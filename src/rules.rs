//! `authtrail rules`: check and test Sigma rule packs, and backtest them over the lake.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use authtrail_rules::{run_tests, Error, Pack};

use crate::cli::{escaped, Cli};

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
}

/// Runs one `authtrail rules` subcommand.
pub fn run(_cli: &Cli, args: &RulesArgs) -> Result<ExitCode> {
    match &args.command {
        RulesCommand::Check { paths } => check(paths),
        RulesCommand::Test { paths } => test(paths),
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
