//! The forensic suite: the same question asked of both engines. The SQL is shared where
//! both dialects accept it; `cidr_contains` has a DuckDB expression that selects the same
//! IPv4 addresses (DuckDB's `inet` extension is not bundled).

use crate::lake::Picks;

pub struct Query {
    pub name: &'static str,
    pub authtrail: String,
    pub duckdb: String,
}

fn same(name: &'static str, sql: String) -> Query {
    Query {
        name,
        authtrail: sql.clone(),
        duckdb: sql,
    }
}

/// Second day of the three the lake spans (2026-11-24 UTC).
const DAY_FROM: &str = "2026-11-24 00:00:00+00";
const DAY_TO: &str = "2026-11-25 00:00:00+00";

pub fn suite(picks: &Picks) -> Vec<Query> {
    let Picks {
        token_id,
        principal,
        source_ip,
        ..
    } = picks;
    let day = format!("time >= TIMESTAMPTZ '{DAY_FROM}' AND time < TIMESTAMPTZ '{DAY_TO}'");
    // authtrail casts an RFC 3339 text literal to the column's type (timestamp, UTC).
    let df_day = "time >= '2026-11-24T00:00:00Z' AND time < '2026-11-25T00:00:00Z'";
    vec![
        same(
            "token_lookup",
            format!("SELECT * FROM events WHERE token_id = '{token_id}' ORDER BY time, id"),
        ),
        Query {
            name: "principal_day",
            authtrail: format!(
                "SELECT time, kind, outcome, service, resource, source_ip, token_id FROM events \
                 WHERE principal = '{principal}' AND {df_day} ORDER BY time, id"
            ),
            duckdb: format!(
                "SELECT time, kind, outcome, service, resource, source_ip, token_id FROM events \
                 WHERE principal = '{principal}' AND {day} ORDER BY time, id"
            ),
        },
        same(
            "ip_activity",
            format!(
                "SELECT time, kind, principal, outcome, service FROM events \
                 WHERE source_ip = '{source_ip}' ORDER BY time, id"
            ),
        ),
        same(
            "top_denied",
            "SELECT * FROM (SELECT target_service, principal, count(*) AS denies, \
             row_number() OVER (PARTITION BY target_service ORDER BY count(*) DESC, principal) AS rank \
             FROM events WHERE kind = 'authz' AND outcome = 'deny' \
             GROUP BY target_service, principal) AS ranked WHERE rank <= 3 \
             ORDER BY target_service, rank"
                .into(),
        ),
        same(
            "targets_per_hour",
            "SELECT principal, date_trunc('hour', time) AS hour, count(DISTINCT target_service) AS targets \
             FROM events WHERE kind = 'authz' GROUP BY principal, date_trunc('hour', time)"
                .into(),
        ),
        same(
            "kinds_per_hour",
            "SELECT date_trunc('hour', time) AS hour, kind, count(*) AS events, \
             count(*) FILTER (WHERE outcome IN ('deny', 'failure')) AS failed \
             FROM events GROUP BY 1, 2 ORDER BY 1, 2"
                .into(),
        ),
        same(
            "ips_per_token",
            "SELECT token_id, count(DISTINCT source_ip) AS ips, count(*) AS uses FROM events \
             WHERE token_id IS NOT NULL GROUP BY token_id HAVING count(DISTINCT source_ip) > 1"
                .into(),
        ),
        same(
            "alert_evidence",
            "SELECT a.id AS alert, a.detector, e.id, e.time, e.kind, e.principal, e.source_ip \
             FROM (SELECT id, detector, unnest(evidence_ids) AS evidence_id FROM alerts) AS a \
             JOIN events AS e ON e.id = a.evidence_id"
                .into(),
        ),
        Query {
            name: "cidr_filter",
            authtrail: "SELECT principal, count(*) AS events FROM events \
                        WHERE cidr_contains(source_ip, '10.18.16.0/20') \
                        GROUP BY principal ORDER BY events DESC, principal"
                .into(),
            duckdb: "SELECT principal, count(*) AS events FROM events \
                     WHERE source_ip LIKE '10.18.%' \
                     AND TRY_CAST(split_part(source_ip, '.', 3) AS INTEGER) BETWEEN 16 AND 31 \
                     GROUP BY principal ORDER BY events DESC, principal"
                .into(),
        },
        Query {
            name: "failed_logins_day",
            authtrail: format!(
                "SELECT principal, count(*) AS failures, count(DISTINCT source_ip) AS ips \
                 FROM events WHERE kind = 'authn' AND outcome = 'failure' AND {df_day} \
                 GROUP BY principal ORDER BY failures DESC, principal LIMIT 100"
            ),
            duckdb: format!(
                "SELECT principal, count(*) AS failures, count(DISTINCT source_ip) AS ips \
                 FROM events WHERE kind = 'authn' AND outcome = 'failure' AND {day} \
                 GROUP BY principal ORDER BY failures DESC, principal LIMIT 100"
            ),
        },
    ]
}
