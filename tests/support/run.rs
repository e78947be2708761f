//! Helpers for tests of `authtrail run`: a config, the real binary, its addresses, and a
//! minimal HTTP/1.0 client (close-delimited responses, so no chunked decoding needed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{authtrail_env, Process};

pub const API_KEY: &str = "e2e-key-0123456789abcdef";
pub const SECRET: &str = "whsec_QVVUSFRSQUlMLWUyZS1zaWduaW5nLWtleS0xMjM0NTY=";

/// Writes `authtrail.toml` for a run on `lake`: API on a free port, fast flushes, a
/// dry-run webhook (so the respond metrics exist), and `extra` appended.
pub fn write_config(dir: &Path, lake: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("authtrail.toml");
    let text = format!(
        r#"[lake]
path = "{lake}"

[api]
listen = "127.0.0.1:0"

[ingest]
flush_age = "300ms"

[[respond.webhooks]]
name = "dry"
url = "http://127.0.0.1:9/revoke"
secret_env = "AUTHTRAIL_TEST_WEBHOOK_SECRET"
action = "notify"
dry_run = true

{extra}
"#,
        lake = lake.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `authtrail run --config <config>` with the API key and webhook secret set.
pub fn start(dir: &Path, name: &'static str, config: &Path) -> Process {
    authtrail_env(
        dir,
        name,
        &["run", "--config", config.to_str().unwrap()],
        &[
            ("AUTHTRAIL_API_KEYS", API_KEY),
            ("AUTHTRAIL_TEST_WEBHOOK_SECRET", SECRET),
        ],
    )
}

/// The text after `marker` on the first stdout line holding it, up to a space or `/`.
pub fn printed(dir: &Path, name: &str, marker: &str) -> String {
    let path = dir.join(format!("{name}.out"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(start) = text.find(marker) {
            let rest = &text[start + marker.len()..];
            let end = rest.find([' ', '/', ';', '\n']).unwrap_or(rest.len());
            return rest[..end].to_owned();
        }
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "`{marker}` never printed: {text}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request; returns the status and body.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\n");
    if let Some(key) = key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

/// Polls `GET path` (with the key) until `done` accepts the body.
pub fn wait_for(address: &str, path: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    authtrail_testkit::wait_until(what, Duration::from_secs(90), || {
        let (status, body) = http(address, "GET", path, Some(API_KEY), None);
        match status == 200 && done(&body) {
            true => Ok(body),
            false => Err(format!("answer {status}: {body}")),
        }
    })
}

/// Issue, revoke, then use `tokens` tokens: one `revoked_token_use` alert each.
pub fn write_revoked_token_use(path: &Path, tokens: usize) {
    let mut file = std::fs::File::create(path).unwrap();
    for k in 0..tokens {
        writeln!(file, r#"{{"id":"iss-{k}","time":"2026-11-23T18:00:00Z","kind":"token_issue","principal":"svc:s{k}","service":"idp","token_id":"jti-r{k}","token_audience":["payments"],"token_scopes":"payments:read","token_expires":"2026-11-23T20:00:00Z"}}"#).unwrap();
        writeln!(file, r#"{{"id":"rev-{k}","time":"2026-11-23T18:01:00Z","kind":"token_revoke","principal":"svc:s{k}","service":"idp","token_id":"jti-r{k}","reason":"compromised"}}"#).unwrap();
        writeln!(file, r#"{{"id":"use-{k}","time":"2026-11-23T18:02:00Z","kind":"authz","principal":"svc:s{k}","source_service":"s{k}","service":"payments","target_service":"payments","outcome":"allow","token_id":"jti-r{k}","source_ip":"10.0.0.1","resource":"/x","action":"GET"}}"#).unwrap();
    }
}
