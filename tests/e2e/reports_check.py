"""Computes the counts of authtrail's trust and privilege reports with DuckDB over the same
lake, independently of authtrail's SQL, for tests/reports.rs.

usage: reports_check.py LAKE_DIR FROM UNTIL   (RFC 3339 times; FROM inclusive)

Settings are the test's: skew 60 s, token lookback 24 h, the open route
`orders GET /healthz`, the scope map `legacy GET -> legacy:read`, the default
token-rejection reasons. Prints one JSON object of row lists.
"""

import json
import os
import sys

import duckdb

lake, start, until = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
files = os.path.join(lake, "events", "**", "*.parquet")
con.execute(
    f"CREATE VIEW everything AS SELECT * FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
)
# The window, and the lookback for token issues and revocations.
con.execute(
    f"""CREATE VIEW ev AS SELECT *, coalesce(target_service, service) AS decider FROM everything
        WHERE time >= TIMESTAMPTZ '{start}' AND time < TIMESTAMPTZ '{until}'"""
)
con.execute(
    f"""CREATE VIEW back AS SELECT * FROM everything
        WHERE time >= TIMESTAMPTZ '{start}' - INTERVAL 24 HOUR AND time < TIMESTAMPTZ '{until}'"""
)


def rows(sql):
    return [list(row) for row in con.execute(sql).fetchall()]


out = {}
# Each allow judged once: audience first, then expired, then revoked (the token's own
# revoke, or a revoke without token_id of every token issued to its principal before it).
out["accepted_invalid"] = rows(
    """
    WITH judged AS (
      SELECT a.decider AS service,
        CASE
          WHEN EXISTS (SELECT 1 FROM back i WHERE i.kind = 'token_issue' AND i.token_id = a.token_id
                         AND len(i.token_audience) > 0
                         AND NOT list_contains(i.token_audience, a.decider)
                         AND NOT list_contains(i.token_audience, '*')) THEN 'audience'
          WHEN EXISTS (SELECT 1 FROM back i WHERE i.kind = 'token_issue' AND i.token_id = a.token_id
                         AND i.token_expires + INTERVAL 60 SECOND < a.time) THEN 'expired'
          WHEN EXISTS (SELECT 1 FROM back r WHERE r.kind = 'token_revoke' AND r.token_id = a.token_id
                         AND r.time < a.time) THEN 'revoked'
          WHEN EXISTS (SELECT 1 FROM back r JOIN back i ON i.principal = r.principal
                       WHERE r.kind = 'token_revoke' AND r.token_id IS NULL AND r.time < a.time
                         AND i.kind = 'token_issue' AND i.token_id = a.token_id
                         AND i.time < r.time) THEN 'revoked'
        END AS gap
      FROM ev a WHERE a.kind = 'authz' AND a.outcome = 'allow' AND a.token_id IS NOT NULL)
    SELECT service, gap, count(*) FROM judged WHERE gap IS NOT NULL GROUP BY ALL
    """
)
reasons = "('invalid_token','token_invalid','expired','token_expired','revoked','token_revoked','invalid_signature','bad_signature','unknown_token','unknown_issuer','invalid_issuer','malformed_token')"
out["rejected_elsewhere"] = rows(
    f"""
    SELECT a.decider, d.decider, count(DISTINCT a.token_id)
    FROM ev a JOIN ev d ON a.token_id = d.token_id AND a.decider <> d.decider
    WHERE a.kind = 'authz' AND a.outcome = 'allow' AND d.kind = 'authz' AND d.outcome = 'deny'
      AND lower(d.reason) IN {reasons}
    GROUP BY ALL
    """
)
out["tokenless"] = rows(
    """
    SELECT decider, coalesce(source_service, '(direct)'), count(*)
    FROM ev
    WHERE kind = 'authz' AND outcome = 'allow' AND token_id IS NULL
      AND NOT starts_with(principal, 'spiffe://') AND lower(coalesce(auth_method, '')) <> 'mtls'
      AND NOT (decider = 'orders' AND resource = '/healthz' AND action = 'GET')
    GROUP BY ALL
    """
)
out["origin"] = rows(
    """
    WITH per_origin AS (
      SELECT decider, principal, coalesce(resource, '') AS resource, coalesce(action, '') AS action,
             coalesce(source_service, '(direct)') AS origin,
             bool_or(outcome = 'allow') AS allowed, bool_or(outcome = 'deny') AS denied
      FROM ev WHERE kind = 'authz' GROUP BY ALL)
    SELECT decider, principal, resource FROM per_origin
    GROUP BY decider, principal, resource, action
    HAVING bool_or(allowed AND NOT denied) AND bool_or(denied AND NOT allowed)
    """
)
out["propagation"] = rows(
    """
    WITH calls AS (SELECT * FROM ev WHERE kind = 'authz' AND trace_id IS NOT NULL),
    issued AS (SELECT * FROM back WHERE kind = 'token_issue')
    SELECT DISTINCT d.source_service, u.principal, d.principal
    FROM calls d JOIN calls u ON u.trace_id = d.trace_id AND u.decider = d.source_service AND u.time <= d.time
    WHERE d.principal NOT IN (SELECT principal FROM calls c WHERE c.trace_id = d.trace_id AND c.decider = d.source_service)
      AND d.principal NOT IN (SELECT principal FROM issued WHERE client_id = d.source_service)
      AND NOT EXISTS (SELECT 1 FROM issued x WHERE lower(x.auth_method) = 'token_exchange'
                        AND (x.token_id = d.token_id OR (x.trace_id = d.trace_id AND x.time <= d.time)))
    """
)

# Privilege: holders are clients, else subjects.
con.execute(
    """CREATE VIEW issues AS SELECT *, coalesce(client_id, principal) AS holder FROM ev WHERE kind = 'token_issue'"""
)
con.execute(
    """CREATE VIEW holder_of AS SELECT DISTINCT token_id, coalesce(client_id, principal) AS holder
       FROM back WHERE kind = 'token_issue' AND token_id IS NOT NULL"""
)
out["unused_scopes"] = rows(
    """
    WITH granted AS (SELECT holder, unnest(token_scopes) AS scope FROM issues),
    exercised AS (
      SELECT h.holder, unnest(coalesce(a.required_scopes,
               CASE WHEN a.decider = 'legacy' AND a.action = 'GET' THEN ['legacy:read'] END)) AS scope
      FROM ev a JOIN holder_of h USING (token_id)
      WHERE a.kind = 'authz' AND a.outcome = 'allow')
    SELECT holder, scope, count(*) FROM granted g
    WHERE NOT EXISTS (SELECT 1 FROM exercised x WHERE x.holder = g.holder AND x.scope = g.scope)
    GROUP BY ALL
    """
)
out["unused_audiences"] = rows(
    """
    WITH granted AS (SELECT holder, unnest(token_audience) AS audience FROM issues)
    SELECT holder, audience, count(*) FROM granted g
    WHERE audience <> '*' AND NOT EXISTS (
      SELECT 1 FROM ev a JOIN holder_of h USING (token_id)
      WHERE a.kind = 'authz' AND h.holder = g.holder AND a.decider = g.audience)
    GROUP BY ALL
    """
)
out["dormant"] = rows(
    """
    SELECT holder, count(*) FROM issues
    GROUP BY holder
    HAVING count(*) FILTER (WHERE token_id IN
      (SELECT token_id FROM ev WHERE kind = 'authz' AND token_id IS NOT NULL)) = 0
    """
)
print(json.dumps(out, default=str))
