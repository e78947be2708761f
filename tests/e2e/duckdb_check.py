"""Reads an authtrail lake with DuckDB (hive partitioning) and prints what it finds as
JSON, so the end-to-end tests can check the lake with an independent reader.

usage: duckdb_check.py LAKE_DIR
"""

import json
import os
import sys

import duckdb


def main() -> None:
    lake = sys.argv[1]
    con = duckdb.connect()
    out = {}
    events = os.path.join(lake, "events", "**", "*.parquet")
    rejects = os.path.join(lake, "rejects", "**", "*.parquet")
    rows = con.execute(
        f"SELECT id, count(*) FROM read_parquet('{events}', hive_partitioning = true) GROUP BY id"
    ).fetchall()
    out["event_ids"] = {id_: n for id_, n in rows}
    out["event_partitions"] = [
        list(r)
        for r in con.execute(
            f"SELECT DISTINCT CAST(date AS VARCHAR), CAST(hour AS VARCHAR) FROM read_parquet('{events}', hive_partitioning = true) ORDER BY 1, 2"
        ).fetchall()
    ]
    out["hour_matches_time"] = con.execute(
        f"SELECT bool_and(CAST(hour AS INTEGER) = hour(time AT TIME ZONE 'UTC')) FROM read_parquet('{events}', hive_partitioning = true)"
    ).fetchone()[0]
    import glob

    has_rejects = bool(glob.glob(rejects, recursive=True))
    out["rejects"] = [] if not has_rejects else [
        [topic, partition, offset, kind, error, bytes(raw).decode("utf-8", "replace")]
        for topic, partition, offset, kind, error, raw in con.execute(
            f"SELECT ingest_topic, ingest_partition, ingest_offset, error_kind, error, raw FROM read_parquet('{rejects}', hive_partitioning = true) ORDER BY 1, 2, 3"
        ).fetchall()
    ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
