//! The trust and privilege reports: what the services themselves get wrong about identity,
//! read from the lake.
//!
//! Each report is a few fixed SQL queries (`trust.rs`, `privilege.rs`) over the lake's
//! `events`, every scan bounded by the report's time window so the engine's partition
//! pruning reads only the window's hours. Values from a request (the service, the window)
//! are bound as parameters, never spliced into the SQL text; values from the operator's
//! configuration (open routes, the scope map) are spliced as quoted literals. The queries
//! run through the [`QueryEngine`]'s pool, under its timeout, memory limit and row limit;
//! their rows become [`Section`]s of a [`Report`], which `render.rs` writes as a text table,
//! Markdown, CSV or JSON. The CLI, the HTTP API and the web UI all call [`trust`] and
//! [`privilege`], so they show the same findings.

mod config;
mod key;
mod privilege;
mod render;
mod trust;

use std::time::Duration;

use arrow_array::RecordBatch;
use authtrail_model::Micros;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::execution::FunctionRegistry;
use datafusion::physical_plan::displayable;
use serde_json::{Map, Value};

use crate::{Error, QueryEngine, QueryOutput};

pub use config::{PrivilegeConfig, ReportConfig, RoutePattern, ScopeRule, TrustConfig};
pub use render::ReportFormat;

/// The trust report's window when none is given.
pub const DEFAULT_TRUST_SINCE: &str = "7d";
/// The privilege report's window when none is given.
pub const DEFAULT_PRIVILEGE_SINCE: &str = "30d";

/// The longest window a report may cover: a year and a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest service name a trust report may be filtered by (the contract's principal limit).
pub const MAX_SERVICE_LEN: usize = 256;

/// The time range a report covers: `from` inclusive, `until` exclusive, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Micros,
    pub until: Micros,
}

impl Window {
    /// The `since` before `until`; refuses an empty window and one longer than
    /// [`MAX_WINDOW`].
    pub fn before(until: Micros, since: Duration) -> Result<Window, Error> {
        let invalid = |reason: String| Error::InvalidParameter {
            name: "since",
            reason,
        };
        if since.is_zero() {
            return Err(invalid("the window must not be empty".into()));
        }
        if since > MAX_WINDOW {
            return Err(invalid(format!(
                "at most {} days",
                MAX_WINDOW.as_secs() / 86_400
            )));
        }
        let from = until
            .checked_sub(since.as_micros() as i64)
            .filter(|from| *from >= 0)
            .ok_or_else(|| invalid("the window starts before 1970".into()))?;
        Ok(Window { from, until })
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        Duration::from_micros((self.until - self.from) as u64)
    }

    /// The window extended back by `lookback`, for reading the token issues and
    /// revocations that tokens used inside the window go back to.
    fn with_lookback(&self, lookback: Duration) -> Micros {
        self.from
            .saturating_sub(lookback.as_micros().min(i64::MAX as u128) as i64)
            .max(0)
    }
}

/// Parses `7d`, `30days`, `12h` (a humantime duration), naming the parameter in errors.
pub fn parse_since(name: &'static str, text: &str) -> Result<Duration, Error> {
    humantime_serde::re::humantime::parse_duration(text).map_err(|error| Error::InvalidParameter {
        name,
        reason: format!("`{text}` is not a duration like 7d or 12h: {error}"),
    })
}

/// Refuses a service filter no service could have (empty, too long, control characters).
pub fn check_service(service: &str) -> Result<(), Error> {
    let reason = if service.is_empty() {
        "must not be empty"
    } else if service.len() > MAX_SERVICE_LEN {
        "is longer than 256 bytes"
    } else if service.chars().any(char::is_control) {
        "holds control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidParameter {
        name: "service",
        reason: reason.into(),
    })
}

/// One report: its sections, in the order they are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `trust` or `privilege`.
    pub name: &'static str,
    pub window: Window,
    /// The service the report is limited to, if any (trust only).
    pub service: Option<String>,
    pub sections: Vec<Section>,
}

/// One table of a report: findings of one kind, one row each.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// A stable name (`accepted_invalid`), the key in JSON, the UI and the ground truth of
    /// `authtrail gen` (`trust.accepted_invalid`).
    pub id: &'static str,
    pub title: &'static str,
    /// What a row means, in one sentence.
    pub description: &'static str,
    pub columns: Vec<&'static str>,
    /// One object per row, keyed by the names in `columns`.
    pub rows: Vec<Map<String, Value>>,
    /// Whether rows were left out at the engine's row limit (`query.max_rows`).
    pub truncated: bool,
}

/// One of a report's queries: the SQL and the parameters bound into it.
struct ReportQuery {
    /// The section (or the part of one) the rows are for.
    id: &'static str,
    sql: String,
    params: Vec<(&'static str, ScalarValue)>,
    /// The columns the rows are sorted by, in Rust: DataFusion 55 refuses some plans
    /// whose `ORDER BY` column is constant (a service filter makes `service` one), so the
    /// SQL has none.
    order: &'static [&'static str],
    /// A cheaper way to the same rows when only a few rows of the input can matter.
    narrowing: Option<Box<Narrowing>>,
}

/// A first query names the only rows of the input that can give a result (the suspects,
/// a few numbers each), and a second gives the result from those alone. The query's own
/// `sql` (the whole input) is run instead when the suspects were cut at the row limit.
struct Narrowing {
    /// One row per suspect; its columns `UInt64`, `Int64` or `Boolean`, the first the
    /// [`key`] of a token.
    suspects: ReportQuery,
    /// The query over the suspects: [`SUSPECTS`] stands for their rows as a `VALUES`
    /// list (columns `column1`, `column2`, ...), [`SUSPECT_TOKENS`] for their first
    /// column as a list of literals.
    sql: String,
}

/// Where a [`Narrowing`]'s query takes its suspects' rows.
const SUSPECTS: &str = "report_suspects";
/// Where a [`Narrowing`]'s query takes its suspects' token keys.
const SUSPECT_TOKENS: &str = "report_suspect_tokens";

impl ReportQuery {
    fn new(
        id: &'static str,
        sql: String,
        window: &Window,
        order: &'static [&'static str],
    ) -> ReportQuery {
        ReportQuery {
            id,
            sql,
            params: vec![
                ("from", timestamp(window.from)),
                ("until", timestamp(window.until)),
            ],
            order,
            narrowing: None,
        }
    }

    fn bind(mut self, name: &'static str, value: ScalarValue) -> ReportQuery {
        self.params.push((name, value));
        self
    }

    /// This query answered from the rows of `suspects` by `sql` (see [`Narrowing`]).
    fn narrowed_by(mut self, suspects: ReportQuery, sql: String) -> ReportQuery {
        self.narrowing = Some(Box::new(Narrowing { suspects, sql }));
        self
    }

    /// Plans the query with its parameters bound. Filters are evaluated after decoding
    /// whole columns: the reports' filters are on low-cardinality columns (`kind`,
    /// `outcome`), where decoding row ranges filter by filter costs more than it saves
    /// (see `pushdown.rs`). Joins keep the order they are written in: each query names
    /// its small side (tokens, rejections, the few suspect calls) first, as the hash
    /// table, and the window's calls probe it; DataFusion's estimates of aggregated
    /// inputs would otherwise build the table from millions of calls.
    async fn frame(&self, engine: &QueryEngine) -> Result<DataFrame, Error> {
        let mut state = engine.context().state();
        let options = state.config_mut().options_mut();
        options.execution.parquet.pushdown_filters = false;
        options.optimizer.join_reordering = false;
        state.register_udf(std::sync::Arc::new(key::report_key_udf()))?;
        let plan = state.create_logical_plan(&self.sql).await?;
        Ok(DataFrame::new(state, plan).with_param_values(self.params.clone())?)
    }

    /// The query to run: with a narrowing, the one over its suspects (`None` when there
    /// are none: nothing to find), or this one when they were cut at the row limit.
    async fn narrowed(&self, engine: &QueryEngine) -> Result<Option<ReportQuery>, Error> {
        let Some(narrowing) = &self.narrowing else {
            return Ok(Some(self.with_sql(self.sql.clone())));
        };
        let suspects = &narrowing.suspects;
        let output = suspects.collect(engine).await?;
        if output.truncated {
            return Ok(Some(self.with_sql(self.sql.clone())));
        }
        let mut rows = Vec::new();
        let mut tokens = Vec::new();
        for batch in &output.batches {
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .map(|column| sql_number(column.as_ref(), row))
                    .collect::<Result<Vec<_>, _>>()?;
                tokens.push(values[0].clone());
                rows.push(format!("({})", values.join(", ")));
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let sql = narrowing
            .sql
            .replace(SUSPECT_TOKENS, &tokens.join(", "))
            .replace(SUSPECTS, &format!("VALUES {}", rows.join(", ")));
        Ok(Some(self.with_sql(sql)))
    }

    /// Plans and runs this query on the engine's pool, at most `query.max_rows` rows,
    /// logging its time (`RUST_LOG=authtrail_query=debug`).
    async fn collect(&self, engine: &QueryEngine) -> Result<QueryOutput, Error> {
        let started = std::time::Instant::now();
        let output = engine
            .collect(self.frame(engine).await?, Some(engine.config().max_rows))
            .await?;
        tracing::debug!(
            query = self.id,
            rows = output.rows(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "report query ran"
        );
        Ok(output)
    }

    fn with_sql(&self, sql: String) -> ReportQuery {
        ReportQuery {
            id: self.id,
            sql,
            params: self.params.clone(),
            order: self.order,
            narrowing: None,
        }
    }

    /// Runs the query on the engine's pool; at most `query.max_rows` rows.
    async fn rows(&self, engine: &QueryEngine) -> Result<Rows, Error> {
        let Some(query) = self.narrowed(engine).await? else {
            return Ok(Rows {
                rows: Vec::new(),
                truncated: false,
            });
        };
        let output = query.collect(engine).await?;
        let mut rows = json_rows(&output.batches)?;
        rows.sort_by(|a, b| {
            self.order
                .iter()
                .map(|column| compare(a.get(*column), b.get(*column)))
                .find(|order| order.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(Rows {
            rows,
            truncated: output.truncated,
        })
    }
}

/// A query's rows as JSON objects.
struct Rows {
    rows: Vec<Map<String, Value>>,
    truncated: bool,
}

/// Numbers by value, everything else by its text; nulls first.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => std::cmp::Ordering::Equal,
        (None | Some(Value::Null), _) => std::cmp::Ordering::Less,
        (_, None | Some(Value::Null)) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

fn timestamp(micros: Micros) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()))
}

/// Rows as JSON objects (times as RFC 3339 text, lists as arrays, nulls explicit).
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, Error> {
    let internal = |error: &dyn std::fmt::Display| Error::Internal(format!("report rows: {error}"));
    let mut bytes = Vec::new();
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(&mut bytes);
    for batch in batches {
        writer.write(batch).map_err(|e| internal(&e))?;
    }
    writer.finish().map_err(|e| internal(&e))?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| internal(&e))
}

/// The trust report over `window`, for every service or only `service`.
pub async fn trust(
    engine: &QueryEngine,
    config: &ReportConfig,
    window: Window,
    service: Option<&str>,
) -> Result<Report, Error> {
    if let Some(service) = service {
        check_service(service)?;
    }
    // One query at a time: each already keeps both cores busy for most of its run (two
    // at a time took 10% more CPU for the privilege report and no less time).
    let mut sections = Vec::new();
    for (section, query) in trust::queries(&config.trust, &window, service) {
        let rows = query.rows(engine).await?;
        sections.push(section.with_rows(rows));
    }
    Ok(Report {
        name: "trust",
        window,
        service: service.map(str::to_owned),
        sections,
    })
}

/// The privilege report over `window`.
pub async fn privilege(
    engine: &QueryEngine,
    config: &ReportConfig,
    window: Window,
) -> Result<Report, Error> {
    let mut results = Vec::new();
    for query in privilege::queries(&config.privilege, &config.trust, &window) {
        let rows = query.rows(engine).await?;
        results.push((query.id, rows));
    }
    Ok(Report {
        name: "privilege",
        window,
        service: None,
        sections: privilege::sections(&config.privilege, &window, results),
    })
}

/// The physical plans of a report's queries, each under its query's name: what the engine
/// will read (the `events` scans list only the window's `date`/`hour` partitions).
pub async fn explain(
    engine: &QueryEngine,
    config: &ReportConfig,
    report: &str,
    window: Window,
) -> Result<Vec<(&'static str, String)>, Error> {
    let queries: Vec<ReportQuery> = match report {
        "trust" => trust::queries(&config.trust, &window, None)
            .into_iter()
            .map(|(_, query)| query)
            .collect(),
        "privilege" => privilege::queries(&config.privilege, &config.trust, &window),
        other => {
            return Err(Error::InvalidParameter {
                name: "report",
                reason: format!("`{other}` is not `trust` or `privilege`"),
            })
        }
    };
    let mut plans = Vec::new();
    for query in queries {
        let suspects = query
            .narrowing
            .as_ref()
            .map(|narrowing| &narrowing.suspects);
        for query in suspects.into_iter().chain([&query]) {
            let plan = query.frame(engine).await?.create_physical_plan().await?;
            plans.push((
                query.id,
                displayable(plan.as_ref()).indent(true).to_string(),
            ));
        }
    }
    Ok(plans)
}

/// A section before its rows: what `trust.rs` and `privilege.rs` declare.
struct SectionSpec {
    id: &'static str,
    title: &'static str,
    description: &'static str,
    columns: &'static [&'static str],
}

impl SectionSpec {
    fn with_rows(&self, rows: Rows) -> Section {
        Section {
            id: self.id,
            title: self.title,
            description: self.description,
            columns: self.columns.to_vec(),
            rows: rows.rows,
            truncated: rows.truncated,
        }
    }
}

/// A suspect's value as a SQL literal of its type: numbers and booleans only, so nothing
/// read from the lake is spliced into SQL as text.
fn sql_number(column: &dyn arrow_array::Array, row: usize) -> Result<String, Error> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt64Type};
    use arrow_schema::DataType;
    let (value, sql_type) = match column.data_type() {
        DataType::UInt64 => (
            column.as_primitive::<UInt64Type>().value(row).to_string(),
            "BIGINT UNSIGNED",
        ),
        DataType::Int64 => (
            column.as_primitive::<Int64Type>().value(row).to_string(),
            "BIGINT",
        ),
        DataType::Boolean => (
            column.as_boolean().value(row).to_string().to_uppercase(),
            "BOOLEAN",
        ),
        other => {
            return Err(Error::Internal(format!(
                "a suspect's column is {other}, not a number"
            )))
        }
    };
    let value = if column.is_null(row) {
        "NULL"
    } else {
        value.as_str()
    };
    Ok(format!("CAST({value} AS {sql_type})"))
}

/// A configuration value as a SQL string literal (quotes doubled).
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `expr LIKE pattern` for a `*` glob, an absent glob matching everything (nulls too).
fn glob_condition(expr: &str, glob: Option<&str>) -> String {
    match glob {
        None => "TRUE".into(),
        Some(glob) => format!(
            "coalesce({expr}, '') LIKE {} ESCAPE '\\'",
            sql_string(&config::like_pattern(glob))
        ),
    }
}

/// The condition a call (columns `service_expr`, `resource`, `action`) matches a route.
fn route_condition(
    service_expr: &str,
    service: Option<&str>,
    resource: Option<&str>,
    action: Option<&str>,
) -> String {
    let service = match service {
        None => "TRUE".to_owned(),
        Some(name) => format!("{service_expr} = {}", sql_string(name)),
    };
    format!(
        "({service} AND {} AND {})",
        glob_condition("resource", resource),
        glob_condition("action", action)
    )
}

/// The deciding service of an `authz` event: `target_service`, else the reporter.
const DECIDER: &str = "coalesce(target_service, service)";

/// A length of time for people: `30 days`, `12 hours`, `90 minutes`, `45s`.
pub fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        s if s >= 86_400 && s.is_multiple_of(86_400) => plural(s / 86_400, "day"),
        s if s >= 3_600 && s.is_multiple_of(3_600) => plural(s / 3_600, "hour"),
        s if s >= 60 && s.is_multiple_of(60) => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// A count with thousands separators: `2,113`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_as_people_write_them() {
        assert_eq!(thousands(2_113), "2,113");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(
            describe_duration(Duration::from_secs(30 * 86_400)),
            "30 days"
        );
        assert_eq!(describe_duration(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(describe_duration(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn windows_are_bounded() {
        let until = 1_795_456_800_000_000;
        let week = Window::before(until, Duration::from_secs(7 * 86_400)).unwrap();
        assert_eq!(week.until - week.from, 7 * 86_400 * 1_000_000);
        assert!(Window::before(until, Duration::ZERO).is_err());
        assert!(Window::before(until, MAX_WINDOW + Duration::from_secs(1)).is_err());
        assert!(Window::before(1_000, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn hostile_service_filters_are_refused() {
        assert!(check_service("payments").is_ok());
        assert!(check_service("").is_err());
        assert!(check_service("a\nb").is_err());
        assert!(check_service(&"x".repeat(257)).is_err());
    }

    /// A configuration with every optional part, so every branch of the SQL is planned.
    fn full_config() -> ReportConfig {
        let mut config = ReportConfig::default();
        config.trust.open_routes.push(RoutePattern {
            service: Some("o'rders".into()),
            resource: Some("/health*".into()),
            action: None,
        });
        config.privilege.scope_map.push(ScopeRule {
            service: None,
            resource: Some("/accounts/*".into()),
            action: Some("GET".into()),
            scopes: vec!["accounts:read".into(), "x".into()],
        });
        config
    }

    #[tokio::test]
    async fn every_query_plans_and_runs_on_an_empty_lake() {
        let lake = tempfile::tempdir().unwrap();
        let engine = QueryEngine::open(lake.path(), crate::QueryConfig::default()).unwrap();
        let config = full_config();
        let window = Window::before(1_795_456_800_000_000, Duration::from_secs(86_400)).unwrap();
        for name in ["trust", "privilege"] {
            let plans = explain(&engine, &config, name, window).await.unwrap();
            assert!(plans.len() >= 5, "{name}: {plans:?}");
        }
        let trust = trust(&engine, &config, window, Some("payments"))
            .await
            .unwrap();
        assert_eq!(trust.sections.len(), 5);
        assert!(trust.sections.iter().all(|s| s.rows.is_empty()));
        let privilege = privilege(&engine, &config, window).await.unwrap();
        assert_eq!(privilege.sections.len(), 7);
    }

    #[test]
    fn configured_text_is_quoted_as_a_literal() {
        assert_eq!(sql_string("o'brien"), "'o''brien'");
        assert_eq!(
            route_condition(DECIDER, Some("orders"), Some("/health*"), None),
            "(coalesce(target_service, service) = 'orders' AND coalesce(resource, '') LIKE '/health%' ESCAPE '\\' AND TRUE)"
        );
    }
}
