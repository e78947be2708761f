//! `authtrail verify` and `authtrail maintain`.

use std::process::ExitCode;

use anyhow::Context;
use authtrail_model::time::now_micros;
use authtrail_pipeline::manifest_key;
use authtrail_store::{verify, Lake, PublicKey, VerifyOptions};

use crate::cli::{Cli, MaintainArgs, VerifyArgs};
use crate::config::{lake_location, Config};

pub fn verify_lake(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let public_key = match args.public_key.as_ref().or(config.lake.public_key.as_ref()) {
        Some(text) => Some(PublicKey::from_hex(text).context("reading the public key")?),
        None => manifest_key(config.lake.signing_key_file.as_deref())?.map(|key| key.public()),
    };
    let lake = lake_location(cli, &config)?;
    if !lake.exists()? {
        anyhow::bail!("no lake at `{lake}`");
    }
    let options = VerifyOptions {
        public_key,
        allow_unsigned: args.allow_unsigned,
    };
    let report = verify(lake.clone(), &options)
        .with_context(|| format!("verifying the lake at `{lake}`"))?;
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
    let location = lake_location(cli, &config)?;
    if !location.exists()? {
        anyhow::bail!("no lake at `{location}`");
    }
    let mut lake = Lake::open_at(location.clone(), config.store)?
        .with_manifest_key(manifest_key(config.lake.signing_key_file.as_deref())?);
    let report = lake
        .maintain(&config.lake.maintenance, now_micros())
        .with_context(|| format!("maintaining the lake at `{location}`"))?;
    println!(
        "retention: {} hour partitions ({} files) deleted; compaction: {} files written \
         in place of {}; {} files in no manifest record deleted",
        report.partitions_expired,
        report.files_expired,
        report.files_compacted,
        report.files_replaced,
        report.garbage_removed
    );
    Ok(ExitCode::SUCCESS)
}
