//! `authtrail verify`: checks the lake's files against its manifests.
//!
//! Every log under `_manifest/` is read front to back. Each record must follow its
//! predecessor (`seq` one higher, `prev` the sha256 of the previous line) and, given a
//! public key, carry a valid signature. Replaying the records yields the files the lake
//! should hold, with their digests: a committed record adds its files (a newer record for
//! the same path supersedes an older one), an aborted record takes its pending files out
//! again, and a record's `removed` list (retention, compaction) takes those out. The
//! maintenance log is replayed last, since it only removes or replaces files the other
//! logs committed earlier. Then every file of every table is hashed and compared.
//!
//! A committed record's `lost` ranges are findings too: the files are intact, but the lake
//! does not hold everything its source partition had.

use std::collections::BTreeMap;
use std::fmt;

use authtrail_model::lake::{Table, ALERTS_MANIFEST, MAINTENANCE_MANIFEST, MANIFEST_DIR};
use authtrail_model::Micros;
use sha2::{Digest, Sha256};

use crate::manifest::{parse_line, FileEntry, RecordState};
use crate::records;
use crate::sign::PublicKey;
use crate::storage::Storage;
use crate::{LakeLocation, Result};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check every record's signature with this key; unsigned records are findings.
    pub public_key: Option<PublicKey>,
    /// With a key: accept unsigned records (a lake that turned signing on later).
    pub allow_unsigned: bool,
}

/// One thing wrong with the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A file whose content differs from its manifest record.
    Modified {
        path: String,
        expected: String,
        actual: String,
    },
    /// A file the manifest holds that is not on disk.
    Missing { path: String },
    /// A file on disk that no manifest record holds.
    Unexpected { path: String },
    /// A record that does not follow its predecessor, or cannot be read.
    ChainBroken {
        log: String,
        line: usize,
        message: String,
    },
    /// A record whose signature does not verify with the given key.
    BadSignature { log: String, line: usize },
    /// A record without a signature, while a key was given.
    Unsigned { log: String, line: usize },
    /// Offsets of a source partition the lake will never hold: the source had deleted
    /// them (retention, a truncated log) before authtrail read them.
    Lost {
        log: String,
        line: usize,
        source: String,
        partition: i32,
        first_offset: i64,
        last_offset: i64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Modified {
                path,
                expected,
                actual,
            } => write!(
                f,
                "modified: `{path}` has sha256 {actual}, the manifest says {expected}"
            ),
            Finding::Missing { path } => write!(f, "missing: `{path}` is in the manifest"),
            Finding::Unexpected { path } => write!(f, "unexpected: `{path}` is in no manifest"),
            Finding::ChainBroken { log, line, message } => {
                write!(f, "chain broken: `{log}` line {line}: {message}")
            }
            Finding::BadSignature { log, line } => {
                write!(f, "bad signature: `{log}` line {line}")
            }
            Finding::Unsigned { log, line } => write!(f, "unsigned: `{log}` line {line}"),
            Finding::Lost {
                log,
                line,
                source,
                partition,
                first_offset,
                last_offset,
            } => write!(
                f,
                "lost: `{source}` partition {partition} offsets {first_offset} to {last_offset} \
                 ({} messages) were deleted from the source before authtrail read them \
                 (`{log}` line {line})",
                last_offset - first_offset + 1
            ),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Manifest logs read.
    pub logs: usize,
    /// Records read.
    pub records: usize,
    /// Data files hashed.
    pub files: usize,
    /// Everything wrong; empty when the lake is intact.
    pub findings: Vec<Finding>,
    /// Observations that are not findings (a crash's torn line, an unchecked signature).
    pub notes: Vec<String>,
}

/// What the manifests say about one path.
enum Expect {
    File(FileEntry),
    /// Named by a trailing pending record: a crash (or a writer right now) left it in any
    /// state; the next open rolls it back or it gets committed.
    InFlight,
}

/// Checks every file of the lake (a local directory or an object store's prefix) against
/// the manifests and their chain.
///
/// A lake being written meanwhile may change between reading the logs and hashing the
/// files; a file finding is therefore checked again against the logs as they are after the
/// walk, and dropped if they now account for it (a flush or maintenance step in between).
pub fn verify(lake: impl Into<LakeLocation>, options: &VerifyOptions) -> Result<VerifyReport> {
    let storage = Storage::new(&lake.into());
    let (logs, mut expected, mut report) = read_logs(&storage, options)?;
    for table in Table::ALL {
        check_files(&storage, table, &mut expected, &mut report)?;
    }
    for (path, expect) in expected {
        if let Expect::File(_) = expect {
            report.findings.push(Finding::Missing { path });
        }
    }
    if report.findings.iter().any(Finding::is_about_a_file) {
        let (_, now_expected, _) = read_logs(&storage, options)?;
        let mut kept = Vec::with_capacity(report.findings.len());
        for finding in std::mem::take(&mut report.findings) {
            if !accounted_for(&storage, &finding, &now_expected)? {
                kept.push(finding);
            }
        }
        report.findings = kept;
    }
    if report
        .findings
        .iter()
        .any(|finding| matches!(finding, Finding::Lost { .. }))
    {
        report.notes.push(
            "`lost` findings are messages the broker deleted before authtrail read them: \
             they cannot be recovered from the lake, and as part of the hash chain they are \
             reported by every later verify"
                .to_owned(),
        );
    }
    if !has_alerts_log(&logs)
        && report
            .findings
            .iter()
            .any(|finding| matches!(finding, Finding::Unexpected { path } if path.starts_with("alerts/")))
    {
        report.notes.push(
            "the lake has no alerts manifest: alerts files written before version 0.2 \
             recorded them are reported as unexpected"
                .to_owned(),
        );
    }
    Ok(report)
}

/// The files of the lake's tables that no manifest record accounts for (a writer that
/// lost its partition, a flush a crash cut short before its pending record was rolled
/// back): what `maintain` deletes. Listed before the logs are read, so a file a live
/// writer is adding (named by its pending record first) is never among them. Without an
/// alerts manifest (a lake older than 0.2) the alerts files are left alone.
///
/// Only files last written before `written_before` count: a name a writer re-uses for a
/// new flush (the same offset range a lost writer left behind) is written again and so is
/// young, never taken for garbage while that writer is between its records.
pub(crate) fn garbage(storage: &Storage, written_before: Micros) -> Result<Vec<String>> {
    let mut listed = Vec::new();
    for table in Table::ALL {
        listed.extend(storage.list(table.as_str())?);
    }
    let (logs, expected, _) = read_logs(storage, &VerifyOptions::default())?;
    let alerts_recorded = has_alerts_log(&logs);
    Ok(listed
        .into_iter()
        .filter(|listed| listed.modified < written_before)
        .map(|listed| listed.path)
        .filter(|path| alerts_recorded || !path.starts_with("alerts/"))
        .filter(|path| {
            let base = path.strip_suffix(".tmp").unwrap_or(path);
            !expected.contains_key(base)
        })
        .collect())
}

fn has_alerts_log(logs: &[String]) -> bool {
    logs.iter().any(|log| log.ends_with(ALERTS_MANIFEST))
}

type Logs = (Vec<String>, BTreeMap<String, Expect>, VerifyReport);

/// Replays every manifest log: the files the lake should hold, and the chain's findings.
fn read_logs(storage: &Storage, options: &VerifyOptions) -> Result<Logs> {
    let mut report = VerifyReport::default();
    let mut expected = BTreeMap::new();
    let mut logs = records::list_logs(storage, MANIFEST_DIR)?;
    // The maintenance log last: its removals apply to files the other logs committed.
    logs.sort_by_key(|log| (log.ends_with(MAINTENANCE_MANIFEST), log.clone()));
    for log in &logs {
        replay_log(storage, log, options, &mut expected, &mut report)?;
    }
    Ok((logs, expected, report))
}

impl Finding {
    fn is_about_a_file(&self) -> bool {
        matches!(
            self,
            Finding::Modified { .. } | Finding::Missing { .. } | Finding::Unexpected { .. }
        )
    }
}

/// Whether the logs as they are now explain a file finding of the walk.
fn accounted_for(
    storage: &Storage,
    finding: &Finding,
    expected: &BTreeMap<String, Expect>,
) -> Result<bool> {
    let path = match finding {
        Finding::Modified { path, .. } | Finding::Unexpected { path } => path,
        Finding::Missing { path } => {
            return Ok(!matches!(expected.get(path), Some(Expect::File(_))));
        }
        _ => return Ok(false),
    };
    let base = path.strip_suffix(".tmp").unwrap_or(path);
    Ok(match expected.get(base) {
        Some(Expect::InFlight) => true,
        Some(Expect::File(entry)) if base == path => storage
            .sha256(path)?
            .is_some_and(|actual| entry.sha256.as_deref() == Some(actual.as_str())),
        // Deleted since the walk (retention, compaction) and no longer expected.
        None => !storage.exists(path)?,
        _ => false,
    })
}

fn replay_log(
    storage: &Storage,
    log: &str,
    options: &VerifyOptions,
    expected: &mut BTreeMap<String, Expect>,
    report: &mut VerifyReport,
) -> Result<()> {
    let name = log.rsplit('/').next().unwrap_or(log).to_owned();
    let text = records::read_all(storage, log)?;
    if text.torn {
        report.notes.push(format!(
            "`{name}` ends in a torn line (a crash mid-append); the next open drops it"
        ));
    }
    report.logs += 1;
    let mut prev = String::new();
    let mut next_seq = 0;
    let mut pending: Vec<String> = Vec::new();
    let mut unchecked_signatures = 0;
    for (index, line) in text.lines.iter().enumerate() {
        report.records += 1;
        let broken = |message: String| Finding::ChainBroken {
            log: name.clone(),
            line: index + 1,
            message,
        };
        let record = match parse_line(log, index, line) {
            Ok(record) => record,
            Err(error) => {
                report
                    .findings
                    .push(broken(format!("unreadable record: {error}")));
                prev = hex::encode(Sha256::digest(line.as_bytes()));
                continue;
            }
        };
        if record.seq != next_seq {
            report.findings.push(broken(format!(
                "`seq` is {}, expected {next_seq}",
                record.seq
            )));
        }
        if record.prev != prev {
            report.findings.push(broken(
                "`prev` is not the hash of the previous record".to_owned(),
            ));
        }
        next_seq = record.seq + 1;
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        match (&options.public_key, &record.sig) {
            (Some(key), Some(sig)) if !key.verifies(&record.signed_bytes(), sig) => {
                report.findings.push(Finding::BadSignature {
                    log: name.clone(),
                    line: index + 1,
                });
            }
            (Some(_), None) if !options.allow_unsigned => {
                report.findings.push(Finding::Unsigned {
                    log: name.clone(),
                    line: index + 1,
                });
            }
            (None, Some(_)) => unchecked_signatures += 1,
            _ => {}
        }
        match record.state {
            RecordState::Pending => {
                pending = record.files.iter().map(|file| file.path.clone()).collect();
            }
            RecordState::Committed => {
                pending.clear();
                for lost in &record.lost {
                    report.findings.push(Finding::Lost {
                        log: name.clone(),
                        line: index + 1,
                        source: record.source.clone(),
                        partition: record.partition,
                        first_offset: lost.first_offset,
                        last_offset: lost.last_offset,
                    });
                }
                for file in record.files {
                    expected.insert(file.path.clone(), Expect::File(file));
                }
            }
            RecordState::Aborted => {
                pending.clear();
                for file in &record.files {
                    expected.remove(&file.path);
                }
            }
            RecordState::Removed => pending.clear(),
        }
        for path in &record.removed {
            expected.remove(path);
        }
    }
    for path in pending {
        expected.insert(path, Expect::InFlight);
    }
    if unchecked_signatures > 0 {
        report.notes.push(format!(
            "`{name}`: {unchecked_signatures} signed records not checked (no public key given)"
        ));
    }
    Ok(())
}

/// Hashes every file of `table` and compares it with what the manifests expect.
fn check_files(
    storage: &Storage,
    table: Table,
    expected: &mut BTreeMap<String, Expect>,
    report: &mut VerifyReport,
) -> Result<()> {
    for listed in storage.list(table.as_str())? {
        let relative = listed.path;
        let base = relative.strip_suffix(".tmp").unwrap_or(&relative);
        match expected.get(base) {
            Some(Expect::InFlight) => {}
            Some(Expect::File(entry)) if base == relative => {
                report.files += 1;
                // Gone between the listing and the read: the second look decides.
                let actual = storage.sha256(&relative)?.unwrap_or_default();
                if entry.sha256.as_deref() != Some(actual.as_str()) {
                    report.findings.push(Finding::Modified {
                        path: relative.clone(),
                        expected: entry.sha256.clone().unwrap_or_default(),
                        actual,
                    });
                }
                expected.remove(&relative);
            }
            _ => report.findings.push(Finding::Unexpected { path: relative }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_look_drops_findings_the_logs_now_explain() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("landed.parquet"), b"new").unwrap();
        std::fs::write(root.join("planted.parquet"), b"x").unwrap();
        let storage = Storage::new(&LakeLocation::from(root));
        let root = &storage;
        let mut now = BTreeMap::new();
        // Written and committed while the walk ran.
        let digest = hex::encode(Sha256::digest(b"new"));
        now.insert(
            "landed.parquet".to_owned(),
            Expect::File(FileEntry {
                path: "landed.parquet".into(),
                rows: None,
                bytes: None,
                sha256: Some(digest),
                time_range: None,
            }),
        );
        let unexpected = |path: &str| Finding::Unexpected { path: path.into() };
        assert!(accounted_for(root, &unexpected("landed.parquet"), &now).unwrap());
        assert!(!accounted_for(root, &unexpected("planted.parquet"), &now).unwrap());
        // Removed by maintenance while the walk ran: no longer expected, so not missing.
        let missing = Finding::Missing {
            path: "expired.parquet".into(),
        };
        assert!(accounted_for(root, &missing, &now).unwrap());
        let still_missing = Finding::Missing {
            path: "landed.parquet".into(),
        };
        assert!(!accounted_for(root, &still_missing, &now).unwrap());
    }
}
