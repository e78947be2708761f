//! The lake on object storage, end to end: the real binary ingests a file into a bucket of
//! a real S3-compatible server (moto), then queries, reports on, verifies and maintains it through
//! the same URL, with credentials from the environment that never reach its output.

mod support;

use std::io::Write;
use std::process::{Command, Output};

use authtrail_testkit::{S3Server, S3_SECRET_ACCESS_KEY};
use support::{good_event, WorkDir};

const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn authtrail(server: &S3Server, lake: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(lake)
        .args(args)
        .envs(server.env())
        .env("AUTHTRAIL_SIGNING_KEY", KEY)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeded(output: Output, what: &str) -> String {
    let text = text(&output);
    assert!(output.status.success(), "{what} failed: {text}");
    assert!(
        !text.contains(S3_SECRET_ACCESS_KEY) && !text.contains(KEY),
        "{what} printed a secret: {text}"
    );
    text
}

#[test]
fn ingest_query_verify_and_maintain_a_lake_on_s3() {
    let server = S3Server::start("lake");
    let work = WorkDir::new();
    let input = work.path().join("events.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for i in 0..300 {
        writeln!(file, "{}", good_event(i)).unwrap();
    }
    writeln!(file, "{{\"broken\": ").unwrap();
    drop(file);
    let lake = server.url("prod/authtrail");
    let from = input.to_str().unwrap();
    let ingest = ["ingest", "--from-file", from, "--flush-rows", "100"];
    succeeded(authtrail(&server, &lake, &ingest), "ingest");
    // A second run of the same file finds the lake's end in its manifest: nothing twice.
    succeeded(authtrail(&server, &lake, &ingest), "second ingest");

    let counts = "SELECT (SELECT count(*) FROM events) AS events, \
                  (SELECT count(DISTINCT id) FROM events) AS ids, \
                  (SELECT count(*) FROM rejects) AS rejects";
    let query = ["query", counts, "--format", "csv"];
    let answer = succeeded(authtrail(&server, &lake, &query), "query");
    assert!(
        answer.starts_with("events,ids,rejects\n300,300,1\n"),
        "{answer}"
    );

    let verify = succeeded(authtrail(&server, &lake, &["verify"]), "verify");
    assert!(verify.contains("0 findings"), "{verify}");
    assert!(verify.contains("signatures checked"), "{verify}");

    // The reports read the same URL: the issued tokens never presented make their
    // holders dormant.
    let privilege = [
        "report",
        "privilege",
        "--since",
        "30d",
        "--until",
        "2026-11-24T00:00:00Z",
        "--format",
        "csv",
    ];
    let report = succeeded(authtrail(&server, &lake, &privilege), "privilege report");
    assert!(report.contains("svc:s1"), "{report}");

    let maintain = succeeded(authtrail(&server, &lake, &["maintain"]), "maintain");
    assert!(
        maintain.contains("0 files in no manifest record"),
        "{maintain}"
    );
    let verify = succeeded(
        authtrail(&server, &lake, &["verify"]),
        "verify after maintain",
    );
    assert!(verify.contains("0 findings"), "{verify}");
}

#[test]
fn a_lake_url_with_credentials_is_shown_without_them() {
    let server = S3Server::start("lake");
    let lake = "s3://AKIDLEAKED:leaked-secret@missing-bucket/lake";
    let output = authtrail(&server, lake, &["verify"]);
    let text = text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        !text.contains("leaked-secret") && !text.contains("AKIDLEAKED"),
        "{text}"
    );
    assert!(text.contains("missing-bucket"), "{text}");
}
