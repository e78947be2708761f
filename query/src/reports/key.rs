//! `report_key(a, b, …)`: one 64-bit hash of several columns, for the report queries that
//! join millions of calls on several text columns at once (a trace, a service and a
//! principal). Joining on the hash holds eight bytes per call in the hash table instead of
//! three strings, and compares integers instead of text.
//!
//! Two different keys hash alike with a probability of about 2^-64 per pair: over the
//! ten million calls of a week that is about one report in a million hiding one call.
//! Registered only in the reports' sessions, not in the one investigators query.

use std::sync::Arc;

use arrow_array::{Array, UInt64Array};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use datafusion::common::hash_utils::{create_hashes, QualityRandomState};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function's name in the reports' SQL.
pub(super) const NAME: &str = "report_key";

/// Any fixed seed: the keys are compared only within one query.
const STATE: QualityRandomState = QualityRandomState::with_seed(0x7265_706f_7274);

/// `report_key(..)`: see the module docs. Null when any argument is null, as a join on
/// the columns themselves would match nothing.
pub(super) fn report_key_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ReportKey {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ReportKey {
    signature: Signature,
}

impl ScalarUDFImpl for ReportKey {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // One text type for all: a string hashes differently as `Utf8` and `Utf8View`.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .map(|array| arrow_cast::cast(array, &DataType::Utf8View))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hashes = vec![0u64; args.number_rows];
        create_hashes(&arrays, &STATE, &mut hashes)?;
        let nulls = arrays.iter().fold(None, |nulls, array| {
            NullBuffer::union(nulls.as_ref(), array.logical_nulls().as_ref())
        });
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::new(
            hashes.into(),
            nulls,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, StringArray};
    use arrow_schema::Field;

    fn keys(columns: Vec<ArrayRef>) -> UInt64Array {
        let rows = columns[0].len();
        let args = ScalarFunctionArgs {
            arg_fields: columns
                .iter()
                .map(|c| Arc::new(Field::new("x", c.data_type().clone(), true)))
                .collect(),
            args: columns.into_iter().map(ColumnarValue::Array).collect(),
            number_rows: rows,
            return_field: Arc::new(Field::new("k", DataType::UInt64, true)),
            config_options: Arc::new(Default::default()),
        };
        match report_key_udf().invoke_with_args(args).unwrap() {
            ColumnarValue::Array(array) => array
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap()
                .clone(),
            ColumnarValue::Scalar(_) => unreachable!(),
        }
    }

    #[test]
    fn equal_rows_share_a_key_and_different_rows_do_not() {
        use arrow_array::StringViewArray;
        let as_view: ArrayRef = Arc::new(StringViewArray::from(vec!["t1"]));
        let as_utf8: ArrayRef = Arc::new(StringArray::from(vec!["t1"]));
        assert_eq!(
            keys(vec![as_view.clone(), as_utf8.clone()]).value(0),
            keys(vec![as_utf8, as_view]).value(0),
            "text types do not change the key"
        );
        let text =
            |values: &[Option<&str>]| -> ArrayRef { Arc::new(StringArray::from(values.to_vec())) };
        let key = keys(vec![
            text(&[Some("t1"), Some("t1"), Some("t1"), Some("t1"), Some("t1")]),
            text(&[
                Some("orders"),
                Some("orders"),
                Some("order"),
                Some("orders"),
                None,
            ]),
            text(&[
                Some("alice"),
                Some("alice"),
                Some("salice"),
                Some("bob"),
                Some("alice"),
            ]),
        ]);
        assert_eq!(key.value(0), key.value(1));
        assert_ne!(key.value(0), key.value(2), "the columns' boundary counts");
        assert_ne!(key.value(0), key.value(3));
        assert!(key.is_null(4), "a null column gives no key");
    }
}
