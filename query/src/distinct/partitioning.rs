//! Grouped distinct counts on one hash repartition instead of two.
//!
//! DataFusion plans `SELECT k, count(DISTINCT x) … GROUP BY k` (after its single-distinct
//! rewrite, `distinct.rs`) as two aggregations, each split into a partial and a final
//! step with a hash repartition between them:
//!
//! ```text
//! AggregateExec FinalPartitioned [k]           count(x), …
//!   RepartitionExec Hash([k])
//!     AggregateExec Partial [k]
//!       AggregateExec FinalPartitioned [k, x]  (the distinct pairs)
//!         RepartitionExec Hash([k, x])
//!           AggregateExec Partial [k, x]
//! ```
//!
//! Pairs hashed on `k` alone are partitioned well enough for both: every pair of a key,
//! and so every key, lands in one partition. This rule hashes the pairs on `k` and counts
//! the keys in one step where they already are:
//!
//! ```text
//! AggregateExec SinglePartitioned [k]          count(x), …
//!   AggregateExec FinalPartitioned [k, x]
//!     RepartitionExec Hash([k])
//!       AggregateExec Partial [k, x]
//! ```
//!
//! On the forensic bench's `ips_per_token` (a million tokens) that drops a partial
//! aggregation and a repartition of every distinct pair (docs/benchmarks.md). The skew
//! it could cause is the key's own: one key with most of the pairs would load one
//! partition, as the outer aggregation's repartition on `k` already does.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result as DfResult;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{
    replace_children_if_necessary, ExecutionPlan, Partitioning, PhysicalExpr,
};

/// Plans the two aggregations of a grouped distinct count over one repartition.
#[derive(Debug, Default)]
pub struct DistinctOnOnePartitioning;

impl PhysicalOptimizerRule for DistinctOnOnePartitioning {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(plan.transform_down(rewrite)?.data)
    }

    fn name(&self) -> &str {
        "authtrail_distinct_on_one_partitioning"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The rewrite of one node (see the module docs); anything else is left as it is.
fn rewrite(plan: Arc<dyn ExecutionPlan>) -> DfResult<Transformed<Arc<dyn ExecutionPlan>>> {
    match two_level(&plan) {
        Some(parts) => Ok(Transformed::yes(parts.on_one_partitioning()?)),
        None => Ok(Transformed::no(plan)),
    }
}

/// The operators of the two-level plan the rule rewrites.
struct TwoLevel<'a> {
    /// Partial [k]: its group and aggregates become the single outer step's.
    outer_partial: &'a AggregateExec,
    /// Hash([k, x]) into the inner final step.
    inner_repartition: &'a RepartitionExec,
    /// Where `k` is among the inner grouping's columns.
    key_index: usize,
}

/// `plan` as the two-level shape of the module docs, if it is one.
fn two_level(plan: &Arc<dyn ExecutionPlan>) -> Option<TwoLevel<'_>> {
    let outer_final = aggregate(plan.as_ref(), AggregateMode::FinalPartitioned)?;
    let outer_repartition = plan_as::<RepartitionExec>(outer_final.input().as_ref())?;
    let outer_partial = aggregate(outer_repartition.input().as_ref(), AggregateMode::Partial)?;
    let inner_final = aggregate(
        outer_partial.input().as_ref(),
        AggregateMode::FinalPartitioned,
    )?;
    let inner_repartition = plan_as::<RepartitionExec>(inner_final.input().as_ref())?;
    let inner_partial = aggregate(inner_repartition.input().as_ref(), AggregateMode::Partial)?;
    let plain = |aggregate: &AggregateExec| {
        !aggregate.group_expr().has_grouping_set()
            && aggregate.limit_options().is_none()
            && aggregate.filter_expr().iter().all(Option::is_none)
    };
    if ![outer_final, outer_partial, inner_final, inner_partial]
        .into_iter()
        .all(plain)
    {
        return None;
    }
    // The outer step groups by one of the inner step's grouping columns, as it is.
    let [(key, _)] = outer_partial.group_expr().expr() else {
        return None;
    };
    let key_index = key.downcast_ref::<Column>()?.index();
    let inner_groups = inner_final.group_expr().expr().len();
    if key_index >= inner_groups || inner_groups < 2 {
        return None;
    }
    // Both repartitions hash the inner step's grouping columns and the outer one's key.
    let Partitioning::Hash(inner_hash, _) = inner_repartition.partitioning() else {
        return None;
    };
    let Partitioning::Hash(outer_hash, _) = outer_repartition.partitioning() else {
        return None;
    };
    let is_column = |expr: &Arc<dyn PhysicalExpr>, index: usize| {
        expr.downcast_ref::<Column>()
            .is_some_and(|column| column.index() == index)
    };
    let hashes_groups = inner_hash.len() == inner_groups
        && inner_hash
            .iter()
            .enumerate()
            .all(|(index, expr)| is_column(expr, index));
    let hashes_key = matches!(outer_hash.as_slice(), [expr] if is_column(expr, 0));
    (hashes_groups && hashes_key).then_some(TwoLevel {
        outer_partial,
        inner_repartition,
        key_index,
    })
}

impl TwoLevel<'_> {
    /// The single outer step over the inner steps, hashed on the key alone.
    fn on_one_partitioning(&self) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Partitioning::Hash(inner_hash, partitions) = self.inner_repartition.partitioning()
        else {
            unreachable!("two_level matched a hash repartition");
        };
        let on_key: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(
            Arc::clone(self.inner_repartition.input()),
            Partitioning::Hash(vec![Arc::clone(&inner_hash[self.key_index])], *partitions),
        )?);
        let inner_final =
            replace_children_if_necessary(Arc::clone(self.outer_partial.input()), vec![on_key])?;
        let outer = AggregateExec::try_new(
            AggregateMode::SinglePartitioned,
            self.outer_partial.group_expr().clone(),
            self.outer_partial.aggr_expr().to_vec(),
            self.outer_partial.filter_expr().to_vec(),
            inner_final,
            self.outer_partial.input_schema(),
        )?;
        Ok(Arc::new(outer))
    }
}

/// `plan` as an aggregate in `mode`.
fn aggregate(plan: &dyn ExecutionPlan, mode: AggregateMode) -> Option<&AggregateExec> {
    plan_as::<AggregateExec>(plan).filter(|aggregate| *aggregate.mode() == mode)
}

fn plan_as<T: ExecutionPlan>(plan: &dyn ExecutionPlan) -> Option<&T> {
    plan.downcast_ref::<T>()
}
