//! One YAML document to one compiled rule: a detection rule (selections and a
//! condition) or a correlation rule (counts, distinct values or sequences of other
//! rules' matches per group, within a timespan).

use authtrail_model::adapt::SOURCE_FORMAT_ATTRIBUTE;
use authtrail_model::{Event, Kind, Micros, Outcome, Severity};

use crate::condition::{self, Condition};
use crate::field::{Field, Product, ATTRIBUTES_COLUMN};
use crate::matcher::{FieldMatch, Memo, Pin};
use crate::yaml::{Node, Problem, Value};

/// Keys a rule document may have: Sigma's, so a typo is an error rather than ignored.
const RULE_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "status",
    "description",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "level",
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "correlation",
    "related",
    "license",
    "taxonomy",
    "scope",
];
/// The adapter (`source_format`) of the events `logsource.product: okta` takes.
const OKTA_FORMAT: &str = "okta";
/// Most events of one group a correlation keeps, so its threshold may not be higher.
pub const MAX_GROUP_EVENTS: usize = 1_000;

/// What every rule has: who it is, how urgent, which technique.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Sigma's `id`.
    pub id: String,
    /// Sigma's `name`, which correlations use to refer to rules.
    pub name: Option<String>,
    pub title: String,
    pub severity: Severity,
    /// The first `attack.tNNNN[.NNN]` tag as `TNNNN[.NNN]`; empty without one.
    pub attack_technique: String,
    /// What alerts name as their detector: `sigma:` and the name, or the id.
    pub detector: String,
    /// Line the document starts on.
    pub line: usize,
}

/// A compiled detection rule.
#[derive(Debug)]
pub struct DetectionRule {
    pub meta: Meta,
    /// `logsource.category`: the one kind the rule takes, or every kind.
    pub kind: Option<Kind>,
    /// `logsource.service`: events reported by this service only.
    service: Option<String>,
    /// For a rule of an adapted source's product (`okta`): events read by that adapter
    /// only (their `source_format` attribute).
    format: Option<&'static str>,
    /// Per selection, the alternatives (a list of maps); each is a conjunction.
    selections: Vec<Vec<Vec<FieldMatch>>>,
    condition: Condition,
}

/// What a correlation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
}

/// `gt`/`gte`/`lt`/`lte`/`eq` bounds, all of which must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Bounds {
    pub fn holds(&self, count: u64) -> bool {
        self.min.is_none_or(|min| count >= min) && self.max.is_none_or(|max| count <= max)
    }
}

/// A compiled correlation rule; `rules` are resolved to detection rules by the set.
#[derive(Debug)]
pub struct CorrelationRule {
    pub meta: Meta,
    pub kind: CorrelationType,
    /// Names or ids of the rules it correlates, in order.
    pub rules: Vec<(usize, String)>,
    pub group_by: Vec<Field>,
    pub timespan: Micros,
    pub bounds: Bounds,
    /// For `value_count`: the field whose distinct values are counted.
    pub value_field: Option<Field>,
    /// Whether the correlated rules also raise their own alerts.
    pub generate: bool,
}

/// A rule of either kind.
#[derive(Debug)]
pub enum Rule {
    Detection(DetectionRule),
    Correlation(CorrelationRule),
}

impl Rule {
    pub fn meta(&self) -> &Meta {
        match self {
            Rule::Detection(rule) => &rule.meta,
            Rule::Correlation(rule) => &rule.meta,
        }
    }
}

impl DetectionRule {
    /// Whether `event` matches the rule; `memo` holds the results of the pack's shared
    /// tests on this event.
    pub fn matches(&self, event: &Event<'_>, memo: &mut Memo) -> bool {
        if self.kind.is_some_and(|kind| kind != event.kind) {
            return false;
        }
        if let Some(service) = &self.service {
            if event.service.as_deref() != Some(service.as_str()) {
                return false;
            }
        }
        if let Some(format) = self.format {
            if event.attribute(SOURCE_FORMAT_ATTRIBUTE) != Some(format) {
                return false;
            }
        }
        self.condition.eval(&mut |at| {
            self.selections[at]
                .iter()
                .any(|all| all.iter().all(|test| test.matches_once(event, memo)))
        })
    }

    /// Every field test of the rule, for the pack to give shared ones a memo slot.
    pub fn tests_mut(&mut self) -> impl Iterator<Item = &mut FieldMatch> {
        self.selections.iter_mut().flatten().flatten()
    }
}

impl DetectionRule {
    /// The lake columns the rule reads (besides the event's kind).
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        let tests = self.selections.iter().flatten().flatten();
        let service = self.service.as_ref().map(|_| Field::Service.column());
        // An adapter's events are told by an attribute.
        let format = self.format.map(|_| ATTRIBUTES_COLUMN);
        tests
            .map(|test| test.field().column())
            .chain(service)
            .chain(format)
    }

    /// The outcomes an event must have to match, when the condition requires one (an
    /// `outcome:` equality in every way it can be true); `None` when any may match.
    pub fn required_outcomes(&self) -> Option<Vec<Outcome>> {
        let values = self.required(&self.condition, &|test| test.equal_values(&Field::Outcome))?;
        Some(
            values
                .iter()
                .filter_map(|value| Outcome::parse(value))
                .collect(),
        )
    }

    /// The values or prefixes (lowercase) `field` must have one of for the rule to
    /// match, when every way its condition can be true requires one (an equality or a
    /// `startswith` on `field`); `None` when it does not.
    pub fn required_pins(&self, field: &Field) -> Option<Vec<Pin>> {
        if *field == Field::Service {
            if let Some(service) = &self.service {
                return Some(vec![Pin {
                    text: service.to_ascii_lowercase(),
                    prefix: false,
                }]);
            }
        }
        self.required(&self.condition, &|test| test.pins(field))
    }

    /// What `condition` requires, as `texts` finds it in one test, if every way it can
    /// be true requires one of them.
    fn required<T>(
        &self,
        condition: &Condition,
        texts: &impl Fn(&FieldMatch) -> Option<Vec<T>>,
    ) -> Option<Vec<T>> {
        match condition {
            Condition::Selection(at) => {
                // Every alternative of the selection must require one.
                let mut values = Vec::new();
                for all in &self.selections[*at] {
                    values.extend(all.iter().find_map(texts)?);
                }
                Some(values)
            }
            Condition::Not(_) => None,
            Condition::And(all) => all.iter().find_map(|c| self.required(c, texts)),
            Condition::Or(any) => {
                let mut values = Vec::new();
                for c in any {
                    values.extend(self.required(c, texts)?);
                }
                Some(values)
            }
        }
    }
}

/// Compiles one rule document.
pub fn compile(doc: &Node) -> Result<Rule, Problem> {
    for (key, _) in doc.entries("a rule")? {
        if !RULE_KEYS.contains(&key.text.as_str()) {
            return Err(Problem::new(
                key.line,
                format!("unknown rule key `{}`", key.text),
            ));
        }
    }
    let meta = meta(doc)?;
    match (doc.get("detection"), doc.get("correlation")) {
        (Some(detection), None) => detection_rule(doc, meta, detection).map(Rule::Detection),
        (None, Some(correlation)) => correlation_rule(meta, correlation).map(Rule::Correlation),
        (Some(_), Some(_)) => Err(Problem::new(
            doc.line,
            "a rule has `detection` or `correlation`, not both",
        )),
        (None, None) => Err(Problem::new(
            doc.line,
            "a rule needs `detection` or `correlation`",
        )),
    }
}

fn required<'a>(doc: &'a Node, key: &str) -> Result<&'a Node, Problem> {
    doc.get(key)
        .ok_or_else(|| Problem::new(doc.line, format!("the rule has no `{key}`")))
}

fn meta(doc: &Node) -> Result<Meta, Problem> {
    let id = required(doc, "id")?.text("`id`")?.to_owned();
    let title = required(doc, "title")?.text("`title`")?.to_owned();
    let name = doc
        .get("name")
        .map(|name| name.text("`name`").map(str::to_owned))
        .transpose()?;
    let severity = match doc.get("level") {
        None => Severity::Medium,
        Some(level) => match level.text("`level`")? {
            "informational" | "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => return Err(Problem::new(level.line, format!("unknown level `{other}`"))),
        },
    };
    let tags = match doc.get("tags") {
        Some(tags) => tags.texts("`tags`")?,
        None => Vec::new(),
    };
    let attack_technique = tags
        .iter()
        .filter_map(|tag| tag.strip_prefix("attack.t"))
        .find(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .map(|rest| format!("T{}", rest.to_ascii_uppercase()))
        .unwrap_or_default();
    let detector = format!("sigma:{}", name.as_deref().unwrap_or(&id));
    // Both end up in log lines and webhook bodies.
    if title.chars().any(char::is_control) {
        return Err(Problem::new(
            doc.line,
            "`title` must not hold control characters",
        ));
    }
    if detector.len() > 200 || detector.chars().any(char::is_control) {
        return Err(Problem::new(
            doc.line,
            "`name` or `id` must be under 200 bytes, without control characters",
        ));
    }
    Ok(Meta {
        id,
        name,
        title,
        severity,
        attack_technique,
        detector,
        line: doc.line,
    })
}

fn detection_rule(doc: &Node, meta: Meta, detection: &Node) -> Result<DetectionRule, Problem> {
    let logsource = required(doc, "logsource")?;
    let (mut kind, mut service) = (None, None);
    let mut product = None;
    for (key, value) in logsource.entries("`logsource`")? {
        match key.text.as_str() {
            "product" => product = Some(value.text("`product`")?),
            "category" => {
                let name = value.text("`category`")?;
                kind = Some(Kind::parse(name).ok_or_else(|| {
                    Problem::new(value.line, format!("category `{name}` is no event kind (authn, token_issue, token_revoke, authz)"))
                })?);
            }
            "service" => service = Some(value.text("`service`")?.to_owned()),
            "definition" => {}
            other => {
                return Err(Problem::new(
                    key.line,
                    format!("unknown logsource key `{other}`"),
                ))
            }
        }
    }
    let product = match product {
        Some("authtrail") => Product::Authtrail,
        Some("okta") => Product::Okta,
        _ => {
            return Err(Problem::new(
                logsource.line,
                "`logsource.product` must be `authtrail` or `okta`",
            ))
        }
    };
    if product == Product::Okta {
        // SigmaHQ's Okta rules say `service: okta` (the System Log, Okta's one log) and
        // no category: the product already picks the events, by the adapter that read
        // them.
        if service.as_deref().is_some_and(|service| service != "okta") || kind.is_some() {
            return Err(Problem::new(
                logsource.line,
                "an `okta` rule takes `service: okta` and no `category`",
            ));
        }
        service = None;
    }
    let mut names = Vec::new();
    let mut selections = Vec::new();
    let mut condition_node = None;
    for (key, value) in detection.entries("`detection`")? {
        if key.text == "condition" {
            condition_node = Some(value);
            continue;
        }
        if key.text == "timeframe" {
            return Err(Problem::new(
                key.line,
                "`timeframe` is not supported; write a correlation rule",
            ));
        }
        names.push(key.text.clone());
        selections.push(selection(product, &key.text, value)?);
    }
    let condition_node = condition_node
        .ok_or_else(|| Problem::new(detection.line, "`detection` has no `condition`"))?;
    let condition = match &condition_node.value {
        Value::Sequence(items) => Condition::Or(
            items
                .iter()
                .map(|item| condition::parse(item.text("a condition")?, item.line, &names))
                .collect::<Result<_, _>>()?,
        ),
        _ => condition::parse(
            condition_node.text("`condition`")?,
            condition_node.line,
            &names,
        )?,
    };
    Ok(DetectionRule {
        meta,
        kind,
        service,
        format: match product {
            Product::Authtrail => None,
            Product::Okta => Some(OKTA_FORMAT),
        },
        selections,
        condition,
    })
}

fn selection(product: Product, name: &str, value: &Node) -> Result<Vec<Vec<FieldMatch>>, Problem> {
    let conjunction = |node: &Node| -> Result<Vec<FieldMatch>, Problem> {
        let mut all = node
            .entries(&format!("selection `{name}`"))?
            .iter()
            .map(|(key, value)| FieldMatch::compile(product, &key.text, key.line, value))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by_key(FieldMatch::cost);
        Ok(all)
    };
    match &value.value {
        Value::Mapping(_) => Ok(vec![conjunction(value)?]),
        Value::Sequence(items) if items.iter().all(|item| matches!(item.value, Value::Mapping(_))) && !items.is_empty() => {
            items.iter().map(conjunction).collect()
        }
        _ => Err(Problem::new(
            value.line,
            format!("selection `{name}` must be a map of fields or a list of maps (keyword searches are not supported)"),
        )),
    }
}

fn correlation_rule(meta: Meta, correlation: &Node) -> Result<CorrelationRule, Problem> {
    let (mut kind, mut rules, mut group_by, mut timespan) = (None, Vec::new(), Vec::new(), None);
    let (mut bounds, mut value_field, mut generate, mut condition_line) =
        (Bounds::default(), None, false, None);
    for (key, value) in correlation.entries("`correlation`")? {
        match key.text.as_str() {
            "type" => {
                kind = Some(match value.text("`type`")? {
                    "event_count" => CorrelationType::EventCount,
                    "value_count" => CorrelationType::ValueCount,
                    "temporal" => CorrelationType::Temporal,
                    "temporal_ordered" => CorrelationType::TemporalOrdered,
                    other => {
                        return Err(Problem::new(
                            value.line,
                            format!("unknown correlation type `{other}`"),
                        ))
                    }
                })
            }
            "rules" => {
                let items = match &value.value {
                    Value::Sequence(items) => items.iter().collect(),
                    _ => vec![value],
                };
                for item in items {
                    rules.push((item.line, item.text("a rule reference")?.to_owned()));
                }
            }
            "group-by" => {
                for item in value.texts("`group-by`")? {
                    group_by.push(event_field(item, value.line)?);
                }
            }
            "timespan" => {
                let text = value.text("`timespan`")?;
                let span = humantime::parse_duration(text).map_err(|_| {
                    Problem::new(
                        value.line,
                        format!("`{text}` is not a timespan (`30s`, `5m`, `1h`, `1d`)"),
                    )
                })?;
                timespan = Some(
                    Micros::try_from(span.as_micros())
                        .unwrap_or(Micros::MAX)
                        .max(1),
                );
            }
            "generate" => generate = value.text("`generate`")? == "true",
            "condition" => {
                condition_line = Some(value.line);
                for (bound, limit) in value.entries("`condition`")? {
                    if bound.text == "field" {
                        value_field = Some(event_field(limit.text("`field`")?, limit.line)?);
                        continue;
                    }
                    let number: u64 = limit.text("a bound")?.parse().map_err(|_| {
                        Problem::new(limit.line, "a correlation bound is a whole number")
                    })?;
                    match bound.text.as_str() {
                        "gt" => bounds.min = Some(number + 1),
                        "gte" => bounds.min = Some(number),
                        "lt" => bounds.max = Some(number.saturating_sub(1)),
                        "lte" => bounds.max = Some(number),
                        "eq" => (bounds.min, bounds.max) = (Some(number), Some(number)),
                        other => {
                            return Err(Problem::new(
                                bound.line,
                                format!("unknown condition `{other}`"),
                            ))
                        }
                    }
                }
            }
            "aliases" => {
                return Err(Problem::new(
                    key.line,
                    "correlation `aliases` are not supported",
                ))
            }
            other => {
                return Err(Problem::new(
                    key.line,
                    format!("unknown correlation key `{other}`"),
                ))
            }
        }
    }
    let line = correlation.line;
    let kind = kind.ok_or_else(|| Problem::new(line, "the correlation has no `type`"))?;
    let timespan =
        timespan.ok_or_else(|| Problem::new(line, "the correlation has no `timespan`"))?;
    if rules.is_empty() {
        return Err(Problem::new(line, "the correlation names no `rules`"));
    }
    let condition_line = condition_line.unwrap_or(line);
    match kind {
        CorrelationType::EventCount | CorrelationType::ValueCount => {
            // Alerts are raised as events arrive, so a count must reach a lower bound;
            // "fewer than N" would need a timer at the window's end.
            let min = bounds.min.ok_or_else(|| {
                Problem::new(condition_line, "the condition needs a lower bound (`gt`, `gte` or `eq`); `lt`/`lte` only cap it")
            })?;
            if min == 0 || min > MAX_GROUP_EVENTS as u64 {
                return Err(Problem::new(
                    condition_line,
                    format!("the lower bound must be 1 to {MAX_GROUP_EVENTS}"),
                ));
            }
            if (kind == CorrelationType::ValueCount) != value_field.is_some() {
                return Err(Problem::new(
                    condition_line,
                    "`value_count` (and only it) names a `field` in its condition",
                ));
            }
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            if rules.len() > 64 {
                return Err(Problem::new(
                    line,
                    "a temporal correlation takes at most 64 rules",
                ));
            }
            if bounds.min.is_none() {
                bounds.min = Some(rules.len() as u64);
            }
        }
    }
    Ok(CorrelationRule {
        meta,
        kind,
        rules,
        group_by,
        timespan,
        bounds,
        value_field,
        generate,
    })
}

fn event_field(name: &str, line: usize) -> Result<Field, Problem> {
    Field::parse(name).ok_or_else(|| Problem::new(line, format!("unknown field `{name}`")))
}
