//! Functions whose output can dwarf their input, bounded before they allocate.
//!
//! DataFusion's memory pool counts what joins, sorts and aggregations hold, not what a
//! scalar function builds: `cardinality(range(1, 200000001))` once took 1.9 GB under a
//! 256 MiB limit, and `levenshtein` of two 180,000-character strings ran for 77 s past a
//! 60 s timeout in one uninterruptible call. So the functions that can amplify are
//! replaced, under their own names, by wrappers that estimate the call's output for the
//! whole batch from its arguments first and refuse past a budget
//! ([`QueryConfig::max_function_output_mib`](crate::QueryConfig)):
//! - growth by a count or a target length: `repeat`, `lpad`, `rpad`, `range` and
//!   `generate_series` building arrays, `array_repeat`, `array_resize`;
//! - growth by substitution: `replace`, `regexp_replace`;
//! - doubling, which nested CTEs would compound (`s || s` over 64 levels): `concat`,
//!   `concat_ws`, `array_concat`, `encode`, `overlay`, and the `||` operator, which
//!   [`StringConcatAsFunction`] turns into the bounded `string_concat` function;
//! - quadratic CPU: `levenshtein`, bounded by the product of its inputs' lengths.
//!
//! Everything else is linear in its input and its input is bounded by these.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, FieldRef};
use datafusion::arrow::compute::kernels::concat_elements::concat_elements_dyn;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

/// Most cells `levenshtein` may fill for one batch (about a second of CPU).
pub const MAX_LEVENSHTEIN_CELLS: u128 = 200_000_000;

/// How a guarded function's output (bytes, or cells for `levenshtein`) is estimated
/// from its arguments, over the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Estimate {
    /// `repeat(s, n)`: len(s) × n.
    Repeat,
    /// `lpad/rpad(s, n, ..)`: n characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: each occurrence of `from` grows by `to`.
    Replace,
    /// `regexp_replace(s, re, to, ..)`: an empty match at every position, each `to`.
    RegexpReplace,
    /// `range/generate_series(start, stop, step)`: 8 bytes an element.
    Range,
    /// `array_repeat(x, n)`: n copies of x (8 bytes or its length).
    ArrayRepeat,
    /// `array_resize(a, n, ..)`: n elements.
    ArrayResize,
    /// The sum of every argument's length (concatenations), twice for `encode`.
    Sum(u8),
    /// `levenshtein(a, b)`: len(a) × len(b) cells of CPU.
    Cells,
}

impl Estimate {
    fn for_function(name: &str) -> Option<Estimate> {
        Some(match name {
            "repeat" => Estimate::Repeat,
            "lpad" | "rpad" => Estimate::Pad,
            "replace" => Estimate::Replace,
            "regexp_replace" => Estimate::RegexpReplace,
            "range" | "generate_series" => Estimate::Range,
            "array_repeat" => Estimate::ArrayRepeat,
            "array_resize" => Estimate::ArrayResize,
            "concat" | "concat_ws" | "array_concat" | "overlay" | STRING_CONCAT => Estimate::Sum(1),
            // Hex doubles, base64 grows by 4/3: bound both by twice.
            "encode" => Estimate::Sum(2),
            "levenshtein" => Estimate::Cells,
            _ => return None,
        })
    }

    /// The estimate for one batch of `rows` rows.
    fn of(self, args: &[ColumnarValue], rows: usize) -> DfResult<u128> {
        let len = |i: usize| Measure::lengths(args.get(i), rows);
        let int = |i: usize| Measure::integers(args.get(i), rows);
        Ok(match self {
            Estimate::Repeat => {
                let (s, n) = (len(0)?, int(1)?);
                Measure::sum(rows, |row| s.at(row) * n.at(row))
            }
            Estimate::Pad => {
                let n = int(1)?;
                Measure::sum(rows, |row| 4 * n.at(row))
            }
            Estimate::Replace => {
                let (s, from, to) = (len(0)?, len(1)?, len(2)?);
                Measure::sum(rows, |row| {
                    let occurrences = s.at(row) / from.at(row).max(1) + 1;
                    s.at(row) + occurrences * to.at(row)
                })
            }
            Estimate::RegexpReplace => {
                let (s, to) = (len(0)?, len(2)?);
                Measure::sum(rows, |row| s.at(row) + (s.at(row) + 1) * to.at(row))
            }
            Estimate::Range => Measure::range(args, rows)?,
            Estimate::ArrayRepeat => {
                let (x, n) = (len(0)?, int(1)?);
                Measure::sum(rows, |row| x.at(row).max(8) * n.at(row))
            }
            Estimate::ArrayResize => {
                let n = int(1)?;
                Measure::sum(rows, |row| 8 * n.at(row))
            }
            Estimate::Sum(factor) => {
                let lengths = (0..args.len()).map(len).collect::<DfResult<Vec<_>>>()?;
                Measure::sum(rows, |row| {
                    u128::from(factor) * lengths.iter().map(|m| m.at(row)).sum::<u128>()
                })
            }
            Estimate::Cells => {
                let (a, b) = (len(0)?, len(1)?);
                Measure::sum(rows, |row| a.at(row) * b.at(row))
            }
        })
    }
}

/// A number per row of one argument: one for every row (a scalar argument) or one each.
struct Measure {
    values: Vec<i128>,
    scalar: bool,
}

impl Measure {
    fn signed(&self, row: usize) -> i128 {
        let index = if self.scalar { 0 } else { row };
        self.values.get(index).copied().unwrap_or(0)
    }

    /// The row's number, negative ones as 0 (a negative count builds nothing).
    fn at(&self, row: usize) -> u128 {
        self.signed(row).max(0) as u128
    }

    fn sum(rows: usize, per_row: impl Fn(usize) -> u128) -> u128 {
        (0..rows.max(1))
            .map(per_row)
            .fold(0u128, u128::saturating_add)
    }

    /// `values` of an argument (a scalar read once); 0 for a missing argument.
    fn of(
        arg: Option<&ColumnarValue>,
        values: impl Fn(&ArrayRef) -> DfResult<Vec<i128>>,
    ) -> DfResult<Measure> {
        Ok(match arg {
            None => Measure {
                values: Vec::new(),
                scalar: true,
            },
            Some(ColumnarValue::Array(array)) => Measure {
                values: values(array)?,
                scalar: false,
            },
            Some(ColumnarValue::Scalar(value)) => Measure {
                values: values(&value.to_array_of_size(1)?)?,
                scalar: true,
            },
        })
    }

    /// Byte lengths of strings and binaries, element counts of lists (8 bytes each),
    /// 8 for anything else; 0 for nulls and missing arguments.
    fn lengths(arg: Option<&ColumnarValue>, _rows: usize) -> DfResult<Measure> {
        Measure::of(arg, |array| {
            let per_item = match array.data_type() {
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => 8,
                _ => 1,
            };
            Ok(match length(array.as_ref()) {
                Ok(lengths) => int64_values(&lengths)?
                    .into_iter()
                    .map(|n| n * per_item)
                    .collect(),
                // Not a string, binary or list: a fixed-width value.
                Err(_) => vec![8; array.len()],
            })
        })
    }

    /// Integer values (dates and timestamps in nanoseconds); 0 for nulls.
    fn integers(arg: Option<&ColumnarValue>, _rows: usize) -> DfResult<Measure> {
        Measure::of(arg, integer_values)
    }

    /// Elements `range`/`generate_series` build, 8 bytes each.
    fn range(args: &[ColumnarValue], rows: usize) -> DfResult<u128> {
        let (start, stop) = match args.len() {
            1 => (
                Measure::integers(None, rows)?,
                Measure::integers(args.first(), rows)?,
            ),
            _ => (
                Measure::integers(args.first(), rows)?,
                Measure::integers(args.get(1), rows)?,
            ),
        };
        let step = match args.get(2) {
            Some(step) => Some(Measure::integers(Some(step), rows)?),
            None => None,
        };
        Ok(Measure::sum(rows, |row| {
            let span = (stop.signed(row) - start.signed(row)).unsigned_abs();
            let step = step
                .as_ref()
                .map_or(1, |s| s.signed(row).unsigned_abs())
                .max(1);
            8 * (span / step + 1)
        }))
    }
}

/// Integer values of an integer, date, timestamp or interval array (intervals in
/// nanoseconds, months as 30 days); 0 for nulls.
fn integer_values(array: &ArrayRef) -> DfResult<Vec<i128>> {
    let values = match array.data_type() {
        DataType::Interval(_) => (0..array.len())
            .map(|i| {
                Ok(match ScalarValue::try_from_array(array, i)? {
                    ScalarValue::IntervalMonthDayNano(Some(v)) => {
                        (i128::from(v.months) * 30 + i128::from(v.days)) * 86_400_000_000_000
                            + i128::from(v.nanoseconds)
                    }
                    ScalarValue::IntervalDayTime(Some(v)) => {
                        i128::from(v.days) * 86_400_000_000_000
                            + i128::from(v.milliseconds) * 1_000_000
                    }
                    ScalarValue::IntervalYearMonth(Some(v)) => {
                        i128::from(v) * 30 * 86_400_000_000_000
                    }
                    _ => 0,
                })
            })
            .collect::<DfResult<Vec<i128>>>()?,
        DataType::Timestamp(..) => {
            // Nanoseconds, so that an interval step compares.
            let nanos = datafusion::arrow::compute::cast(
                array,
                &DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
            )?;
            int64_values(&nanos)?
        }
        DataType::Date32 | DataType::Date64 => {
            let days = datafusion::arrow::compute::cast(array, &DataType::Date32)?;
            int64_values(&days)?
                .into_iter()
                .map(|d| d * 86_400_000_000_000)
                .collect()
        }
        _ => int64_values(array)?,
    };
    Ok(values)
}

fn int64_values(array: &ArrayRef) -> DfResult<Vec<i128>> {
    let ints = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    let ints = ints
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .expect("cast to Int64");
    Ok(ints.iter().map(|v| i128::from(v.unwrap_or(0))).collect())
}

/// A built-in function under its own name, refusing calls past the budget.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    estimate: Estimate,
    /// Bytes one call may produce for one batch.
    max_bytes: u128,
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> DfResult<()> {
        let estimate = self.estimate.of(&args.args, args.number_rows)?;
        let (limit, unit) = match self.estimate {
            Estimate::Cells => (MAX_LEVENSHTEIN_CELLS, "cells"),
            _ => (self.max_bytes, "bytes"),
        };
        if estimate > limit {
            return exec_err!(
                "`{}` would build about {estimate} {unit} for {} rows, more than the {limit} a \
                 query may (the query limits in the README)",
                self.inner.name(),
                args.number_rows
            );
        }
        Ok(())
    }

    fn rewrap(&self, expr: Expr) -> Expr {
        match expr {
            Expr::ScalarFunction(call) if call.func.name() == self.inner.name() => {
                Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(Bounded {
                        inner: call.func.as_ref().clone(),
                        estimate: self.estimate,
                        max_bytes: self.max_bytes,
                    })),
                    call.args,
                ))
            }
            other => other,
        }
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        // A simplification may rebuild the call with the unbounded original: bound it again.
        Ok(match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Simplified(expr) => ExprSimplifyResult::Simplified(
                expr.transform_up(|e| Ok(Transformed::yes(self.rewrap(e))))?
                    .data,
            ),
            original => original,
        })
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

/// Replaces the session's amplifying functions by bounded ones, and adds
/// `string_concat` for the `||` operator.
pub fn bound_functions(ctx: &SessionContext, max_bytes: u128) {
    ctx.register_udf(ScalarUDF::new_from_impl(StringConcat::new()));
    let state = ctx.state();
    let functions: Vec<Arc<ScalarUDF>> = state.scalar_functions().values().cloned().collect();
    for function in functions {
        if let Some(estimate) = Estimate::for_function(function.name()) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: function.as_ref().clone(),
                estimate,
                max_bytes,
            }));
        }
    }
}

/// The name `||` on strings is planned as.
pub const STRING_CONCAT: &str = "string_concat";

/// `a || b` on strings and binaries: null when either is (unlike `concat`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringConcat {
    signature: Signature,
}

impl StringConcat {
    fn new() -> StringConcat {
        StringConcat {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for StringConcat {
    fn name(&self) -> &str {
        STRING_CONCAT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        BinaryTypeCoercer::new(&arg_types[0], &Operator::StringConcat, &arg_types[1])
            .get_result_type()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let output = args.return_field.data_type().clone();
        let [left, right] = args.args.as_slice() else {
            return exec_err!("`||` takes two operands");
        };
        let left = datafusion::arrow::compute::cast(&left.to_array(rows)?, &output)?;
        let right = datafusion::arrow::compute::cast(&right.to_array(rows)?, &output)?;
        Ok(ColumnarValue::Array(concat_elements_dyn(&left, &right)?))
    }
}

/// Plans `a || b` on strings as the bounded `string_concat(a, b)` (after type
/// coercion, so both operands already have their common type).
#[derive(Debug)]
pub struct StringConcatAsFunction {
    function: Arc<ScalarUDF>,
}

impl StringConcatAsFunction {
    /// The rule calling `function` (the session's bounded `string_concat`).
    pub fn new(function: Arc<ScalarUDF>) -> StringConcatAsFunction {
        StringConcatAsFunction { function }
    }
}

impl AnalyzerRule for StringConcatAsFunction {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            // Output columns keep their names (`a || b`, not `string_concat(a, b)`).
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|expr| match expr {
                    Expr::BinaryExpr(BinaryExpr {
                        left,
                        op: Operator::StringConcat,
                        right,
                    }) => Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(self.function.clone(), vec![*left, *right]),
                    ))),
                    other => Ok(Transformed::no(other)),
                })?;
                Ok(rewritten.update_data(|expr| name.restore(expr)))
            })
        })?;
        Ok(rewritten.data)
    }

    fn name(&self) -> &str {
        "string_concat_as_function"
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, QueryConfig, QueryEngine};

    async fn answer(sql: &str) -> Result<usize, Error> {
        let lake = tempfile::tempdir().unwrap();
        let engine = QueryEngine::open(lake.path(), QueryConfig::default()).unwrap();
        engine.query(sql, None).await.map(|output| output.rows())
    }

    fn refused(result: Result<usize, Error>, function: &str) {
        match result {
            Err(Error::QueryFailed(message)) => {
                assert!(message.contains(&format!("`{function}`")), "{message}")
            }
            other => panic!("{function}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn column_arguments_are_estimated_row_by_row() {
        // 2 bytes × 40M in the second row: 80 MB, over the 64 MiB budget.
        let table = "(VALUES ('ab', 10), ('cd', 40000000)) AS t(s, n)";
        refused(
            answer(&format!("SELECT length(repeat(s, n)) FROM {table}")).await,
            "repeat",
        );
        refused(
            answer(&format!("SELECT lpad(s, n) FROM {table}")).await,
            "lpad",
        );
        refused(
            answer(&format!("SELECT cardinality(range(0, n * 4)) FROM {table}")).await,
            "range",
        );
        let fine = "(VALUES ('ab', 10), ('cd', 4000)) AS t(s, n)";
        assert_eq!(
            answer(&format!("SELECT length(repeat(s, n)) FROM {fine}"))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn the_concatenation_operator_keeps_its_null_and_its_name() {
        let lake = tempfile::tempdir().unwrap();
        let engine = QueryEngine::open(lake.path(), QueryConfig::default()).unwrap();
        let output = engine
            .query(
                "SELECT 'a' || s AS joined, 'a' || NULL IS NULL AS gone FROM (VALUES ('b')) t(s)",
                None,
            )
            .await
            .unwrap();
        assert_eq!(output.schema.field(0).name(), "joined");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&output.batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| ab     | true |"), "{text}");
    }
}
