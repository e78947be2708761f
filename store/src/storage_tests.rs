//! The lake on a local disk and on an object store (a real S3-compatible server, moto):
//! every test body here runs against both.

use std::collections::BTreeMap;
use std::time::Duration;

use authtrail_model::{parse_event, ContractLimits, IngestMeta};
use authtrail_testkit::S3Server;

use super::*;
use crate::verify::{verify, Finding, VerifyOptions};

/// 2026-11-23T20:00Z.
const NOW: i64 = 1_795_464_000_000_000;
const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// A lake to test on, and what keeps it alive (its directory or its server).
struct Backend {
    name: &'static str,
    location: LakeLocation,
    _dir: Option<tempfile::TempDir>,
    _server: Option<S3Server>,
}

impl Backend {
    fn local() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Backend {
            name: "local",
            location: LakeLocation::Local(dir.path().to_path_buf()),
            _dir: Some(dir),
            _server: None,
        }
    }

    fn s3() -> Backend {
        let server = S3Server::start("lake");
        let options: BTreeMap<String, String> = server
            .options()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        let location = LakeLocation::parse(&server.url("prod/authtrail"), &options).unwrap();
        Backend {
            name: "s3",
            location,
            _dir: None,
            _server: Some(server),
        }
    }

    fn lake(&self) -> Lake {
        let key = ManifestKey::from_hex(KEY).unwrap();
        Lake::open_at(self.location.clone(), EncodeOptions::default())
            .unwrap()
            .with_manifest_key(Some(key))
    }

    fn verify(&self) -> Vec<Finding> {
        let options = VerifyOptions {
            public_key: Some(ManifestKey::from_hex(KEY).unwrap().public()),
            allow_unsigned: false,
        };
        verify(self.location.clone(), &options).unwrap().findings
    }

    fn storage(&self) -> Storage {
        Storage::new(&self.location)
    }
}

/// Runs `body` on a local lake, then on one in moto.
fn on_both(body: impl Fn(&Backend)) {
    for backend in [Backend::local(), Backend::s3()] {
        eprintln!("on the {} lake", backend.name);
        body(&backend);
    }
}

/// `offsets` of `auth-events` partition 1 as a segment, the events of even offsets in
/// hour 17 of 2026-11-23 and odd ones in hour 18 (or all on 2026-11-13 when `old`).
pub(crate) fn segment(offsets: std::ops::Range<i64>, old: bool) -> Segment {
    let mut builder = SegmentBuilder::new("auth-events", 1, 1024);
    for offset in offsets {
        let time = if old {
            "2026-11-13T05:00:00Z".to_owned()
        } else {
            format!("2026-11-23T{}:00:00Z", 17 + offset % 2)
        };
        let message = format!(
            r#"{{"id":"e-{offset}","time":"{time}","kind":"authn","principal":"user:a","outcome":"success"}}"#
        );
        let event = parse_event(message.as_bytes(), NOW, &ContractLimits::default()).unwrap();
        let meta = IngestMeta {
            topic: "auth-events",
            partition: 1,
            offset,
            ingest_time: NOW,
        };
        builder.push_event(&event, &meta);
    }
    builder.finish().unwrap().unwrap()
}

fn events_files(backend: &Backend) -> Vec<String> {
    let listed = backend.storage().list("events").unwrap();
    listed.into_iter().map(|listed| listed.path).collect()
}

#[test]
fn commits_are_read_back_resumed_and_verified() {
    on_both(|backend| {
        let mut lake = backend.lake();
        let mut log = lake.open_partition("auth-events", 1).unwrap();
        assert_eq!(log.next_offset(), None);
        lake.commit(&mut log, segment(0..10, false)).unwrap();
        lake.commit(&mut log, segment(10..20, false)).unwrap();
        lake.save_checkpoint("detect", b"state").unwrap();
        assert_eq!(events_files(backend).len(), 4, "two hours of two flushes");

        let mut reopened = backend.lake();
        let log = reopened.open_partition("auth-events", 1).unwrap();
        assert_eq!(log.next_offset(), Some(20));
        assert_eq!(
            reopened.load_checkpoint("detect").unwrap().as_deref(),
            Some(&b"state"[..])
        );
        assert_eq!(reopened.unused_partition("auth-events").unwrap(), 0);
        assert_eq!(backend.verify(), []);
        let report = verify(backend.location.clone(), &VerifyOptions::default()).unwrap();
        assert_eq!((report.logs, report.records, report.files), (1, 4, 4));
    });
}

#[test]
fn a_changed_file_is_found_by_verify() {
    on_both(|backend| {
        let mut lake = backend.lake();
        let mut log = lake.open_partition("auth-events", 1).unwrap();
        lake.commit(&mut log, segment(0..10, false)).unwrap();
        let victim = events_files(backend).remove(0);
        backend.storage().put(&victim, b"not the rows").unwrap();
        let findings = backend.verify();
        assert!(
            matches!(&findings[..], [Finding::Modified { path, .. }] if *path == victim),
            "{findings:?}"
        );
    });
}

#[test]
fn of_two_writers_of_one_partition_the_second_fails_cleanly() {
    on_both(|backend| {
        let mut first = backend.lake();
        let mut second = backend.lake();
        let mut first_log = first.open_partition("auth-events", 1).unwrap();
        let mut second_log = second.open_partition("auth-events", 1).unwrap();
        first.commit(&mut first_log, segment(0..10, false)).unwrap();

        let error = second
            .commit(&mut second_log, segment(0..12, false))
            .unwrap_err();
        assert!(
            matches!(error, Error::Conflict { seq: 0, .. }),
            "{}: {error}",
            backend.name
        );
        assert!(error.to_string().contains("another writer"), "{error}");
        // The loser wrote nothing: it lost on its first record, before any file.
        assert_eq!(events_files(backend).len(), 2);
        assert_eq!(backend.verify(), []);
        let log = backend.lake().open_partition("auth-events", 1).unwrap();
        assert_eq!(log.next_offset(), Some(10));
    });
}

#[test]
fn a_writer_that_lost_its_partition_leaves_garbage_that_verify_reports_and_maintain_removes() {
    on_both(|backend| {
        let mut zombie = backend.lake();
        let mut zombie_log = zombie.open_partition("auth-events", 1).unwrap();
        zombie
            .commit(&mut zombie_log, segment(0..10, false))
            .unwrap();
        // The zombie starts a flush (its pending record lands), then pauses...
        let late = segment(10..20, false);
        let planned: Vec<FileEntry> = late
            .batches
            .iter()
            .map(|(table, hour, _)| {
                FileEntry::planned(&data_file_path(*table, *hour, "auth-events", 1, 10, 19))
            })
            .collect();
        zombie_log
            .append(RecordState::Pending, 10, 19, planned)
            .unwrap();

        // ...while another process takes the partition over: its open rolls the pending
        // flush back, and it commits the range itself (one flush, another last offset).
        let mut owner = backend.lake();
        let mut owner_log = owner.open_partition("auth-events", 1).unwrap();
        assert_eq!(owner_log.next_offset(), Some(10));
        owner
            .commit(&mut owner_log, segment(10..25, false))
            .unwrap();

        // The zombie wakes up: its files land (on an object store a new name is created
        // without asking the log first; locally the rename would have asked, so the files
        // are put in place here as a store would), its committed record does not.
        let mut written = Vec::new();
        for (table, hour, batch) in &late.batches {
            let path = path_text(&data_file_path(*table, *hour, "auth-events", 1, 10, 19));
            let encoded = encode(*table, batch, &EncodeOptions::default()).unwrap();
            backend.storage().put(&path, &encoded.bytes).unwrap();
            written.push(FileEntry::planned(Path::new(&path)));
        }
        let error = zombie_log
            .append_committed(10, 19, written, Vec::new())
            .unwrap_err();
        assert!(matches!(error, Error::Conflict { seq: 3, .. }), "{error}");

        let garbage: Vec<String> = backend
            .verify()
            .into_iter()
            .map(|finding| match finding {
                Finding::Unexpected { path } => path,
                other => panic!("{}: {other}", backend.name),
            })
            .collect();
        assert_eq!(garbage.len(), 2, "{garbage:?}");
        assert!(garbage
            .iter()
            .all(|path| path.ends_with("auth-events-1-10-19.parquet")));

        // Young garbage stays (a writer may be about to commit that name again)...
        let config = MaintenanceConfig::default();
        let report = owner.maintain(&config, NOW).unwrap();
        assert_eq!(report.garbage_removed, 0);
        // ...old garbage goes.
        let now = authtrail_model::time::now_micros() + 2 * 3_600_000_000;
        let report = owner.maintain(&config, now).unwrap();
        assert_eq!(report.garbage_removed, 2, "{}", backend.name);
        assert_eq!(backend.verify(), []);
        let log = backend.lake().open_partition("auth-events", 1).unwrap();
        assert_eq!(log.next_offset(), Some(25));
    });
}

#[test]
fn a_writer_that_lost_its_partition_cannot_replace_the_new_owners_file() {
    on_both(|backend| {
        let mut zombie = backend.lake();
        let mut zombie_log = zombie.open_partition("auth-events", 1).unwrap();
        let late = segment(0..10, false);
        let planned: Vec<FileEntry> = late
            .batches
            .iter()
            .map(|(table, hour, _)| {
                FileEntry::planned(&data_file_path(*table, *hour, "auth-events", 1, 0, 9))
            })
            .collect();
        zombie_log
            .append(RecordState::Pending, 0, 9, planned)
            .unwrap();
        // The new owner rolls the zombie's flush back and commits the same range.
        let mut owner = backend.lake();
        let mut owner_log = owner.open_partition("auth-events", 1).unwrap();
        owner.commit(&mut owner_log, segment(0..10, false)).unwrap();

        let (table, hour, batch) = &late.batches[0];
        let path = data_file_path(*table, *hour, "auth-events", 1, 0, 9);
        let mut summary = CommitSummary {
            files: Vec::new(),
            rows: 0,
            bytes: 0,
        };
        let error = zombie
            .write_file(&zombie_log, &path, *table, batch, &mut summary)
            .unwrap_err();
        assert!(
            matches!(error, Error::Conflict { .. }),
            "{}: {error}",
            backend.name
        );
        assert_eq!(backend.verify(), [], "{}", backend.name);
    });
}

#[test]
fn retention_and_compaction_keep_the_lake_verified() {
    on_both(|backend| {
        let mut lake = backend.lake();
        let mut log = lake.open_partition("auth-events", 1).unwrap();
        for flush in 0..4 {
            lake.commit(&mut log, segment(flush * 10..flush * 10 + 10, false))
                .unwrap();
        }
        lake.commit(&mut log, segment(40..45, true)).unwrap();
        let config = MaintenanceConfig {
            retention_days: RetentionDays {
                events: Some(7),
                ..RetentionDays::default()
            },
            compact_min_files: 3,
            compact_after: Duration::from_secs(3600),
            interval: Duration::ZERO,
            garbage_after: Duration::from_secs(3600),
        };
        let report = lake.maintain(&config, NOW).unwrap();
        assert_eq!(
            (report.partitions_expired, report.files_expired),
            (1, 1),
            "{}",
            backend.name
        );
        assert_eq!((report.files_compacted, report.files_replaced), (2, 8));
        let mut files = events_files(backend);
        files.sort();
        assert_eq!(
            files,
            [
                "events/date=2026-11-23/hour=17/auth-events-1-0-39.parquet",
                "events/date=2026-11-23/hour=18/auth-events-1-0-39.parquet",
            ]
        );
        assert_eq!(backend.verify(), []);
    });
}

#[test]
fn moto_creates_a_name_only_once() {
    let backend = Backend::s3();
    let storage = backend.storage();
    let remote = storage.remote().unwrap();
    assert!(remote
        .create("_manifest/x/00000000000000000000.json", b"first")
        .unwrap());
    assert!(!remote
        .create("_manifest/x/00000000000000000000.json", b"second")
        .unwrap());
    let kept = remote.get("_manifest/x/00000000000000000000.json").unwrap();
    assert_eq!(kept.as_deref(), Some(&b"first"[..]));
}
