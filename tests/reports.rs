//! `authtrail report trust|privilege` end to end: a lake ingested by the real binary from
//! events written here, each report section found on its planted case and silent on its
//! look-alike, its counts checked against DuckDB reading the same files
//! (tests/e2e/reports_check.py), and the same report served by `/api/v1/reports/*` with
//! hostile parameters refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::run::http;
use support::{python, repo_file, succeeded, WorkDir};

/// The window every report here covers: 2026-11-23, all day.
const UNTIL: &str = "2026-11-24T00:00:00Z";
const SINCE: &str = "1d";

/// Open routes and a scope map, as an operator would configure them.
const CONFIG: &str = r#"
[report.trust]
open_routes = [{ service = "orders", resource = "/healthz", action = "GET" }]

[[report.privilege.scope_map]]
service = "legacy"
action = "GET"
scopes = ["legacy:read"]
"#;

fn t(clock: &str) -> String {
    format!("2026-11-23T{clock}Z")
}

struct Events(Vec<Value>);

impl Events {
    fn push(&mut self, mut event: Value) {
        let id = format!("ev-{}", self.0.len());
        event["id"] = json!(id);
        self.0.push(event);
    }

    fn issue(
        &mut self,
        time: &str,
        token: &str,
        client: &str,
        audience: &[&str],
        scopes: &str,
        expires: &str,
    ) {
        self.push(
            json!({"time": time, "kind": "token_issue", "principal": format!("svc:{client}"),
            "service": "idp", "outcome": "success", "token_id": token, "client_id": client,
            "auth_method": "client_credentials", "token_audience": audience, "token_scopes": scopes,
            "token_expires": expires}),
        );
    }

    /// A revoke by the identity provider: of `token`, or with none of every token the
    /// principal holds.
    fn revoke(&mut self, time: &str, principal: &str, token: Option<&str>, reason: &str) {
        let mut event = json!({"time": time, "kind": "token_revoke", "principal": principal,
            "service": "idp", "reason": reason});
        if let Some(token) = token {
            event["token_id"] = json!(token);
        }
        self.push(event);
    }

    fn authz(&mut self, time: &str, principal: &str, service: &str, outcome: &str, fields: Value) {
        let mut event = json!({"time": time, "kind": "authz", "principal": principal,
            "service": service, "target_service": service, "outcome": outcome,
            "resource": "/r", "action": "GET"});
        for (name, value) in fields.as_object().unwrap() {
            event[name] = value.clone();
        }
        self.push(event);
    }
}

/// The planted situations and their look-alikes (comments name which is which).
fn events() -> Vec<Value> {
    let mut e = Events(Vec::new());
    // accepted_invalid, expired: three uses 15 minutes after expiry. Look-alike: one use 10 s
    // after expiry, inside the 60 s skew.
    e.issue(
        &t("10:00:00"),
        "jti-exp",
        "shop",
        &["orders"],
        "orders:read",
        &t("10:15:00"),
    );
    for second in ["00", "01", "02"] {
        e.authz(
            &t(&format!("10:30:{second}")),
            "svc:shop",
            "orders",
            "allow",
            json!({"token_id": "jti-exp"}),
        );
    }
    e.issue(
        &t("10:00:00"),
        "jti-skew",
        "shop",
        &["orders"],
        "orders:read",
        &t("10:15:00"),
    );
    e.authz(
        &t("10:15:10"),
        "svc:shop",
        "orders",
        "allow",
        json!({"token_id": "jti-skew"}),
    );
    // Outside the window: an expired token's use the day before is not counted.
    e.push(
        json!({"time": "2026-11-22T10:00:00Z", "kind": "token_issue", "principal": "svc:shop",
        "service": "idp", "outcome": "success", "token_id": "jti-old", "client_id": "shop",
        "token_audience": ["orders"], "token_expires": "2026-11-22T10:15:00Z"}),
    );
    e.authz(
        "2026-11-22T11:00:00Z",
        "svc:shop",
        "orders",
        "allow",
        json!({"token_id": "jti-old"}),
    );
    // revoked: used 15 minutes after its revocation. Look-alike: a revoked token denied.
    e.issue(
        &t("10:00:00"),
        "jti-rev",
        "shop",
        &["payments"],
        "payments:charge",
        &t("12:00:00"),
    );
    e.revoke(&t("10:05:00"), "svc:shop", Some("jti-rev"), "compromised");
    e.authz(
        &t("10:20:00"),
        "svc:shop",
        "payments",
        "allow",
        json!({"token_id": "jti-rev"}),
    );
    e.issue(
        &t("10:00:00"),
        "jti-rev2",
        "shop",
        &["payments"],
        "payments:charge",
        &t("12:00:00"),
    );
    e.revoke(&t("10:05:00"), "svc:shop", Some("jti-rev2"), "compromised");
    e.authz(
        &t("10:20:00"),
        "svc:shop",
        "payments",
        "deny",
        json!({"token_id": "jti-rev2", "reason": "token_revoked"}),
    );
    // Look-alike: a call allowed at the very microsecond of its token's revoke (a revoke
    // covers what comes strictly after it, as in the detector: it may not have reached
    // the service yet).
    e.issue(
        &t("10:00:00"),
        "jti-rev3",
        "shop",
        &["payments"],
        "payments:charge",
        &t("12:00:00"),
    );
    e.revoke(&t("10:05:00"), "svc:shop", Some("jti-rev3"), "compromised");
    e.authz(
        &t("10:05:00"),
        "svc:shop",
        "payments",
        "allow",
        json!({"token_id": "jti-rev3"}),
    );
    // revoked with all of its principal's tokens: batch's token issued at 09:00, a revoke
    // of every token of svc:batch at 09:20 (no token_id), two uses after it. Look-alikes:
    // the same token used before the revoke, a token issued after the revoke, and a token
    // never seen issued whose first use comes after the revoke.
    e.issue(
        &t("09:00:00"),
        "jti-batch-old",
        "batch",
        &["warehouse"],
        "warehouse:read",
        &t("11:00:00"),
    );
    e.authz(
        &t("09:10:00"),
        "svc:batch",
        "warehouse",
        "allow",
        json!({"token_id": "jti-batch-old"}),
    );
    e.revoke(&t("09:20:00"), "svc:batch", None, "offboarded");
    e.issue(
        &t("09:25:00"),
        "jti-batch-new",
        "batch",
        &["warehouse"],
        "warehouse:read",
        &t("11:25:00"),
    );
    for (clock, token) in [
        ("09:30:00", "jti-batch-old"),
        ("09:31:00", "jti-batch-old"),
        ("09:30:00", "jti-batch-new"),
        ("09:40:00", "jti-batch-unseen"),
    ] {
        e.authz(
            &t(clock),
            "svc:batch",
            "warehouse",
            "allow",
            json!({"token_id": token}),
        );
    }
    // audience: accepted by hr, issued for orders. Look-alikes: a token naming hr, one for `*`.
    e.issue(
        &t("11:00:00"),
        "jti-aud",
        "shop",
        &["orders"],
        "orders:read",
        &t("12:00:00"),
    );
    e.authz(
        &t("11:01:00"),
        "svc:shop",
        "hr",
        "allow",
        json!({"token_id": "jti-aud"}),
    );
    e.issue(
        &t("11:00:00"),
        "jti-aud-ok",
        "shop",
        &["orders", "hr"],
        "orders:read",
        &t("12:00:00"),
    );
    e.authz(
        &t("11:01:00"),
        "svc:shop",
        "hr",
        "allow",
        json!({"token_id": "jti-aud-ok"}),
    );
    e.issue(
        &t("11:00:00"),
        "jti-star",
        "wide",
        &["*"],
        "orders:read",
        &t("12:00:00"),
    );
    e.authz(
        &t("11:01:00"),
        "svc:wide",
        "hr",
        "allow",
        json!({"token_id": "jti-star"}),
    );

    // rejected_elsewhere: orders accepts a token payments rejects as badly signed.
    // Look-alike: payments denies another token for scope, not validity.
    e.issue(
        &t("12:00:00"),
        "jti-peer",
        "shop",
        &["orders", "payments"],
        "orders:read",
        &t("13:00:00"),
    );
    e.authz(
        &t("12:01:00"),
        "svc:shop",
        "orders",
        "allow",
        json!({"token_id": "jti-peer"}),
    );
    e.authz(
        &t("12:02:00"),
        "svc:shop",
        "payments",
        "deny",
        json!({"token_id": "jti-peer", "reason": "invalid_signature"}),
    );
    e.issue(
        &t("12:00:00"),
        "jti-scope",
        "shop",
        &["orders", "payments"],
        "orders:read",
        &t("13:00:00"),
    );
    e.authz(
        &t("12:01:00"),
        "svc:shop",
        "orders",
        "allow",
        json!({"token_id": "jti-scope"}),
    );
    e.authz(
        &t("12:02:00"),
        "svc:shop",
        "payments",
        "deny",
        json!({"token_id": "jti-scope", "reason": "insufficient_scope"}),
    );

    // tokenless: reports lets the gateway's calls in with no token, four of them.
    // Look-alikes: the health check configured open, an mTLS call with a SPIFFE identity.
    for minute in 0..4 {
        e.authz(
            &t(&format!("13:0{minute}:00")),
            &format!("user:u{minute}"),
            "reports",
            "allow",
            json!({"source_service": "gateway", "resource": "/reports/daily"}),
        );
    }
    e.authz(
        &t("13:10:00"),
        "svc:probe",
        "orders",
        "allow",
        json!({"resource": "/healthz"}),
    );
    e.authz(
        &t("13:11:00"),
        "spiffe://prod/ns/pay/sa/ledger",
        "ledger",
        "allow",
        json!({"source_service": "payments", "auth_method": "mtls"}),
    );

    // origin: bob's GET /invoices is allowed via the gateway, denied directly.
    // Look-alike: carol is allowed and denied via the gateway alone (a policy change).
    e.authz(
        &t("14:00:00"),
        "user:bob",
        "billing",
        "allow",
        json!({"source_service": "gateway", "resource": "/invoices", "token_id": "jti-bob"}),
    );
    e.authz(
        &t("14:01:00"),
        "user:bob",
        "billing",
        "allow",
        json!({"source_service": "gateway", "resource": "/invoices", "token_id": "jti-bob"}),
    );
    e.authz(
        &t("14:02:00"),
        "user:bob",
        "billing",
        "deny",
        json!({"resource": "/invoices", "token_id": "jti-bob", "reason": "forbidden"}),
    );
    e.authz(
        &t("14:00:00"),
        "user:carol",
        "billing",
        "allow",
        json!({"source_service": "gateway", "resource": "/invoices", "token_id": "jti-carol"}),
    );
    e.authz(&t("14:03:00"), "user:carol", "billing", "deny", json!({"source_service": "gateway", "resource": "/invoices", "token_id": "jti-carol", "reason": "forbidden"}));

    // propagation: in trace tr-swap, checkout is called by dave and calls inventory
    // as erin. Look-alikes: checkout calling as itself (its own client's token), and a call
    // after a token exchange in the trace.
    e.authz(
        &t("15:00:00"),
        "user:dave",
        "checkout",
        "allow",
        json!({"source_service": "gateway", "trace_id": "tr-swap", "token_id": "jti-dave"}),
    );
    e.authz(
        &t("15:00:01"),
        "user:erin",
        "inventory",
        "allow",
        json!({"source_service": "checkout", "trace_id": "tr-swap", "token_id": "jti-erin"}),
    );
    e.issue(
        &t("14:59:00"),
        "jti-checkout",
        "checkout",
        &["inventory"],
        "inventory:read",
        &t("15:59:00"),
    );
    e.authz(
        &t("15:01:00"),
        "user:dave",
        "checkout",
        "allow",
        json!({"source_service": "gateway", "trace_id": "tr-own", "token_id": "jti-dave"}),
    );
    e.authz(
        &t("15:01:01"),
        "svc:checkout",
        "inventory",
        "allow",
        json!({"source_service": "checkout", "trace_id": "tr-own", "token_id": "jti-checkout"}),
    );
    e.authz(
        &t("15:02:00"),
        "user:dave",
        "checkout",
        "allow",
        json!({"source_service": "gateway", "trace_id": "tr-exch", "token_id": "jti-dave"}),
    );
    e.push(
        json!({"time": t("15:02:00.500"), "kind": "token_issue", "principal": "svc:delegate",
        "service": "idp", "outcome": "success", "token_id": "jti-exch", "client_id": "delegate",
        "auth_method": "token_exchange", "token_audience": ["inventory"], "trace_id": "tr-exch",
        "token_expires": t("15:07:00")}),
    );
    e.authz(
        &t("15:02:01"),
        "svc:delegate",
        "inventory",
        "allow",
        json!({"source_service": "checkout", "trace_id": "tr-exch", "token_id": "jti-exch"}),
    );

    // Privilege. `reports` holds orders:write and the orders audience and uses neither.
    for k in 0..3 {
        let token = format!("jti-reports-{k}");
        e.issue(
            &t(&format!("16:0{k}:00")),
            &token,
            "reports",
            &["reports", "orders"],
            "reports:read orders:write",
            &t(&format!("17:0{k}:00")),
        );
        e.authz(
            &t(&format!("16:0{k}:30")),
            "svc:reports",
            "reports",
            "allow",
            json!({"token_id": token, "required_scopes": ["reports:read"]}),
        );
    }
    // `legacy` sends no required_scopes: the scope map says GET needs legacy:read.
    e.issue(
        &t("16:10:00"),
        "jti-legacy",
        "legacy",
        &["legacy"],
        "legacy:read legacy:write",
        &t("17:10:00"),
    );
    e.authz(
        &t("16:11:00"),
        "svc:legacy",
        "legacy",
        "allow",
        json!({"token_id": "jti-legacy"}),
    );
    // `nightly` is issued tokens it never presents.
    e.issue(
        &t("16:20:00"),
        "jti-nightly-0",
        "nightly",
        &["reports"],
        "reports:read",
        &t("17:20:00"),
    );
    e.issue(
        &t("16:21:00"),
        "jti-nightly-1",
        "nightly",
        &["reports"],
        "reports:read",
        &t("17:21:00"),
    );
    // `forever` holds a 30-day token where the fleet's client credentials live an hour.
    e.issue(
        &t("16:30:00"),
        "jti-forever",
        "forever",
        &["reports"],
        "reports:read",
        "2026-12-23T16:30:00Z",
    );
    e.authz(
        &t("16:31:00"),
        "svc:forever",
        "reports",
        "allow",
        json!({"token_id": "jti-forever", "required_scopes": ["reports:read"]}),
    );
    e.0
}

fn ingested_lake(work: &WorkDir) -> (PathBuf, PathBuf) {
    let input = work.path().join("events.jsonl");
    let lines: Vec<String> = events().iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let lake = work.path().join("lake");
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_authtrail"));
    ingest.arg("--lake").arg(&lake);
    ingest
        .args(["ingest", "--no-detect", "--from-file"])
        .arg(&input);
    let output = succeeded(&mut ingest, "ingest");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("reject"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = work.path().join("authtrail.toml");
    std::fs::write(&config, CONFIG).unwrap();
    (lake, config)
}

fn report(lake: &Path, config: &Path, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authtrail"));
    command.arg("--lake").arg(lake).arg("report").args(args);
    command.arg("--config").arg(config).args(["--until", UNTIL]);
    let output = succeeded(&mut command, "report");
    String::from_utf8(output.stdout).unwrap()
}

fn json_report(lake: &Path, config: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    serde_json::from_str(&report(lake, config, &args)).unwrap()
}

fn section<'a>(report: &'a Value, id: &str) -> &'a Vec<Value> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no section {id}: {report}"))["rows"]
        .as_array()
        .unwrap()
}

/// Rows as `(columns...)` tuples of text, for comparing with DuckDB's.
fn pick(rows: &[Value], columns: &[&str]) -> Vec<Vec<String>> {
    let mut picked: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match &row[*c] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    picked.sort();
    picked
}

/// DuckDB's answers over the same files (tests/e2e/reports_check.py).
fn duckdb(lake: &Path) -> Value {
    let mut check = Command::new(python());
    check
        .arg(repo_file("tests/e2e/reports_check.py"))
        .arg(lake)
        .args(["2026-11-23T00:00:00Z", UNTIL]);
    serde_json::from_slice(&succeeded(&mut check, "reports_check.py").stdout).unwrap()
}

fn expect(duck: &Value, name: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = duck[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn trust_report_finds_each_gap_and_none_of_the_look_alikes() {
    let work = WorkDir::new();
    let (lake, config) = ingested_lake(&work);
    let trust = json_report(&lake, &config, &["trust", "--since", SINCE]);
    let duck = duckdb(&lake);

    let invalid = section(&trust, "accepted_invalid");
    assert_eq!(
        pick(invalid, &["service", "gap", "allows", "tokens"]),
        [
            ["hr", "audience", "1", "1"],
            ["orders", "expired", "3", "1"],
            ["payments", "revoked", "1", "1"],
            ["warehouse", "revoked", "2", "1"],
        ],
        "{invalid:?}"
    );
    assert_eq!(
        invalid.iter().find(|r| r["gap"] == "expired").unwrap()["example_tokens"],
        json!(["jti-exp"])
    );
    assert_eq!(
        pick(invalid, &["service", "gap", "allows"]),
        expect(&duck, "accepted_invalid")
    );

    let rejected = section(&trust, "rejected_elsewhere");
    assert_eq!(
        pick(
            rejected,
            &[
                "service",
                "peer",
                "tokens",
                "peer_reasons",
                "example_tokens"
            ]
        ),
        [[
            "orders",
            "payments",
            "1",
            "[\"invalid_signature\"]",
            "[\"jti-peer\"]"
        ]]
    );
    assert_eq!(
        pick(rejected, &["service", "peer", "tokens"]),
        expect(&duck, "rejected_elsewhere")
    );

    let open = section(&trust, "tokenless");
    assert_eq!(
        pick(
            open,
            &[
                "service",
                "origin",
                "allows",
                "principals",
                "example_routes"
            ]
        ),
        [["reports", "gateway", "4", "4", "[\"GET /reports/daily\"]"]]
    );
    assert_eq!(
        pick(open, &["service", "origin", "allows"]),
        expect(&duck, "tokenless")
    );

    let divergent = section(&trust, "origin");
    assert_eq!(
        pick(
            divergent,
            &[
                "service",
                "principal",
                "resource",
                "allowed_via",
                "denied_via",
                "allows",
                "denies"
            ]
        ),
        [[
            "billing",
            "user:bob",
            "/invoices",
            "[\"gateway\"]",
            "[\"(direct)\"]",
            "2",
            "1"
        ]]
    );
    assert_eq!(
        pick(divergent, &["service", "principal", "resource"]),
        expect(&duck, "origin")
    );

    let propagation = section(&trust, "propagation");
    assert_eq!(
        pick(
            propagation,
            &[
                "service",
                "caller",
                "onward_principal",
                "callee",
                "traces",
                "example_traces"
            ]
        ),
        [[
            "checkout",
            "user:dave",
            "user:erin",
            "inventory",
            "1",
            "[\"tr-swap\"]"
        ]]
    );
    assert_eq!(
        pick(propagation, &["service", "caller", "onward_principal"]),
        expect(&duck, "propagation")
    );

    // One service's view holds only that service's findings.
    let orders = json_report(
        &lake,
        &config,
        &["trust", "--since", SINCE, "--service", "orders"],
    );
    assert_eq!(orders["service"], "orders");
    for part in orders["sections"].as_array().unwrap() {
        for row in part["rows"].as_array().unwrap() {
            assert_eq!(row["service"], "orders", "{part}");
        }
    }
    assert_eq!(section(&orders, "accepted_invalid").len(), 1);

    // The window is the window: the day before holds one more expired use.
    let two_days = json_report(&lake, &config, &["trust", "--since", "2d"]);
    let expired = section(&two_days, "accepted_invalid")
        .iter()
        .find(|r| r["gap"] == "expired")
        .unwrap()
        .clone();
    assert_eq!(expired["allows"], 4, "{expired}");

    // The other formats carry the same rows.
    let table = report(&lake, &config, &["trust", "--since", SINCE]);
    assert!(
        table.contains("Tokens accepted while revoked, expired or for another audience (4)"),
        "{table}"
    );
    assert!(
        table.contains("Identity dropped or swapped along a trace (1)"),
        "{table}"
    );
    let csv = report(
        &lake,
        &config,
        &["trust", "--since", SINCE, "--format", "csv"],
    );
    assert!(
        csv.contains("\ntokenless,reports,gateway,4,4,1,GET /reports/daily,"),
        "{csv}"
    );
    let markdown = report(
        &lake,
        &config,
        &["trust", "--since", SINCE, "--format", "markdown"],
    );
    assert!(
        markdown.contains("| billing | user:bob | /invoices | GET | gateway | (direct) | 2 | 1 |"),
        "{markdown}"
    );

    // More suspect tokens than the row limit: accepted_invalid judges every call instead
    // (its first pass cut short would miss gaps), and says its rows were cut.
    let one_row = work.path().join("one_row.toml");
    std::fs::write(&one_row, format!("{CONFIG}\n[query]\nmax_rows = 1\n")).unwrap();
    let limited = json_report(&lake, &one_row, &["trust", "--since", SINCE]);
    let part = limited["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "accepted_invalid")
        .unwrap();
    assert_eq!(part["truncated"], true, "{part}");
    let rows = pick(
        part["rows"].as_array().unwrap(),
        &["service", "gap", "allows"],
    );
    assert_eq!(rows.len(), 1, "{part}");
    assert!(
        pick(invalid, &["service", "gap", "allows"]).contains(&rows[0]),
        "{part}"
    );
}

#[test]
fn privilege_report_weighs_grants_against_use() {
    let work = WorkDir::new();
    let (lake, config) = ingested_lake(&work);
    let privilege = json_report(&lake, &config, &["privilege", "--since", SINCE]);
    let duck = duckdb(&lake);

    let unused = section(&privilege, "unused_scopes");
    let reports_scopes: Vec<&Value> = unused.iter().filter(|r| r["holder"] == "reports").collect();
    assert_eq!(reports_scopes.len(), 1, "{unused:?}");
    assert_eq!(
        reports_scopes[0]["recommendation"],
        "drop scope `orders:write` from client `reports`: granted 3 times, used 0 times in 1 day"
    );
    // The scope map credits legacy's GET with legacy:read; legacy:write stays unused.
    let legacy: Vec<&Value> = unused.iter().filter(|r| r["holder"] == "legacy").collect();
    assert_eq!(legacy.len(), 1, "{unused:?}");
    assert_eq!(legacy[0]["scope"], "legacy:write");
    assert_eq!(
        pick(unused, &["holder", "scope", "grants"]),
        expect(&duck, "unused_scopes"),
        "{unused:?}"
    );

    let audiences = section(&privilege, "unused_audiences");
    assert!(
        audiences
            .iter()
            .any(|r| r["holder"] == "reports" && r["audience"] == "orders"),
        "{audiences:?}"
    );
    assert!(!audiences
        .iter()
        .any(|r| r["holder"] == "reports" && r["audience"] == "reports"));
    assert_eq!(
        pick(audiences, &["holder", "audience", "grants"]),
        expect(&duck, "unused_audiences")
    );

    let dormant = section(&privilege, "dormant");
    assert_eq!(
        pick(dormant, &["holder", "tokens_issued"]),
        expect(&duck, "dormant")
    );
    assert!(dormant.iter().any(|r| r["holder"] == "nightly"
        && r["recommendation"]
            == "disable client `nightly`: 2 tokens issued in 1 day, none presented"));
    assert!(!dormant.iter().any(|r| r["holder"] == "reports"));

    let broad = section(&privilege, "over_broad");
    assert_eq!(
        pick(broad, &["holder", "over_broad_tokens"]),
        [["wide", "1"]]
    );

    let long = section(&privilege, "long_lived");
    assert_eq!(
        pick(
            long,
            &[
                "holder",
                "grant_type",
                "median_lifetime_s",
                "fleet_median_lifetime_s"
            ]
        ),
        [["forever", "client_credentials", "2592000", "3600"]]
    );

    // The summary puts the holders with the most unused scopes first.
    let summary = section(&privilege, "summary");
    let unused_counts: Vec<u64> = summary
        .iter()
        .map(|r| r["scopes_unused"].as_u64().unwrap())
        .collect();
    assert!(
        unused_counts.windows(2).all(|w| w[0] >= w[1]),
        "{unused_counts:?}"
    );
    let reports_row = summary.iter().find(|r| r["holder"] == "reports").unwrap();
    assert_eq!(reports_row["scopes_granted"], 2);
    assert_eq!(reports_row["scopes_unused"], 1);
    assert_eq!(reports_row["tokens_issued"], 3);
    assert_eq!(reports_row["tokens_presented"], 3);
}

#[test]
fn the_api_serves_the_same_reports_and_refuses_hostile_parameters() {
    let work = WorkDir::new();
    let (lake, config) = ingested_lake(&work);
    let port = support::free_port();
    let key = "reports-test-key-0123456789";
    let child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--lake")
        .arg(&lake)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .env("AUTHTRAIL_API_KEYS", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = support::Process {
        child,
        name: "authtrail serve",
    };
    authtrail_testkit::wait_for_listener(("127.0.0.1", port), Duration::from_secs(60));
    let address = format!("127.0.0.1:{port}");
    let get = |path: &str, key: Option<&str>| http(&address, "GET", path, key, None);

    let query = format!("since={SINCE}&until={UNTIL}");
    let (status, body) = get(&format!("/api/v1/reports/trust?{query}"), Some(key));
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    let cli = json_report(&lake, &config, &["trust", "--since", SINCE]);
    assert_eq!(api, cli);

    let (status, body) = get(&format!("/api/v1/reports/privilege?{query}"), Some(key));
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        api,
        json_report(&lake, &config, &["privilege", "--since", SINCE])
    );

    let (status, body) = get(
        &format!("/api/v1/reports/trust?{query}&service=orders"),
        Some(key),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["service"],
        "orders"
    );

    for (path, expected, message) in [
        ("/api/v1/reports/trust", 401, "Bearer"),
        ("/api/v1/reports/trust?since=soon", 400, "not a duration"),
        ("/api/v1/reports/trust?since=9999d", 400, "at most 366 days"),
        ("/api/v1/reports/trust?since=0s", 400, "must not be empty"),
        ("/api/v1/reports/trust?until=yesterday", 400, "RFC 3339"),
        (
            "/api/v1/reports/trust?service=a%0Ab",
            400,
            "control characters",
        ),
        ("/api/v1/reports/trust?sql=1", 400, "unknown field"),
        (
            "/api/v1/reports/privilege?service=orders",
            400,
            "trust report",
        ),
    ] {
        let key = (expected != 401).then_some(key);
        let (status, body) = get(path, key);
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body.contains(message) || expected == 401, "{path}: {body}");
    }
    // A quote in the service is a value, not SQL.
    let (status, body) = get("/api/v1/reports/trust?service=x'%20OR%20'1'='1", Some(key));
    assert_eq!(status, 200, "{body}");
    let injected: Value = serde_json::from_str(&body).unwrap();
    assert!(injected["sections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["rows"].as_array().unwrap().is_empty()));
}

#[test]
fn explain_shows_the_scans_pruned_to_the_window() {
    let work = WorkDir::new();
    let (lake, config) = ingested_lake(&work);
    for name in ["trust", "privilege"] {
        // The lake holds hours 10-11 of the 22nd and 10-16 of the 23rd. The hour before
        // 15:30 on the 23rd reads hours 14 and 15; its token issues and revocations,
        // a day further back, hours 10-15 of the 23rd. Nothing reads the 22nd or hour 16.
        let mut command = Command::new(env!("CARGO_BIN_EXE_authtrail"));
        command
            .arg("--lake")
            .arg(&lake)
            .args(["report", name, "--since", "1h", "--explain"]);
        command
            .arg("--config")
            .arg(&config)
            .args(["--until", "2026-11-23T15:30:00Z"]);
        let plans = String::from_utf8(succeeded(&mut command, "report --explain").stdout).unwrap();
        let scans: Vec<&str> = plans
            .lines()
            .filter(|l| l.contains("DataSourceExec"))
            .collect();
        assert!(scans.len() >= 5, "{plans}");
        for scan in &scans {
            assert!(
                !scan.contains("date=2026-11-22"),
                "{name}: unpruned scan: {scan}"
            );
            assert!(!scan.contains("hour=16"), "{name}: unpruned scan: {scan}");
        }
        assert!(
            scans
                .iter()
                .any(|scan| scan.contains("date=2026-11-23/hour=14")),
            "{plans}"
        );
        assert!(
            scans
                .iter()
                .any(|scan| scan.contains("date=2026-11-23/hour=10")),
            "{plans}"
        );
    }
}

/// `$CARGO_TARGET_DIR/e2e-artifacts/reports-ui` (next to the other UI test's screenshots).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        },
        PathBuf::from,
    );
    let dir = target.join("e2e-artifacts").join("reports-ui");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_web_ui_shows_a_services_trust_view_and_sorts_the_privilege_table() {
    use support::run::{printed, start, write_config, API_KEY};
    let work = WorkDir::new();
    let (lake, _) = ingested_lake(&work);
    let config = write_config(work.path(), &lake, CONFIG);
    let _run = start(work.path(), "run", &config);
    let address = printed(work.path(), "run", "on http://");

    let shots = artifacts();
    let output = Command::new(python())
        .arg(repo_file("tests/e2e/reports_ui_check.py"))
        .arg(format!("http://{address}/"))
        .arg(API_KEY)
        .arg(&shots)
        .args([SINCE, UNTIL])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "UI check failed (screenshots in {}): {stdout}\n{}",
        shots.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let services = |rows: &Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| row[0].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        services(&seen["trust"]["accepted_invalid"]),
        ["hr", "orders", "payments", "warehouse"],
        "{seen}"
    );
    assert_eq!(
        services(&seen["trust"]["propagation"]),
        ["checkout"],
        "{seen}"
    );
    assert_eq!(
        seen["service_scope"].as_str().unwrap().split(',').next(),
        Some("service orders")
    );
    for (id, rows) in seen["service_view"].as_object().unwrap() {
        assert!(services(rows).iter().all(|s| s == "orders"), "{id}: {rows}");
    }
    assert_eq!(
        services(&seen["service_view"]["rejected_elsewhere"]),
        ["orders"],
        "{seen}"
    );

    let numbers = |name: &str| -> Vec<u64> {
        seen[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect()
    };
    let unused = numbers("by_unused_scopes");
    assert!(unused.windows(2).all(|w| w[0] >= w[1]), "{unused:?}");
    assert!(unused[0] >= 1, "{unused:?}");
    let issued = numbers("by_tokens_issued");
    assert!(issued.windows(2).all(|w| w[0] >= w[1]), "{issued:?}");
    assert_eq!(issued[0], 9, "shop holds the most tokens: {issued:?}");
    let recommendations: Vec<&str> = seen["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        recommendations.contains(&"drop scope `orders:write` from client `reports`: granted 3 times, used 0 times in 1 day"),
        "{recommendations:?}"
    );
    for name in [
        "01-trust",
        "02-trust-orders",
        "03-privilege",
        "04-privilege-sorted",
    ] {
        let shot = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1_000),
            "{}",
            shot.display()
        );
    }
}
