//! `count(*)` beside one `count(DISTINCT x)`: counted as `sum(1)` so DataFusion's
//! single-distinct rewrite applies.
//!
//! Forensic questions often pair a distinct count with a plain one ("IPs per token, and how
//! many uses"). DataFusion rewrites `GROUP BY k` with distinct aggregates on one column
//! into two cheap hash aggregations (`GROUP BY k, x`, then `GROUP BY k`), but only when the
//! other aggregates are `sum`, `min` or `max`. With a `count(*)` beside it, it falls back
//! to one hash set per group, which for a million tokens took gigabytes (the lake_query
//! bench's `ips_per_token` was killed for memory at 10M events).
//!
//! This rule runs just before DataFusion's and replaces each non-distinct `count` of a
//! constant (`count(*)`, `count(1)`) in such an aggregate with `sum(1)`, under a projection
//! that restores the original column names. Every group has at least one row, so the sum
//! is never null and equals the count; both are `Int64`.

mod partitioning;

pub(crate) use partitioning::DistinctOnOnePartitioning;

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::functions_aggregate::sum::sum;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::{lit, Aggregate, Expr, LogicalPlan, Projection};

/// DataFusion's rule this one prepares for; ours is inserted just before it.
pub const SINGLE_DISTINCT_RULE: &str = "single_distinct_aggregation_to_group_by";

/// The rule's rewrite of an aggregate (applied top down); see the module docs.
pub(crate) fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(aggregate) = plan else {
        return Ok(Transformed::no(plan));
    };
    if !applies(&aggregate) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let old_schema = Arc::clone(&aggregate.schema);
    let aggr_expr = aggregate
        .aggr_expr
        .iter()
        .map(|expr| {
            if constant_count(expr) {
                sum(lit(1i64))
            } else {
                expr.clone()
            }
        })
        .collect();
    let rewritten = Aggregate::try_new(aggregate.input, aggregate.group_expr, aggr_expr)?;
    // Same columns in the same order; only the counts' names changed.
    let restore_names = rewritten
        .schema
        .iter()
        .zip(old_schema.iter())
        .map(|((new_qualifier, new_field), (old_qualifier, old_field))| {
            Expr::Column(Column::new(new_qualifier.cloned(), new_field.name()))
                .alias_qualified(old_qualifier.cloned(), old_field.name())
        })
        .collect();
    let projection =
        Projection::try_new(restore_names, Arc::new(LogicalPlan::Aggregate(rewritten)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// Grouped (not grouping sets), every aggregate plain (no FILTER or ORDER BY), the distinct
/// ones all over the same single argument, at least one constant count, and the rest
/// `sum`, `min` or `max` (what DataFusion's rule takes).
fn applies(aggregate: &Aggregate) -> bool {
    if aggregate.group_expr.is_empty()
        || matches!(aggregate.group_expr.first(), Some(Expr::GroupingSet(_)))
    {
        return false;
    }
    let mut distinct_argument = None;
    let mut counts = 0;
    for expr in &aggregate.aggr_expr {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
            return false;
        };
        if params.filter.is_some() || !params.order_by.is_empty() {
            return false;
        }
        if params.distinct {
            let [argument] = params.args.as_slice() else {
                return false;
            };
            match distinct_argument {
                None => distinct_argument = Some(argument),
                Some(seen) if seen == argument => {}
                Some(_) => return false,
            }
        } else if constant_count(expr) {
            counts += 1;
        } else if !["sum", "min", "max"].contains(&func.name().to_lowercase().as_str()) {
            return false;
        }
    }
    distinct_argument.is_some() && counts > 0
}

/// A non-distinct `count` of a non-null constant: `count(*)` is planned as `count(1)`.
fn constant_count(expr: &Expr) -> bool {
    let Expr::AggregateFunction(AggregateFunction {
        func,
        params:
            AggregateFunctionParams {
                distinct: false,
                args,
                filter: None,
                order_by,
                ..
            },
    }) = expr
    else {
        return false;
    };
    func.name() == "count"
        && order_by.is_empty()
        && matches!(args.as_slice(), [Expr::Literal(value, _)] if !value.is_null())
}
