//! The query API under hostile SQL, in process: random statements built from the grammar
//! (deep expressions, long operator chains, nested subqueries, CTEs, unions, amplifying
//! functions) never crash the server and are always answered within the timeout plus a
//! second, with the API's JSON error shape when refused. A stack overflow would abort
//! this test binary, so passing means none happened.

mod support;

use std::time::{Duration, Instant};

use authtrail_query::api::{router, AppState};
use authtrail_query::QueryConfig;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::Fixture;
use tower::ServiceExt;

const KEY: &str = "test-key-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(2);

/// A scalar expression up to `depth` levels deep, from columns, literals, operators,
/// functions (amplifying ones included) and subqueries.
fn expression(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("1".to_owned()),
        Just("'x'".to_owned()),
        Just("principal".to_owned()),
        Just("NULL".to_owned()),
        (0i64..1_000_000_000).prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(depth, 4 * depth, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "*", "-", "||", "OR", "AND", "=", "<"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("length({a})")),
            (inner.clone(), 0i64..2_000_000_000).prop_map(|(a, n)| format!("repeat({a}, {n})")),
            (inner.clone(), 0i64..2_000_000_000).prop_map(|(a, n)| format!("lpad({a}, {n})")),
            (0i64..10, 0i64..2_000_000_000)
                .prop_map(|(a, b)| format!("cardinality(range({a}, {b}))")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("levenshtein({a}, {b})")),
            inner
                .clone()
                .prop_map(|a| format!("(SELECT {a} FROM events LIMIT 1)")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("CASE WHEN {a} IS NULL THEN {b} ELSE {a} END")),
        ]
    })
    .boxed()
}

/// A statement: a chain, a plain select, CTEs or unions around expressions.
fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(vec!["+", "OR", "AND", "||", "*"]),
            1usize..3_000
        )
            .prop_map(|(op, n)| format!("SELECT {}", vec!["1"; n].join(&format!(" {op} ")))),
        expression(12).prop_map(|e| format!("SELECT {e} FROM events")),
        (expression(6), 1usize..200).prop_map(|(e, n)| {
            let ctes: Vec<String> = (0..n)
                .map(|i| format!("c{i} AS (SELECT {e} AS v)"))
                .collect();
            format!("WITH {} SELECT * FROM c0", ctes.join(", "))
        }),
        (expression(6), 1usize..600)
            .prop_map(|(e, n)| vec![format!("SELECT {e}"); n].join(" UNION ALL ")),
        (1usize..200).prop_map(|n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n))),
    ]
}

#[test]
fn random_hostile_sql_is_always_answered_in_time() {
    let fixture = Fixture::with_config(QueryConfig {
        timeout: TIMEOUT,
        memory_limit_mib: 256,
        max_result_mib: 32,
        ..QueryConfig::default()
    });
    let app = router(AppState::new(fixture.engine.clone(), vec![KEY.into()]));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::new());
    runner
        .run(&statement(), |sql| {
            let request = Request::post("/api/v1/query")
                .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::json!({ "sql": sql }).to_string()))
                .unwrap();
            let started = Instant::now();
            let (status, body) = runtime.block_on(async {
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                (
                    status,
                    response.into_body().collect().await.unwrap().to_bytes(),
                )
            });
            let took = started.elapsed();
            prop_assert!(
                took < TIMEOUT + Duration::from_secs(1),
                "{took:?} for {sql:.200}"
            );
            prop_assert!(
                [
                    StatusCode::OK,
                    StatusCode::BAD_REQUEST,
                    StatusCode::REQUEST_TIMEOUT
                ]
                .contains(&status),
                "{status} for {sql:.200}: {}",
                String::from_utf8_lossy(&body)
            );
            if status != StatusCode::OK {
                let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
                prop_assert!(error["error"]["code"].is_string());
            }
            *statuses.borrow_mut().entry(status.as_u16()).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
    let statuses = statuses.into_inner();
    eprintln!("answers by status: {statuses:?}");
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "{statuses:?}"
    );
}

#[test]
fn the_largest_chain_that_plans_and_the_first_refused() {
    let fixture = Fixture::new();
    let engine = fixture.engine.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let depth = authtrail_query::MAX_EXPRESSION_DEPTH;
    // A chain of N terms nests N - 1 operators below the select item.
    let sql = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
    let planned = runtime.block_on(engine.query(&sql(depth - 1), None));
    assert!(planned.is_ok(), "{planned:?}");
    let refused = runtime.block_on(engine.query(&sql(depth + 1), None));
    assert!(
        matches!(refused, Err(authtrail_query::Error::TooComplex(_))),
        "{refused:?}"
    );
}
