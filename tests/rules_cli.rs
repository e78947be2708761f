//! `authtrail rules check|test|backtest`: the starter pack checks and passes its tests, a
//! broken rule is named with file and line, and a backtest over a lake raises exactly the
//! alerts (same ids) the live pipeline raised from the same events.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use support::{read_table, repo_file, WorkDir};

fn authtrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_starter_pack_checks_and_its_tests_pass() {
    let pack = repo_file("rules/pack");
    let pack = pack.to_str().unwrap();
    let check = authtrail(&["rules", "check", pack]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).starts_with("ok: "), "{}", stdout(&check));
    let test = authtrail(&["rules", "test", pack]);
    assert!(test.status.success(), "{}", stdout(&test));
    assert!(stdout(&test).contains(" 0 failed"), "{}", stdout(&test));
}

#[test]
fn a_broken_rule_fails_check_and_test_with_its_file_and_line() {
    let work = WorkDir::new();
    let rule = "title: t\nid: x\nlogsource: {product: authtrail, category: authz}\ndetection:\n  s:\n    principle: user:a\n  condition: s\n";
    std::fs::write(work.path().join("bad.yml"), rule).unwrap();
    let dir = work.path().to_str().unwrap();
    for command in ["check", "test"] {
        let output = authtrail(&["rules", command, dir]);
        assert!(!output.status.success());
        assert!(
            stdout(&output).contains("bad.yml:6: unknown field `principle`"),
            "{}",
            stdout(&output)
        );
    }
    // A rule whose case expects an alert it does not raise fails `test` only.
    std::fs::write(
        work.path().join("bad.yml"),
        rule.replace("principle", "principal"),
    )
    .unwrap();
    let case = "cases:\n  - name: fires\n    alerts: 1\n    events:\n      - {kind: authz, principal: user:b, outcome: allow}\n";
    std::fs::write(work.path().join("bad.tests.yml"), case).unwrap();
    assert!(authtrail(&["rules", "check", dir]).status.success());
    let test = authtrail(&["rules", "test", dir]);
    assert!(!test.status.success());
    assert!(stdout(&test).contains("FAIL "), "{}", stdout(&test));
    assert!(
        stdout(&test).contains("expected 1 alert(s), got 0"),
        "{}",
        stdout(&test)
    );
}

/// Events that complete several pack rules, across an hour boundary (a correlation
/// straddles it) and over two hours, in event-time order (as a live stream delivers them
/// within the allowed lateness; events later than that stay out of live windows but not
/// out of a backtest, which reads in time order).
fn events() -> Vec<String> {
    let mut timed = Vec::new();
    for (principal, minute) in [("user:mallory", 56), ("user:oscar", 57)] {
        for step in 0..5 {
            let (hour, minute) = (10 + (minute + step) / 60, (minute + step) % 60);
            let body = format!(
                r#""kind":"authz","principal":"{principal}","target_service":"iam","outcome":"deny""#
            );
            timed.push((format!("2026-11-23T{hour:02}:{minute:02}:00Z"), body));
        }
        let body = format!(
            r#""kind":"authz","principal":"{principal}","target_service":"iam","outcome":"allow""#
        );
        timed.push(("2026-11-23T11:05:00Z".to_owned(), body));
    }
    for (n, agent) in ["a/1", "b/2", "c/3", "d/4"].iter().enumerate() {
        let body = format!(
            r#""kind":"authn","principal":"user:carol","outcome":"success","user_agent":"{agent}""#
        );
        timed.push((format!("2026-11-23T11:{:02}:00Z", 10 + n), body));
    }
    // Ten failed logins: the built-ins' brute force (no pack rule's).
    for n in 0..10 {
        let body = r#""kind":"authn","principal":"user:victor","outcome":"failure","source_ip":"198.51.100.9""#;
        timed.push((format!("2026-11-23T11:40:{:02}Z", n), body.to_owned()));
    }
    timed.push(("2026-11-23T11:30:00Z".to_owned(), r#""kind":"authz","principal":"svc:payments","target_service":"ledger","outcome":"allow","source_ip":"203.0.113.50""#.to_owned()));
    timed.push(("2026-11-23T11:31:00Z".to_owned(), r#""kind":"authz","principal":"user:frank","target_service":"iam","outcome":"allow","action":"DELETE /v1/signing-keys/k-7""#.to_owned()));
    timed.sort();
    timed
        .iter()
        .enumerate()
        .map(|(n, (time, body))| format!(r#"{{"id":"bt-{n:02}","time":"{time}",{body}}}"#))
        .collect()
}

#[test]
fn a_backtest_raises_the_alerts_the_live_pipeline_raised() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    let input = work.path().join("events.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for line in events() {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let pack = repo_file("rules/pack");
    let config = work.path().join("authtrail.toml");
    std::fs::write(
        &config,
        format!("[detect]\nrules = [{:?}]\n", pack.to_str().unwrap()),
    )
    .unwrap();
    let (lake_arg, input_arg, config_arg) = (
        lake.to_str().unwrap(),
        input.to_str().unwrap(),
        config.to_str().unwrap(),
    );

    let ingest = authtrail(&[
        "--lake",
        lake_arg,
        "ingest",
        "--config",
        config_arg,
        "--from-file",
        input_arg,
    ]);
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let (mut live, mut live_all) = (BTreeSet::new(), BTreeSet::new());
    for batch in read_table(&lake, "alerts") {
        let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
        let detectors = batch.column_by_name("detector").unwrap().as_string::<i32>();
        for row in 0..batch.num_rows() {
            if detectors.value(row).starts_with("sigma:") {
                live.insert(ids.value(row).to_owned());
            }
            live_all.insert(ids.value(row).to_owned());
        }
    }
    assert!(live_all.len() > live.len(), "{live_all:?}");
    // Both principals' bursts and probes, the user agents, the workload, the key change.
    assert_eq!(live.len(), 7, "{live:?}");

    let backtest = authtrail(&[
        "--lake",
        lake_arg,
        "rules",
        "backtest",
        "--rules",
        pack.to_str().unwrap(),
        "--from",
        "2026-11-23T10:00:00Z",
        "--until",
        "2026-11-23T12:00:00Z",
        "--first",
        "100",
    ]);
    let report = stdout(&backtest);
    assert!(
        backtest.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&backtest.stderr)
    );
    let replayed: BTreeSet<String> = report
        .lines()
        .filter_map(|line| Some(line.split_once(" [")?.1.split_once(']')?.0.to_owned()))
        .collect();
    assert_eq!(replayed, live, "{report}");
    assert!(
        report.contains("sigma:admin_api_denied_burst: 2 alert(s)"),
        "{report}"
    );
    assert!(report.contains("  per day: 2026-11-23 2"), "{report}");
    assert!(
        report.contains("sigma:wildcard_scope_issued: 0 alerts"),
        "{report}"
    );
    assert!(report.contains("28 events replayed"), "{report}");

    // With the built-ins, as the detection stage runs them: every alert of the live run.
    let with_builtins = authtrail(&[
        "--lake",
        lake_arg,
        "rules",
        "backtest",
        "--rules",
        pack.to_str().unwrap(),
        "--config",
        config_arg,
        "--with-builtins",
        "--from",
        "2026-11-23T10:00:00Z",
        "--until",
        "2026-11-23T12:00:00Z",
        "--first",
        "100",
    ]);
    let report = stdout(&with_builtins);
    assert!(
        with_builtins.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&with_builtins.stderr)
    );
    let replayed: BTreeSet<String> = report
        .lines()
        .filter_map(|line| Some(line.split_once(" [")?.1.split_once(']')?.0.to_owned()))
        .collect();
    assert_eq!(replayed, live_all, "{report}");
}

/// A rule for the reload test: `name` matching denied authz calls.
fn deny_rule(name: &str, id: &str) -> String {
    format!(
        "title: {name}\nid: {id}\nname: {name}\nlevel: low\nlogsource: {{product: authtrail, category: authz}}\ndetection:\n  selection:\n    outcome: deny\n  condition: selection\n"
    )
}

/// `POST /api/v1/rules/reload` and SIGHUP swap the rules of a running `authtrail run`; a
/// broken set is refused with its file and the running set goes on.
#[test]
fn rules_reload_without_a_restart_and_refuse_a_broken_set() {
    use support::run::{http, printed, start, write_config, API_KEY};
    let work = WorkDir::new();
    let rules = work.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), deny_rule("denied_a", "r-a")).unwrap();
    let lake = work.path().join("lake");
    let config = write_config(
        work.path(),
        &lake,
        &format!("[detect]\nrules = [{:?}]\n", rules.display().to_string()),
    );
    let run = start(work.path(), "run", &config);
    let address = printed(work.path(), "run", "on http://");
    let reload = || {
        http(
            &address,
            "POST",
            "/api/v1/rules/reload",
            Some(API_KEY),
            None,
        )
    };

    let (status, body) = reload();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1 detection and 0 correlation rules"),
        "{body}"
    );

    std::fs::write(rules.join("b.yml"), "title: b\ndetection: [\n").unwrap();
    let (status, body) = reload();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("b.yml") && body.contains("invalid_rules"),
        "{body}"
    );
    assert_eq!(
        http(&address, "POST", "/api/v1/rules/reload", None, None).0,
        401,
        "the query keys guard it"
    );

    std::fs::write(rules.join("b.yml"), deny_rule("denied_b", "r-b")).unwrap();
    let (status, body) = reload();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("2 detection and 0 correlation rules"),
        "{body}"
    );

    // SIGHUP with a broken set: refused in the log, the process goes on.
    std::fs::write(rules.join("c.yml"), "detection: {").unwrap();
    run.signal(1);
    let log = work.path().join("run.log");
    authtrail_testkit::wait_until(
        "the SIGHUP refusal in the log",
        std::time::Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match text.contains("SIGHUP: sigma rules not reloaded") && text.contains("c.yml") {
                true => Ok(()),
                false => Err("not yet".to_owned()),
            }
        },
    );
    assert_eq!(http(&address, "GET", "/healthz", None, None).0, 200);
}
