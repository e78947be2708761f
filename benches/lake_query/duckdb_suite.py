"""DuckDB's side of the lake_query bench: the forensic suite over authtrail's lake files.

Usage: python duckdb_suite.py LAKE_DIR QUERIES.json THREADS RUNS
QUERIES.json is a list of {"name", "sql"}; the SQL reads the views `events`, `alerts` and
`rejects` over the lake's Parquet files (Hive partitioning on). Prints one JSON object:
{name: {"best_seconds", "rows"}}, each query run RUNS times after one untimed warm-up,
results fetched as Arrow (as the authtrail side collects Arrow batches).
"""

import glob
import json
import os
import sys
import time

import duckdb


def main() -> None:
    lake, queries_path, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    queries = json.load(open(queries_path))
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET TimeZone='UTC'")
    for table in ("events", "alerts", "rejects"):
        files = os.path.join(lake, table, "*", "*", "*.parquet")
        if not glob.glob(files):
            continue  # DuckDB cannot open an empty glob (the bench lake has no rejects)
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}', hive_partitioning=true)"
        )
    results = {}

    def arrow(sql):
        # The relation API hands Arrow over without the extra copy a DB-API cursor makes.
        relation = con.sql(sql)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        return fetch()

    for query in queries:
        arrow(query["sql"])
        best, rows = None, None
        for _ in range(runs):
            start = time.perf_counter()
            table = arrow(query["sql"])
            seconds = time.perf_counter() - start
            rows = table.num_rows
            best = seconds if best is None else min(best, seconds)
        results[query["name"]] = {"best_seconds": best, "rows": rows}
    json.dump({"version": duckdb.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
