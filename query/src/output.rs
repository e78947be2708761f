//! Writing query results: a text table, CSV, JSON, JSON lines or Parquet.
//!
//! Every format but the table streams batch by batch, so exporting a large result does
//! not hold it in memory; the table needs every row to size its columns.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{Error, QueryEngine};

/// Runs `sql` and streams its rows (at most `limit`) to `out` in `format`, under the
/// engine's timeout. Returns the number of rows written.
pub async fn export<W: Write + Send>(
    engine: &QueryEngine,
    sql: &str,
    limit: Option<usize>,
    format: Format,
    out: W,
) -> Result<u64, Error> {
    let mut stream = engine.stream(sql, limit).await?;
    let mut writer = BatchWriter::new(format, stream.schema().clone(), out)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.finish()?;
    Ok(rows)
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A text table for people (arrow's pretty printer).
    Table,
    /// CSV with a header; lists and maps are written in their display form.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A zstd-compressed Parquet file.
    Parquet,
}

/// Writes batches of one schema in one format to `W`.
pub struct BatchWriter<W: Write + Send> {
    inner: Inner<W>,
}

enum Inner<W: Write + Send> {
    Table(W, SchemaRef, Vec<RecordBatch>),
    Csv(Box<arrow_csv::Writer<W>>),
    Json(arrow_json::ArrayWriter<W>),
    Jsonl(arrow_json::LineDelimitedWriter<W>),
    Parquet(Box<ArrowWriter<W>>),
}

fn io(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("writing output: {error}"))
}

impl<W: Write + Send> BatchWriter<W> {
    /// A writer for results of `schema`.
    pub fn new(format: Format, schema: SchemaRef, out: W) -> Result<Self, Error> {
        let json = || arrow_json::WriterBuilder::new().with_explicit_nulls(true);
        let inner = match format {
            Format::Table => Inner::Table(out, schema, Vec::new()),
            Format::Csv => Inner::Csv(Box::new(
                arrow_csv::WriterBuilder::new().with_header(true).build(out),
            )),
            Format::Json => Inner::Json(json().build(out)),
            Format::Jsonl => Inner::Jsonl(json().build(out)),
            Format::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                Inner::Parquet(Box::new(
                    ArrowWriter::try_new(out, schema, Some(properties)).map_err(io)?,
                ))
            }
        };
        Ok(BatchWriter { inner })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Table(_, _, batches) => batches.push(batch.clone()),
            Inner::Csv(writer) => writer.write(&flatten_nested(batch)?).map_err(io)?,
            Inner::Json(writer) => writer.write(batch).map_err(io)?,
            Inner::Jsonl(writer) => writer.write(batch).map_err(io)?,
            Inner::Parquet(writer) => writer.write(batch).map_err(io)?,
        }
        Ok(())
    }

    /// Finishes the output (the table is printed now, JSON's array closed, Parquet's
    /// footer written) and flushes it.
    pub fn finish(self) -> Result<(), Error> {
        match self.inner {
            Inner::Table(mut out, schema, batches) => {
                let table = arrow_cast::pretty::pretty_format_batches_with_schema(schema, &batches)
                    .map_err(io)?;
                writeln!(out, "{table}").map_err(io)?;
                out.flush().map_err(io)
            }
            Inner::Csv(writer) => writer.into_inner().flush().map_err(io),
            Inner::Json(mut writer) => {
                writer.finish().map_err(io)?;
                let mut out = writer.into_inner();
                writeln!(out).map_err(io)?;
                out.flush().map_err(io)
            }
            Inner::Jsonl(mut writer) => {
                writer.finish().map_err(io)?;
                writer.into_inner().flush().map_err(io)
            }
            Inner::Parquet(writer) => writer.into_inner().map_err(io)?.flush().map_err(io),
        }
    }
}

/// CSV has no lists or maps: such columns become text in their display form
/// (`[a, b]`, `{k: v}`).
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch, Error> {
    let nested = |data_type: &DataType| data_type.is_nested();
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("");
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !nested(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options).map_err(io)?;
        let text: StringArray = (0..column.len())
            .map(|row| (!column.is_null(row)).then(|| formatter.value(row).to_string()))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{Array, Int64Array};

    fn batch() -> RecordBatch {
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("payments");
        list.values().append_value("orders");
        list.append(true);
        list.append(false);
        let list = list.finish();
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("audience", list.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(list),
            ],
        )
        .unwrap()
    }

    fn render(format: Format) -> String {
        let batch = batch();
        let mut out = Vec::new();
        let mut writer = BatchWriter::new(format, batch.schema(), &mut out).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_writes_lists_in_display_form_and_nulls_empty() {
        assert_eq!(
            render(Format::Csv),
            "n,audience\n1,\"[payments, orders]\"\n,\n"
        );
    }

    #[test]
    fn json_and_jsonl_keep_nulls_explicit() {
        assert_eq!(
            render(Format::Jsonl),
            "{\"n\":1,\"audience\":[\"payments\",\"orders\"]}\n{\"n\":null,\"audience\":null}\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(json[1]["n"], serde_json::Value::Null);
    }

    #[test]
    fn table_prints_the_header_even_without_rows() {
        let batch = batch();
        let mut out = Vec::new();
        let writer = BatchWriter::new(Format::Table, batch.schema(), &mut out).unwrap();
        writer.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("| n | audience |"), "{text}");
    }
}
