//! `authtrail verify` and `authtrail maintain`, and the manifest signing key.

use std::process::ExitCode;

use anyhow::Context;
use authtrail_model::time::now_micros;
use authtrail_store::{verify, Lake, ManifestKey, PublicKey, VerifyOptions};

use crate::cli::{Cli, MaintainArgs, VerifyArgs};
use crate::config::Config;
use crate::ingest::lake_root;

/// The environment variable holding the manifest signing key itself (64 hex characters).
pub const SIGNING_KEY_ENV: &str = "AUTHTRAIL_SIGNING_KEY";

/// The manifest signing key: `AUTHTRAIL_SIGNING_KEY`, else `lake.signing_key_file`.
pub fn manifest_key(config: &Config) -> anyhow::Result<Option<ManifestKey>> {
    if let Some(text) = std::env::var_os(SIGNING_KEY_ENV) {
        let text = text
            .into_string()
            .map_err(|_| anyhow::anyhow!("`{SIGNING_KEY_ENV}` is not valid UTF-8"))?;
        return ManifestKey::from_hex(&text)
            .map(Some)
            .with_context(|| format!("reading `{SIGNING_KEY_ENV}`"));
    }
    match &config.lake.signing_key_file {
        Some(path) => Ok(Some(ManifestKey::from_file(path)?)),
        None => Ok(None),
    }
}

pub fn verify_lake(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let public_key = match args.public_key.as_ref().or(config.lake.public_key.as_ref()) {
        Some(text) => Some(PublicKey::from_hex(text).context("reading the public key")?),
        None => manifest_key(&config)?.map(|key| key.public()),
    };
    let root = lake_root(cli, &config);
    if !root.is_dir() {
        anyhow::bail!("no lake at `{}`", root.display());
    }
    let options = VerifyOptions {
        public_key,
        allow_unsigned: args.allow_unsigned,
    };
    let report = verify(&root, &options)
        .with_context(|| format!("verifying the lake at `{}`", root.display()))?;
    for finding in &report.findings {
        println!("{finding}");
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let signatures = match &options.public_key {
        Some(key) => format!("signatures checked with {}", key.to_hex()),
        None => "signatures not checked".to_owned(),
    };
    println!(
        "{} findings; {} manifest logs, {} records, {} files hashed; {signatures}",
        report.findings.len(),
        report.logs,
        report.records,
        report.files
    );
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn maintain(cli: &Cli, args: &MaintainArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let root = lake_root(cli, &config);
    if !root.is_dir() {
        anyhow::bail!("no lake at `{}`", root.display());
    }
    let mut lake = Lake::open(&root, config.store)?.with_manifest_key(manifest_key(&config)?);
    let report = lake
        .maintain(&config.lake.maintenance, now_micros())
        .with_context(|| format!("maintaining the lake at `{}`", root.display()))?;
    println!(
        "retention: {} hour partitions ({} files) deleted; compaction: {} files written \
         in place of {}",
        report.partitions_expired,
        report.files_expired,
        report.files_compacted,
        report.files_replaced
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs retention and compaction every `lake.maintenance.interval` on its own thread (off
/// with `0s`), until `stop` is set. A run that fails (another `authtrail maintain` holds
/// the lock, a full disk) is logged and tried again next interval.
pub fn spawn_maintenance(
    mut lake: Lake,
    config: &Config,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let maintenance = config.lake.maintenance.clone();
    if maintenance.interval.is_zero() {
        return None;
    }
    let thread = std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            let tick = std::time::Duration::from_millis(200);
            let mut next = std::time::Instant::now() + maintenance.interval;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::time::Instant::now() < next {
                    std::thread::sleep(tick);
                    continue;
                }
                match lake.maintain(&maintenance, now_micros()) {
                    Ok(report) => tracing::info!(?report, "lake maintenance done"),
                    Err(error) => tracing::warn!(%error, "lake maintenance failed"),
                }
                next = std::time::Instant::now() + maintenance.interval;
            }
        });
    match thread {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "could not start the maintenance thread");
            None
        }
    }
}
