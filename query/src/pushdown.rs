//! Whether a query's filters are evaluated while the Parquet files are decoded
//! (`pushdown_filters`, late materialisation) or after.
//!
//! Evaluating a filter during decoding pays when it keeps few rows of a column that is
//! cheap to test: the other columns are then decoded only for the rows that survive.
//! Lookups by principal, token, IP or event id (the columns with bloom filters, and the
//! key the evidence join probes) are like that. A filter on a low-cardinality column
//! (`kind = 'authz'`, `outcome = 'deny'`) keeps a large share of rows scattered through
//! every page, and testing it first, then decoding the other columns row range by row
//! range, costs more than decoding them whole and filtering after: on the 10M-event
//! forensic bench `top_denied` took 25% and `failed_logins_day` 13% more CPU with it on,
//! while the lookups took 32-43% less (docs/benchmarks.md).

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// Columns whose filters are selective enough to evaluate while decoding: the lake's
/// lookup columns (they carry bloom filters) and the event id.
fn is_selective_column(name: &str) -> bool {
    name == "id" || authtrail_model::EVENT_LOOKUP_COLUMNS.contains(&name)
}

/// Whether `expr` reads a selective column.
fn reads_selective_column(expr: &Expr) -> bool {
    expr.column_refs()
        .iter()
        .any(|column| is_selective_column(&column.name))
}

/// Whether a filter's `predicate` has a conjunct that tests a selective column for more
/// than presence: `token_id IS NOT NULL` keeps most rows, so evaluating it while decoding
/// only splits the other columns into row ranges (the forensic bench's `ips_per_token`).
fn selective_predicate(predicate: &Expr) -> bool {
    split_conjunction(predicate)
        .into_iter()
        .any(|conjunct| !matches!(conjunct, Expr::IsNotNull(_)) && reads_selective_column(conjunct))
}

/// Whether `plan` filters or joins on a selective column anywhere, subqueries included.
pub fn filters_on_selective_column(plan: &LogicalPlan) -> bool {
    let mut selective = false;
    // The closure cannot fail; the walk's own errors are only for closures that can.
    let _ = plan.apply_with_subqueries(|node| {
        selective = match node {
            LogicalPlan::Filter(filter) => selective_predicate(&filter.predicate),
            LogicalPlan::Join(join) => {
                join.on.iter().any(|(left, right)| {
                    reads_selective_column(left) || reads_selective_column(right)
                }) || join.filter.as_ref().is_some_and(reads_selective_column)
            }
            LogicalPlan::TableScan(scan) => scan.filters.iter().any(selective_predicate),
            _ => false,
        };
        Ok(if selective {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    selective
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryConfig, QueryEngine};

    async fn selective(sql: &str) -> bool {
        let lake = tempfile::tempdir().unwrap();
        let engine = QueryEngine::open(lake.path(), QueryConfig::default()).unwrap();
        let plan = engine
            .context()
            .state()
            .create_logical_plan(sql)
            .await
            .unwrap();
        filters_on_selective_column(&plan)
    }

    #[tokio::test]
    async fn lookups_by_identity_columns_are_selective() {
        for sql in [
            "SELECT * FROM events WHERE token_id = 'x'",
            "SELECT * FROM events WHERE kind = 'authn' AND principal = 'alice'",
            "SELECT * FROM events WHERE token_id IS NOT NULL AND token_id = 'x'",
            "SELECT * FROM events WHERE cidr_contains(source_ip, '10.0.0.0/8')",
            "SELECT e.id FROM alerts AS a JOIN events AS e ON e.id = a.id",
            "SELECT * FROM events WHERE kind IN \
             (SELECT kind FROM events WHERE principal = 'alice')",
        ] {
            assert!(selective(sql).await, "{sql}");
        }
    }

    #[tokio::test]
    async fn filters_on_low_cardinality_columns_are_not() {
        for sql in [
            "SELECT count(*) FROM events WHERE kind = 'authz' AND outcome = 'deny'",
            "SELECT principal, count(*) FROM events WHERE kind = 'authn' GROUP BY principal",
            "SELECT kind, count(*) FROM events GROUP BY kind",
            "SELECT token_id, count(*) FROM events WHERE token_id IS NOT NULL GROUP BY token_id",
        ] {
            assert!(!selective(sql).await, "{sql}");
        }
    }
}
