//! Shared helpers of the end-to-end tests: a real broker process (tansu), the real
//! `authtrail` binary, a real Kafka client (confluent-kafka from PyPI) and independent
//! readers of the lake (the parquet crate here, DuckDB through Python).
//!
//! The tools are installed by `scripts/install-test-deps.sh`; a missing tool fails the
//! test with instructions rather than skipping it.

#![allow(dead_code)]

pub mod run;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").expect("HOME is set"))
}

fn tool(variable: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(variable).map_or(default, PathBuf::from);
    assert!(
        path.exists(),
        "`{}` is missing: run scripts/install-test-deps.sh (or set {variable})",
        path.display()
    );
    path
}

/// A file of this checkout, by its path relative to the crate. Read at run time: a test
/// binary built in another clone sharing the target directory (cargo reuses it when the
/// sources are older than it) would otherwise look in that clone.
pub fn repo_file(relative: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join(relative)
}

/// The Python interpreter that has confluent-kafka and duckdb.
pub fn python() -> PathBuf {
    tool(
        "AUTHTRAIL_PYTHON",
        home().join(".cache/authtrail-venv/bin/python"),
    )
}

fn tansu() -> PathBuf {
    tool(
        "AUTHTRAIL_TANSU",
        home().join(".cache/authtrail-tools/bin/tansu"),
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Process {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Sends a signal (by number) to the process.
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.name);
        authtrail_testkit::wait_until(&what, timeout, || {
            self.child
                .try_wait()
                .unwrap()
                .ok_or_else(|| "still running".to_owned())
        })
    }
}

/// A tansu broker on a free local port with in-memory storage.
pub struct Broker {
    pub address: String,
    _process: Option<Process>,
}

impl Broker {
    pub fn start(log_dir: &Path) -> Broker {
        let port = free_port();
        let process = spawn_tansu(log_dir, port, "memory://tansu/", "tansu.log");
        Broker {
            address: format!("127.0.0.1:{port}"),
            _process: Some(process),
        }
    }

    /// A broker someone else runs (authtrail's embedded one).
    pub fn existing(address: &str) -> Broker {
        Broker {
            address: address.to_owned(),
            _process: None,
        }
    }

    /// Produces every line of `file` with confluent-kafka, keyed by principal, lz4-compressed.
    pub fn produce(&self, topic: &str, file: &Path, create_partitions: Option<i32>) {
        self.produce_compressed(topic, file, create_partitions, "lz4");
    }

    /// Like [`produce`](Self::produce), with the given compression codec.
    pub fn produce_compressed(
        &self,
        topic: &str,
        file: &Path,
        create_partitions: Option<i32>,
        codec: &str,
    ) {
        let mut command = Command::new(python());
        command
            .arg(repo_file("tests/e2e/kafka_produce.py"))
            .args([&self.address, topic])
            .arg(file);
        if let Some(partitions) = create_partitions {
            command.args(["--create-partitions", &partitions.to_string()]);
        }
        command.args(["--compression", codec]);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "producer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A tansu broker with durable storage (`sqlite://tansu.db` in `dir`) on a fixed port, so
/// it can be stopped and started again with its topics, messages and committed offsets.
pub fn start_durable_broker(dir: &Path, port: u16, run: &str) -> Process {
    spawn_tansu(dir, port, "sqlite://tansu.db", &format!("tansu-{run}.log"))
}

/// tansu on `port` with `storage` (relative paths in `dir`), logging to `dir/log`; returns
/// once it listens.
fn spawn_tansu(dir: &Path, port: u16, storage: &str, log: &str) -> Process {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join(log)).unwrap();
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start tansu (scripts/install-test-deps.sh)");
    authtrail_testkit::wait_for_listener(("127.0.0.1", port), Duration::from_secs(30));
    Process {
        child,
        name: "tansu",
    }
}

/// Starts the real `authtrail` binary with `args`, logging to `log_dir/<name>.log`.
pub fn authtrail(log_dir: &Path, name: &'static str, args: &[&str]) -> Process {
    authtrail_env(log_dir, name, args, &[])
}

/// Like [`authtrail`], with extra environment variables.
pub fn authtrail_env(
    log_dir: &Path,
    name: &'static str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Process {
    let stdout = std::fs::File::create(log_dir.join(format!("{name}.out"))).unwrap();
    let stderr = std::fs::File::create(log_dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start authtrail");
    Process { child, name }
}

/// Every `.parquet` file below `dir`.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    authtrail_testkit::parquet_files(dir)
}

/// Every id in `ids` is in the lake's events exactly once, and nothing else is.
pub fn assert_exactly_once(lake: &Path, ids: &[String]) {
    let counts = column_counts(lake, "events", "id");
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .take(5)
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(missing.is_empty(), "missing from the lake: {missing:?}");
    assert!(twice.is_empty(), "in the lake more than once: {twice:?}");
    assert_eq!(counts.len(), ids.len(), "unexpected ids in the lake");
}

/// Every record batch of a lake table's files.
pub fn read_table(lake: &Path, table: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for path in parquet_files(&lake.join(table)) {
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

/// How often each value of a string column occurs across a table's files.
pub fn column_counts(lake: &Path, table: &str, column: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for batch in read_table(lake, table) {
        let values = batch.column_by_name(column).unwrap().as_string::<i32>();
        for value in values.iter() {
            *counts.entry(value.unwrap().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Rows in a table (events or rejects), from the files' metadata.
pub fn row_count(lake: &Path, table: &str) -> usize {
    parquet_files(&lake.join(table))
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path).unwrap();
            ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows() as usize
        })
        .sum()
}

/// Waits until the lake holds `rows` rows (events + rejects), at most `timeout`.
pub fn wait_for_rows(lake: &Path, rows: usize, timeout: Duration) {
    let what = format!("{rows} rows in the lake");
    authtrail_testkit::wait_until(&what, timeout, || {
        let have = row_count(lake, "events") + row_count(lake, "rejects");
        match have >= rows {
            true => Ok(()),
            false => Err(format!("{have} rows")),
        }
    });
}

/// Runs `command` to completion; a failure fails the test, naming `what` and quoting
/// what the command wrote.
pub fn succeeded(command: &mut Command, what: &str) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// Reads the lake with DuckDB (hive partitioning) and returns its JSON report.
pub fn duckdb_report(lake: &Path) -> serde_json::Value {
    let mut check = Command::new(python());
    check.arg(repo_file("tests/e2e/duckdb_check.py")).arg(lake);
    let output = succeeded(&mut check, "duckdb check");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A realistic good event of one of the four kinds.
pub fn good_event(i: usize) -> String {
    let minute = i % 60;
    let user = format!("user:u{}", i % 97);
    match i % 4 {
        0 => format!(
            r#"{{"id":"e-{i}","time":"2026-11-23T17:{minute:02}:00Z","kind":"authn","principal":"{user}","service":"idp","outcome":"success","auth_method":"password","source_ip":"203.0.113.{}","user_agent":"Mozilla/5.0"}}"#,
            i % 250
        ),
        1 => format!(
            r#"{{"id":"e-{i}","time":"2026-11-23T18:{minute:02}:00Z","kind":"token_issue","principal":"svc:s{}","service":"idp","token_id":"jti-{i}","token_audience":["payments"],"token_scopes":"payments:read","token_expires":"2026-11-23T19:00:00Z"}}"#,
            i % 13
        ),
        2 => format!(
            r#"{{"id":"e-{i}","time":1795456800000,"kind":"authz","principal":"svc:s{}","source_service":"s{}","service":"payments","outcome":"allow","token_id":"jti-{}","source_ip":"10.0.0.{}","resource":"/charges","action":"POST"}}"#,
            i % 13,
            i % 13,
            i - 1,
            i % 200
        ),
        _ => format!(
            r#"{{"id":"e-{i}","time":"2026-11-23T18:{minute:02}:30Z","kind":"token_revoke","principal":"svc:s{}","service":"idp","token_id":"jti-{}","reason":"rotated"}}"#,
            i % 13,
            i - 2
        ),
    }
}

/// A scratch directory for one test, removed when dropped unless
/// `AUTHTRAIL_KEEP_TEST_DIRS` is set (its path is then printed, for post-mortems).
pub struct WorkDir {
    path: PathBuf,
    _cleanup: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn new() -> WorkDir {
        let dir = tempfile::Builder::new()
            .prefix("authtrail-e2e-")
            .tempdir()
            .unwrap();
        if std::env::var_os("AUTHTRAIL_KEEP_TEST_DIRS").is_some() {
            let path = dir.keep();
            eprintln!("test directory kept: {}", path.display());
            return WorkDir {
                path,
                _cleanup: None,
            };
        }
        WorkDir {
            path: dir.path().to_path_buf(),
            _cleanup: Some(dir),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
