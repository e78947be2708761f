//! `authtrail query` and `authtrail serve` end to end: a lake ingested by the real binary,
//! queried in every output format, bad and forbidden SQL failing with a clear message,
//! and the HTTP API answering a real TCP client.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{good_event, WorkDir};

/// 1000 events: 250 of each kind (see `good_event`).
fn ingested_lake(work: &WorkDir) -> std::path::PathBuf {
    let input = work.path().join("events.jsonl");
    let lines: Vec<String> = (0..1_000).map(good_event).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let lake = work.path().join("lake");
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_authtrail"));
    ingest.arg("--lake").arg(&lake);
    ingest
        .args(["ingest", "--no-detect", "--from-file"])
        .arg(&input);
    support::succeeded(&mut ingest, "ingest");
    lake
}

fn query(lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(lake)
        .arg("query")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

const BY_KIND: &str = "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind";

#[test]
fn query_writes_every_format() {
    let work = WorkDir::new();
    let lake = ingested_lake(&work);

    let table = stdout(&query(&lake, &[BY_KIND]));
    assert!(table.contains("| kind         | n   |"), "{table}");
    assert!(table.contains("| token_revoke | 250 |"), "{table}");

    let csv = stdout(&query(&lake, &[BY_KIND, "--format", "csv"]));
    assert_eq!(
        csv,
        "kind,n\nauthn,250\nauthz,250\ntoken_issue,250\ntoken_revoke,250\n"
    );

    let jsonl = stdout(&query(
        &lake,
        &[BY_KIND, "--format", "jsonl", "--limit", "1"],
    ));
    assert_eq!(jsonl, "{\"kind\":\"authn\",\"n\":250}\n");

    let json = stdout(&query(&lake, &[BY_KIND, "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json[3],
        serde_json::json!({"kind": "token_revoke", "n": 250})
    );

    let file = work.path().join("authz.parquet");
    let output = query(
        &lake,
        &[
            "SELECT * FROM events WHERE kind = 'authz'",
            "--format",
            "parquet",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, 250);
}

#[test]
fn bad_and_forbidden_sql_fail_with_a_clear_message() {
    let work = WorkDir::new();
    let lake = ingested_lake(&work);
    for (sql, message) in [
        ("SELEC * FROM events", "invalid query"),
        ("SELECT nope FROM events", "invalid query"),
        ("DROP TABLE events", "only read-only queries"),
        (
            "COPY events TO '/tmp/authtrail-cli-copy.csv'",
            "only read-only queries",
        ),
    ] {
        let output = query(&lake, &[sql]);
        assert!(!output.status.success(), "{sql}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{sql}: {stderr}");
        assert!(!stderr.contains("panicked"), "{sql}: {stderr}");
    }
    let file = work.path().join("never.csv");
    let output = query(
        &lake,
        &[
            "SELECT cidr_contains(source_ip, 'bad') FROM events",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
    assert!(!file.exists(), "a failed query leaves no output file");
}

#[test]
fn hostile_sql_is_refused_or_cut_off_at_the_timeout() {
    let work = WorkDir::new();
    let lake = ingested_lake(&work);
    // 10,000 terms used to overflow the main thread's stack and abort the process.
    let chain = format!("SELECT {}", vec!["1"; 10_000].join("+"));
    let output = query(&lake, &[&chain]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("query too complex"), "{stderr}");
    // A cross join of a trillion rows: stopped at the deadline, not minutes later.
    let started = std::time::Instant::now();
    let output = query(
        &lake,
        &[
            "SELECT sum(a.value * b.value) FROM range(1000000) a, range(1000000) b",
            "--timeout",
            "1s",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    eprintln!("cut off after {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // EXPLAIN with a row limit (a limit above EXPLAIN used to fail).
    let output = query(&lake, &["EXPLAIN SELECT 1", "--limit", "10"]);
    assert!(stdout(&output).contains("plan"));
}

fn http_get(port: u16, path: &str, key: Option<&str>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = key.map_or(String::new(), |key| {
        format!("Authorization: Bearer {key}\r\n")
    });
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_answers_authenticated_requests_over_tcp() {
    let work = WorkDir::new();
    let lake = ingested_lake(&work);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = "cli-test-key-0123456789abcdef";
    let child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(&lake)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("AUTHTRAIL_API_KEYS", key)
        .spawn()
        .unwrap();
    let mut server = support::Process {
        child,
        name: "authtrail serve",
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the API did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let denied = http_get(port, "/api/v1/tokens/jti-1", None);
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let token = http_get(port, "/api/v1/tokens/jti-1", Some(key));
    assert!(token.starts_with("HTTP/1.1 200"), "{token}");
    assert!(token.contains("\"token_id\":\"jti-1\""), "{token}");
    server.signal(15);
    assert!(server.wait(Duration::from_secs(30)).success());
}

#[test]
fn serve_refuses_to_start_without_keys() {
    let work = WorkDir::new();
    let output = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(work.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("AUTHTRAIL_API_KEYS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no API keys"));
}
