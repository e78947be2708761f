//! Compaction of closed hours (the steps are described in the module above).

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{new_null_array, RecordBatch};
use arrow_schema::SchemaRef;
use authtrail_model::time::MICROS_PER_HOUR;
use authtrail_model::Micros;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use super::{hour_partitions, Maintenance, MaintenanceConfig, MaintenanceReport, Step};
use crate::encode::encode;
use crate::error::Error;
use crate::manifest::{FileEntry, RecordState};
use crate::storage::Storage;
use crate::Result;
use authtrail_model::lake::Table;

/// At most this many rows go into one compacted file, bounding the memory a run needs;
/// an hour with more is compacted in several files.
const MAX_COMPACTED_ROWS: u64 = 1_000_000;

/// One small file: its offset range and lake-relative path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    first: i64,
    last: i64,
    path: String,
}

impl Maintenance<'_> {
    /// Compacts every closed hour of `events` and `rejects` whose source partitions left
    /// at least `compact_min_files` files there.
    pub(crate) fn compact(
        &mut self,
        config: &MaintenanceConfig,
        now: Micros,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let min_files = config.compact_min_files.max(2);
        let grace = i64::try_from(config.compact_after.as_micros()).unwrap_or(i64::MAX);
        for table in [Table::Events, Table::Rejects] {
            for (start, dir, files) in hour_partitions(&self.lake.storage, table)? {
                if start.saturating_add(MICROS_PER_HOUR).saturating_add(grace) > now {
                    continue;
                }
                let mut groups: BTreeMap<(String, i32), Vec<Member>> = BTreeMap::new();
                for path in files {
                    if let Some((source, partition, first, last)) = parse_name(&path) {
                        groups.entry((source, partition)).or_default().push(Member {
                            first,
                            last,
                            path,
                        });
                    }
                }
                for ((source, partition), mut members) in groups {
                    members.sort();
                    for chunk in chunks(&self.lake.storage, members, min_files)? {
                        self.compact_files(table, &dir, &source, partition, chunk, report)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn compact_files(
        &mut self,
        table: Table,
        dir: &str,
        source: &str,
        partition: i32,
        members: Vec<Member>,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let first = members[0].first;
        let last = members
            .iter()
            .map(|member| member.last)
            .max()
            .unwrap_or(first);
        let relative = format!("{dir}/{source}-{partition}-{first}-{last}.parquet");
        if self.lake.storage.exists(&relative)? {
            tracing::warn!(path = ?relative, "compacted file already exists; hour skipped");
            return Ok(());
        }
        let schema = table.schema();
        let mut batches = Vec::new();
        for member in &members {
            for batch in read_batches(&self.lake.storage, &member.path)? {
                batches.push(conform_to(&schema, batch)?);
            }
        }
        let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
        drop(batches);

        self.log.append(
            RecordState::Pending,
            first,
            last,
            vec![FileEntry::planned(Path::new(&relative))],
        )?;
        self.step(Step::Pending)?;
        let encoded = encode(table, &batch, &self.lake.options)?;
        self.lake.storage.put_staged(&relative, &encoded.bytes)?;
        self.step(Step::Written)?;
        let entry = FileEntry {
            path: relative.clone(),
            rows: Some(encoded.rows as u64),
            bytes: Some(encoded.bytes.len() as u64),
            sha256: Some(hex::encode(Sha256::digest(&encoded.bytes))),
            time_range: encoded.time_range,
        };
        let removed: Vec<String> = members.into_iter().map(|member| member.path).collect();
        self.log.append_removing(
            RecordState::Committed,
            first,
            last,
            vec![entry],
            removed.clone(),
        )?;
        self.step(Step::Committed)?;
        self.lake.storage.publish(&relative)?;
        self.step(Step::Renamed)?;
        self.lake.storage.remove(&removed)?;
        tracing::info!(path = ?relative, rows = encoded.rows, replaced = removed.len(), "compacted an hour's small files");
        report.files_compacted += 1;
        report.files_replaced += removed.len();
        Ok(())
    }
}

/// Splits a partition's files of one hour into runs of at most [`MAX_COMPACTED_ROWS`]
/// rows, keeping only runs of at least `min_files` files.
fn chunks(storage: &Storage, members: Vec<Member>, min_files: usize) -> Result<Vec<Vec<Member>>> {
    if members.len() < min_files {
        return Ok(Vec::new());
    }
    let mut chunks = vec![Vec::new()];
    let mut rows = 0;
    for member in members {
        let file_rows = row_count(storage, &member.path)?;
        if rows + file_rows > MAX_COMPACTED_ROWS && !chunks.last().expect("one").is_empty() {
            chunks.push(Vec::new());
            rows = 0;
        }
        rows += file_rows;
        chunks.last_mut().expect("one").push(member);
    }
    chunks.retain(|chunk| chunk.len() >= min_files);
    Ok(chunks)
}

/// `<source>-<partition>-<first>-<last>.parquet` → its parts.
fn parse_name(path: &str) -> Option<(String, i32, i64, i64)> {
    let stem = path.rsplit('/').next()?.strip_suffix(".parquet")?;
    let mut parts = stem.rsplitn(4, '-');
    let last = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let source = parts.next()?.to_owned();
    Some((source, partition, first, last))
}

/// A Parquet reader over the whole file at `relative` (a closed hour's small files).
fn reader(storage: &Storage, relative: &str) -> Result<ParquetRecordBatchReaderBuilder<Bytes>> {
    let bytes = storage.get(relative)?.ok_or_else(|| {
        Error::Maintenance(format!(
            "`{}` vanished while its hour was compacted",
            relative.escape_debug()
        ))
    })?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(bytes)?)
}

fn row_count(storage: &Storage, relative: &str) -> Result<u64> {
    Ok(reader(storage, relative)?
        .metadata()
        .file_metadata()
        .num_rows() as u64)
}

/// `batch` with the table's current columns: a file written before a column was added to
/// the contract (`required_scopes`) lacks it, and an hour mixing such files with newer
/// ones must still compact; the missing column is null, as queries read it.
fn conform_to(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => column.clone(),
            None => new_null_array(field.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn read_batches(storage: &Storage, relative: &str) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for batch in reader(storage, relative)?.build()? {
        batches.push(batch?);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use authtrail_model::{parse_event, ContractLimits, IngestMeta};

    use super::*;
    use crate::SegmentBuilder;

    /// An hour whose older files predate `required_scopes` compacts with the column null
    /// for their rows and every other column unchanged.
    #[test]
    fn a_batch_from_before_a_new_column_is_conformed_with_the_column_null() {
        let message = br#"{"id":"e-1","time":"2026-11-23T17:00:00Z","kind":"authz","principal":"user:a","outcome":"allow","required_scopes":["orders:read"]}"#;
        // 2026-11-23T20:00Z, after the event.
        let now = 1_795_464_000_000_000;
        let event = parse_event(message, now, &ContractLimits::default()).unwrap();
        let meta = IngestMeta {
            topic: "auth-events",
            partition: 0,
            offset: 0,
            ingest_time: now,
        };
        let mut builder = SegmentBuilder::new("auth-events", 0, 16);
        builder.push_event(&event, &meta);
        let segment = builder.finish().unwrap().unwrap();
        let (_, _, current) = segment.batches.into_iter().next().unwrap();
        let schema = Table::Events.schema();
        assert_eq!(current.schema().fields(), schema.fields());

        let old_index = schema.index_of("required_scopes").unwrap();
        let old_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|&index| index != old_index)
            .collect();
        let old = current.project(&old_columns).unwrap();

        let conformed = conform_to(&schema, old).unwrap();
        assert_eq!(conformed.schema().fields(), schema.fields());
        assert!(conformed.column(old_index).is_null(0));
        for index in old_columns {
            assert_eq!(conformed.column(index), current.column(index));
        }
        let unchanged = conform_to(&schema, current.clone()).unwrap();
        assert_eq!(unchanged, current);
    }
}
