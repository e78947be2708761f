//! `authtrail rules backtest`: the lake's events of a time range through a rule pack, in
//! event-time order, reporting per rule the alerts it would have raised. Sends nothing.
//!
//! The range is read one hour at a time (`time` prunes the lake's hour partitions), each
//! hour sorted by time and streamed batch by batch, so memory holds one hour's sort, not
//! the range.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use authtrail_detect::Detectors;
use authtrail_model::time::format_micros;
use authtrail_model::{Alert, Event, Kind, Micros, Outcome, PrincipalType, Text};
use authtrail_query::QueryEngine;
use authtrail_rules::{Pack, RuleSet, Settings};

use crate::export::row::{columns, Columns, Row};

const HOUR: Micros = 3_600 * 1_000_000;
const DAY: Micros = 24 * HOUR;

/// What one rule would have raised.
#[derive(Debug, Default)]
pub struct RuleReport {
    pub alerts: u64,
    /// Alerts per UTC day (the day's midnight in microseconds).
    pub per_day: BTreeMap<Micros, u64>,
    /// The first alerts, oldest first.
    pub first: Vec<Alert>,
    /// Alerts per principal.
    pub principals: BTreeMap<String, u64>,
}

/// The outcome of a backtest.
#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    /// Rows of the lake that are no event of the contract (not expected; counted).
    pub skipped: u64,
    /// Per rule (detector name), what it raised; rules that raised nothing are absent.
    pub rules: BTreeMap<String, RuleReport>,
}

/// Replays `[from, until)` of the lake through `pack` (and through `builtins` first, when
/// given: the rules then judge lateness by the detectors' clock, as live); keeps the
/// first `first` alerts of each rule or detector.
pub async fn backtest(
    engine: &QueryEngine,
    pack: Arc<Pack>,
    mut builtins: Option<Detectors>,
    settings: Settings,
    from: Micros,
    until: Micros,
    first: usize,
) -> anyhow::Result<Report> {
    let mut rules = RuleSet::new(pack, settings);
    let mut report = Report::default();
    let mut raised = Vec::new();
    let mut hour = from - from.rem_euclid(HOUR);
    while hour < until {
        let (start, end) = (hour.max(from), (hour + HOUR).min(until));
        let sql = format!(
            "SELECT {} FROM events WHERE time >= TIMESTAMP '{}' AND time < TIMESTAMP '{}' ORDER BY time, id",
            columns().join(", "),
            format_micros(start),
            format_micros(end)
        );
        let mut stream = engine
            .stream(&sql, None)
            .await
            .context("reading the lake")?;
        while let Some(batch) = stream.next().await {
            let batch = batch.context("reading the lake")?;
            let columns = Columns::new(&batch)?;
            for at in 0..batch.num_rows() {
                let row = columns.row(at);
                let Some(event) = event(&row) else {
                    report.skipped += 1;
                    continue;
                };
                report.events += 1;
                match &mut builtins {
                    Some(detectors) => {
                        detectors.observe(&event, &mut raised);
                        rules.observe_at(&event, detectors.last_reading(), &mut raised);
                    }
                    None => rules.observe(&event, &mut raised),
                }
                for alert in raised.drain(..) {
                    report.add(alert, first);
                }
            }
        }
        hour += HOUR;
    }
    Ok(report)
}

impl Report {
    fn add(&mut self, alert: Alert, first: usize) {
        let rule = self.rules.entry(alert.detector.clone()).or_default();
        rule.alerts += 1;
        *rule
            .per_day
            .entry(alert.time - alert.time.rem_euclid(DAY))
            .or_default() += 1;
        *rule.principals.entry(alert.principal.clone()).or_default() += 1;
        if rule.first.len() < first {
            rule.first.push(alert);
        }
    }
}

/// A lake row as the event it was stored from; `None` if it is not one.
fn event<'a>(row: &Row<'a>) -> Option<Event<'a>> {
    let text = |value: Option<&'a str>| value.map(Text::Borrowed);
    let list = |values: &Option<Vec<&'a str>>| {
        values
            .as_ref()
            .map(|values| values.iter().map(|value| Text::Borrowed(*value)).collect())
    };
    Some(Event {
        id: Text::Borrowed(row.id),
        time: row.time,
        kind: Kind::parse(row.kind)?,
        principal: Text::Borrowed(row.principal),
        principal_type: row
            .principal_type
            .and_then(PrincipalType::parse)
            .unwrap_or_else(|| PrincipalType::infer(row.principal)),
        service: text(row.service),
        outcome: row.outcome.and_then(Outcome::parse),
        reason: text(row.reason),
        source_ip: row.source_ip.and_then(|ip| ip.parse::<IpAddr>().ok()),
        source_service: text(row.source_service),
        target_service: text(row.target_service),
        resource: text(row.resource),
        action: text(row.action),
        token_id: text(row.token_id),
        token_issuer: text(row.token_issuer),
        token_audience: list(&row.token_audience),
        token_scopes: list(&row.token_scopes),
        required_scopes: list(&row.required_scopes),
        token_expires: row.token_expires,
        client_id: text(row.client_id),
        auth_method: text(row.auth_method),
        mfa: row.mfa,
        user_agent: text(row.user_agent),
        session_id: text(row.session_id),
        trace_id: text(row.trace_id),
        attributes: row
            .attributes
            .iter()
            .filter_map(|(key, value)| Some((Text::Borrowed(*key), Text::Borrowed((*value)?))))
            .collect(),
    })
}
