//! Bounds on a query's SQL, checked on the parsed statement before anything plans it.
//!
//! DataFusion plans, optimises and drops plans recursively, and some of its work grows
//! with the square of a plan's size; a 4 KB body of `1+1+1…` used to overflow a thread's
//! stack. These bounds keep every plan small enough to be cheap, whatever the text: long
//! chains of operators, deeply nested expressions, thousands of `UNION`s or CTEs, and
//! hundreds of tables are refused with a clear error. Legitimate forensic queries stay far
//! inside them (an `IN` list of 10,000 principals has depth 2).

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, Query, SetExpr, Statement, TableFactor, Visit, Visitor,
};

use crate::Error;

/// Longest SQL text accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 128 * 1024;
/// Deepest nesting of expressions (a chain `a OR b OR c` of N terms nests N deep).
pub const MAX_EXPRESSION_DEPTH: usize = 256;
/// Most expression nodes in one statement.
pub const MAX_EXPRESSIONS: usize = 50_000;
/// Deepest nesting of queries (subqueries, derived tables, CTE bodies).
pub const MAX_QUERY_DEPTH: usize = 32;
/// Most `UNION`/`INTERSECT`/`EXCEPT` operations in one statement.
pub const MAX_SET_OPERATIONS: usize = 256;
/// Most common table expressions (`WITH` entries) in one statement.
pub const MAX_CTES: usize = 64;
/// Most table references (each `FROM`/`JOIN` item, CTE references included).
pub const MAX_TABLE_REFERENCES: usize = 64;

/// Refuses SQL text longer than [`MAX_SQL_BYTES`] before it is even parsed.
pub fn check_length(sql: &str) -> Result<(), Error> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(Error::TooComplex(format!(
            "the query is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    Ok(())
}

/// Refuses a parsed statement past any of the bounds above.
pub fn check_statement(statement: &DfStatement) -> Result<(), Error> {
    let mut counter = Counter::default();
    let flow = match statement {
        DfStatement::Statement(inner) => inner.visit(&mut counter),
        DfStatement::Explain(explain) => match explain.statement.as_ref() {
            DfStatement::Statement(inner) => inner.visit(&mut counter),
            // Anything else is refused by the read-only guard.
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// What the walk over the statement has seen so far.
#[derive(Default)]
struct Counter {
    expression_depth: usize,
    expressions: usize,
    query_depth: usize,
    set_operations: usize,
    ctes: usize,
    table_references: usize,
}

fn too_complex(what: &str, limit: usize) -> ControlFlow<Error> {
    ControlFlow::Break(Error::TooComplex(format!(
        "the query has more than {limit} {what}"
    )))
}

/// `UNION`s and the like in one query body (they nest as a left-deep tree).
fn set_operations(body: &SetExpr) -> usize {
    let mut count = 0;
    let mut pending = vec![body];
    while let Some(expr) = pending.pop() {
        if let SetExpr::SetOperation { left, right, .. } = expr {
            count += 1;
            pending.push(left);
            pending.push(right);
        }
    }
    count
}

impl Visitor for Counter {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Error> {
        self.query_depth += 1;
        if self.query_depth > MAX_QUERY_DEPTH {
            return too_complex("levels of nested queries", MAX_QUERY_DEPTH);
        }
        self.set_operations += set_operations(&query.body);
        if self.set_operations > MAX_SET_OPERATIONS {
            return too_complex(
                "set operations (UNION, INTERSECT, EXCEPT)",
                MAX_SET_OPERATIONS,
            );
        }
        if let Some(with) = &query.with {
            self.ctes += with.cte_tables.len();
            if self.ctes > MAX_CTES {
                return too_complex("common table expressions (WITH entries)", MAX_CTES);
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Error> {
        self.query_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, _table: &TableFactor) -> ControlFlow<Error> {
        self.table_references += 1;
        if self.table_references > MAX_TABLE_REFERENCES {
            return too_complex("table references", MAX_TABLE_REFERENCES);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Error> {
        self.expression_depth += 1;
        self.expressions += 1;
        if self.expression_depth > MAX_EXPRESSION_DEPTH {
            return too_complex("levels of nested expressions", MAX_EXPRESSION_DEPTH);
        }
        if self.expressions > MAX_EXPRESSIONS {
            return too_complex("expressions", MAX_EXPRESSIONS);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Error> {
        self.expression_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<Error> {
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn check(sql: &str) -> Result<(), Error> {
        check_length(sql)?;
        let mut statements =
            DFParser::parse_sql(sql).map_err(|e| Error::InvalidQuery(e.to_string()))?;
        check_statement(&statements.pop_front().unwrap())
    }

    fn refused(sql: &str, what: &str) {
        match check(sql) {
            Err(Error::TooComplex(message)) => assert!(message.contains(what), "{message}"),
            other => panic!("expected too complex ({what}), got {other:?}"),
        }
    }

    fn chain(term: &str, operator: &str, n: usize) -> String {
        vec![term; n].join(operator)
    }

    #[test]
    fn long_operator_chains_are_refused() {
        for operator in [" + ", " OR ", " AND ", " || "] {
            let sql = format!("SELECT {}", chain("1", operator, 2_000));
            refused(&sql, "nested expressions");
        }
        check(&format!("SELECT {}", chain("1", " + ", 200))).unwrap();
    }

    #[test]
    fn many_ctes_unions_and_tables_are_refused() {
        let ctes: Vec<String> = (0..1_000)
            .map(|i| format!("c{i} AS (SELECT {i})"))
            .collect();
        refused(
            &format!("WITH {} SELECT 1", ctes.join(", ")),
            "common table expressions",
        );
        refused(&chain("SELECT 1", " UNION ALL ", 1_000), "set operations");
        let tables = chain("events", ", ", 100);
        refused(&format!("SELECT 1 FROM {tables}"), "table references");
    }

    #[test]
    fn long_text_is_refused_before_parsing() {
        let sql = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        refused(&sql, "bytes");
    }

    #[test]
    fn ordinary_forensic_queries_pass() {
        let principals: Vec<String> = (0..10_000).map(|i| format!("'svc:{i}'")).collect();
        check(&format!(
            "SELECT time, principal FROM events WHERE principal IN ({}) ORDER BY time",
            principals.join(",")
        ))
        .unwrap();
        check(
            "WITH failures AS (SELECT principal, count(*) n FROM events WHERE outcome = 'failure' \
             GROUP BY principal) SELECT * FROM failures f JOIN events e ON e.principal = f.principal \
             WHERE n > 5 AND e.time > now() - INTERVAL '1 hour'",
        )
        .unwrap();
    }
}
