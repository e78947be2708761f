//! Rule tests: beside each rule file `x.yml`, a file `x.tests.yml` of cases, each a list
//! of events (YAML maps with the contract's fields) and the number of alerts the file's
//! rules must raise on them (0 for events that must not match).
//!
//! ```yaml
//! cases:
//!   - name: admin scope from a cafe
//!     alerts: 1
//!     events:
//!       - {kind: authz, principal: user:alice, outcome: allow, source_ip: 198.51.100.7}
//! ```
//!
//! An event without `id` gets `case-<n>`; one without `time` gets 2026-01-01T00:00:00Z
//! plus n seconds, so cases only spell out times where windows matter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use authtrail_model::{parse_event, ContractLimits};
use serde_json::{Map, Value as Json};

use crate::engine::{RuleSet, Settings};
use crate::error::Error;
use crate::pack::{Pack, TESTS_SUFFIX};
use crate::yaml::{parse_documents, Node, Problem, Value};

/// Default time of a case's first event: 2026-01-01T00:00:00Z in epoch milliseconds.
const BASE_TIME_MS: i64 = 1_767_225_600_000;
/// The ingest clock test events are parsed against (2100-01-01), so no test time is
/// "in the future".
const TEST_NOW: i64 = 4_102_444_800_000_000;

/// The outcome of one case (or of a rule file without any).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The tests file (or the rule file, when it has none).
    pub file: PathBuf,
    pub name: String,
    pub passed: bool,
    /// What went wrong, or how many alerts were raised.
    pub detail: String,
}

/// Loads the rules under `paths` and runs every case of every rule file's tests.
pub fn run_tests(paths: &[PathBuf]) -> Result<Vec<CaseResult>, Error> {
    let pack = Arc::new(Pack::load(paths)?);
    let mut results = Vec::new();
    for (file, detectors) in &pack.files {
        let tests = tests_file(file);
        let text = match std::fs::read_to_string(&tests) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                results.push(CaseResult {
                    file: file.clone(),
                    name: "(no tests)".into(),
                    passed: false,
                    detail: format!("every rule file needs test cases in {}", tests.display()),
                });
                continue;
            }
            Err(source) => {
                return Err(Error::Read {
                    path: tests,
                    source,
                })
            }
        };
        match cases(&text) {
            Ok(cases) => {
                for case in cases {
                    results.push(run_case(&pack, &tests, detectors, case));
                }
            }
            Err(problem) => results.push(CaseResult {
                file: tests.clone(),
                name: format!("(line {})", problem.line),
                passed: false,
                detail: problem.message,
            }),
        }
    }
    Ok(results)
}

/// `x.yml` → `x.tests.yml`.
fn tests_file(rule_file: &Path) -> PathBuf {
    let stem = rule_file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    rule_file.with_file_name(format!("{stem}{TESTS_SUFFIX}"))
}

struct Case {
    name: String,
    line: usize,
    alerts: u64,
    events: Vec<(usize, Json)>,
}

fn cases(text: &str) -> Result<Vec<Case>, Problem> {
    let docs = parse_documents(text)?;
    let doc = docs
        .first()
        .ok_or_else(|| Problem::new(1, "the tests file is empty"))?;
    let cases = doc
        .get("cases")
        .ok_or_else(|| Problem::new(doc.line, "the tests file has no `cases`"))?;
    let Value::Sequence(items) = &cases.value else {
        return Err(Problem::new(cases.line, "`cases` must be a list"));
    };
    items
        .iter()
        .map(|item| {
            let name = item
                .get("name")
                .ok_or_else(|| Problem::new(item.line, "a case needs a `name`"))?;
            let alerts = item
                .get("alerts")
                .ok_or_else(|| Problem::new(item.line, "a case needs `alerts`"))?;
            let events = item
                .get("events")
                .ok_or_else(|| Problem::new(item.line, "a case needs `events`"))?;
            let Value::Sequence(events) = &events.value else {
                return Err(Problem::new(events.line, "`events` must be a list"));
            };
            Ok(Case {
                name: name.text("`name`")?.to_owned(),
                line: item.line,
                alerts: alerts
                    .text("`alerts`")?
                    .parse()
                    .map_err(|_| Problem::new(alerts.line, "`alerts` is a whole number"))?,
                events: events
                    .iter()
                    .map(|event| (event.line, to_json(event)))
                    .collect(),
            })
        })
        .collect()
}

fn run_case(pack: &Arc<Pack>, file: &Path, detectors: &[String], case: Case) -> CaseResult {
    let mut set = RuleSet::new(Arc::clone(pack), Settings::default());
    let mut raised = Vec::new();
    let result = |passed, detail| CaseResult {
        file: file.to_owned(),
        name: case.name.clone(),
        passed,
        detail,
    };
    for (n, (line, mut event)) in case.events.into_iter().enumerate() {
        if let Json::Object(fields) = &mut event {
            fields
                .entry("id")
                .or_insert_with(|| Json::from(format!("case-{n}")));
            fields
                .entry("time")
                .or_insert_with(|| Json::from(BASE_TIME_MS + 1_000 * n as i64));
        }
        let bytes = event.to_string();
        match parse_event(bytes.as_bytes(), TEST_NOW, &ContractLimits::default()) {
            Ok(event) => set.observe(&event, &mut raised),
            Err(error) => {
                return result(
                    false,
                    format!("line {line}: the event breaks the contract: {error}"),
                )
            }
        }
    }
    let alerts = raised
        .iter()
        .filter(|alert| detectors.contains(&alert.detector))
        .count() as u64;
    if alerts == case.alerts {
        result(true, format!("{alerts} alert(s)"))
    } else {
        result(
            false,
            format!(
                "line {}: expected {} alert(s), got {alerts}",
                case.line, case.alerts
            ),
        )
    }
}

/// A YAML node as JSON: plain `true`/`false`/numbers/null typed, everything else text.
fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Scalar { text, plain: true } => {
            if node.is_null() {
                Json::Null
            } else if let Ok(flag) = text.parse::<bool>() {
                Json::Bool(flag)
            } else if let Ok(number) = text.parse::<i64>() {
                Json::from(number)
            } else {
                Json::from(text.as_str())
            }
        }
        Value::Scalar { text, plain: false } => Json::from(text.as_str()),
        Value::Sequence(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Mapping(entries) => Json::Object(
            entries
                .iter()
                .map(|(key, value)| (key.text.clone(), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
    }
}
