//! What the ingest tests share: reading a table of the lake back.

use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every batch of every Parquet file under the lake's `table` directory (its Hive
/// partitions included); no rows when the table has no directory yet.
pub fn read_table(root: &Path, table: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for path in authtrail_testkit::parquet_files(&root.join(table)) {
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}
