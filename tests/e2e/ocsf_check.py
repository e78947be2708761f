"""Reads an authtrail lake and its OCSF exports with DuckDB and pyarrow, independently of
authtrail, and prints what it finds as JSON for tests/ocsf_export.rs to check.

usage: ocsf_check.py LAKE_DIR ALL_JSONL ALL_PARQUET WINDOW_JSONL FROM_MS UNTIL_MS
"""

import json
import os
import sys

import duckdb
import pyarrow.parquet as pq

# What every OCSF event must carry (base event, classification and occurrence traits).
REQUIRED = ["class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id"]
# Each class's own required objects (events/iam/authentication.json,
# authorize_session.json, events/application/api_activity.json).
CLASS_REQUIRED = {
    3002: [("user", "name")],
    3003: [("user", "name")],
    6003: [("actor", "user"), ("api", "operation"), ("src_endpoint",)],
}


def dig(record, path):
    for key in path:
        if not isinstance(record, dict) or record.get(key) is None:
            return None
        record = record[key]
    return record


def problems(records):
    """Counts of records missing each required attribute, or with a wrong type_uid."""
    found = {}

    def note(what):
        found[what] = found.get(what, 0) + 1

    for record in records:
        for field in REQUIRED:
            if not isinstance(record.get(field), int):
                note(field)
        if record.get("type_uid") != record.get("class_uid", 0) * 100 + record.get(
            "activity_id", 0
        ):
            note("type_uid = class_uid * 100 + activity_id")
        if dig(record, ["metadata", "version"]) != "1.1.0":
            note("metadata.version")
        if dig(record, ["metadata", "product", "name"]) != "authtrail":
            note("metadata.product.name")
        if not dig(record, ["metadata", "uid"]):
            note("metadata.uid")
        for path in CLASS_REQUIRED.get(record.get("class_uid"), [("class_uid",)]):
            if dig(record, list(path)) is None:
                note(".".join(path))
    return found


def class_counts(records):
    counts = {}
    for record in records:
        key = str(record.get("class_uid"))
        counts[key] = counts.get(key, 0) + 1
    return counts


def read_jsonl(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def main() -> None:
    lake, all_jsonl, all_parquet, window_jsonl = sys.argv[1:5]
    from_ms, until_ms = int(sys.argv[5]), int(sys.argv[6])
    con = duckdb.connect()
    events = os.path.join(lake, "events", "**", "*.parquet")
    lake_events = f"read_parquet('{events}', hive_partitioning = true)"
    out = {}
    out["lake_kinds"] = dict(
        con.execute(f"SELECT kind, count(*) FROM {lake_events} GROUP BY kind").fetchall()
    )
    out["lake_session_grants"] = con.execute(
        f"""SELECT count(*) FROM {lake_events} WHERE kind = 'authz' AND resource IS NULL
            AND action IS NULL AND len(token_scopes) > 0"""
    ).fetchone()[0]
    out["lake_window_rows"] = con.execute(
        f"""SELECT count(*) FROM {lake_events}
            WHERE epoch_ms(time) >= {from_ms} AND epoch_ms(time) < {until_ms}"""
    ).fetchone()[0]

    jsonl = read_jsonl(all_jsonl)
    parquet = pq.read_table(all_parquet).to_pylist()
    window = read_jsonl(window_jsonl)
    for name, records in [("jsonl", jsonl), ("parquet", parquet), ("window", window)]:
        out[name] = {
            "rows": len(records),
            "classes": class_counts(records),
            "problems": problems(records),
        }
    out["window"]["outside"] = sum(
        1 for r in window if not from_ms <= r["time"] < until_ms
    )

    # Every lake event once, at its own time in milliseconds, in both formats.
    lake_times = dict(
        con.execute(f"SELECT id, epoch_ms(time) FROM {lake_events}").fetchall()
    )
    for name, records in [("jsonl", jsonl), ("parquet", parquet)]:
        exported = {r["metadata"]["uid"]: r["time"] for r in records}
        out[name]["same_ids"] = set(exported) == set(lake_times)
        out[name]["wrong_times"] = sum(
            1 for uid, time in exported.items() if lake_times.get(uid) != time
        )
    out["parquet"]["columns"] = pq.read_schema(all_parquet).names

    # The hand-written events, as each format has them (a Parquet map reads back as
    # key-value pairs: made a dict, as JSON has it).
    def normal(record):
        unmapped = record.get("unmapped") or {}
        if isinstance(unmapped.get("attributes"), list):
            unmapped["attributes"] = dict(unmapped["attributes"])
        return record

    for name, records in [("jsonl", jsonl), ("parquet", parquet)]:
        out[name]["samples"] = {
            r["metadata"]["uid"]: normal(r)
            for r in records
            if r["metadata"]["uid"].startswith("ocsf-")
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
