//! `authtrail rules backtest`: the lake's events of a time range through a rule pack, in
//! event-time order, reporting per rule the alerts it would have raised. Sends nothing.
//!
//! The range is read an hour at a time (`time` prunes the lake's hour partitions), so
//! memory holds about two hours of events, not the range. Two stages overlap on the two
//! sides of a channel: a reader task has the query engine decode hour h+1 and orders its
//! rows by (time, id) itself (a sort of row numbers, without copying the columns), while
//! the caller replays hour h, building each event straight from the Arrow columns. With
//! the built-in detectors, the rules run on a thread of their own an hour behind them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use authtrail_detect::{ClockReading, Detectors};
use authtrail_model::time::format_micros;
use authtrail_model::{Alert, Event, Micros, CONTRACT_FIELDS};
use authtrail_query::QueryEngine;
use authtrail_rules::{Pack, RuleSet, Settings};

use crate::export::row::Columns;

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

/// One hour of the lake: its batches, typed, and their rows in (time, id) order as
/// (batch, row) numbers.
struct Hour {
    batches: Vec<Columns>,
    order: Vec<(u32, u32)>,
}

/// Columns every replayed event reads: what each event has, the `outcome` the rule index
/// keys on, and what an alert copies from the event that completes it.
const REPLAY_COLUMNS: [&str; 8] = [
    "id",
    "time",
    "kind",
    "principal",
    "outcome",
    "token_id",
    "source_ip",
    "target_service",
];

/// The contract's columns a replay reads: all of them for the built-in detectors, else
/// [`REPLAY_COLUMNS`] and those the pack's rules read (decoding the others is the
/// larger part of reading the lake).
fn replay_columns(pack: &Pack, builtins: bool) -> Vec<&'static str> {
    let read = pack.columns();
    CONTRACT_FIELDS
        .into_iter()
        .filter(|name| builtins || REPLAY_COLUMNS.contains(name) || read.contains(name))
        .collect()
}

/// Reads `columns` of `[start, end)` of the lake and orders the rows by time, then id
/// (the order `ORDER BY time, id` gives), sorting row numbers rather than the rows.
async fn read_hour(
    engine: &QueryEngine,
    columns: &[&str],
    start: Micros,
    end: Micros,
) -> anyhow::Result<Hour> {
    let sql = format!(
        "SELECT {} FROM events WHERE time >= TIMESTAMP '{}' AND time < TIMESTAMP '{}'",
        columns.join(", "),
        format_micros(start),
        format_micros(end)
    );
    let mut stream = engine
        .stream(&sql, None)
        .await
        .context("reading the lake")?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.context("reading the lake")?;
        if batch.num_rows() > 0 {
            batches.push(Columns::new(&batch)?);
        }
    }
    let mut keyed: Vec<(Micros, u32, u32)> = Vec::new();
    for (at, batch) in batches.iter().enumerate() {
        let at = u32::try_from(at).context("too many batches in an hour")?;
        let rows = u32::try_from(batch.len()).context("too many rows in a batch")?;
        keyed.extend((0..rows).map(|row| (batch.time(row as usize), at, row)));
    }
    let id = |&(_, at, row): &(Micros, u32, u32)| batches[at as usize].id(row as usize);
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a).cmp(id(b))));
    let order = keyed.into_iter().map(|(_, at, row)| (at, row)).collect();
    Ok(Hour { batches, order })
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
    // One hour read ahead: the reader decodes and orders it while this one is replayed.
    let (hours_tx, mut hours) = tokio::sync::mpsc::channel::<anyhow::Result<Hour>>(1);
    let columns = replay_columns(&pack, builtins.is_some());
    let reader = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut hour = from - from.rem_euclid(HOUR);
            while hour < until {
                let (start, end) = (hour.max(from), (hour + HOUR).min(until));
                let read = read_hour(&engine, &columns, start, end).await;
                let failed = read.is_err();
                if hours_tx.send(read).await.is_err() || failed {
                    break;
                }
                hour += HOUR;
            }
        })
    };
    let report = match builtins.as_mut() {
        None => {
            let mut rules = RuleSet::new(pack, settings);
            let mut report = Report::default();
            let mut raised = Vec::new();
            while let Some(hour) = hours.recv().await {
                let hour = hour?;
                for event in hour.events() {
                    let Some(event) = event else {
                        report.skipped += 1;
                        continue;
                    };
                    report.events += 1;
                    rules.observe(&event, &mut raised);
                    for alert in raised.drain(..) {
                        report.add(alert, first);
                    }
                }
            }
            report
        }
        Some(detectors) => beside_builtins(&mut hours, detectors, pack, settings, first).await?,
    };
    reader.await.context("the lake reader stopped")?;
    Ok(report)
}

/// Replays the hours through the built-in detectors on this thread and through the
/// rules on a thread of their own, an hour behind, each event with the detectors'
/// judgement of it (late for its source or not, and the clock), as the detection stage
/// runs them one after the other: the two sides take a core each.
async fn beside_builtins(
    hours: &mut tokio::sync::mpsc::Receiver<anyhow::Result<Hour>>,
    detectors: &mut Detectors,
    pack: Arc<Pack>,
    settings: Settings,
    first: usize,
) -> anyhow::Result<Report> {
    // One hour queued: the detectors may run an hour ahead, no further.
    let (judged_tx, judged) = std::sync::mpsc::sync_channel::<(Arc<Hour>, Vec<ClockReading>)>(1);
    let rules_side = std::thread::Builder::new()
        .name("backtest-rules".into())
        .spawn(move || {
            let mut rules = RuleSet::new(pack, settings);
            let mut report = Report::default();
            let mut raised = Vec::new();
            for (hour, readings) in judged {
                // Both sides skip the same rows, so the readings line up with the events.
                for (event, reading) in hour.events().flatten().zip(readings) {
                    rules.observe_at(&event, reading, &mut raised);
                    for alert in raised.drain(..) {
                        report.add(alert, first);
                    }
                }
            }
            report
        })
        .context("starting the rules' thread")?;
    let mut report = Report::default();
    let mut raised = Vec::new();
    while let Some(hour) = hours.recv().await {
        let hour = Arc::new(hour?);
        let mut readings = Vec::with_capacity(hour.order.len());
        for event in hour.events() {
            let Some(event) = event else {
                report.skipped += 1;
                continue;
            };
            report.events += 1;
            detectors.observe(&event, &mut raised);
            readings.push(detectors.last_reading());
            for alert in raised.drain(..) {
                report.add(alert, first);
            }
        }
        if judged_tx.send((hour, readings)).is_err() {
            break;
        }
    }
    drop(judged_tx);
    let rules = rules_side
        .join()
        .map_err(|_| anyhow::anyhow!("the rules' thread panicked"))?;
    // Rules' detectors are named `sigma:…`, the built-ins' never are: no name is in both.
    report.rules.extend(rules.rules);
    Ok(report)
}

impl Hour {
    /// The hour's events in (time, id) order; `None` for a row that is no event of the
    /// contract.
    fn events(&self) -> impl Iterator<Item = Option<Event<'_>>> {
        self.order
            .iter()
            .map(|&(at, row)| self.batches[at as usize].event(row as usize))
    }
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
