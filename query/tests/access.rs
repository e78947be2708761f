//! Access control of the HTTP API, checked against the router's own route list
//! ([`authtrail_query::api::routes`]): every
//! route needs a key except the probes in [`OPEN_ROUTES`], and no request reaches a file
//! outside the lake, whether through SQL table functions, file paths as table names, or
//! `../` in path parameters.

mod support;

use std::path::Path;

use authtrail_query::api::{router, AppState};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use support::Fixture;
use tower::ServiceExt;

const KEY: &str = "access-test-key-0123456789";

/// Routes served without a key: health probes and the Prometheus scrape.
const OPEN_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// A marker in files planted outside the lake; no response may contain it.
const MARKER: &str = "OUTSIDE-THE-LAKE-7f3a";

/// A concrete URI for a route pattern (`{principal}` → a value).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "user:alice"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(
    fixture: &Fixture,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let app = router(AppState::new(fixture.engine.clone(), vec![KEY.into()]));
    let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn every_declared_route_needs_a_key_except_the_probes() {
    let fixture = Fixture::new();
    let routes: Vec<_> = authtrail_query::api::routes().collect();
    assert!(routes.len() >= 5, "routes found: {routes:?}");
    for (method, path) in routes {
        let uri = concrete(path);
        let body = (method == Method::POST).then(|| json!({"sql": "SELECT 1"}));
        let (anonymous, _) = send(&fixture, method.clone(), &uri, None, body.clone()).await;
        let (wrong, _) = send(
            &fixture,
            method.clone(),
            &uri,
            Some("wrong-key-0123456789abcdef"),
            body.clone(),
        )
        .await;
        let (keyed, text) = send(&fixture, method.clone(), &uri, Some(KEY), body).await;
        if OPEN_ROUTES.contains(&path) {
            assert!(anonymous.is_success(), "{method} {path}: {anonymous}");
        } else {
            assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(wrong, StatusCode::UNAUTHORIZED, "{method} {path}");
            // Accepted (an unknown token may still be a 404), and no internal error.
            assert!(
                keyed != StatusCode::UNAUTHORIZED && !keyed.is_server_error(),
                "{method} {path} with the key: {keyed} {text}"
            );
        }
    }
    // Unknown paths too: the key is checked before routing.
    let (status, _) = send(&fixture, Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn no_request_reads_a_file_outside_the_lake() {
    let fixture = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let csv = outside.path().join("secret.csv");
    std::fs::write(&csv, format!("id,value\n1,{MARKER}\n")).unwrap();
    let json_file = outside.path().join("secret.json");
    std::fs::write(&json_file, format!("{{\"value\":\"{MARKER}\"}}\n")).unwrap();
    let parquet = outside.path().join("copy.parquet");
    let lake_file = support_first_parquet(fixture.dir.path());
    std::fs::copy(lake_file, &parquet).unwrap();
    let (csv, json_file, parquet) = (
        csv.display().to_string(),
        json_file.display().to_string(),
        parquet.display().to_string(),
    );
    let lake = fixture.dir.path().display().to_string();
    for sql in [
        format!("SELECT * FROM read_csv('{csv}')"),
        format!("SELECT * FROM read_json('{json_file}')"),
        format!("SELECT * FROM read_parquet('{parquet}')"),
        "SELECT * FROM read_parquet('/etc/passwd')".to_owned(),
        format!("SELECT * FROM '{csv}'"),
        format!("SELECT * FROM '{parquet}'"),
        format!("SELECT * FROM 'file://{parquet}'"),
        format!("SELECT * FROM '{lake}/../{}'", Path::new(&csv).display()),
        "SELECT * FROM '../../../../etc/passwd'".to_owned(),
        "SELECT * FROM \"events/../../../../etc/passwd\"".to_owned(),
        format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{csv}'"),
        format!("COPY (SELECT 1) TO '{}/out.csv'", outside.path().display()),
    ] {
        let (status, text) = send(
            &fixture,
            Method::POST,
            "/api/v1/query",
            Some(KEY),
            Some(json!({ "sql": sql })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {text}");
        assert!(!text.contains(MARKER), "{sql}: {text}");
        assert!(!text.contains("root:"), "{sql}: {text}");
    }
    assert!(!outside.path().join("out.csv").exists());
    for uri in [
        "/api/v1/tokens/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/tokens/../../../etc/passwd",
        "/api/v1/principals/..%2F..%2Fetc%2Fpasswd/timeline",
        "/api/v1/principals/%2Fetc%2Fpasswd/reach",
    ] {
        let (status, text) = send(&fixture, Method::GET, uri, Some(KEY), None).await;
        assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {text}");
        assert!(!text.contains("root:"), "{uri}: {text}");
    }
}

fn support_first_parquet(root: &Path) -> std::path::PathBuf {
    let mut stack = vec![root.join("events")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                return path;
            }
        }
    }
    panic!("the fixture lake has no events file")
}
