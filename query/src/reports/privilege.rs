//! The privilege report: per token holder (the OAuth client a token was issued to, else
//! its subject, for service principals without a client), what it was granted against
//! what it used. The queries count; the findings and their recommendations are composed
//! here from the counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::config::{PrivilegeConfig, TrustConfig};
use super::{
    describe_duration, route_condition, sql_string, thousands, ReportQuery, Rows, Section,
    SectionSpec, Window, DECIDER,
};

/// Whom a token was issued to: `client` (its `client_id`) or `principal` (its subject).
const HOLDER_KIND: &str = "CASE WHEN client_id IS NOT NULL THEN 'client' ELSE 'principal' END";
const HOLDER: &str = "coalesce(client_id, principal)";

/// The queries, each named for the counts it returns.
pub(super) fn queries(
    config: &PrivilegeConfig,
    trust: &TrustConfig,
    window: &Window,
) -> Vec<ReportQuery> {
    let lookback = super::timestamp(window.with_lookback(trust.token_lookback));
    let window_sql = "time >= $from AND time < $until";
    // Tokens presented in the window may have been issued before it.
    let tokens = format!(
        "tokens AS (
            SELECT DISTINCT token_id, {HOLDER_KIND} AS holder_kind, {HOLDER} AS holder
            FROM events
            WHERE kind = 'token_issue' AND token_id IS NOT NULL
              AND time >= $lookback AND time < $until
        )"
    );
    let issued = format!(
        "issued AS (
            SELECT token_id, {HOLDER_KIND} AS holder_kind, {HOLDER} AS holder, principal,
                   principal_type, auth_method, token_scopes, token_audience, time, token_expires
            FROM events
            WHERE kind = 'token_issue' AND {window_sql}
        )"
    );
    let mapped: Vec<String> = config
        .scope_map
        .iter()
        .map(|rule| {
            let scopes: Vec<String> = rule.scopes.iter().map(|s| sql_string(s)).collect();
            format!(
                "WHEN {} THEN make_array({})",
                route_condition(
                    DECIDER,
                    rule.service.as_deref(),
                    rule.resource.as_deref(),
                    rule.action.as_deref()
                ),
                scopes.join(", ")
            )
        })
        .collect();
    let exercised = if mapped.is_empty() {
        "required_scopes".to_owned()
    } else {
        format!("coalesce(required_scopes, CASE {} END)", mapped.join(" "))
    };
    let holders = format!(
        "WITH {issued},
        presented AS (
            SELECT DISTINCT token_id FROM events
            WHERE kind = 'authz' AND token_id IS NOT NULL AND {window_sql}
        )
        SELECT i.holder_kind, i.holder, min(i.principal_type) AS principal_type,
               count(*) AS tokens_issued, count(p.token_id) AS tokens_presented,
               count(DISTINCT i.principal) AS principals,
               count(*) FILTER (WHERE array_has(i.token_audience, '*')
                                   OR cardinality(i.token_audience) > {max_audiences}
                                   OR array_to_string(i.token_scopes, ' ') LIKE '%*%') AS over_broad_tokens,
               max(cardinality(i.token_audience)) AS widest_audience
        FROM issued i
        LEFT JOIN presented p ON p.token_id = i.token_id
        GROUP BY 1, 2",
        max_audiences = config.max_audiences,
    );
    // One read of the calls for the scopes, reach and audiences counts: the calls of the
    // holders' tokens counted per holder, deciding service, outcome and exercised scopes
    // (a few hundred rows), composed with the grants in `usage_counts`. Each of the three
    // read the calls on its own before (three scans of the window's calls, three joins
    // with the tokens).
    let usage = format!(
        "WITH {tokens}
        SELECT t.holder_kind, t.holder, {DECIDER} AS service,
               coalesce(a.outcome = 'allow', FALSE) AS allowed,
               CASE WHEN a.outcome = 'allow' THEN {exercised} END AS scopes,
               count(*) AS calls
        FROM tokens t
        JOIN events a ON a.token_id = t.token_id
        WHERE a.kind = 'authz' AND a.token_id IS NOT NULL AND a.{window_sql}
        GROUP BY 1, 2, 3, 4, 5"
    );
    let scope_grants = format!(
        "SELECT holder_kind, holder, scope, count(*) AS grants
        FROM (SELECT {HOLDER_KIND} AS holder_kind, {HOLDER} AS holder,
                     unnest(token_scopes) AS scope
              FROM events WHERE kind = 'token_issue' AND {window_sql})
        GROUP BY 1, 2, 3"
    );
    let audience_grants = format!(
        "SELECT holder_kind, holder, audience, count(*) AS grants
        FROM (SELECT {HOLDER_KIND} AS holder_kind, {HOLDER} AS holder,
                     unnest(token_audience) AS audience
              FROM events WHERE kind = 'token_issue' AND {window_sql})
        WHERE audience <> '*'
        GROUP BY 1, 2, 3"
    );
    let lifetime = "(CAST(token_expires AS BIGINT) - CAST(time AS BIGINT)) / 1000000";
    // The holders' and the fleet's medians from one read of the issues: `fleet` is 1 on
    // the rows per grant type alone.
    let lifetimes = format!(
        "SELECT holder_kind, holder, grant_type, grouping(holder_kind) AS fleet,
                count(*) AS tokens, median(lifetime) AS median_lifetime_s
        FROM (SELECT {HOLDER_KIND} AS holder_kind, {HOLDER} AS holder,
                     coalesce(auth_method, '') AS grant_type, {lifetime} AS lifetime
              FROM events
              WHERE kind = 'token_issue' AND token_expires IS NOT NULL AND {window_sql})
        GROUP BY GROUPING SETS ((holder_kind, holder, grant_type), (grant_type))"
    );
    const BY_HOLDER: &[&str] = &["holder_kind", "holder"];
    vec![
        ReportQuery::new("holders", holders, window, BY_HOLDER),
        ReportQuery::new(
            "scope_grants",
            scope_grants,
            window,
            &["holder_kind", "holder", "scope"],
        ),
        ReportQuery::new(
            "audience_grants",
            audience_grants,
            window,
            &["holder_kind", "holder", "audience"],
        ),
        ReportQuery::new("usage", usage, window, BY_HOLDER).bind("lookback", lookback),
        ReportQuery::new(
            "lifetimes",
            lifetimes,
            window,
            &["fleet", "holder_kind", "holder", "grant_type"],
        ),
    ]
}

const SUMMARY: SectionSpec = SectionSpec {
    id: "summary",
    title: "Token holders",
    description: "Every client (or service principal without a client) issued tokens in the window: what it was granted and what it used.",
    columns: &[
        "holder_kind",
        "holder",
        "principal_type",
        "tokens_issued",
        "tokens_presented",
        "scopes_granted",
        "scopes_unused",
        "audiences_granted",
        "audiences_unused",
        "services_allowed",
        "over_broad_tokens",
        "findings",
    ],
};

const UNUSED_SCOPES: SectionSpec = SectionSpec {
    id: "unused_scopes",
    title: "Scopes granted and never exercised",
    description: "A scope in the tokens issued to a holder that no allowed call of its tokens required (`required_scopes`, else `report.privilege.scope_map`).",
    columns: &[
        "holder_kind",
        "holder",
        "scope",
        "grants",
        "uses",
        "allows_without_scopes",
        "recommendation",
    ],
};

const UNUSED_AUDIENCES: SectionSpec = SectionSpec {
    id: "unused_audiences",
    title: "Audiences granted and never presented to",
    description: "A service named in the audience of a holder's tokens that none of its tokens was presented to.",
    columns: &[
        "holder_kind",
        "holder",
        "audience",
        "grants",
        "presentations",
        "recommendation",
    ],
};

const REACH: SectionSpec = SectionSpec {
    id: "reach",
    title: "Services reached that no peer reaches",
    description: "Services a holder's tokens were allowed at that no other holder of the same principal type reached.",
    columns: &[
        "holder_kind",
        "holder",
        "principal_type",
        "services_allowed",
        "peer_services",
        "only_this_holder",
        "recommendation",
    ],
};

const DORMANT: SectionSpec = SectionSpec {
    id: "dormant",
    title: "Dormant holders",
    description: "Holders issued tokens in the window none of which was presented to any service.",
    columns: &["holder_kind", "holder", "tokens_issued", "recommendation"],
};

const OVER_BROAD: SectionSpec = SectionSpec {
    id: "over_broad",
    title: "Over-broad tokens",
    description: "Tokens whose audience is `*` or longer than `report.privilege.max_audiences`, or whose scopes hold a wildcard.",
    columns: &[
        "holder_kind",
        "holder",
        "over_broad_tokens",
        "tokens_issued",
        "widest_audience",
        "recommendation",
    ],
};

const LONG_LIVED: SectionSpec = SectionSpec {
    id: "long_lived",
    title: "Long-lived tokens",
    description: "Holders whose median token lifetime exceeds `report.privilege.lifetime_factor` times the fleet's median for the same grant type.",
    columns: &[
        "holder_kind",
        "holder",
        "grant_type",
        "tokens",
        "median_lifetime_s",
        "fleet_median_lifetime_s",
        "recommendation",
    ],
};

type Key = (String, String);

/// Per holder: how many grants (scopes or audiences) it has, and how many went unused.
type GrantCounts = HashMap<Key, (u64, u64)>;

fn text(row: &Map<String, Value>, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number(row: &Map<String, Value>, column: &str) -> u64 {
    match row.get(column) {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        _ => None,
    }
    .unwrap_or(0)
}

fn float(row: &Map<String, Value>, column: &str) -> Option<f64> {
    row.get(column).and_then(Value::as_f64)
}

fn key(row: &Map<String, Value>) -> Key {
    (text(row, "holder_kind"), text(row, "holder"))
}

/// `client `reports`` or `principal `svc:batch``.
fn holder_label((kind, holder): &Key) -> String {
    format!("{kind} `{holder}`")
}

fn row(columns: &[&str], values: Vec<Value>) -> Map<String, Value> {
    columns.iter().map(|c| c.to_string()).zip(values).collect()
}

/// The sections, composed from the queries' rows (named by query id).
pub(super) fn sections(
    config: &PrivilegeConfig,
    window: &Window,
    results: Vec<(&'static str, Rows)>,
) -> Vec<Section> {
    let mut by_query: HashMap<&str, Rows> = results.into_iter().collect();
    let mut take = |id: &str| {
        by_query.remove(id).unwrap_or(Rows {
            rows: Vec::new(),
            truncated: false,
        })
    };
    let holders = take("holders");
    // The fleet's medians (per grant type alone) come in the same query as the holders'.
    let medians = take("lifetimes");
    let (norms, lifetimes): (Vec<_>, Vec<_>) = medians
        .rows
        .into_iter()
        .partition(|row| number(row, "fleet") == 1);
    let rows = |rows| Rows {
        rows,
        truncated: medians.truncated,
    };
    let (lifetimes, norms) = (rows(lifetimes), rows(norms));
    let (scopes, reach, audiences) =
        usage_counts(take("scope_grants"), take("audience_grants"), take("usage"));
    let period = describe_duration(window.length());
    let truncated = |rows: &[&Rows]| rows.iter().any(|r| r.truncated);

    let coverage: HashMap<Key, &Map<String, Value>> =
        reach.rows.iter().map(|row| (key(row), row)).collect();
    let mut findings: HashMap<Key, u64> = HashMap::new();

    let (scope_counts, unused_scopes) = unused_grants(
        &scopes.rows,
        "uses",
        &mut findings,
        |holder, scope_row| {
            let scope = text(scope_row, "scope");
            let (grants, uses) = (number(scope_row, "grants"), number(scope_row, "uses"));
            let unknown = coverage
                .get(holder)
                .map_or(0, |row| number(row, "allows_without_scopes"));
            let mut recommendation = format!(
                "drop scope `{scope}` from {}: granted {} times, used 0 times in {period}",
                holder_label(holder),
                thousands(grants)
            );
            if unknown > 0 {
                recommendation.push_str(&format!(
                    " (check first: {} of its allowed calls went to services that report no scopes)",
                    thousands(unknown)
                ));
            }
            row(
                UNUSED_SCOPES.columns,
                vec![
                    json!(holder.0),
                    json!(holder.1),
                    json!(scope),
                    json!(grants),
                    json!(uses),
                    json!(unknown),
                    json!(recommendation),
                ],
            )
        },
    );

    let (audience_counts, unused_audiences) = unused_grants(
        &audiences.rows,
        "presentations",
        &mut findings,
        |holder, audience_row| {
            let audience = text(audience_row, "audience");
            let grants = number(audience_row, "grants");
            row(
                UNUSED_AUDIENCES.columns,
                vec![
                    json!(holder.0),
                    json!(holder.1),
                    json!(audience),
                    json!(grants),
                    json!(number(audience_row, "presentations")),
                    json!(format!(
                        "drop audience `{audience}` from {}: in {} tokens, presented there 0 times in {period}",
                        holder_label(holder),
                        thousands(grants)
                    )),
                ],
            )
        },
    );

    // Peers: holders of the same principal type.
    let principal_type: HashMap<Key, String> = holders
        .rows
        .iter()
        .map(|row| (key(row), text(row, "principal_type")))
        .collect();
    let services_of = |row: &Map<String, Value>| -> BTreeSet<String> {
        row.get("services")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut reached_by: BTreeMap<(String, String), BTreeSet<Key>> = BTreeMap::new();
    for reach_row in &reach.rows {
        let holder = key(reach_row);
        let kind = principal_type.get(&holder).cloned().unwrap_or_default();
        for service in services_of(reach_row) {
            reached_by
                .entry((kind.clone(), service))
                .or_default()
                .insert(holder.clone());
        }
    }
    let mut reach_rows = Vec::new();
    for reach_row in &reach.rows {
        let holder = key(reach_row);
        let kind = principal_type.get(&holder).cloned().unwrap_or_default();
        let services = services_of(reach_row);
        let peers_reach: BTreeSet<&str> = reached_by
            .iter()
            .filter(|((k, _), holders)| *k == kind && holders.iter().any(|h| *h != holder))
            .map(|((_, service), _)| service.as_str())
            .collect();
        let has_peers = principal_type
            .iter()
            .any(|(other, t)| *t == kind && *other != holder);
        let only: Vec<&String> = services
            .iter()
            .filter(|s| !peers_reach.contains(s.as_str()))
            .collect();
        if !has_peers || only.is_empty() {
            continue;
        }
        *findings.entry(holder.clone()).or_default() += 1;
        let names: Vec<String> = only.iter().map(|s| format!("`{s}`")).collect();
        reach_rows.push(row(
            REACH.columns,
            vec![
                json!(holder.0),
                json!(holder.1),
                json!(kind),
                json!(services.len()),
                json!(peers_reach.len()),
                json!(only),
                json!(format!(
                    "review why {} reaches {}: no other {kind} holder did in {period}",
                    holder_label(&holder),
                    names.join(", ")
                )),
            ],
        ));
    }

    let mut dormant = Vec::new();
    let mut over_broad = Vec::new();
    for holder_row in &holders.rows {
        let holder = key(holder_row);
        let issued = number(holder_row, "tokens_issued");
        if number(holder_row, "tokens_presented") == 0 {
            *findings.entry(holder.clone()).or_default() += 1;
            dormant.push(row(
                DORMANT.columns,
                vec![
                    json!(holder.0),
                    json!(holder.1),
                    json!(issued),
                    json!(format!(
                        "disable {}: {} tokens issued in {period}, none presented",
                        holder_label(&holder),
                        thousands(issued)
                    )),
                ],
            ));
        }
        let broad = number(holder_row, "over_broad_tokens");
        if broad > 0 {
            *findings.entry(holder.clone()).or_default() += 1;
            over_broad.push(row(
                OVER_BROAD.columns,
                vec![
                    json!(holder.0),
                    json!(holder.1),
                    json!(broad),
                    json!(issued),
                    holder_row.get("widest_audience").cloned().unwrap_or(Value::Null),
                    json!(format!(
                        "narrow the tokens of {}: {} of {} name `*` or more than {} audiences, or a wildcard scope",
                        holder_label(&holder),
                        thousands(broad),
                        thousands(issued),
                        config.max_audiences
                    )),
                ],
            ));
        }
    }

    let fleet: HashMap<String, f64> = norms
        .rows
        .iter()
        .filter_map(|row| Some((text(row, "grant_type"), float(row, "median_lifetime_s")?)))
        .collect();
    let mut long_lived = Vec::new();
    for life_row in &lifetimes.rows {
        let holder = key(life_row);
        let grant = text(life_row, "grant_type");
        let (Some(median), Some(norm)) = (
            float(life_row, "median_lifetime_s"),
            fleet.get(&grant).copied(),
        ) else {
            continue;
        };
        if norm <= 0.0 || median <= config.lifetime_factor * norm {
            continue;
        }
        *findings.entry(holder.clone()).or_default() += 1;
        let grant_name = if grant.is_empty() { "(none)" } else { &grant };
        long_lived.push(row(
            LONG_LIVED.columns,
            vec![
                json!(holder.0),
                json!(holder.1),
                json!(grant),
                json!(number(life_row, "tokens")),
                json!(median.round() as u64),
                json!(norm.round() as u64),
                json!(format!(
                    "shorten the tokens of {}: median lifetime {}, {:.0}x the fleet's {} for grant `{grant_name}`",
                    holder_label(&holder),
                    describe_duration(std::time::Duration::from_secs(median.round() as u64)),
                    median / norm,
                    describe_duration(std::time::Duration::from_secs(norm.round() as u64)),
                )),
            ],
        ));
    }

    let mut summary: Vec<Map<String, Value>> = holders
        .rows
        .iter()
        .map(|holder_row| {
            let holder = key(holder_row);
            let (scopes_granted, scopes_unused) =
                scope_counts.get(&holder).copied().unwrap_or_default();
            let (audiences_granted, audiences_unused) =
                audience_counts.get(&holder).copied().unwrap_or_default();
            let services = coverage
                .get(&holder)
                .map_or(0, |row| services_of(row).len());
            row(
                SUMMARY.columns,
                vec![
                    json!(holder.0),
                    json!(holder.1),
                    holder_row
                        .get("principal_type")
                        .cloned()
                        .unwrap_or(Value::Null),
                    json!(number(holder_row, "tokens_issued")),
                    json!(number(holder_row, "tokens_presented")),
                    json!(scopes_granted),
                    json!(scopes_unused),
                    json!(audiences_granted),
                    json!(audiences_unused),
                    json!(services),
                    json!(number(holder_row, "over_broad_tokens")),
                    json!(findings.get(&holder).copied().unwrap_or(0)),
                ],
            )
        })
        .collect();
    // Most unused scopes first, as the UI sorts it by default.
    summary.sort_by_key(|row| std::cmp::Reverse(number(row, "scopes_unused")));

    let all = [&holders, &scopes, &reach, &audiences];
    vec![
        section(&SUMMARY, summary, truncated(&all)),
        section(&UNUSED_SCOPES, unused_scopes, truncated(&[&scopes, &reach])),
        section(
            &UNUSED_AUDIENCES,
            unused_audiences,
            truncated(&[&audiences]),
        ),
        section(&REACH, reach_rows, truncated(&[&reach, &holders])),
        section(&DORMANT, dormant, truncated(&[&holders])),
        section(&OVER_BROAD, over_broad, truncated(&[&holders])),
        section(&LONG_LIVED, long_lived, truncated(&[&lifetimes, &norms])),
    ]
}

/// Grants (a holder's scopes or audiences, one row each) that were never used (`used_column`
/// is 0): per holder, how many it was granted and how many of them went unused, and one
/// finding row (made by `finding`) for each unused grant, counted in `findings`.
fn unused_grants(
    rows: &[Map<String, Value>],
    used_column: &str,
    findings: &mut HashMap<Key, u64>,
    mut finding: impl FnMut(&Key, &Map<String, Value>) -> Map<String, Value>,
) -> (GrantCounts, Vec<Map<String, Value>>) {
    let mut counts = GrantCounts::new();
    let mut unused = Vec::new();
    for grant in rows {
        let holder = key(grant);
        let (granted, never_used) = counts.entry(holder.clone()).or_default();
        *granted += 1;
        if number(grant, used_column) > 0 {
            continue;
        }
        *never_used += 1;
        *findings.entry(holder.clone()).or_default() += 1;
        unused.push(finding(&holder, grant));
    }
    (counts, unused)
}

/// A holder's allowed calls: how many, how many with no known scopes, the services.
type Reached = (u64, u64, BTreeSet<String>);

/// A holder's key in a row as a join compares it: `None` when a column is null (or not
/// text), which matches nothing.
fn join_key(row: &Map<String, Value>, columns: &[&str]) -> Option<Vec<String>> {
    columns
        .iter()
        .map(|column| row.get(*column).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A holder as `GROUP BY` takes it: nulls form a group of their own.
fn group_key(row: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let column = |name| row.get(name).and_then(Value::as_str).map(str::to_owned);
    (column("holder_kind"), column("holder"))
}

/// The counts the `scopes`, `reach` and `audiences` queries gave when each read the calls
/// itself, from the grants and the one `usage` read: per granted scope, the uses (an
/// allowed call counts once for each time a scope is in its exercised scopes); per holder
/// with allowed calls, the allows, those with no known scopes and the services allowed
/// at; per granted audience, the calls presented to that service (any outcome). Joins
/// as the SQL did: a null holder, scope or audience matches nothing.
fn usage_counts(scope_grants: Rows, audience_grants: Rows, usage: Rows) -> (Rows, Rows, Rows) {
    let mut used: HashMap<Vec<String>, u64> = HashMap::new();
    let mut presented: HashMap<Vec<String>, u64> = HashMap::new();
    let mut reached: BTreeMap<(Option<String>, Option<String>), Reached> = BTreeMap::new();
    for call in &usage.rows {
        let calls = number(call, "calls");
        if let Some(key) = join_key(call, &["holder_kind", "holder", "service"]) {
            *presented.entry(key).or_default() += calls;
        }
        if call.get("allowed") != Some(&Value::Bool(true)) {
            continue;
        }
        let scopes = call.get("scopes").and_then(Value::as_array);
        let (allows, without_scopes, services) = reached.entry(group_key(call)).or_default();
        *allows += calls;
        match scopes {
            None => *without_scopes += calls,
            Some(scopes) => {
                let holder = join_key(call, &["holder_kind", "holder"]);
                for scope in scopes.iter().filter_map(Value::as_str) {
                    if let Some(mut key) = holder.clone() {
                        key.push(scope.to_owned());
                        *used.entry(key).or_default() += calls;
                    }
                }
            }
        }
        if let Some(service) = call.get("service").and_then(Value::as_str) {
            services.insert(service.to_owned());
        }
    }

    let with_count =
        |grants: &Rows, key_columns: &[&str], column: &str, counts: &HashMap<Vec<String>, u64>| {
            let rows = grants
                .rows
                .iter()
                .map(|grant| {
                    let count = join_key(grant, key_columns)
                        .and_then(|key| counts.get(&key).copied())
                        .unwrap_or(0);
                    let mut row = grant.clone();
                    row.insert(column.to_owned(), json!(count));
                    row
                })
                .collect();
            Rows {
                rows,
                truncated: grants.truncated || usage.truncated,
            }
        };
    let scopes = with_count(
        &scope_grants,
        &["holder_kind", "holder", "scope"],
        "uses",
        &used,
    );
    let audiences = with_count(
        &audience_grants,
        &["holder_kind", "holder", "audience"],
        "presentations",
        &presented,
    );
    let reach = Rows {
        rows: reached
            .into_iter()
            .map(|((kind, holder), (allows, without_scopes, services))| {
                row(
                    &[
                        "holder_kind",
                        "holder",
                        "allows",
                        "allows_without_scopes",
                        "services",
                    ],
                    vec![
                        json!(kind),
                        json!(holder),
                        json!(allows),
                        json!(without_scopes),
                        json!(services),
                    ],
                )
            })
            .collect(),
        truncated: usage.truncated,
    };
    (scopes, reach, audiences)
}

fn section(spec: &SectionSpec, rows: Vec<Map<String, Value>>, truncated: bool) -> Section {
    spec.with_rows(Rows { rows, truncated })
}
