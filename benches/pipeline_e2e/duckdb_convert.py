"""DuckDB's side of the pipeline_e2e bench: JSON lines -> zstd Parquet, what users script.

Usage: python duckdb_convert.py EVENTS.jsonl OUT.parquet THREADS
A field the schema DuckDB samples from the start of the file lacks (one that appears
late, as `required_scopes` does in `authtrail gen` traffic) would fail the COPY; with
`ignore_errors` it is left out of those lines (`rows` counts every line converted).
Prints one JSON object: seconds (the COPY alone, timed here), cpu_seconds (the CPU time
of all its threads meanwhile), bytes, rows.
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
    start, cpu = time.perf_counter(), time.process_time()
    con.execute(
        f"COPY (SELECT * FROM read_json('{source}', format='newline_delimited', ignore_errors=true)) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    print(
        json.dumps(
            {
                "version": duckdb.__version__,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "bytes": os.path.getsize(target),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
