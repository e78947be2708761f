//! A lake whose older files were written before a nullable column joined the `events`
//! schema (`required_scopes`): queries read the column as null in those files and as
//! written in newer ones, in the same hour and across hours.

mod support;

use std::fs;
use std::path::Path;

use authtrail_model::lake::Table;
use authtrail_model::{parse_event, ContractLimits, EventBatchBuilder};
use authtrail_query::{QueryConfig, QueryEngine};
use parquet::arrow::ArrowWriter;
use serde_json::json;
use support::{meta, rows, NOW};

/// Writes `lines` as one Parquet file at `relative` under the `events` table, without the
/// columns named in `dropped` (as a file from before they existed).
fn write_events_file(root: &Path, relative: &str, lines: &[&str], dropped: &[&str]) {
    let mut builder = EventBatchBuilder::new();
    for (offset, line) in lines.iter().enumerate() {
        let event = parse_event(line.as_bytes(), NOW, &ContractLimits::default()).unwrap();
        builder.append(&event, &meta(offset as i64));
    }
    let batch = builder.finish().unwrap();
    let kept: Vec<usize> = (0..batch.num_columns())
        .filter(|&at| !dropped.contains(&batch.schema().field(at).name().as_str()))
        .collect();
    let batch = batch.project(&kept).unwrap();
    let path = root.join(Table::Events.as_str()).join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn a_column_missing_from_older_files_reads_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let decision = |id: &str, hour: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","time":"2026-11-23T{hour}:05:00Z","kind":"authz","principal":"svc:reports","service":"orders","outcome":"allow"{extra}}}"#
        )
    };
    let old_08 = decision("old-08", "08", "");
    let old_09 = decision("old-09", "09", "");
    let new_09 = decision("new-09", "09", r#","required_scopes":"orders:read""#);
    write_events_file(
        root,
        "date=2026-11-23/hour=08/auth-events-0-0-0.parquet",
        &[&old_08],
        &["required_scopes"],
    );
    write_events_file(
        root,
        "date=2026-11-23/hour=09/auth-events-0-1-1.parquet",
        &[&old_09],
        &["required_scopes"],
    );
    write_events_file(
        root,
        "date=2026-11-23/hour=09/auth-events-0-2-2.parquet",
        &[&new_09],
        &[],
    );
    let engine = QueryEngine::open(
        root,
        QueryConfig {
            threads: 2,
            ..QueryConfig::default()
        },
    )
    .unwrap();

    assert_eq!(
        rows(
            &engine,
            "SELECT id, required_scopes FROM events ORDER BY id"
        )
        .await,
        [
            json!({"id": "new-09", "required_scopes": ["orders:read"]}),
            json!({"id": "old-08", "required_scopes": null}),
            json!({"id": "old-09", "required_scopes": null}),
        ]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*) AS n, count(required_scopes) AS with_scopes FROM events \
             WHERE array_has(required_scopes, 'orders:read') OR required_scopes IS NULL"
        )
        .await,
        [json!({"n": 3, "with_scopes": 1})]
    );
}
