"""DuckDB's side of the lake_write bench: JSON lines -> its own zstd Parquet, one thread.

Usage: python duckdb_copy.py EVENTS.jsonl OUT.parquet [LAKE_DIR]
A field the schema DuckDB samples from the start of the file lacks (one that appears late,
as `required_scopes` does in `authtrail gen` traffic) would fail the COPY; with
`ignore_errors` it is left out of those lines (`rows` counts every line converted).
Prints one JSON object: seconds (the COPY alone, timed here), bytes, rows, row groups,
the compressed bytes of each column, and (with LAKE_DIR) the rows and distinct ids DuckDB
reads back from authtrail's `events` files, after the timing.
"""

import json
import os
import sys
import time

import duckdb


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute("SET threads=1")
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_json('{source}', format='newline_delimited', ignore_errors=true)) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    seconds = time.perf_counter() - start
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    groups = con.execute(
        f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{target}')"
    ).fetchone()[0]
    columns = con.execute(
        f"SELECT path_in_schema, sum(total_compressed_size) FROM parquet_metadata('{target}') "
        "GROUP BY path_in_schema ORDER BY 2 DESC"
    ).fetchall()
    lake = {}
    if len(sys.argv) > 3:
        files = os.path.join(sys.argv[3], "events", "**", "*.parquet")
        lake_rows, lake_ids = con.execute(
            f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{files}', hive_partitioning=true)"
        ).fetchone()
        lake = {"lake_rows": lake_rows, "lake_ids": lake_ids}
    print(
        json.dumps(
            {
                **lake,
                "version": duckdb.__version__,
                "seconds": seconds,
                "bytes": os.path.getsize(target),
                "rows": rows,
                "row_groups": groups,
                "columns": {name: size for name, size in columns},
            }
        )
    )


if __name__ == "__main__":
    main()
