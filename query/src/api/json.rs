//! Query results as JSON (`{"schema", "rows", "row_count", "truncated"}`) or as an Arrow
//! IPC stream.

use arrow_schema::Schema;
use serde_json::{json, Value};

use crate::{Error, QueryOutput};

fn internal(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("encoding the result: {error}"))
}

/// The schema as `[{"name", "type", "nullable"}]`.
pub fn schema_json(schema: &Schema) -> Value {
    schema
        .fields()
        .iter()
        .map(|field| {
            json!({
                "name": field.name(),
                "type": field.data_type().to_string(),
                "nullable": field.is_nullable(),
            })
        })
        .collect()
}

/// The rows as a JSON array of objects (nulls explicit, times as RFC 3339 text).
pub fn rows_bytes(output: &QueryOutput) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(&mut bytes);
    for batch in &output.batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    if bytes.is_empty() {
        bytes.extend_from_slice(b"[]");
    }
    Ok(bytes)
}

/// The rows as a JSON value, for composing larger documents.
pub fn rows_value(output: &QueryOutput) -> Result<Value, Error> {
    serde_json::from_slice(&rows_bytes(output)?).map_err(internal)
}

/// The whole result document, written without re-parsing the rows.
pub fn result_bytes(output: &QueryOutput) -> Result<Vec<u8>, Error> {
    let rows = rows_bytes(output)?;
    let mut body = Vec::with_capacity(rows.len() + 512);
    body.extend_from_slice(b"{\"schema\":");
    serde_json::to_writer(&mut body, &schema_json(&output.schema)).map_err(internal)?;
    body.extend_from_slice(b",\"rows\":");
    body.extend_from_slice(&rows);
    let tail = json!({ "row_count": output.rows(), "truncated": output.truncated });
    // `tail` is an object: splice its members after the rows.
    let tail = serde_json::to_vec(&tail).map_err(internal)?;
    body.push(b',');
    body.extend_from_slice(&tail[1..]);
    Ok(body)
}

/// The result as an Arrow IPC stream.
pub fn ipc_bytes(output: &QueryOutput) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &output.schema).map_err(internal)?;
    for batch in &output.batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    drop(writer);
    Ok(bytes)
}
