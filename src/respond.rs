//! `authtrail alerts`: list outbox entries, retry dead letters, release held alerts. (The
//! responder is wired into ingest by `authtrail-pipeline`.)

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use authtrail_respond::outbox::requests::{self, Operation, Outcome, Request};
use authtrail_respond::{outbox_dir, Outbox, State};

use crate::cli::{AlertsAction, AlertsArgs, Cli, Target};
use crate::config::Config;

/// How long `retry`/`release` wait for a running authtrail to pick the request up.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

pub fn alerts(cli: &Cli, args: &AlertsArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let lake = crate::config::lake_root(cli, &config);
    let dir = outbox_dir(&lake);
    match &args.action {
        None => list(&dir, args.state.as_deref()),
        Some(AlertsAction::Retry(target)) => operate(&dir, Operation::Retry, target),
        Some(AlertsAction::Release(target)) => operate(&dir, Operation::Release, target),
    }
}

fn list(dir: &Path, state: Option<&str>) -> anyhow::Result<ExitCode> {
    let state = state
        .map(|name| {
            State::parse(name).with_context(|| {
                format!("unknown state `{name}` (pending, retrying, delivered, dead, held)")
            })
        })
        .transpose()?;
    let entries = Outbox::read_entries(dir)
        .with_context(|| format!("reading the outbox in `{}`", dir.display()))?;
    println!(
        "{:<64}  {:<16}  {:<9}  {:>8}  LAST ERROR",
        "ALERT ID", "WEBHOOK", "STATE", "ATTEMPTS"
    );
    for entry in entries
        .iter()
        .filter(|e| state.is_none_or(|s| e.state == s))
    {
        println!(
            "{:<64}  {:<16}  {:<9}  {:>8}  {}",
            entry.alert_id,
            entry.webhook,
            entry.state.as_str(),
            entry.attempts,
            entry.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn operate(dir: &Path, operation: Operation, target: &Target) -> anyhow::Result<ExitCode> {
    let request = Request {
        operation,
        alert_id: if target.all { None } else { target.id.clone() },
    };
    let verb = match operation {
        Operation::Retry => "retry",
        Operation::Release => "release",
    };
    match requests::submit(dir, &request, HANDOVER_WAIT)? {
        Outcome::Applied(n) => println!("authtrail: {n} entries moved to pending; they are delivered at the next start"),
        Outcome::HandedOver => println!("authtrail: {verb} handed to the running authtrail; see `authtrail alerts`"),
        Outcome::Queued(path) => println!(
            "authtrail: {verb} queued as `{}`; the running authtrail has not picked it up yet (it will, or the next start will)",
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
