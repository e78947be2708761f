//! `date_trunc('hour' | 'day', t)` on a UTC timestamp, as integer arithmetic.
//!
//! The lake's `time` is `Timestamp(µs, "UTC")`. DataFusion 55 truncates hours and days
//! with arithmetic only for timestamps without a time zone; with one (even UTC) every row
//! goes through a time-zone conversion, which made `GROUP BY date_trunc('hour', time)` the
//! bulk of the forensic suite's per-hour queries. In UTC an hour and a day have fixed
//! lengths, so this rule rewrites the call into `t - (t mod length)` on the timestamp's
//! integer (floored, so times before 1970 truncate downwards too), cast back to the same
//! type; the column keeps its name.

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{cast, lit, Expr, ExprSchemable, LogicalPlan};

/// The rule's rewrite of a node's expressions (applied bottom up); see the module docs.
pub(crate) fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    // Expressions of a one-input node are typed against that input's schema.
    if plan.inputs().len() != 1 {
        return Ok(Transformed::no(plan));
    }
    let schema = Arc::clone(plan.inputs()[0].schema());
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|expr| {
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|expr| truncate_in_utc(expr, &schema))?;
        Ok(rewritten.update_data(|expr| name.restore(expr)))
    })
}

fn truncate_in_utc(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let [Expr::Literal(ScalarValue::Utf8(Some(granularity)), _), timestamp] = args.as_slice()
    else {
        return Ok(Transformed::no(expr));
    };
    if func.name() != "date_trunc" {
        return Ok(Transformed::no(expr));
    }
    let DataType::Timestamp(unit, Some(zone)) = timestamp.get_type(schema)? else {
        return Ok(Transformed::no(expr));
    };
    let seconds = match granularity.to_lowercase().as_str() {
        "hour" => 3_600,
        "day" => 86_400,
        _ => return Ok(Transformed::no(expr)),
    };
    if !matches!(&*zone, "UTC" | "+00:00" | "Z") {
        return Ok(Transformed::no(expr));
    }
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let length = lit(seconds * per_second);
    let ticks = cast(timestamp.clone(), DataType::Int64);
    let into_period = (ticks.clone() % length.clone() + length.clone()) % length;
    let truncated = cast(ticks - into_period, DataType::Timestamp(unit, Some(zone)));
    Ok(Transformed::yes(truncated))
}
