//! The trust and privilege reports over a lake of `authtrail gen` traffic: every planted
//! situation is listed by each report section its ground truth names (`reports`), about
//! its `subject`; each look-alike's own time span leaves its section silent about its
//! subject.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{succeeded, WorkDir};

/// The health checks the generator plays are on a route meant to be open.
const CONFIG: &str = r#"
[report.trust]
open_routes = [{ resource = "/healthz", action = "GET" }]
"#;

fn authtrail(lake: &Path, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authtrail"));
    command.arg("--lake").arg(lake).args(args);
    let output = succeeded(&mut command, &args.join(" "));
    String::from_utf8(output.stdout).unwrap()
}

/// RFC 3339 of a time, rounded down to the second.
fn rfc3339(micros: i64) -> String {
    authtrail_model::time::format_micros(micros.div_euclid(1_000_000) * 1_000_000)
}

/// The report over `[from, until)` (whole seconds, `until` rounded up), as JSON.
fn report(lake: &Path, config: &Path, args: &[&str], from: i64, until: i64) -> Value {
    let seconds = (until - from) / 1_000_000 + 2;
    let until = rfc3339(until + 1_000_000);
    let mut all = args.to_vec();
    let since = format!("{seconds}s");
    all.extend(["--since", &since, "--until", &until, "--format", "json"]);
    all.extend(["--config", config.to_str().unwrap()]);
    let mut command = vec!["report"];
    command.extend(all);
    serde_json::from_str(&authtrail(lake, &command)).unwrap()
}

/// Rows of section `id` naming `subject` as their service or holder.
fn rows_about<'a>(report: &'a Value, id: &str, subject: &str) -> Vec<&'a Value> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|section| section["id"] == id)
        .unwrap_or_else(|| panic!("no section {id}"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["service"] == subject || row["holder"] == subject)
        .collect()
}

#[test]
fn reports_list_every_planted_situation_and_none_of_the_look_alikes() {
    let work = WorkDir::new();
    let events = work.path().join("events.jsonl");
    let truth = work.path().join("truth.jsonl");
    let lake = work.path().join("lake");
    let config = work.path().join("authtrail.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut gen = Command::new(env!("CARGO_BIN_EXE_authtrail"));
    gen.args(["gen", "--seed", "7", "--users", "150", "--duration", "4h"]);
    gen.args(["--learning", "1h", "--start", "2026-11-20T00:00:00Z", "-o"]);
    gen.arg(&events).arg("--truth").arg(&truth);
    succeeded(&mut gen, "gen");
    authtrail(
        &lake,
        &[
            "ingest",
            "--no-detect",
            "--from-file",
            events.to_str().unwrap(),
        ],
    );

    let lines: Vec<Value> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let meta = lines.iter().find(|line| line["type"] == "meta").unwrap();
    let (start, end) = (
        meta["start"].as_i64().unwrap(),
        meta["end"].as_i64().unwrap(),
    );
    let whole = |name: &str| report(&lake, &config, &[name], start, end);
    let (trust, privilege) = (whole("trust"), whole("privilege"));

    let mut planted = 0;
    let mut look_alikes = 0;
    for scenario in lines.iter().filter(|line| line.get("scenario").is_some()) {
        let Some(subject) = scenario["subject"].as_str() else {
            continue;
        };
        let name = &scenario["scenario"];
        for wanted in scenario["reports"].as_array().into_iter().flatten() {
            let (report, section) = wanted.as_str().unwrap().split_once('.').unwrap();
            let shown = if report == "trust" {
                &trust
            } else {
                &privilege
            };
            assert!(
                !rows_about(shown, section, subject).is_empty(),
                "{name}: no `{section}` row about `{subject}`"
            );
            planted += 1;
        }
        let Some(resembles) = scenario["lookalike_of"].as_str() else {
            continue;
        };
        // A look-alike of the live detector resembles the report's accepted_invalid.
        let section = match resembles.split_once('.') {
            Some((_, section)) => section,
            None if resembles == "validation_gap" => "accepted_invalid",
            None => continue,
        };
        let (from, until) = (
            scenario["start"].as_i64().unwrap(),
            scenario["end"].as_i64().unwrap(),
        );
        let own_span = report(
            &lake,
            &config,
            &["trust", "--service", subject],
            from,
            until,
        );
        assert_eq!(
            rows_about(&own_span, section, subject),
            Vec::<&Value>::new(),
            "{name}: reported under `{section}`"
        );
        look_alikes += 1;
    }
    // Six situations listed in seven report sections, two look-alikes.
    assert_eq!((planted, look_alikes), (7, 2));
}
