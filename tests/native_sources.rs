//! Native identity logs in, as a team would feed them (issue 15): real records from
//! `../shared/samples/real` and generated Keycloak and Kubernetes audit traffic, through
//! the real binary, files and a real broker process (tansu) into the lake.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use support::{
    authtrail, column_counts, read_table, repo_file, row_count, succeeded, wait_for_rows, Broker,
    WorkDir,
};

const SIGTERM: i32 = 15;

fn ingest(lake: &Path, file: &Path, format: &str) -> String {
    let output = succeeded(
        Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("--lake")
            .arg(lake)
            .args(["ingest", "--no-detect", "--format", format, "--from-file"])
            .arg(file),
        "authtrail ingest",
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn samples() -> std::path::PathBuf {
    repo_file("../shared/samples/real")
}

/// Every record of every real sample file is an event or a reject with its reason,
/// nothing silently lost; the kinds per format are those the adapters' unit test checks
/// record by record against `expected.jsonl`.
#[test]
fn real_records_land_as_events_or_rejects_with_reasons() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    let mut records = 0;
    for (file, format) in [
        ("okta.jsonl", "okta"),
        ("auth0.jsonl", "auth0"),
        ("keycloak.jsonl", "keycloak"),
        ("k8s_audit.jsonl", "k8s_audit"),
        ("opa_decisions.jsonl", "opa"),
    ] {
        let path = samples().join(file);
        records += std::fs::read_to_string(&path).unwrap().lines().count();
        let summary = ingest(&lake, &path, format);
        assert!(summary.contains("0 duplicate ids"), "{file}: {summary}");
    }
    let (events, rejects) = (row_count(&lake, "events"), row_count(&lake, "rejects"));
    assert_eq!(events + rejects, records, "every record is a row");
    // okta 11 events (the time-less records are rejects: files have no envelope time),
    // auth0 7, k8s_audit 11; opa and keycloak none (no caller; no time).
    assert_eq!(
        events_per_format(&lake).into_iter().collect::<Vec<_>>(),
        [
            ("auth0".to_owned(), 7),
            ("k8s_audit".to_owned(), 11),
            ("okta".to_owned(), 11)
        ]
    );
    let kinds = column_counts(&lake, "rejects", "error_kind");
    assert_eq!(kinds.get("unmapped"), Some(&28), "{kinds:?}");
    assert_eq!(
        kinds.values().sum::<usize>(),
        rejects,
        "every reject has its kind"
    );
}

/// The shapes senders really use — a pretty-printed `EventList`, a JSON array, JSON lines
/// with a list on one line — are split into records; a record sent twice byte for byte is
/// kept once; credentials never reach the lake.
#[test]
fn lists_arrays_resends_and_secrets() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    let event = |id: &str, user: &str, decision: &str| {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"ResponseComplete","verb":"get","requestURI":"/api/v1/namespaces/pay/secrets","user":{{"username":"{user}"}},"sourceIPs":["10.0.0.1"],"requestReceivedTimestamp":"2026-11-23T18:00:00Z","annotations":{{"authorization.k8s.io/decision":"{decision}"}}}}"#
        )
    };
    let list = format!(
        "{{\n  \"kind\": \"EventList\",\n  \"apiVersion\": \"audit.k8s.io/v1\",\n  \"items\": [\n    {},\n    {}\n  ]\n}}\n",
        event("a-1", "alice", "allow"),
        event("a-2", "system:serviceaccount:pay:ledger", "forbid")
    );
    let pretty = work.path().join("eventlist.json");
    std::fs::write(&pretty, list).unwrap();
    let summary = ingest(&lake, &pretty, "k8s_audit");
    assert!(summary.contains("2 received: 2 events"), "{summary}");

    // JSON lines: a record, the same record again, and an array of two.
    let lines = work.path().join("lines.jsonl");
    let again = event("a-3", "bob", "allow");
    std::fs::write(
        &lines,
        format!(
            "{again}\n{again}\n[{}, {}]\n",
            event("a-4", "carol", "forbid"),
            event("a-5", "dave", "allow")
        ),
    )
    .unwrap();
    let summary = ingest(&lake, &lines, "k8s_audit");
    assert!(
        summary.contains("4 received: 3 events, 0 rejects") && summary.contains("1 duplicate ids"),
        "{summary}"
    );
    let ids = column_counts(&lake, "events", "id");
    assert_eq!(
        ids.keys().cloned().collect::<BTreeSet<_>>(),
        ["a-1", "a-2", "a-3", "a-4", "a-5"]
            .map(String::from)
            .into_iter()
            .collect()
    );

    // An OPA decision carrying a bearer token, a cookie and a body; and one that breaks
    // the contract (no caller), kept as a reject.
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2VjcmV0LXNpZ25hdHVyZQ";
    let decision = |id: &str, principal: &str| {
        format!(
            r#"{{"decision_id":"{id}","timestamp":"2026-11-23T18:00:00Z","input":{{"attributes":{{"source":{{"principal":"{principal}","address":{{"socketAddress":{{"address":"10.1.1.1"}}}}}},"request":{{"http":{{"method":"GET","path":"/x","headers":{{"authorization":"Bearer {token}","cookie":"sid=hunter2"}},"body":"password=hunter2"}}}}}}}},"result":false}}"#
        )
    };
    let opa = work.path().join("opa.json");
    std::fs::write(
        &opa,
        format!(
            "[{}, {}]",
            decision("d-1", "spiffe://x/ns/a/sa/web"),
            decision("d-2", "")
        ),
    )
    .unwrap();
    let summary = ingest(&lake, &opa, "opa");
    assert!(
        summary.contains("2 received: 1 events, 1 rejects"),
        "{summary}"
    );
    for table in ["events", "rejects"] {
        for path in support::parquet_files(&lake.join(table)) {
            let bytes = std::fs::read(&path).unwrap();
            for secret in [token.as_bytes(), b"hunter2"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret),
                    "a secret in {}",
                    path.display()
                );
            }
        }
    }
}

/// Events per `attributes.source_format`; every adapted event names its format.
fn events_per_format(lake: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut per_format = std::collections::BTreeMap::new();
    for batch in read_table(lake, "events") {
        let attributes = batch.column_by_name("attributes").unwrap().as_map();
        for row in 0..batch.num_rows() {
            let entry = attributes.value(row);
            let keys = entry.column(0).as_string::<i32>();
            let values = entry.column(1).as_string::<i32>();
            let format = (0..keys.len())
                .find(|&i| keys.value(i) == "source_format")
                .map_or("authtrail".to_owned(), |i| values.value(i).to_owned());
            *per_format.entry(format).or_insert(0) += 1;
        }
    }
    per_format
}

/// Alerts of detector `detector` as sets of evidence ids (the principals' names differ
/// between sources: the ids are the same events).
fn alert_evidence(lake: &Path, detector: &str) -> BTreeSet<Vec<String>> {
    let mut alerts = BTreeSet::new();
    for batch in read_table(lake, "alerts") {
        let detectors = batch.column_by_name("detector").unwrap().as_string::<i32>();
        let evidence = batch
            .column_by_name("evidence_ids")
            .unwrap()
            .as_list::<i32>();
        for row in 0..batch.num_rows() {
            if detectors.value(row) != detector {
                continue;
            }
            let ids = evidence.value(row);
            let mut ids: Vec<String> = ids
                .as_string::<i32>()
                .iter()
                .map(|id| id.unwrap().to_owned())
                .collect();
            ids.sort();
            alerts.insert(ids);
        }
    }
    alerts
}

/// A Keycloak brute force and a token replayed from three addresses in Kubernetes audit,
/// produced in their native formats to their own topics, raise the alerts the same
/// traffic raises as contract events.
#[test]
fn native_topics_raise_the_alerts_of_their_contract_events() {
    let work = WorkDir::new();
    let dir = work.path();
    let broker = Broker::start(dir);
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    for topic in ["auth-events", "keycloak-events", "k8s-audit"] {
        broker.produce(topic, &empty, Some(1));
    }
    let generate = |extra: &[&str]| {
        succeeded(
            Command::new(env!("CARGO_BIN_EXE_authtrail"))
                .args([
                    "gen",
                    "--seed",
                    "5",
                    "--users",
                    "50",
                    "--start",
                    "2026-11-23T00:00:00Z",
                    "--duration",
                    "2h",
                    "--learning",
                    "1h",
                    "--service-calls-per-second",
                    "0.02",
                    "--attacks",
                    "brute_force,token_replay_addresses",
                    "--no-lookalikes",
                ])
                .args(extra),
            "authtrail gen",
        )
    };
    let contract = dir.join("contract.jsonl");
    generate(&["--output", contract.to_str().unwrap()]);
    let events = std::fs::read_to_string(&contract).unwrap().lines().count();
    generate(&[
        "--brokers",
        &broker.address,
        "--native",
        "keycloak,k8s_audit",
    ]);

    let contract_lake = dir.join("contract-lake");
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("--lake")
            .arg(&contract_lake)
            .args(["ingest", "--from-file"])
            .arg(&contract),
        "ingest of the contract events",
    );

    let native_lake = dir.join("native-lake");
    let config = dir.join("native.toml");
    std::fs::write(
        &config,
        format!(
            r#"[lake]
path = "{}"
[kafka]
brokers = "{}"
topics = ["auth-events"]
[[kafka.sources]]
topic = "keycloak-events"
format = "keycloak"
[[kafka.sources]]
topic = "k8s-audit"
format = "k8s_audit"
[ingest]
flush_age = "1s"
"#,
            native_lake.display(),
            broker.address
        ),
    )
    .unwrap();
    let mut ingest = authtrail(
        dir,
        "ingest-native",
        &["ingest", "--config", config.to_str().unwrap()],
    );
    wait_for_rows(&native_lake, events, Duration::from_secs(60));
    ingest.signal(SIGTERM);
    assert!(ingest.wait(Duration::from_secs(30)).success());

    assert_eq!(row_count(&native_lake, "rejects"), 0);
    for detector in ["brute_force", "token_replay"] {
        let expected = alert_evidence(&contract_lake, detector);
        assert!(!expected.is_empty(), "the attack raised {detector}");
        assert_eq!(
            alert_evidence(&native_lake, detector),
            expected,
            "{detector}"
        );
    }
    // The traffic came in all three formats.
    let per_format = events_per_format(&native_lake);
    assert_eq!(per_format.values().sum::<usize>(), events);
    assert!(per_format.len() == 3, "{per_format:?}");
}

/// An OPA deny storm — one workload denied at one service after another — is
/// `authz_probing`, as the same decisions would be as contract events.
#[test]
fn an_opa_deny_storm_is_authz_probing() {
    let work = WorkDir::new();
    let lake = work.path().join("lake");
    let decisions: String = (0..12)
        .map(|i| {
            format!(
                r#"{{"decision_id":"storm-{i}","timestamp":"2026-11-23T18:00:{i:02}Z","path":"envoy/authz/allow","input":{{"attributes":{{"source":{{"principal":"spiffe://cluster.local/ns/shop/sa/web","address":{{"socketAddress":{{"address":"10.1.1.7"}}}}}},"destination":{{"principal":"spiffe://cluster.local/ns/shop/sa/backend-{}"}},"request":{{"http":{{"method":"GET","path":"/admin/{i}","host":"backend-{}"}}}}}}}},"result":{{"allowed":false}}}}"#,
                i % 4,
                i % 4
            ) + "\n"
        })
        .collect();
    let file = work.path().join("decisions.jsonl");
    std::fs::write(&file, decisions).unwrap();
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("--lake")
            .arg(&lake)
            .args(["ingest", "--format", "opa", "--from-file"])
            .arg(&file),
        "authtrail ingest",
    );
    let probing = alert_evidence(&lake, "authz_probing");
    assert_eq!(probing.len(), 1, "{probing:?}");
    let evidence = probing.into_iter().next().unwrap();
    assert!(evidence.len() >= 10, "{evidence:?}");
    assert!(evidence.iter().all(|id| id.starts_with("storm-")));
}
