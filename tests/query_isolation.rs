//! One query must never take detection down: every hostile query of issue 22, sent to a
//! running `authtrail run` (tansu as its broker) while events keep flowing in. The process
//! answers each within its timeout with a clear error, `/healthz` stays responsive, the
//! events produced during the attack reach the lake, and idle or slow connections are
//! closed before they exhaust anything.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::run::{http, printed, start, write_config, API_KEY};
use support::{good_event, wait_for_rows, Broker, WorkDir};

const TOPIC: &str = "auth-events";
const SIGTERM: i32 = 15;
/// The query timeout of the run under attack.
const TIMEOUT: Duration = Duration::from_secs(4);
/// What an answer may take beyond the timeout on a loaded two-core CI machine.
const SLACK: Duration = Duration::from_secs(3);

fn query_body(sql: &str) -> String {
    serde_json::json!({ "sql": sql }).to_string()
}

/// Posts `sql`; the status, the body and how long the answer took.
fn post_query(address: &str, sql: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = http(
        address,
        "POST",
        "/api/v1/query",
        Some(API_KEY),
        Some(&query_body(sql)),
    );
    (status, body, started.elapsed())
}

fn chain(term: &str, operator: &str, n: usize) -> String {
    vec![term; n].join(operator)
}

fn produce(broker: &Broker, dir: &std::path::Path, name: &str, ids: std::ops::Range<usize>) {
    let file = dir.join(name);
    let lines: Vec<String> = ids.map(good_event).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    broker.produce(TOPIC, &file, Some(2));
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One raw request with a custom `Authorization` header; the status.
fn raw_status(address: &str, authorization: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: {authorization}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_queries_and_connections_never_stop_ingest() {
    let work = WorkDir::new();
    let broker = Broker::start(work.path());
    let lake = work.path().join("lake");
    let extra = format!(
        "[kafka]\nbrokers = \"{}\"\n\n[query]\ntimeout = \"4s\"\nmemory_limit_mib = 256\n\
         concurrency = 2\nqueue = 2\n",
        broker.address
    );
    let config = write_config(work.path(), &lake, &extra);
    // A short header timeout, so the slow-connection probe need not wait 10 s.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[api]\n",
        "[api]\nheader_timeout = \"1s\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let run = start(work.path(), "run", &config);
    let address = printed(work.path(), "run", "on http://");
    produce(&broker, work.path(), "before.jsonl", 0..1_000);
    wait_for_rows(&lake, 1_000, Duration::from_secs(90));
    let baseline_rss = rss_kib(run.child.id());

    // The hostile bodies, one after another: each refused with a clear error.
    let probes: Vec<(&str, String)> = vec![
        ("1+1 x2000", format!("SELECT {}", chain("1", "+", 2_000))),
        (
            "OR x2000",
            format!("SELECT {}", chain("true", " OR ", 2_000)),
        ),
        (
            "AND x2000",
            format!("SELECT {}", chain("true", " AND ", 2_000)),
        ),
        (
            "|| x2000",
            format!("SELECT {}", chain("'a'", " || ", 2_000)),
        ),
        (
            "1000 CTEs",
            format!(
                "WITH {} SELECT 1",
                (0..1_000)
                    .map(|i| format!("c{i} AS (SELECT {i})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "levenshtein",
            "SELECT levenshtein(repeat('a', 180000), repeat('b', 180000))".into(),
        ),
        (
            "range array",
            "SELECT cardinality(range(1, 200000001))".into(),
        ),
        (
            "repeat 1e9",
            "SELECT length(repeat('x', 1000000000))".into(),
        ),
        (
            "doubling CTEs",
            format!(
                "WITH c0 AS (SELECT repeat('x', 1000000) AS s), {} SELECT length(s) FROM c40",
                (1..=40)
                    .map(|i| format!("c{i} AS (SELECT s || s AS s FROM c{})", i - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    for (name, sql) in probes {
        let (status, body, took) = post_query(&address, &sql);
        eprintln!("{name}: {status} in {took:?}: {body:.300}");
        assert_eq!(status, 400, "{name}: {body}");
        assert!(took < TIMEOUT + SLACK, "{name} answered after {took:?}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"]["code"].is_string(), "{name}: {body}");
    }

    // Then six cross joins at once, while more events arrive: each runs until its
    // deadline; with two running and two queued, the rest are refused at once.
    let attack: Vec<_> = (0..6)
        .map(|i| {
            let address = address.clone();
            let sql = format!(
                "SELECT sum(length(a.id || b.id || c.id)) + {i} FROM events a, events b, events c"
            );
            std::thread::spawn(move || post_query(&address, &sql))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = http(&address, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    let healthz = started.elapsed();
    produce(&broker, work.path(), "during.jsonl", 1_000..2_000);
    let mut busy = 0;
    for probe in attack {
        let (status, body, took) = probe.join().unwrap();
        eprintln!("cross join: {status} in {took:?}");
        assert!([408, 503].contains(&status), "cross join: {status} {body}");
        assert!(took < TIMEOUT + SLACK, "cross join answered after {took:?}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"]["code"].is_string(), "{body}");
        busy += usize::from(status == 503);
    }
    assert!(
        busy > 0,
        "six cross joins over two places and a queue of two: some refused"
    );
    eprintln!("/healthz under attack: {healthz:?}");
    wait_for_rows(&lake, 2_000, Duration::from_secs(60));

    // The refused queries allocated nothing to speak of.
    let after_rss = rss_kib(run.child.id());
    eprintln!("RSS before {baseline_rss} KiB, after {after_rss} KiB");
    assert!(
        after_rss < baseline_rss + 512 * 1024,
        "{baseline_rss} -> {after_rss} KiB"
    );

    // The cancelled cross joins stop and give their places back.
    let cancelled = Instant::now();
    authtrail_testkit::wait_until("the cancelled queries' places", SLACK, || {
        let (status, body, _) = post_query(&address, "SELECT 1");
        assert!([200, 503].contains(&status), "{body}");
        match status {
            200 => Ok(()),
            _ => Err(body),
        }
    });
    eprintln!("pool free {:?} after the last timeout", cancelled.elapsed());

    // Still answering ordinary queries, EXPLAIN included, with any case of `Bearer`.
    let (status, body, _) = post_query(&address, "SELECT count(*) AS n FROM events");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2000"), "{body}");
    let (status, body, _) = post_query(&address, "EXPLAIN SELECT 1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        raw_status(&address, &format!("bearer {API_KEY}"), "/api/v1/alerts"),
        200
    );
    assert_eq!(
        raw_status(&address, &format!("BEARER {API_KEY}"), "/api/v1/alerts"),
        200
    );

    // Oversized bodies: 413 in the JSON error shape; bad live-feed parameters: JSON too.
    let big = query_body(&format!("SELECT '{}'", "x".repeat(300 * 1024)));
    let (status, body) = http(&address, "POST", "/api/v1/query", Some(API_KEY), Some(&big));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("payload_too_large"), "{body}");
    let (status, body) = http(
        &address,
        "GET",
        "/api/v1/live/alerts?after=x",
        Some(API_KEY),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"code\""), "{body}");

    // 2,000 connections that never finish their headers: closed after the header
    // timeout, and then an authenticated request gets through.
    let mut slow = Vec::new();
    for _ in 0..2_000 {
        if let Ok(mut stream) = TcpStream::connect(&address) {
            let _ = stream.write_all(b"GET /api/v1/alerts HT");
            slow.push(stream);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut still_open = 0;
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut byte = [0u8; 1];
        // Closed by the server: a read returns 0 bytes (or a reset), not "would block".
        if matches!(stream.read(&mut byte), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
        {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow connections left open after the header timeout"
    );
    drop(slow);
    let (status, body) = http(&address, "GET", "/api/v1/alerts", Some(API_KEY), None);
    assert_eq!(status, 200, "{body}");

    // And the pipeline survived it all: a last batch lands.
    produce(&broker, work.path(), "after.jsonl", 2_000..2_500);
    wait_for_rows(&lake, 2_500, Duration::from_secs(60));

    // A query still running does not hold up a clean stop.
    let running = {
        let body = query_body(
            "SELECT sum(length(a.id || b.id || c.id)) FROM events a, events b, events c",
        );
        let mut stream = TcpStream::connect(&address).unwrap();
        let request = format!(
            "POST /api/v1/query HTTP/1.0\r\nAuthorization: Bearer {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        // Its answer, if any, does not matter: the stop may close the connection first.
        std::thread::spawn(move || {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut run = run;
    let stopping = Instant::now();
    run.signal(SIGTERM);
    let status = run.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "stopped {:?} after SIGTERM with a query running",
        stopping.elapsed()
    );
    let _ = running.join();
}
