//! Sigma's field tests, compiled once: `field|modifier|...: value or list of values`.
//!
//! Strings compare case-insensitively (ASCII), as Sigma specifies, unless `cased`;
//! `*` and `?` in a value are wildcards (`\*`, `\?`, `\\` escape them). Matching a value
//! allocates nothing: IPs, booleans and numbers are written out on the stack.

use std::fmt::Write as _;
use std::net::IpAddr;

use authtrail_model::Event;
use regex::{Regex, RegexBuilder};

use crate::field::{Field, FieldValue, Product};
use crate::yaml::{Node, Problem, Value};

/// Most bytes a compiled `re` or wildcard pattern may take (the regex crate refuses
/// bigger ones with an error instead of building them).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A value (lowercase) a field must have for a rule to match, or a prefix it must
/// start with: what the rule index keys on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub text: String,
    pub prefix: bool,
}

/// One `field|modifiers: values` entry of a selection.
#[derive(Debug)]
pub struct FieldMatch {
    field: Field,
    test: Test,
    /// The resolved field, modifiers and values as written: two entries with the same
    /// signature (in one rule or two) test the same thing.
    signature: Box<str>,
    /// Where [`Memo`] keeps this test's result for the event at hand, when other
    /// entries of the pack share its signature; `NO_SLOT` when none does.
    slot: u32,
}

/// [`FieldMatch::slot`] of a test no other entry shares: run without a memo.
const NO_SLOT: u32 = u32::MAX;

/// Results of the field tests several entries of a pack share, for the event being
/// matched (`outcome: allow` in five rules, one filter in a hundred): each is run once
/// per event. A result belongs to the event whose epoch it carries, so moving to the
/// next event clears nothing.
#[derive(Debug, Default)]
pub struct Memo {
    epoch: u64,
    /// Per slot, the epoch of the event it was computed for (shifted left once) and the
    /// result in the low bit.
    results: Vec<u64>,
}

impl Memo {
    /// Forgets the previous event's results; `slots` is the pack's count.
    pub fn next_event(&mut self, slots: usize) {
        if self.results.len() != slots {
            self.results = vec![0; slots];
        }
        self.epoch += 1;
    }
}

#[derive(Debug)]
enum Test {
    /// `field|exists: true|false`.
    Exists(bool),
    /// `field: null`: the field is absent.
    Absent,
    /// Any (or with `all`, every) pattern matches some value of the field.
    Patterns { patterns: Vec<Pattern>, all: bool },
}

#[derive(Debug)]
enum Pattern {
    Equals {
        text: Box<str>,
        cased: bool,
    },
    Contains {
        text: Box<str>,
        cased: bool,
    },
    StartsWith {
        text: Box<str>,
        cased: bool,
    },
    EndsWith {
        text: Box<str>,
        cased: bool,
    },
    /// `re`, and values with wildcards.
    Regex(Regex),
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
    Compare {
        op: Compare,
        number: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Cidr,
    Compare(Compare),
    Exists,
}

impl FieldMatch {
    /// Compiles `key: value` of a selection; `key` is `field|modifier|...`.
    pub fn compile(
        product: Product,
        key: &str,
        key_line: usize,
        value: &Node,
    ) -> Result<FieldMatch, Problem> {
        let mut parts = key.split('|');
        let name = parts.next().unwrap_or_default();
        let field = Field::parse_for(product, name).ok_or_else(|| {
            Problem::new(
                key_line,
                format!("unknown field `{name}` (fields are the event contract's columns and `attributes.<name>`)"),
            )
        })?;
        let mut shape = Shape::Equals;
        let (mut all, mut cased) = (false, false);
        let mut regex_flags = String::new();
        for modifier in parts {
            let next = match modifier {
                "contains" => Shape::Contains,
                "startswith" => Shape::StartsWith,
                "endswith" => Shape::EndsWith,
                "re" => Shape::Regex,
                "cidr" => Shape::Cidr,
                "exists" => Shape::Exists,
                "gt" => Shape::Compare(Compare::Gt),
                "gte" => Shape::Compare(Compare::Gte),
                "lt" => Shape::Compare(Compare::Lt),
                "lte" => Shape::Compare(Compare::Lte),
                "all" => {
                    all = true;
                    continue;
                }
                "cased" => {
                    cased = true;
                    continue;
                }
                "i" | "m" | "s" if shape == Shape::Regex => {
                    regex_flags.push_str(modifier);
                    continue;
                }
                other => {
                    return Err(Problem::new(
                        key_line,
                        format!("unsupported modifier `{other}` in `{key}`"),
                    ))
                }
            };
            if shape != Shape::Equals {
                return Err(Problem::new(
                    key_line,
                    format!("`{key}` combines two value modifiers"),
                ));
            }
            shape = next;
        }
        let modifiers = key.split_once('|').map_or("", |(_, modifiers)| modifiers);
        let signature = |values: &[&str]| -> Box<str> {
            format!("{field:?}\u{1}{modifiers}\u{1}{values:?}").into()
        };
        if shape == Shape::Exists {
            let flag = match value.text("`exists`")? {
                "true" => true,
                "false" => false,
                other => {
                    return Err(Problem::new(
                        value.line,
                        format!("`exists` takes true or false, not `{other}`"),
                    ))
                }
            };
            return Ok(FieldMatch {
                signature: signature(&[if flag { "true" } else { "false" }]),
                field,
                test: Test::Exists(flag),
                slot: NO_SLOT,
            });
        }
        if value.is_null() {
            return Ok(FieldMatch {
                signature: signature(&[]),
                field,
                test: Test::Absent,
                slot: NO_SLOT,
            });
        }
        let items: Vec<&Node> = match &value.value {
            Value::Sequence(items) => items.iter().collect(),
            Value::Scalar { .. } => vec![value],
            Value::Mapping(_) => {
                return Err(Problem::new(
                    value.line,
                    format!("`{key}` takes a value or a list of values"),
                ))
            }
        };
        if items.is_empty() {
            return Err(Problem::new(
                value.line,
                format!("`{key}` has an empty list"),
            ));
        }
        let texts = items
            .iter()
            .map(|item| item.text("a value"))
            .collect::<Result<Vec<_>, _>>()?;
        let patterns = texts
            .iter()
            .zip(&items)
            .map(|(text, item)| {
                compile_pattern(shape, text, cased, &regex_flags)
                    .map_err(|message| Problem::new(item.line, message))
            })
            .collect::<Result<_, _>>()?;
        Ok(FieldMatch {
            signature: signature(&texts),
            field,
            test: Test::Patterns { patterns, all },
            slot: NO_SLOT,
        })
    }

    /// What the test is, as written (see [`FieldMatch::signature`]).
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Gives the test a slot of the pack's [`Memo`], shared with the entries of the same
    /// signature.
    pub fn set_slot(&mut self, slot: u32) {
        self.slot = slot;
    }

    /// [`matches`](Self::matches), run once per event for a test with a slot.
    pub fn matches_once(&self, event: &Event<'_>, memo: &mut Memo) -> bool {
        if self.slot == NO_SLOT {
            return self.matches(event);
        }
        let cell = &mut memo.results[self.slot as usize];
        if *cell >> 1 == memo.epoch {
            return *cell & 1 == 1;
        }
        let result = self.matches(event);
        *cell = memo.epoch << 1 | u64::from(result);
        result
    }

    /// The field it tests.
    pub fn field(&self) -> &Field {
        &self.field
    }

    /// A rough cost of [`matches`](Self::matches), so a selection tests its cheap fields
    /// (an equality on `outcome`) before its dear ones (a regex) and stops at the first
    /// that fails: the order of a conjunction does not change its result.
    pub fn cost(&self) -> u8 {
        match &self.test {
            Test::Exists(_) | Test::Absent => 0,
            Test::Patterns { patterns, .. } => {
                let dearest = patterns.iter().map(Pattern::cost).max().unwrap_or(0);
                dearest.saturating_add(u8::try_from(patterns.len().min(64)).unwrap_or(64))
            }
        }
    }

    /// The values this test requires `field` to equal one of (lowercase), when it is a
    /// plain any-of equality on `field`; the rule index uses it to skip rules an event
    /// cannot match.
    pub fn equal_values(&self, field: &Field) -> Option<Vec<String>> {
        self.pins(field)?
            .into_iter()
            .map(|pin| (!pin.prefix).then_some(pin.text))
            .collect()
    }

    /// What this test requires of `field`, when it is an any-of equality or
    /// `startswith` on `field`: one of these values or prefixes (lowercase).
    pub fn pins(&self, field: &Field) -> Option<Vec<Pin>> {
        if self.field != *field {
            return None;
        }
        let Test::Patterns {
            patterns,
            all: false,
        } = &self.test
        else {
            return None;
        };
        patterns
            .iter()
            .map(|pattern| match pattern {
                Pattern::Equals { text, .. } => Some(Pin {
                    text: text.to_ascii_lowercase(),
                    prefix: false,
                }),
                Pattern::StartsWith { text, .. } => Some(Pin {
                    text: text.to_ascii_lowercase(),
                    prefix: true,
                }),
                _ => None,
            })
            .collect()
    }

    /// Whether `event` passes this test. The field's value is fetched once for all of
    /// an any-of list, and written out as text (an IP, a number) only when a pattern
    /// compares text.
    pub fn matches(&self, event: &Event<'_>) -> bool {
        match &self.test {
            Test::Exists(flag) => self.field.exists(event) == *flag,
            Test::Absent => !self.field.exists(event),
            Test::Patterns {
                patterns,
                all: false,
            } => self
                .field
                .any_value(event, |value| Pattern::any_matches(patterns, value)),
            Test::Patterns {
                patterns,
                all: true,
            } => patterns.iter().all(|pattern| {
                self.field.any_value(event, |value| {
                    Pattern::any_matches(std::slice::from_ref(pattern), value)
                })
            }),
        }
    }
}

fn compile_pattern(
    shape: Shape,
    text: &str,
    cased: bool,
    regex_flags: &str,
) -> Result<Pattern, String> {
    let cased_text = |text: &str| -> Box<str> {
        if cased {
            text.into()
        } else {
            text.to_ascii_lowercase().into()
        }
    };
    match shape {
        Shape::Regex => {
            let mut builder = RegexBuilder::new(text);
            builder
                .size_limit(REGEX_SIZE_LIMIT)
                .case_insensitive(regex_flags.contains('i'))
                .multi_line(regex_flags.contains('m'))
                .dot_matches_new_line(regex_flags.contains('s'));
            builder
                .build()
                .map(Pattern::Regex)
                .map_err(|error| format!("bad regular expression: {error}"))
        }
        Shape::Cidr => parse_cidr(text)
            .ok_or_else(|| format!("`{text}` is not a CIDR range (`10.0.0.0/8`, `2001:db8::/32`)")),
        Shape::Compare(op) => text
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(|number| Pattern::Compare { op, number })
            .ok_or_else(|| format!("`{text}` is not a number")),
        Shape::Exists => unreachable!("handled by the caller"),
        Shape::Equals | Shape::Contains | Shape::StartsWith | Shape::EndsWith => {
            if let Some(regex) = wildcard_regex(shape, text, cased)? {
                return Ok(Pattern::Regex(regex));
            }
            let text = cased_text(&unescape(text));
            Ok(match shape {
                Shape::Contains => Pattern::Contains { text, cased },
                Shape::StartsWith => Pattern::StartsWith { text, cased },
                Shape::EndsWith => Pattern::EndsWith { text, cased },
                _ => Pattern::Equals { text, cased },
            })
        }
    }
}

/// A value with unescaped `*` or `?` as an anchored regex; `None` without wildcards.
fn wildcard_regex(shape: Shape, text: &str, cased: bool) -> Result<Option<Regex>, String> {
    let mut pattern = String::new();
    let mut wild = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('*' | '?' | '\\')) => {
                    pattern.push_str(&regex::escape(&escaped.to_string()))
                }
                Some(other) => {
                    pattern.push_str(&regex::escape("\\"));
                    pattern.push_str(&regex::escape(&other.to_string()));
                }
                None => pattern.push_str(&regex::escape("\\")),
            },
            '*' => {
                wild = true;
                pattern.push_str(".*");
            }
            '?' => {
                wild = true;
                pattern.push('.');
            }
            other => {
                let _ = write!(pattern, "{}", regex::escape(&other.to_string()));
            }
        }
    }
    if !wild {
        return Ok(None);
    }
    let (head, tail) = match shape {
        Shape::Contains => ("", ""),
        Shape::StartsWith => ("^", ""),
        Shape::EndsWith => ("", "$"),
        _ => ("^", "$"),
    };
    RegexBuilder::new(&format!("{head}{pattern}{tail}"))
        .size_limit(REGEX_SIZE_LIMIT)
        .case_insensitive(!cased)
        .dot_matches_new_line(true)
        .build()
        .map(Some)
        .map_err(|error| format!("bad wildcard value: {error}"))
}

/// `text` without the backslashes of its `\*`, `\?` and `\\` escapes.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('*' | '?' | '\\')) {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_cidr(text: &str) -> Option<Pattern> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
        None => {
            let address = text.parse::<IpAddr>().ok()?;
            (address, if address.is_ipv4() { 32 } else { 128 })
        }
    };
    let bits = if address.is_ipv4() { 32 } else { 128 };
    (prefix <= bits).then(|| Pattern::Cidr {
        network: mask(address, prefix),
        prefix,
    })
}

/// `address` with the bits past `prefix` cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

/// A stack buffer to write an IP, a boolean or a number into.
struct Stack {
    bytes: [u8; 48],
    len: usize,
}

impl std::fmt::Write for Stack {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the value as text.
fn with_text<R>(value: FieldValue<'_>, f: impl FnOnce(&str) -> R) -> R {
    let mut stack = Stack {
        bytes: [0; 48],
        len: 0,
    };
    let written = match value {
        FieldValue::Text(text) => return f(text),
        FieldValue::Ip(ip) => write!(stack, "{ip}"),
        FieldValue::Bool(flag) => write!(stack, "{flag}"),
        FieldValue::Int(number) => write!(stack, "{number}"),
    };
    // Every IP, bool and i64 fits in 48 bytes, and what was written is whole `str`s.
    debug_assert!(written.is_ok());
    f(std::str::from_utf8(&stack.bytes[..stack.len]).unwrap_or_default())
}

/// Whether `haystack` contains `needle` (lowercase), ignoring ASCII case: a scan for the
/// needle's first byte in either case, then a comparison from each place it occurs, so
/// most bytes of the haystack are looked at once.
fn ascii_contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    haystack[..=last_start]
        .iter()
        .enumerate()
        .any(|(at, &byte)| {
            (byte == first || byte == upper)
                && haystack[at + 1..at + needle.len()].eq_ignore_ascii_case(rest)
        })
}

impl Pattern {
    fn cost(&self) -> u8 {
        match self {
            Pattern::Equals { .. } | Pattern::Cidr { .. } => 1,
            Pattern::StartsWith { .. } | Pattern::EndsWith { .. } | Pattern::Compare { .. } => 2,
            Pattern::Contains { .. } => 8,
            Pattern::Regex(_) => 32,
        }
    }

    /// Whether the pattern compares the value's text (not its IP or number).
    fn on_text(&self) -> bool {
        !matches!(self, Pattern::Cidr { .. } | Pattern::Compare { .. })
    }

    /// Whether any of `patterns` matches `value`; a value that is no text is written out
    /// once, and only if one of them compares text.
    fn any_matches(patterns: &[Pattern], value: FieldValue<'_>) -> bool {
        if let FieldValue::Text(text) = value {
            return patterns.iter().any(|pattern| pattern.matches(value, text));
        }
        let typed = patterns
            .iter()
            .filter(|pattern| !pattern.on_text())
            .any(|pattern| pattern.matches(value, ""));
        typed
            || (patterns.iter().any(Pattern::on_text)
                && with_text(value, |text| {
                    patterns
                        .iter()
                        .filter(|pattern| pattern.on_text())
                        .any(|pattern| pattern.matches(value, text))
                }))
    }

    /// Whether the pattern matches `value`, whose text is `text` (for patterns that
    /// compare text; `""` is passed when none does).
    fn matches(&self, value: FieldValue<'_>, text: &str) -> bool {
        let same = |a: &[u8], b: &[u8], cased: bool| {
            if cased {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let v = text;
        match self {
            Pattern::Equals { text, cased } => same(v.as_bytes(), text.as_bytes(), *cased),
            Pattern::Contains { text, cased } => {
                if *cased {
                    v.contains(&**text)
                } else {
                    ascii_contains(v.as_bytes(), text.as_bytes())
                }
            }
            Pattern::StartsWith { text, cased } => {
                v.len() >= text.len() && same(&v.as_bytes()[..text.len()], text.as_bytes(), *cased)
            }
            Pattern::EndsWith { text, cased } => {
                v.len() >= text.len()
                    && same(
                        &v.as_bytes()[v.len() - text.len()..],
                        text.as_bytes(),
                        *cased,
                    )
            }
            Pattern::Regex(regex) => regex.is_match(v),
            Pattern::Cidr { network, prefix } => {
                let ip = match value {
                    FieldValue::Ip(ip) => ip,
                    FieldValue::Text(text) => match text.parse::<IpAddr>() {
                        Ok(ip) => ip,
                        Err(_) => return false,
                    },
                    _ => return false,
                };
                ip.is_ipv4() == network.is_ipv4() && mask(ip, *prefix) == *network
            }
            Pattern::Compare { op, number } => {
                let value = match value {
                    FieldValue::Int(int) => int as f64,
                    FieldValue::Text(text) => match text.trim().parse::<f64>() {
                        Ok(parsed) => parsed,
                        Err(_) => return false,
                    },
                    _ => return false,
                };
                match op {
                    Compare::Gt => value > *number,
                    Compare::Gte => value >= *number,
                    Compare::Lt => value < *number,
                    Compare::Lte => value <= *number,
                }
            }
        }
    }
}
