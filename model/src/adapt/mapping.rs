//! The mapping language: a TOML file that says how records of one native format become
//! contract events. The built-in formats are such files (`model/formats/*.toml`); a team
//! writes its own for its gateway's JSON. `docs/adapters.md` documents the language.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::path::Path;
use crate::event::Kind;
use crate::json::Json;
use crate::parse::Field;

/// Why a mapping file was refused: its origin (file name or built-in) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping {origin}: {message}")]
pub struct MappingError {
    pub origin: String,
    pub message: String,
}

/// A compiled mapping file.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub(crate) name: String,
    /// Where a record wraps the event (`data` in an Auth0 log-stream envelope): paths are
    /// looked up there first, then from the record's top.
    envelope: Option<Path>,
    /// The native id; without one the id is a digest of the record's bytes.
    pub(crate) id: Option<Expr>,
    pub(crate) time: Expr,
    pub(crate) native_type: Expr,
    /// Native paths never stored (secrets, or noise), as `*`-patterns over attribute names.
    drop: Vec<Glob>,
    pub(crate) rules: Vec<Rule>,
}

/// The first rule whose conditions all hold decides what a record becomes.
#[derive(Debug)]
pub(crate) struct Rule {
    when: Vec<(Path, Cond)>,
    pub(crate) action: Action,
}

#[derive(Debug)]
pub(crate) enum Action {
    /// Not an event: counted as skipped with this reason (a repeated stage of a request).
    Skip(String),
    /// An event of `kind` with these contract fields.
    Map {
        kind: Kind,
        fields: Vec<(Field, Expr)>,
    },
}

/// A condition on one native field.
#[derive(Debug)]
enum Cond {
    /// The field is a scalar whose text matches one of these patterns.
    AnyOf(Vec<Glob>),
    /// The field is present (not absent or null), or absent.
    Exists(bool),
    /// The field is absent or a scalar matching none of these patterns.
    NoneOf(Vec<Glob>),
}

/// A `*`-pattern; without `*` it is an exact match.
#[derive(Debug, Clone)]
pub(crate) struct Glob(String);

impl Glob {
    pub(crate) fn matches(&self, text: &str) -> bool {
        let Some((first, rest_of_pattern)) = self.0.split_once('*') else {
            return self.0 == text;
        };
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let (middle, last) = match rest_of_pattern.rsplit_once('*') {
            Some((middle, last)) => (Some(middle), last),
            None => (None, rest_of_pattern),
        };
        for part in middle.into_iter().flat_map(|middle| middle.split('*')) {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// How one contract field gets its value: a source, then transforms in a fixed order
/// (`strip_prefix`, `map`, `default`, `lowercase`, `prefix`, `ip`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr {
    source: Option<Source>,
    strip_prefix: Option<String>,
    /// Value table: exact keys first, then patterns, longest first; `{value}` in an output
    /// is the value matched (`"*" = "user:{value}"`).
    map: Vec<(Glob, String)>,
    default: Option<String>,
    lowercase: bool,
    prefix: Option<String>,
    /// Keep the value only if it is an IP address (sources write placeholders like `IP`).
    ip: bool,
}

#[derive(Debug, Clone)]
enum Source {
    /// The first of these paths that is present.
    Paths(Vec<Path>),
    /// A constant.
    Value(Json<'static>),
    /// Text with `{path}` holes; absent when any hole is.
    Template(Vec<Piece>),
    /// `then` when the path is present, else `otherwise`.
    IfPresent {
        path: Path,
        then: String,
        otherwise: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Hole(Path),
}

/// The value an expression produced and the attribute it consumed (not stored again).
pub(crate) struct Read<'a, 'm> {
    pub(crate) value: Json<'a>,
    pub(crate) consumed: Option<Cow<'m, str>>,
}

impl Mapping {
    /// Parses and checks a mapping file; `origin` names it in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let error = |message: String| MappingError {
            origin: origin.to_owned(),
            message,
        };
        let file: MappingFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let name = file.format;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(error(format!(
                "`format` must be a name of letters, digits, `_` and `-`, got `{name}`"
            )));
        }
        let envelope = file
            .envelope
            .as_deref()
            .map(Path::parse)
            .transpose()
            .map_err(error)?;
        let id = file
            .id
            .as_ref()
            .map(|value| Expr::parse(value, "id"))
            .transpose()
            .map_err(error)?;
        let time = Expr::parse(&file.time, "time").map_err(error)?;
        let native_type = Expr::parse(&file.native_type, "type").map_err(error)?;
        let drop = file.drop.into_iter().map(Glob).collect();
        let shared = parse_fields(&file.set, "set").map_err(error)?;
        if file.rules.is_empty() {
            return Err(error("no `[[rule]]`: nothing would be mapped".into()));
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, rule) in file.rules.iter().enumerate() {
            let at = format!("rule {}", index + 1);
            let when = rule
                .when
                .iter()
                .map(|(path, cond)| {
                    Ok((
                        Path::parse(path)?,
                        Cond::parse(cond, &format!("{at} when.{path}"))?,
                    ))
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(error)?;
            let action = match (&rule.kind, &rule.skip) {
                (Some(_), Some(_)) => {
                    return Err(error(format!("{at}: `kind` and `skip` exclude each other")))
                }
                (None, Some(reason)) => {
                    if !rule.set.is_empty() {
                        return Err(error(format!("{at}: a `skip` rule sets no fields")));
                    }
                    Action::Skip(reason.clone())
                }
                (None, None) => return Err(error(format!("{at}: needs `kind` or `skip`"))),
                (Some(kind), None) => {
                    let kind = Kind::parse(kind).ok_or_else(|| {
                        error(format!(
                            "{at}: `kind` is `{kind}`, expected authn, token_issue, token_revoke or authz"
                        ))
                    })?;
                    let own = parse_fields(&rule.set, &format!("{at} set")).map_err(error)?;
                    // The rule's own fields replace the shared ones of the same name.
                    let mut fields: Vec<(Field, Expr)> = Vec::new();
                    for (field, expr) in &shared {
                        if !own.iter().any(|(f, _)| f == field) {
                            fields.push((*field, expr.clone()));
                        }
                    }
                    fields.extend(own);
                    Action::Map { kind, fields }
                }
            };
            rules.push(Rule { when, action });
        }
        Ok(Mapping {
            name,
            envelope,
            id,
            time,
            native_type,
            drop,
            rules,
        })
    }

    /// The first rule that applies to `record`.
    pub(crate) fn rule_for<'m>(&'m self, record: &Json<'_>) -> Option<&'m Rule> {
        self.rules.iter().find(|rule| {
            rule.when.iter().all(|(path, cond)| {
                let value = self.lookup(path, record).map(|(value, _)| value);
                cond.holds(value)
            })
        })
    }

    /// A path's value: inside the envelope first, then from the top; with whether it came
    /// from the envelope.
    fn lookup<'j, 'a>(&self, path: &Path, record: &'j Json<'a>) -> Option<(&'j Json<'a>, bool)> {
        if let Some(envelope) = self.envelope.as_ref().and_then(|e| e.get(record)) {
            if let Some(value) = path.get(envelope) {
                return Some((value, true));
            }
        }
        path.get(record).map(|value| (value, false))
    }

    /// Evaluates `expr` on `record`.
    pub(crate) fn eval<'a, 'm>(
        &'m self,
        expr: &'m Expr,
        record: &Json<'a>,
    ) -> Option<Read<'a, 'm>> {
        let mut consumed = None;
        let mut value: Option<Json<'a>> = match &expr.source {
            None => None,
            Some(Source::Paths(paths)) => paths.iter().find_map(|path| {
                let (value, enveloped) = self.lookup(path, record)?;
                consumed = path
                    .attribute_name()
                    .map(|name| match (enveloped, &self.envelope) {
                        (true, Some(envelope)) => Cow::Owned(format!(
                            "{}.{name}",
                            envelope.attribute_name().unwrap_or_default()
                        )),
                        _ => Cow::Borrowed(name),
                    });
                Some(value.clone())
            }),
            Some(Source::Value(value)) => Some(value.clone()),
            Some(Source::Template(pieces)) => {
                let mut text = String::new();
                let mut complete = true;
                for piece in pieces {
                    match piece {
                        Piece::Text(part) => text.push_str(part),
                        Piece::Hole(path) => {
                            match self.lookup(path, record).and_then(|(v, _)| scalar_text(v)) {
                                Some(part) => text.push_str(&part),
                                None => complete = false,
                            }
                        }
                    }
                }
                complete.then_some(Json::Str(Cow::Owned(text)))
            }
            Some(Source::IfPresent {
                path,
                then,
                otherwise,
            }) => match self.lookup(path, record) {
                Some(_) => Some(Json::Str(Cow::Owned(then.clone()))),
                None => otherwise.clone().map(|text| Json::Str(Cow::Owned(text))),
            },
        };
        if let Some(prefix) = &expr.strip_prefix {
            value = value
                .as_ref()
                .and_then(scalar_text)
                .and_then(|text| text.strip_prefix(prefix.as_str()).map(str::to_owned))
                .map(|text| Json::Str(Cow::Owned(text)));
        }
        if !expr.map.is_empty() {
            value = value.as_ref().and_then(scalar_text).and_then(|text| {
                expr.map
                    .iter()
                    .find(|(pattern, _)| pattern.matches(&text))
                    // `{value}` in a table's output stands for the value matched.
                    .map(|(_, to)| Json::Str(Cow::Owned(to.replace("{value}", &text))))
            });
        }
        if value.is_none() {
            value = expr.default.clone().map(|text| Json::Str(Cow::Owned(text)));
        }
        if expr.lowercase || expr.prefix.is_some() || expr.ip {
            let text = value.as_ref().and_then(scalar_text)?;
            let mut text = if expr.lowercase {
                text.to_lowercase()
            } else {
                text.into_owned()
            };
            if let Some(prefix) = &expr.prefix {
                text.insert_str(0, prefix);
            }
            if expr.ip && text.parse::<IpAddr>().is_err() {
                // Not an address: the native field stays in the attributes as it was.
                return None;
            }
            value = Some(Json::Str(Cow::Owned(text)));
        }
        value.map(|value| Read { value, consumed })
    }

    /// Whether an attribute of this name is never stored.
    pub(crate) fn drops(&self, attribute: &str) -> bool {
        self.drop.iter().any(|glob| glob.matches(attribute))
    }
}

impl Rule {
    /// The native paths a field is read from, for messages about a missing field.
    pub(crate) fn describe(&self, field: Field) -> Option<String> {
        let Action::Map { fields, .. } = &self.action else {
            return None;
        };
        fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, expr)| expr.describe())
    }
}

impl Expr {
    /// The native paths this expression reads, `a`, `b` (for error messages).
    pub(crate) fn describe(&self) -> String {
        let quote = |paths: &mut dyn Iterator<Item = &Path>| {
            paths
                .map(|path| format!("`{path}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.source {
            Some(Source::Paths(paths)) => quote(&mut paths.iter()),
            Some(Source::Template(pieces)) => quote(&mut pieces.iter().filter_map(|p| match p {
                Piece::Hole(path) => Some(path),
                Piece::Text(_) => None,
            })),
            Some(Source::IfPresent { path, .. }) => format!("`{path}`"),
            Some(Source::Value(_)) | None => "a constant".into(),
        }
    }

    /// `"a.b"` (a path), `["a", "b"]` (the first present), or a table with one source
    /// (`path`, `value`, `template`, `if`+`then`[+`else`]) and transforms.
    fn parse(value: &toml::Value, at: &str) -> Result<Expr, String> {
        let paths = |items: &[toml::Value]| -> Result<Vec<Path>, String> {
            items
                .iter()
                .map(|item| match item {
                    toml::Value::String(path) => Path::parse(path),
                    other => Err(format!(
                        "{at}: a path must be a string, got {}",
                        other.type_str()
                    )),
                })
                .collect()
        };
        let table = match value {
            toml::Value::String(path) => {
                return Ok(Expr {
                    source: Some(Source::Paths(vec![Path::parse(path)?])),
                    ..Expr::default()
                })
            }
            toml::Value::Array(items) => {
                return Ok(Expr {
                    source: Some(Source::Paths(paths(items)?)),
                    ..Expr::default()
                })
            }
            toml::Value::Table(table) => table,
            other => {
                return Err(format!(
                    "{at}: expected a path, a list of paths or a table, got {}",
                    other.type_str()
                ))
            }
        };
        let text = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(format!(
                    "{at}.{key}: expected a string, got {}",
                    other.type_str()
                )),
            }
        };
        let flag = |key: &str| -> Result<bool, String> {
            match table.get(key) {
                None => Ok(false),
                Some(toml::Value::Boolean(flag)) => Ok(*flag),
                Some(other) => Err(format!(
                    "{at}.{key}: expected true or false, got {}",
                    other.type_str()
                )),
            }
        };
        const KEYS: [&str; 11] = [
            "path",
            "value",
            "template",
            "if",
            "then",
            "else",
            "strip_prefix",
            "map",
            "default",
            "lowercase",
            "prefix",
        ];
        if let Some(unknown) = table
            .keys()
            .find(|key| !KEYS.contains(&key.as_str()) && key.as_str() != "ip")
        {
            return Err(format!(
                "{at}: unknown key `{unknown}` (expected {}, ip)",
                KEYS.join(", ")
            ));
        }
        let mut sources = Vec::new();
        if let Some(path) = table.get("path") {
            sources.push(Source::Paths(match path {
                toml::Value::Array(items) => paths(items)?,
                single => paths(std::slice::from_ref(single))?,
            }));
        }
        if let Some(constant) = table.get("value") {
            sources.push(Source::Value(match constant {
                toml::Value::String(text) => Json::Str(Cow::Owned(text.clone())),
                toml::Value::Boolean(flag) => Json::Bool(*flag),
                other => {
                    return Err(format!(
                        "{at}.value: expected a string or a boolean, got {}",
                        other.type_str()
                    ))
                }
            }));
        }
        if let Some(template) = text("template")? {
            sources.push(Source::Template(parse_template(&template, at)?));
        }
        if let Some(path) = text("if")? {
            let then = text("then")?.ok_or_else(|| format!("{at}: `if` needs `then`"))?;
            sources.push(Source::IfPresent {
                path: Path::parse(&path)?,
                then,
                otherwise: text("else")?,
            });
        } else if table.contains_key("then") || table.contains_key("else") {
            return Err(format!("{at}: `then`/`else` need `if`"));
        }
        if sources.len() > 1 {
            return Err(format!(
                "{at}: one source only (`path`, `value`, `template` or `if`)"
            ));
        }
        let map = match table.get("map") {
            None => Vec::new(),
            Some(toml::Value::Table(entries)) => {
                let mut exact = Vec::new();
                let mut patterns = Vec::new();
                for (from, to) in entries {
                    let to = match to {
                        toml::Value::String(to) => to.clone(),
                        other => {
                            return Err(format!(
                                "{at}.map.{from}: expected a string, got {}",
                                other.type_str()
                            ))
                        }
                    };
                    let target = if from.contains('*') {
                        &mut patterns
                    } else {
                        &mut exact
                    };
                    target.push((Glob(from.clone()), to));
                }
                // The most specific pattern first: longer patterns say more.
                patterns.sort_by_key(|(glob, _): &(Glob, String)| std::cmp::Reverse(glob.0.len()));
                exact.extend(patterns);
                exact
            }
            Some(other) => {
                return Err(format!(
                    "{at}.map: expected a table, got {}",
                    other.type_str()
                ))
            }
        };
        Ok(Expr {
            source: sources.pop(),
            strip_prefix: text("strip_prefix")?,
            map,
            default: text("default")?,
            lowercase: flag("lowercase")?,
            prefix: text("prefix")?,
            ip: flag("ip")?,
        })
    }
}

impl Cond {
    /// `"x"` or `["x", "y*"]` (one of), or a table `{ exists = bool }` / `{ not = [...] }`.
    fn parse(value: &toml::Value, at: &str) -> Result<Cond, String> {
        let globs = |items: &[toml::Value]| -> Result<Vec<Glob>, String> {
            items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(Glob(text.clone())),
                    other => Err(format!("{at}: expected strings, got {}", other.type_str())),
                })
                .collect()
        };
        match value {
            toml::Value::String(_) => Ok(Cond::AnyOf(globs(std::slice::from_ref(value))?)),
            toml::Value::Array(items) => Ok(Cond::AnyOf(globs(items)?)),
            toml::Value::Table(table) if table.len() == 1 => match table.iter().next() {
                Some((key, toml::Value::Boolean(flag))) if key == "exists" => Ok(Cond::Exists(*flag)),
                Some((key, toml::Value::Array(items))) if key == "not" => {
                    Ok(Cond::NoneOf(globs(items)?))
                }
                Some((key, toml::Value::String(item))) if key == "not" => {
                    Ok(Cond::NoneOf(vec![Glob(item.clone())]))
                }
                _ => Err(format!("{at}: expected `{{ exists = true|false }}` or `{{ not = [...] }}`")),
            },
            _ => Err(format!(
                "{at}: expected a value, a list of values, `{{ exists = .. }}` or `{{ not = [..] }}`"
            )),
        }
    }

    fn holds(&self, value: Option<&Json<'_>>) -> bool {
        match self {
            Cond::Exists(wanted) => value.is_some() == *wanted,
            Cond::AnyOf(globs) => value
                .and_then(scalar_text)
                .is_some_and(|text| globs.iter().any(|glob| glob.matches(&text))),
            Cond::NoneOf(globs) => value
                .and_then(scalar_text)
                .is_none_or(|text| !globs.iter().any(|glob| glob.matches(&text))),
        }
    }
}

/// A scalar's text (`true`, `42`, the string itself); `None` for arrays and objects.
pub(crate) fn scalar_text<'j>(value: &'j Json<'_>) -> Option<Cow<'j, str>> {
    match value {
        Json::Str(text) => Some(Cow::Borrowed(text.as_ref())),
        Json::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
        Json::Int(number) => Some(Cow::Owned(number.to_string())),
        Json::BigUint(number) => Some(Cow::Owned(number.to_string())),
        Json::Float(number) => Some(Cow::Owned(number.to_string())),
        Json::Null | Json::List(_) | Json::Object(_) => None,
    }
}

fn parse_template(template: &str, at: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{at}: `{{` without `}}` in template `{template}`"))?;
        pieces.push(Piece::Hole(Path::parse(&rest[open + 1..open + close])?));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

fn parse_fields(
    set: &BTreeMap<String, toml::Value>,
    at: &str,
) -> Result<Vec<(Field, Expr)>, String> {
    set.iter()
        .map(|(name, value)| {
            let field = Field::from_name(name)
                .filter(|field| !matches!(field, Field::Id | Field::Time | Field::Kind | Field::Attributes))
                .ok_or_else(|| {
                    format!(
                        "{at}: `{name}` is not a contract field a mapping sets (id, time and kind have their own keys; attributes are filled from the record)"
                    )
                })?;
            Ok((field, Expr::parse(value, &format!("{at}.{name}"))?))
        })
        .collect()
}

/// The file as written; expressions stay TOML values until [`Expr::parse`] explains them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    format: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for people reading the file
    description: Option<String>,
    #[serde(default)]
    envelope: Option<String>,
    #[serde(default)]
    id: Option<toml::Value>,
    time: toml::Value,
    #[serde(rename = "type")]
    native_type: toml::Value,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
    kind: Option<String>,
    skip: Option<String>,
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns_without_classes() {
        let glob = |p: &str| Glob(p.to_owned());
        assert!(glob("user.authentication.*").matches("user.authentication.sso"));
        assert!(!glob("user.authentication.*").matches("user.session.start"));
        assert!(glob("app.oauth2.*token.grant*").matches("app.oauth2.as.token.grant.access_token"));
        assert!(glob("*").matches(""));
        assert!(glob("a*a").matches("aa"));
        assert!(!glob("a*a").matches("a"));
        assert!(glob("exact").matches("exact"));
        assert!(!glob("exact").matches("exact!"));
    }

    #[test]
    fn mapping_errors_name_the_place() {
        let bad = [
            ("format = 'x'\ntime = 't'\ntype = 'y'\n", "no `[[rule]]`"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'login'\n", "rule 1: `kind` is `login`"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'authn'\nset.princpal = 'a'\n", "`princpal` is not a contract field"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'authn'\nset.principal = { path = 'a', value = 'b' }\n", "one source only"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'authn'\nset.principal = { pth = 'a' }\n", "unknown key `pth`"),
            ("format = 'x'\ntime = 't['\ntype = 'y'\n[[rule]]\nkind = 'authn'\n", "without `]`"),
            ("format = 'x y'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'authn'\n", "`format` must be a name"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\n[[rule]]\nkind = 'authn'\nwhen.a = { exist = true }\n", "rule 1 when.a"),
            ("format = 'x'\ntime = 't'\ntype = 'y'\ncolour = 1\n", "unknown field `colour`"),
        ];
        for (text, expected) in bad {
            let error = Mapping::parse(text, "test.toml").unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{text:?}: {error} lacks {expected:?}"
            );
            assert!(error.to_string().starts_with("mapping test.toml: "));
        }
    }
}
