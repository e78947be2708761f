//! Joins that yield, so a cancelled query stops.
//!
//! A query past its deadline is aborted, and an aborted task stops at its next await.
//! DataFusion's joins can go a long time without one: a cross join emits batch after batch
//! from the build side it holds, and the aggregate above keeps pulling them in one poll,
//! so an aborted `SELECT sum(..) FROM events a, events b, events c` used to burn a core for
//! a minute after its 408. Wrapping every join (and `unnest`, which multiplies rows the same
//! way) in DataFusion's [`CooperativeExec`] makes each batch they emit spend tokio's
//! cooperative budget: the task yields every budget's worth of batches, and abort lands.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result as DfResult;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

/// Wraps the operators that multiply rows in [`CooperativeExec`].
#[derive(Debug, Default)]
pub struct YieldingJoins;

/// Whether `plan` can emit many batches per input batch.
fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name == "UnnestExec"
}

impl PhysicalOptimizerRule for YieldingJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wrapped = plan.transform_up(|node| {
            if multiplies_rows(node.as_ref()) {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })?;
        Ok(wrapped.data)
    }

    fn name(&self) -> &str {
        "yielding_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
