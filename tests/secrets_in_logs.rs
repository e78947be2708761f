//! No secret ever reaches a log line. The real binary runs every command that handles one,
//! at `RUST_LOG=trace` in both log formats, with planted secrets: a webhook signing secret
//! (deliveries fail against a closed port, so the retry and error paths log too), a SASL
//! password (the Kafka client fails to reach its broker), API keys (a right and a wrong
//! key are presented) and the manifest signing key. All output is then searched for them.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::{authtrail_env, Process, WorkDir};

const WEBHOOK_SECRET: &str = "whsec_UExBTlRFRC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5";
const SASL_PASSWORD: &str = "planted-sasl-password-0f9e8d7c";
const API_KEY: &str = "planted-api-key-4b3a29181716";
const SIGNING_KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const SIGTERM: i32 = 15;

const SECRETS: [&str; 5] = [
    WEBHOOK_SECRET,
    // The secret's key material alone, as a log line might show it decoded or re-encoded.
    "UExBTlRFRC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5",
    SASL_PASSWORD,
    API_KEY,
    SIGNING_KEY,
];

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RUST_LOG", "trace"),
        ("AUTHTRAIL_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("AUTHTRAIL_TEST_SASL_PASSWORD", SASL_PASSWORD),
        ("AUTHTRAIL_API_KEYS", API_KEY),
        ("AUTHTRAIL_SIGNING_KEY", SIGNING_KEY),
    ]
}

fn write_inputs(work: &Path) {
    let dead = closed_port();
    let config = format!(
        r#"[lake]
path = {lake:?}

[kafka]
brokers = "127.0.0.1:{dead}"
settings = {{ "security.protocol" = "sasl_plaintext", "sasl.mechanism" = "PLAIN", "sasl.username" = "authtrail" }}
settings_from_env = {{ "sasl.password" = "AUTHTRAIL_TEST_SASL_PASSWORD" }}

[respond]
drain_timeout = "1s"

[[respond.webhooks]]
name = "idp-revoke"
url = "http://127.0.0.1:{dead}/hook"
secret_env = "AUTHTRAIL_TEST_WEBHOOK_SECRET"
action = "revoke_token"
retry_initial = "50ms"
"#,
        lake = work.join("lake").display().to_string()
    );
    std::fs::write(work.join("authtrail.toml"), config).unwrap();
    // Issue, revoke, use: a `revoked_token_use` alert for the webhook.
    let mut events = std::fs::File::create(work.join("events.jsonl")).unwrap();
    writeln!(events, r#"{{"id":"i","time":"2026-11-23T18:00:00Z","kind":"token_issue","principal":"svc:a","token_id":"jti-1"}}"#).unwrap();
    writeln!(events, r#"{{"id":"r","time":"2026-11-23T18:01:00Z","kind":"token_revoke","principal":"svc:a","token_id":"jti-1"}}"#).unwrap();
    writeln!(events, r#"{{"id":"u","time":"2026-11-23T18:02:00Z","kind":"authz","principal":"svc:a","service":"pay","outcome":"allow","token_id":"jti-1"}}"#).unwrap();
}

fn start(work: &Path, name: &'static str, format: &str, args: &[&str]) -> Process {
    let config = work.join("authtrail.toml");
    let mut all = vec!["--log-format", format];
    all.extend_from_slice(args);
    all.extend(["--config", config.to_str().unwrap()]);
    authtrail_env(work, name, &all, &env())
}

fn http_get(port: u16, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            write!(
                stream,
                "GET /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            return response;
        }
        assert!(Instant::now() < deadline, "the API did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn planted_secrets_never_appear_in_any_output() {
    let work = WorkDir::new();
    write_inputs(work.path());
    let events = work.path().join("events.jsonl");
    let events = events.to_str().unwrap();
    for format in ["text", "json"] {
        let mut file_ingest = start(
            work.path(),
            if format == "text" {
                "file-text"
            } else {
                "file-json"
            },
            format,
            &["ingest", "--from-file", events],
        );
        assert!(file_ingest.wait(Duration::from_secs(120)).success());

        let mut kafka = start(
            work.path(),
            if format == "text" {
                "kafka-text"
            } else {
                "kafka-json"
            },
            format,
            &["ingest"],
        );
        std::thread::sleep(Duration::from_secs(3));
        kafka.signal(SIGTERM);
        kafka.wait(Duration::from_secs(60));

        let port = closed_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        let mut serve = start(
            work.path(),
            if format == "text" {
                "serve-text"
            } else {
                "serve-json"
            },
            format,
            &["serve", "--listen", &listen],
        );
        let port: u16 = port.parse().unwrap();
        assert!(http_get(port, "wrong-key-but-long-enough").contains(" 401 "));
        assert!(http_get(port, API_KEY).contains(" 200 "));
        serve.signal(SIGTERM);
        serve.wait(Duration::from_secs(60));

        for (name, args) in [
            ("verify", &["verify"][..]),
            ("maintain", &["maintain"][..]),
            ("alerts", &["alerts"][..]),
        ] {
            let mut process = start(work.path(), name, format, args);
            assert!(process.wait(Duration::from_secs(60)).success(), "{name}");
        }
    }

    let mut searched = 0;
    for entry in std::fs::read_dir(work.path()).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|ext| ext.to_str()),
            Some("log" | "out")
        ) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        searched += text.len();
        for secret in SECRETS {
            assert!(!text.contains(secret), "`{secret}` in {}", path.display());
        }
    }
    // The runs did log (trace level), so the search covered real output.
    assert!(searched > 10_000, "only {searched} bytes of output");
}
