//! The engine over a fixture lake: answers computed by hand, partitions and nulls, lists
//! and the attributes map, partition pruning, and every kind of forbidden statement.

mod support;

use authtrail_query::{Error, QueryConfig, QueryEngine};
use serde_json::json;
use support::{rows, Fixture};

#[tokio::test]
async fn counts_rows_per_table_and_partition() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    assert_eq!(
        rows(engine, "SELECT count(*) AS n FROM events").await,
        [json!({"n": 10})]
    );
    assert_eq!(
        rows(engine, "SELECT count(*) AS n FROM rejects").await,
        [json!({"n": 1})]
    );
    assert_eq!(
        rows(engine, "SELECT count(*) AS n FROM alerts").await,
        [json!({"n": 2})]
    );
    assert_eq!(
        rows(
            engine,
            "SELECT date, hour, count(*) AS n FROM events GROUP BY date, hour ORDER BY date, hour"
        )
        .await,
        [
            json!({"date": "2026-11-23", "hour": 8, "n": 3}),
            json!({"date": "2026-11-23", "hour": 9, "n": 3}),
            json!({"date": "2026-11-23", "hour": 10, "n": 3}),
            json!({"date": "2026-11-24", "hour": 0, "n": 1}),
        ]
    );
}

#[tokio::test]
async fn time_ranges_across_partitions_select_exactly_their_rows() {
    let fixture = Fixture::new();
    let ids = rows(
        &fixture.engine,
        "SELECT id FROM events WHERE time >= '2026-11-23T09:30:00Z' \
         AND time < '2026-11-24T00:10:00Z' ORDER BY time",
    )
    .await;
    assert_eq!(
        ids,
        ["e-5", "e-6", "e-7", "e-8", "e-10"].map(|id| json!({ "id": id }))
    );
    let between = rows(
        &fixture.engine,
        "SELECT count(*) AS n FROM events WHERE time BETWEEN \
         TIMESTAMP '2026-11-23 08:06:00Z' AND TIMESTAMP '2026-11-23 09:00:00Z'",
    )
    .await;
    assert_eq!(between, [json!({"n": 3})]);
}

#[tokio::test]
async fn nulls_lists_and_the_attributes_map_are_queryable() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    assert_eq!(
        rows(
            engine,
            "SELECT count(*) AS n, count(source_ip) AS with_ip, count(token_id) AS with_token \
             FROM events"
        )
        .await,
        [json!({"n": 10, "with_ip": 7, "with_token": 6})]
    );
    assert_eq!(
        rows(
            engine,
            "SELECT id, token_audience FROM events WHERE array_has(token_audience, 'orders')"
        )
        .await,
        [json!({"id": "e-3", "token_audience": ["payments", "orders"]})]
    );
    assert_eq!(
        rows(
            engine,
            "SELECT id, attributes['geo'] AS geo FROM events WHERE attributes['geo'] = 'DE'"
        )
        .await,
        [json!({"id": "e-2", "geo": "DE"})]
    );
    assert_eq!(
        rows(
            engine,
            "SELECT a.id, e.id AS evidence FROM alerts a \
             JOIN events e ON array_has(a.evidence_ids, e.id) ORDER BY a.id, e.id"
        )
        .await,
        [
            json!({"id": "a-1", "evidence": "e-4"}),
            json!({"id": "a-1", "evidence": "e-5"}),
            json!({"id": "a-2", "evidence": "e-8"}),
        ]
    );
}

#[tokio::test]
async fn cidr_contains_matches_ipv4_and_ipv6_and_propagates_nulls() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    let count = |cidr: &str| {
        format!("SELECT count(*) AS n FROM events WHERE cidr_contains(source_ip, '{cidr}')")
    };
    assert_eq!(rows(engine, &count("10.4.0.0/23")).await, [json!({"n": 3})]);
    assert_eq!(rows(engine, &count("10.4.0.0/24")).await, [json!({"n": 2})]);
    assert_eq!(
        rows(engine, &count("2001:db8::/32")).await,
        [json!({"n": 1})]
    );
    assert_eq!(
        rows(
            engine,
            "SELECT id, cidr_contains(source_ip, '10.0.0.0/8') AS inside FROM events \
             WHERE kind = 'authn' ORDER BY id"
        )
        .await,
        [
            json!({"id": "e-1", "inside": false}),
            json!({"id": "e-10", "inside": null}),
            json!({"id": "e-2", "inside": false}),
        ]
    );
    let error = engine
        .query(
            "SELECT cidr_contains(source_ip, '10.0.0.0/33') FROM events",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::QueryFailed(_)), "{error:?}");
    assert!(error.to_string().contains("10.0.0.0/33"), "{error}");
}

#[tokio::test]
async fn distinct_counts_beside_plain_counts_are_exact_and_grouped_twice() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    // user:bob's only event has no source_ip: no distinct IPs, one event.
    let per_principal = "SELECT principal, count(DISTINCT source_ip) AS ips, count(*) AS n \
                         FROM events GROUP BY principal ORDER BY principal";
    assert_eq!(
        rows(engine, per_principal).await,
        [
            json!({"principal": "svc:checkout", "ips": 3, "n": 6}),
            json!({"principal": "user:alice", "ips": 1, "n": 2}),
            json!({"principal": "user:bob", "ips": 0, "n": 1}),
            json!({"principal": "user:o'brien", "ips": 1, "n": 1}),
        ]
    );
    let relayed = "SELECT token_id, count(DISTINCT source_ip) AS ips, count(*) AS uses \
                   FROM events WHERE token_id IS NOT NULL GROUP BY token_id \
                   HAVING count(DISTINCT source_ip) > 1";
    assert_eq!(
        rows(engine, relayed).await,
        [json!({"token_id": "jti-1", "ips": 2, "uses": 5})]
    );
    // Planned as two hash aggregations, not one hash set per group.
    let plan = rows(engine, &format!("EXPLAIN {relayed}")).await;
    let physical = plan
        .iter()
        .find(|row| row["plan_type"] == "physical_plan")
        .expect("a physical plan");
    let physical = physical["plan"].as_str().unwrap();
    assert!(!physical.contains("count(DISTINCT"), "{physical}");
    // The distinct pairs are hashed on the token alone, and the tokens counted where
    // they are (`distinct/partitioning.rs`).
    assert_eq!(physical.matches("RepartitionExec").count(), 1, "{physical}");
    assert!(
        physical.contains("mode=SinglePartitioned, gby=[token_id"),
        "{physical}"
    );
}

#[tokio::test]
async fn grouped_distinct_counts_over_two_partitions_match_counts_made_by_hand() {
    use std::collections::{BTreeMap, BTreeSet};
    // 4,000 presentations of 300 tokens, a third of them always from one address, the
    // others from up to 12, some without an address, spread over four hours and eight
    // files (a linear congruential sequence, so the lake is the same every run).
    let mut state = 7u64;
    let mut next = |below: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    let mut lines = Vec::new();
    let mut expected: BTreeMap<String, (BTreeSet<String>, i64)> = BTreeMap::new();
    for at in 0..4_000 {
        let token = next(300);
        let ip = (next(10) > 0).then(|| match token {
            0..100 => "10.9.9.9".to_owned(),
            _ => format!("10.{}.0.{}", next(3), next(4)),
        });
        let token = format!("jti-{token}");
        let source_ip = ip
            .as_ref()
            .map_or(String::new(), |ip| format!(r#","source_ip":"{ip}""#));
        lines.push(format!(
            r#"{{"id":"p-{at}","time":"2026-11-23T{:02}:{:02}:00Z","kind":"authz","principal":"svc:a","service":"payments","target_service":"payments","outcome":"allow","token_id":"{token}"{source_ip}}}"#,
            8 + at / 1_000,
            at % 60
        ));
        let (ips, uses) = expected.entry(token).or_default();
        ips.extend(ip);
        *uses += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    support::write_events(dir.path(), &lines, 500);
    let config = QueryConfig {
        threads: 2,
        ..QueryConfig::default()
    };
    let engine = QueryEngine::open(dir.path(), config).unwrap();
    let relayed = "SELECT token_id, count(DISTINCT source_ip) AS ips, count(*) AS uses \
                   FROM events WHERE token_id IS NOT NULL GROUP BY token_id \
                   HAVING count(DISTINCT source_ip) > 1 ORDER BY token_id";
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|(_, (ips, _))| ips.len() > 1)
        .map(|(token, (ips, uses))| json!({"token_id": token, "ips": ips.len(), "uses": uses}))
        .collect();
    assert!(expected.len() > 100, "the data exercises the query");
    assert_eq!(rows(&engine, relayed).await, expected);
}

#[tokio::test]
async fn hours_and_days_of_utc_times_truncate_as_arithmetic_with_the_same_answers() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    // date_bin is DataFusion's own arithmetic on the same instants: the reference.
    let per_hour = rows(
        engine,
        "SELECT date_trunc('hour', time) AS hour, count(*) AS n FROM events \
         GROUP BY date_trunc('hour', time) ORDER BY hour",
    )
    .await;
    let by_bin = rows(
        engine,
        "SELECT date_bin(INTERVAL '1 hour', time) AS hour, count(*) AS n FROM events \
         GROUP BY 1 ORDER BY hour",
    )
    .await;
    assert_eq!(per_hour, by_bin);
    let counts: Vec<_> = per_hour.iter().map(|row| row["n"].clone()).collect();
    assert_eq!(counts, [json!(3), json!(3), json!(3), json!(1)]);
    let per_day = rows(
        engine,
        "SELECT date_trunc('DAY', time) AS day, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    )
    .await;
    let day_bins = rows(
        engine,
        "SELECT date_bin(INTERVAL '1 day', time) AS day, count(*) AS n FROM events \
         GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(per_day, day_bins);
    assert_eq!(per_day.len(), 2);
    // The output keeps its type and name, and no row takes the time-zone path.
    let plan = rows(
        engine,
        "EXPLAIN SELECT date_trunc('hour', time) FROM events",
    )
    .await;
    let physical = plan
        .iter()
        .find(|row| row["plan_type"] == "physical_plan")
        .expect("a physical plan");
    let physical = physical["plan"].as_str().unwrap();
    assert!(physical.contains("% 3600000000"), "{physical}");
    assert!(
        !physical.contains("date_trunc(Utf8(\"hour\"), time@"),
        "{physical}"
    );
    let named = rows(
        engine,
        "SELECT date_trunc('hour', time) FROM events LIMIT 1",
    )
    .await;
    assert!(
        named[0]
            .as_object()
            .unwrap()
            .contains_key("date_trunc(Utf8(\"hour\"),events.time)"),
        "{named:?}"
    );
}

/// The `.parquet` files a plan's scans would read.
async fn files_scanned(engine: &QueryEngine, sql: &str) -> usize {
    let plan = rows(engine, &format!("EXPLAIN {sql}")).await;
    let physical = plan
        .iter()
        .find(|row| row["plan_type"] == "physical_plan")
        .expect("a physical plan");
    physical["plan"]
        .as_str()
        .unwrap()
        .matches(".parquet")
        .count()
}

#[tokio::test]
async fn time_filters_prune_partitions_like_date_and_hour_filters() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    let all = files_scanned(engine, "SELECT * FROM events").await;
    // Hours 08 and 09 are split over two commits; 10 and the next day's 00 are one each.
    assert_eq!(all, 5);
    let one_hour = files_scanned(
        engine,
        "SELECT * FROM events WHERE time >= '2026-11-23T10:00:00Z' \
         AND time < '2026-11-23T11:00:00Z'",
    )
    .await;
    assert_eq!(one_hour, 1);
    let by_partition = files_scanned(
        engine,
        "SELECT * FROM events WHERE date = '2026-11-23' AND hour = 9",
    )
    .await;
    assert_eq!(by_partition, 2);
    assert_eq!(
        rows(
            engine,
            "SELECT count(*) AS n FROM events WHERE date = '2026-11-23' AND hour = 9"
        )
        .await,
        [json!({"n": 3})]
    );
    // The pruned scan still answers exactly.
    assert_eq!(
        rows(
            engine,
            "SELECT count(*) AS n FROM events WHERE time >= '2026-11-23T09:30:00Z' \
             AND time <= '2026-11-23T10:15:00Z'"
        )
        .await,
        [json!({"n": 3})]
    );
}

#[tokio::test]
async fn missing_table_directories_are_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let engine = QueryEngine::open(dir.path(), QueryConfig::default()).unwrap();
    for table in ["events", "alerts", "rejects"] {
        assert_eq!(
            rows(&engine, &format!("SELECT count(*) AS n FROM {table}")).await,
            [json!({"n": 0})]
        );
    }
    let missing = QueryEngine::open(&dir.path().join("nope"), QueryConfig::default());
    assert!(matches!(missing, Err(Error::Config(_))));
}

#[tokio::test]
async fn every_kind_of_write_or_escape_is_refused() {
    let fixture = Fixture::new();
    let forbidden = [
        "CREATE TABLE t AS SELECT * FROM events",
        "CREATE VIEW v AS SELECT 1",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "DELETE FROM events",
        "UPDATE events SET principal = 'x'",
        "COPY events TO '/tmp/authtrail-copy.parquet'",
        "COPY (SELECT 1) TO '/tmp/authtrail-copy.csv' STORED AS CSV",
        "SET datafusion.execution.target_partitions = 1",
        "RESET datafusion.execution.target_partitions",
        "SELECT * INTO copied FROM events",
        "EXPLAIN COPY events TO '/tmp/authtrail-copy.parquet'",
        "PREPARE q AS SELECT 1",
        "SHOW TABLES",
        "SELECT 1; DROP TABLE events",
    ];
    for sql in forbidden {
        let error = fixture.engine.query(sql, None).await.unwrap_err();
        assert!(
            matches!(error, Error::Forbidden(_) | Error::InvalidQuery(_)),
            "{sql}: {error:?}"
        );
    }
    // Reading files outside the lake: no URL tables, no file-reading functions.
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM '../events/x.parquet'",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM _manifest",
        "SELECT * FROM information_schema.tables",
    ] {
        let error = fixture.engine.query(sql, None).await.unwrap_err();
        assert!(error.is_client_error(), "{sql}: {error:?}");
    }
    // The statement kinds are named in the message.
    let error = fixture
        .engine
        .query("DROP TABLE events", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Forbidden(m) if m.contains("DROP TABLE")),
        "{error}"
    );
    let error = fixture
        .engine
        .query("COPY events TO '/tmp/x.parquet'", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Forbidden(m) if m.contains("COPY")),
        "{error}"
    );
    assert!(!std::path::Path::new("/tmp/authtrail-copy.parquet").exists());
}

#[tokio::test]
async fn queries_explain_and_generators_are_allowed() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    assert_eq!(
        rows(engine, "WITH x AS (SELECT 1 AS one) SELECT one FROM x").await,
        [json!({"one": 1})]
    );
    assert_eq!(
        rows(engine, "SELECT count(*) AS n FROM generate_series(1, 5)").await,
        [json!({"n": 5})]
    );
    assert!(!rows(engine, "EXPLAIN ANALYZE SELECT count(*) FROM events")
        .await
        .is_empty());
}

#[tokio::test]
async fn row_limits_truncate_and_say_so() {
    let fixture = Fixture::new();
    let output = fixture
        .engine
        .query("SELECT id FROM events ORDER BY id", Some(4))
        .await
        .unwrap();
    assert_eq!(output.rows(), 4);
    assert!(output.truncated);
    let output = fixture
        .engine
        .query("SELECT id FROM events", Some(10))
        .await
        .unwrap();
    assert_eq!((output.rows(), output.truncated), (10, false));
}

#[tokio::test]
async fn a_query_past_its_timeout_is_cancelled() {
    let fixture = Fixture::with_config(QueryConfig {
        timeout: std::time::Duration::from_millis(1),
        ..QueryConfig::default()
    });
    // Ten billion generated rows cannot be summed in a millisecond; the generator yields
    // to the runtime between batches (DataFusion's cooperative scheduling), so the timer
    // fires and dropping the query cancels it.
    let error = fixture
        .engine
        .query(
            "SELECT sum(value) FROM generate_series(1, 10000000000)",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
}

/// The per-file statistics DataFusion keeps (and answers `count(*)` from) are keyed by
/// path, size and modification time: a file rewritten under its name is read again.
#[tokio::test]
async fn a_file_rewritten_under_its_name_is_not_answered_from_stale_statistics() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    let count = "SELECT count(*) AS n FROM events";
    assert_eq!(rows(engine, count).await, [json!({"n": 10})]);
    let file_of = |hour: &str| {
        let dir = fixture.dir.path().join("events").join(hour);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one file in {hour}");
        files.pop().unwrap()
    };
    let three_rows = file_of("date=2026-11-23/hour=08");
    let one_row = file_of("date=2026-11-24/hour=00");
    std::fs::copy(&one_row, &three_rows).unwrap();
    assert_eq!(rows(engine, count).await, [json!({"n": 8})]);
}

/// A file written after the engine opened (the live lake under `run`) is seen by the next
/// query: table listings are not kept between queries.
#[tokio::test]
async fn a_file_written_after_a_query_is_seen_by_the_next() {
    let fixture = Fixture::new();
    let engine = &fixture.engine;
    let count = "SELECT count(*) AS n FROM events";
    assert_eq!(rows(engine, count).await, [json!({"n": 10})]);
    let events = fixture.dir.path().join("events");
    let one_row = std::fs::read_dir(events.join("date=2026-11-24/hour=00"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let later = events.join("date=2026-11-24/hour=01");
    std::fs::create_dir_all(&later).unwrap();
    std::fs::copy(&one_row, later.join(one_row.file_name().unwrap())).unwrap();
    assert_eq!(rows(engine, count).await, [json!({"n": 11})]);
}
