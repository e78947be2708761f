//! End to end: the real `authtrail` binary raises alerts from ingested events and delivers
//! them to a Python receiver that verifies each signature with the `standardwebhooks`
//! package. Dead letters are listed and retried with `authtrail alerts`; a SIGKILL while
//! the receiver holds the requests loses nothing, and the restart resends with the same
//! `webhook-id`.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{authtrail_env, column_counts, python, Process, WorkDir};

const SECRET: &str = "whsec_QVVUSFRSQUlMLWUyZS1zaWduaW5nLWtleS0xMjM0NTY=";
const SECRET_ENV: &str = "AUTHTRAIL_E2E_WEBHOOK_SECRET";
const SIGKILL: i32 = 9;
const TOKENS: usize = 5;

/// Issue, revoke, then use `TOKENS` tokens: one `revoked_token_use` alert each.
fn write_events(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for k in 0..TOKENS {
        writeln!(file, r#"{{"id":"iss-{k}","time":"2026-11-23T18:00:00Z","kind":"token_issue","principal":"svc:s{k}","service":"idp","token_id":"jti-r{k}","token_audience":["payments"],"token_scopes":"payments:read","token_expires":"2026-11-23T20:00:00Z"}}"#).unwrap();
        writeln!(file, r#"{{"id":"rev-{k}","time":"2026-11-23T18:01:00Z","kind":"token_revoke","principal":"svc:s{k}","service":"idp","token_id":"jti-r{k}","reason":"compromised"}}"#).unwrap();
        writeln!(file, r#"{{"id":"use-{k}","time":"2026-11-23T18:02:00Z","kind":"authz","principal":"svc:s{k}","service":"payments","outcome":"allow","token_id":"jti-r{k}","source_ip":"10.0.0.1","resource":"/x","action":"GET"}}"#).unwrap();
    }
}

struct Receiver {
    port: u16,
    log: PathBuf,
    _process: Process,
}

impl Receiver {
    fn start(dir: &Path, hold_file: Option<&Path>) -> Receiver {
        let log = dir.join("deliveries.jsonl");
        let mut command = Command::new(python());
        command
            .arg(support::repo_file("tests/e2e/webhook_receiver.py"))
            .arg(&log)
            .env("WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("receiver.log")).unwrap());
        if let Some(hold) = hold_file {
            command.arg("--hold-file").arg(hold);
        }
        let mut child = command.spawn().expect("start the Python receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "receiver did not start: {}",
                dir.join("receiver.log").display()
            )
        });
        Receiver {
            port,
            log,
            _process: Process {
                child,
                name: "webhook receiver",
            },
        }
    }

    /// Every request received so far, as recorded by the receiver.
    fn deliveries(&self) -> Vec<serde_json::Value> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn wait_for(&self, count: usize) {
        let what = format!("{count} deliveries");
        authtrail_testkit::wait_until(&what, Duration::from_secs(60), || {
            let deliveries = self.deliveries();
            match deliveries.len() >= count {
                true => Ok(()),
                false => Err(format!("{deliveries:?}")),
            }
        });
    }
}

fn write_config(path: &Path, lake: &Path, hooks: &[(&str, String, &str)], drain: &str) {
    let mut text = format!(
        // One alert per token (revoked_token_use): the service allowing them would add a
        // validation_gap alert, which the delivery counts below do not expect.
        "[lake]\npath = {:?}\n\n[detect.validation_gap]\nenabled = false\n\n[respond]\ndrain_timeout = \"{drain}\"\n",
        lake.display().to_string()
    );
    for (name, url, action) in hooks {
        text.push_str(&format!(
            "\n[[respond.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret_env = \"{SECRET_ENV}\"\naction = \"{action}\"\ntimeout = \"30s\"\nretry_initial = \"50ms\"\nretry_max_interval = \"500ms\"\nbreaker_cooldown = \"200ms\"\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn run(work: &Path, name: &'static str, args: &[&str]) -> String {
    let mut process = authtrail_env(work, name, args, &[(SECRET_ENV, SECRET)]);
    let status = process.wait(Duration::from_secs(120));
    let log = std::fs::read_to_string(work.join(format!("{name}.log"))).unwrap();
    assert!(status.success(), "{name} failed: {log}");
    assert!(
        !log.contains(SECRET.trim_start_matches("whsec_")),
        "secret in the log"
    );
    std::fs::read_to_string(work.join(format!("{name}.out"))).unwrap()
}

fn alert_ids(lake: &Path) -> Vec<String> {
    let mut ids: Vec<String> = column_counts(lake, "alerts", "id").into_keys().collect();
    ids.sort();
    ids
}

#[test]
fn alerts_reach_the_receiver_signed_and_dead_letters_are_retried() {
    let work = WorkDir::new();
    let (dir, lake) = (work.path(), work.path().join("lake"));
    let events = dir.join("events.jsonl");
    write_events(&events);
    let receiver = Receiver::start(dir, None);
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let config = dir.join("authtrail.toml");
    let hooks = |siem_path: &str| {
        vec![
            ("idp", format!("{base}/hook"), "revoke_token"),
            ("siem", format!("{base}{siem_path}"), "notify"),
        ]
    };
    write_config(&config, &lake, &hooks("/gone"), "10s");
    let (config_arg, events_arg) = (config.to_str().unwrap(), events.to_str().unwrap());
    run(
        dir,
        "ingest-1",
        &["ingest", "--config", config_arg, "--from-file", events_arg],
    );

    let ids = alert_ids(&lake);
    assert_eq!(ids.len(), TOKENS);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2 * TOKENS, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d["verified"] == true),
        "{deliveries:?}"
    );
    let mut revoked: Vec<String> = deliveries
        .iter()
        .filter(|d| d["path"] == "/hook")
        .map(|d| {
            assert_eq!(d["id"], d["alert_id"]);
            assert_eq!(d["action"], "revoke_token");
            d["id"].as_str().unwrap().to_owned()
        })
        .collect();
    revoked.sort();
    assert_eq!(revoked, ids);

    let dead = run(
        dir,
        "list-dead",
        &["alerts", "--config", config_arg, "--state", "dead"],
    );
    assert_eq!(dead.lines().count(), 1 + TOKENS, "{dead}");
    assert!(
        dead.lines()
            .skip(1)
            .all(|l| l.contains("siem") && l.contains("404")),
        "{dead}"
    );

    let retried = run(
        dir,
        "retry",
        &["alerts", "--config", config_arg, "retry", "--all"],
    );
    assert!(
        retried.contains(&format!("{TOKENS} entries moved to pending")),
        "{retried}"
    );
    write_config(&config, &lake, &hooks("/hook"), "10s");
    run(
        dir,
        "ingest-2",
        &["ingest", "--config", config_arg, "--from-file", events_arg],
    );
    receiver.wait_for(3 * TOKENS);
    let notified = receiver
        .deliveries()
        .iter()
        .filter(|d| d["path"] == "/hook" && d["action"] == "notify" && d["verified"] == true)
        .count();
    assert_eq!(notified, TOKENS);
    let delivered = run(
        dir,
        "list",
        &["alerts", "--config", config_arg, "--state", "delivered"],
    );
    assert_eq!(delivered.lines().count(), 1 + 2 * TOKENS, "{delivered}");
}

#[test]
fn sigkill_mid_delivery_loses_nothing_and_resends_with_the_same_webhook_id() {
    let work = WorkDir::new();
    let (dir, lake) = (work.path(), work.path().join("lake"));
    let events = dir.join("events.jsonl");
    write_events(&events);
    let hold = dir.join("hold");
    std::fs::write(&hold, "").unwrap();
    let receiver = Receiver::start(dir, Some(&hold));
    let config = dir.join("authtrail.toml");
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);
    // A long drain keeps the process waiting on the held requests until it is killed.
    write_config(&config, &lake, &[("idp", url, "revoke_token")], "5m");
    let (config_arg, events_arg) = (config.to_str().unwrap(), events.to_str().unwrap());
    let args = ["ingest", "--config", config_arg, "--from-file", events_arg];
    let mut first = authtrail_env(dir, "ingest-killed", &args, &[(SECRET_ENV, SECRET)]);
    receiver.wait_for(TOKENS);
    first.signal(SIGKILL);
    first.wait(Duration::from_secs(30));
    let pending = run(
        dir,
        "list-pending",
        &["alerts", "--config", config_arg, "--state", "pending"],
    );
    assert_eq!(pending.lines().count(), 1 + TOKENS, "{pending}");

    std::fs::remove_file(&hold).unwrap();
    run(dir, "ingest-restarted", &args);
    receiver.wait_for(2 * TOKENS);
    let mut times: HashMap<String, usize> = HashMap::new();
    for delivery in receiver.deliveries() {
        assert_eq!(delivery["verified"], true, "{delivery}");
        *times
            .entry(delivery["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let ids = alert_ids(&lake);
    assert_eq!(ids.len(), TOKENS);
    for id in &ids {
        assert_eq!(
            times.get(id),
            Some(&2),
            "held once, resent once after the restart: {times:?}"
        );
    }
    let delivered = run(
        dir,
        "list",
        &["alerts", "--config", config_arg, "--state", "delivered"],
    );
    assert_eq!(delivered.lines().count(), 1 + TOKENS, "{delivered}");
}
