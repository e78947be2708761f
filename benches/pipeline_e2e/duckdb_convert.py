"""DuckDB's side of the pipeline_e2e bench: JSON lines -> zstd Parquet, what users script.

Usage: python duckdb_convert.py EVENTS.jsonl OUT.parquet THREADS
Prints one JSON object: seconds (the COPY alone, timed here), bytes, rows.
"""

import json
import os
import sys
import time

import duckdb


def main() -> None:
    source, target, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_json('{source}', format='newline_delimited')) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    seconds = time.perf_counter() - start
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    print(
        json.dumps(
            {
                "version": duckdb.__version__,
                "seconds": seconds,
                "bytes": os.path.getsize(target),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
