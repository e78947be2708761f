//! Partition pruning from `time` predicates.
//!
//! The lake is partitioned by the hour of each row's `time` (`date=YYYY-MM-DD/hour=HH`),
//! but investigators filter on `time`, not on the partition columns. This optimizer rule
//! runs after filter pushdown: for a scan of `events` or `alerts` whose pushed filters
//! bound `time` by constants, it adds the implied filters on `date` and `hour`, which the
//! listing table evaluates on directory names, so files of other hours are never opened.
//! The `time` filter itself stays, so the result is unchanged.
//!
//! It also rewrites `hour = N` on every lake table into `hour >= N AND hour <= N`:
//! DataFusion turns an equality on every partition column into a directory prefix, spelling
//! the number as `9` where the lake's directory is `hour=09`, and would list nothing.

use authtrail_model::lake::{partition_values, Table, DATE_COLUMN, HOUR_COLUMN};
use authtrail_model::time::hour_of;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{lit, Between, BinaryExpr, Expr, LogicalPlan, Operator};

/// The column whose bounds this rule turns into partition filters, on the tables
/// partitioned by it.
const TIME: &str = "time";

/// The rule's rewrite of a scan (applied bottom up); see the module docs.
pub(crate) fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::TableScan(mut scan) = plan else {
        return Ok(Transformed::no(plan));
    };
    // Every lake table has the partition columns; no other scan does.
    let Some(table) = Table::parse(scan.table_name.table()) else {
        return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
    };
    let mut changed = false;
    let mut filters = Vec::with_capacity(scan.filters.len() + 2);
    for filter in std::mem::take(&mut scan.filters) {
        let rewritten = filter.transform_up(hour_equality_as_range)?;
        changed |= rewritten.transformed;
        filters.push(rewritten.data);
    }
    scan.filters = filters;
    if table.partition_time_column() == TIME {
        let added: Vec<Expr> = TimeBounds::of(&scan.filters)
            .partition_filters(&scan.table_name)
            .into_iter()
            .filter(|filter| !scan.filters.contains(filter))
            .collect();
        changed |= !added.is_empty();
        scan.filters.extend(added);
    }
    let plan = LogicalPlan::TableScan(scan);
    Ok(if changed {
        Transformed::yes(plan)
    } else {
        Transformed::no(plan)
    })
}

/// `hour = N` (either way round) as `hour >= N AND hour <= N`; see the module docs.
fn hour_equality_as_range(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let hour = |e: &Expr| matches!(e, Expr::Column(column) if column.name == HOUR_COLUMN);
    let literal = |e: &Expr| matches!(e, Expr::Literal(..));
    let (column, value) = match (left.as_ref(), right.as_ref()) {
        (c, v) if hour(c) && literal(v) => (c.clone(), v.clone()),
        (v, c) if hour(c) && literal(v) => (c.clone(), v.clone()),
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(
        column.clone().gt_eq(value.clone()).and(column.lt_eq(value)),
    ))
}

/// The tightest inclusive bounds, in microseconds, the filters put on `time`.
#[derive(Debug, Default, PartialEq)]
struct TimeBounds {
    low: Option<i64>,
    high: Option<i64>,
}

impl TimeBounds {
    fn of(filters: &[Expr]) -> TimeBounds {
        let mut bounds = TimeBounds::default();
        for conjunct in filters.iter().flat_map(split_conjunction) {
            match conjunct {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (op, value) = match (time_column(left), micros(right)) {
                        (true, Some(value)) => (*op, value),
                        _ => match (micros(left), time_column(right), op.swap()) {
                            (Some(value), true, Some(op)) => (op, value),
                            _ => continue,
                        },
                    };
                    match op {
                        Operator::Gt | Operator::GtEq => bounds.raise(value),
                        Operator::Lt => bounds.lower(value.saturating_sub(1)),
                        Operator::LtEq => bounds.lower(value),
                        Operator::Eq => {
                            bounds.raise(value);
                            bounds.lower(value);
                        }
                        _ => {}
                    }
                }
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) if time_column(expr) => {
                    if let Some(value) = micros(low) {
                        bounds.raise(value);
                    }
                    if let Some(value) = micros(high) {
                        bounds.lower(value);
                    }
                }
                _ => {}
            }
        }
        bounds
    }

    fn raise(&mut self, low: i64) {
        self.low = Some(self.low.map_or(low, |old| old.max(low)));
    }

    fn lower(&mut self, high: i64) {
        self.high = Some(self.high.map_or(high, |old| old.min(high)));
    }

    /// `(date, hour) >= low's partition` and `(date, hour) <= high's partition`, as
    /// expressions over the partition columns only.
    fn partition_filters(&self, table: &TableReference) -> Vec<Expr> {
        let column = |name: &str| Expr::Column(Column::new(Some(table.clone()), name));
        let mut filters = Vec::new();
        for (bound, after) in [(self.low, true), (self.high, false)] {
            let Some((date, hour)) = bound.and_then(partition_of) else {
                continue;
            };
            let (date_op, hour_op) = if after {
                (Operator::Gt, Operator::GtEq)
            } else {
                (Operator::Lt, Operator::LtEq)
            };
            let beyond_day = binary(column(DATE_COLUMN), date_op, lit(date.clone()));
            let same_day = column(DATE_COLUMN).eq(lit(date)).and(binary(
                column(HOUR_COLUMN),
                hour_op,
                lit(hour),
            ));
            filters.push(beyond_day.or(same_day));
        }
        filters
    }
}

fn binary(left: Expr, op: Operator, right: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)))
}

/// The partition (`date` text, `hour` number) a time falls in, as the store names it; an
/// out-of-range time names no real partition, so nothing is derived from it.
fn partition_of(micros: i64) -> Option<(String, i32)> {
    partition_values(hour_of(micros))
}

fn time_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(column) if column.name == TIME)
}

/// A timestamp literal in microseconds since the epoch (any unit, any time zone label).
fn micros(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtrail_model::time::MICROS_PER_HOUR;
    use datafusion::logical_expr::col;

    fn ts(micros: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        ))
    }

    /// 2026-11-23T18:00:00Z.
    const T: i64 = 1_795_456_800_000_000;

    #[test]
    fn bounds_come_from_comparisons_either_way_round_and_between() {
        let filters = [
            col("time").gt_eq(ts(T)),
            ts(T + 5 * MICROS_PER_HOUR).gt(col("time")),
            col("other").lt(ts(0)),
        ];
        let bounds = TimeBounds::of(&filters);
        assert_eq!(bounds.low, Some(T));
        assert_eq!(bounds.high, Some(T + 5 * MICROS_PER_HOUR - 1));
        let between = [col("time").between(ts(T), ts(T + 10))];
        assert_eq!(
            TimeBounds::of(&between),
            TimeBounds {
                low: Some(T),
                high: Some(T + 10)
            }
        );
    }

    #[test]
    fn an_exclusive_upper_bound_on_the_hour_excludes_that_hour() {
        let bounds = TimeBounds::of(&[col("time").lt(ts(T))]);
        assert_eq!(
            partition_of(bounds.high.unwrap()),
            Some(("2026-11-23".into(), 17))
        );
    }

    #[test]
    fn hour_equality_becomes_a_range_either_way_round() {
        let expected = col("hour").gt_eq(lit(9)).and(col("hour").lt_eq(lit(9)));
        let rewritten = hour_equality_as_range(col("hour").eq(lit(9))).unwrap();
        assert_eq!(rewritten.data, expected);
        let swapped = hour_equality_as_range(lit(9).eq(col("hour"))).unwrap();
        assert_eq!(swapped.data, expected);
        let other = hour_equality_as_range(col("date").eq(lit("x"))).unwrap();
        assert!(!other.transformed);
    }

    #[test]
    fn no_time_bound_adds_no_filter() {
        let bounds = TimeBounds::of(&[col("principal").eq(lit("user:a"))]);
        assert!(bounds.partition_filters(&"events".into()).is_empty());
    }
}
