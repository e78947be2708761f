//! Read-only enforcement: only queries over the lake's tables run.
//!
//! Two independent checks. Before planning, the parsed statement must be a query
//! (`SELECT`, `WITH`, `VALUES`) or an `EXPLAIN` of one: DDL, DML, `COPY`, `CREATE EXTERNAL
//! TABLE`, `SET`, `PREPARE` and the rest are refused by kind. After planning, the plan is
//! verified with DataFusion's [`SQLOptions`] (no DDL, DML or statements, which also
//! catches `SELECT .. INTO`), and every table it scans must be a lake table or a built-in
//! row generator, so nothing reads a file outside the lake.

use authtrail_model::lake::Table;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::Error;

/// Table functions a query may scan besides the lake's tables: they generate rows
/// without reading anything.
const ROW_GENERATORS: [&str; 2] = ["generate_series", "range"];

/// Refuses anything but a query (or an `EXPLAIN` of one).
pub fn check_statement(statement: &DfStatement) -> Result<(), Error> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Query(_) => Ok(()),
            SqlStatement::Explain { statement, .. } => {
                check_statement(&DfStatement::Statement(statement.clone()))
            }
            other => Err(Error::Forbidden(format!("`{}` statements", keyword(other)))),
        },
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(Error::Forbidden(
            "`CREATE EXTERNAL TABLE` statements".into(),
        )),
        DfStatement::CopyTo(_) => Err(Error::Forbidden("`COPY` statements".into())),
        DfStatement::Reset(_) => Err(Error::Forbidden("`RESET` statements".into())),
    }
}

/// The leading keywords of a statement, for the error message (`CREATE TABLE`, `INSERT`).
fn keyword(statement: &SqlStatement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER" | "SHOW" | "DESCRIBE"
            ) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "empty".into(),
    }
}

/// Verifies a planned query: no DDL, DML or statements anywhere, and only allowed scans.
pub fn check_plan(plan: &LogicalPlan) -> Result<(), Error> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    options
        .verify_plan(plan)
        .map_err(|error| Error::Forbidden(error.message().into_owned()))?;
    let mut denied = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            // Table functions scan a provider named after the call (`generate_series()`).
            let name = scan.table_name.table().trim_end_matches("()");
            let scannable = Table::parse(name).is_some() || ROW_GENERATORS.contains(&name);
            if !scannable || scan.table_name.schema().is_some_and(|s| s != "public") {
                denied = Some(scan.table_name.to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(Error::from)?;
    match denied {
        Some(table) => {
            let tables: Vec<&str> = Table::ALL.iter().map(|table| table.as_str()).collect();
            Err(Error::Forbidden(format!(
                "table `{table}` is not part of the lake (tables: {})",
                tables.join(", ")
            )))
        }
        None => Ok(()),
    }
}
