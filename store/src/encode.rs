//! Parquet encoding of one table's rows: zstd, dictionaries, page-level statistics (the
//! page index), and bloom filters on the columns investigators look up by value.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use authtrail_model::{Micros, EVENT_LOOKUP_COLUMNS};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::Deserialize;

use crate::Result;
use authtrail_model::lake::Table;

/// How Parquet files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeOptions {
    /// zstd compression level (1..=22); 3 is zstd's own default.
    pub zstd_level: i32,
    /// False-positive probability of the bloom filters on principal, token_id, source_ip.
    pub bloom_filter_fpp: f64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            zstd_level: 3,
            bloom_filter_fpp: 0.01,
        }
    }
}

/// One encoded file and what the manifest records about it.
pub struct EncodedFile {
    pub bytes: Vec<u8>,
    pub rows: usize,
    /// Smallest and largest event time (events) or ingest time (rejects) in the file.
    pub time_range: Option<(Micros, Micros)>,
}

/// Encodes one batch as a complete Parquet file in memory.
pub fn encode(table: Table, batch: &RecordBatch, options: &EncodeOptions) -> Result<EncodedFile> {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(batch.num_rows().max(1)))
        .set_created_by(concat!("authtrail ", env!("CARGO_PKG_VERSION")).to_owned());
    // Times and offsets rise (nearly) monotonically within a file: delta encoding stores
    // each as a few bits, where a dictionary of unique values stores all eight bytes.
    for column in ["time", "ingest_offset", "ingest_time"] {
        let path = ColumnPath::from(column);
        properties = properties
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    if table == Table::Events {
        // Unique per event: a dictionary only costs time before the writer gives up on it.
        // Ids that sort by time (ULIDs, UUIDv7) share prefixes with their neighbours.
        for (column, encoding) in [
            ("id", Encoding::DELTA_BYTE_ARRAY),
            ("trace_id", Encoding::DELTA_LENGTH_BYTE_ARRAY),
            ("session_id", Encoding::PLAIN),
        ] {
            let path = ColumnPath::from(column);
            properties = properties
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, encoding);
        }
        for column in EVENT_LOOKUP_COLUMNS {
            let path = ColumnPath::from(column);
            properties = properties
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), options.bloom_filter_fpp)
                // The writer folds the filter down to the distinct values it actually saw,
                // so sizing it for every row costs nothing on low-cardinality columns.
                .set_column_bloom_filter_max_ndv(path, batch.num_rows().max(1) as u64);
        }
    }
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties.build()))?;
    writer.write(batch)?;
    let bytes = writer.into_inner()?;
    Ok(EncodedFile {
        bytes,
        rows: batch.num_rows(),
        time_range: time_range(batch, table.partition_time_column()),
    })
}

fn time_range(batch: &RecordBatch, column: &str) -> Option<(Micros, Micros)> {
    let times = batch
        .column_by_name(column)?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    if times.null_count() == times.len() {
        return None;
    }
    let mut range = (Micros::MAX, Micros::MIN);
    for time in times.iter().flatten() {
        range = (range.0.min(time), range.1.max(time));
    }
    Some(range)
}
