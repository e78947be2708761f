//! Paths into a native JSON record: `actor.alternateId`, `sourceIPs[0]`,
//! `annotations."authorization.k8s.io/decision"`, `target[type=Token].id`.

use std::fmt;

use crate::json::Json;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object's member.
    Key(String),
    /// An array's element by position.
    Index(usize),
    /// The first element of an array that is an object whose `key` is the string `value`.
    Find { key: String, value: String },
}

/// A parsed path; its text is kept for error messages and attribute names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    steps: Vec<Step>,
    text: String,
    /// What [`Path::attribute_name`] returns, computed once.
    attribute: Option<String>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses `a.b[0]."c.d"[type=Token].e`; quoted keys may hold dots, brackets and
    /// escaped quotes (`\"`).
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let mut steps = Vec::new();
        let mut chars = text.chars().peekable();
        let mut expect_key = true;
        while let Some(&c) = chars.peek() {
            match c {
                '.' if !expect_key => {
                    chars.next();
                    expect_key = true;
                }
                '[' => {
                    chars.next();
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(c) => inner.push(c),
                            None => return Err(format!("path `{text}`: `[` without `]`")),
                        }
                    }
                    steps.push(match inner.split_once('=') {
                        Some((key, value)) if !key.is_empty() => Step::Find {
                            key: key.to_owned(),
                            value: value.to_owned(),
                        },
                        _ => Step::Index(inner.parse().map_err(|_| {
                            format!("path `{text}`: `[{inner}]` is neither an index nor key=value")
                        })?),
                    });
                    expect_key = false;
                }
                '"' if expect_key => {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c) => key.push(c),
                                None => return Err(format!("path `{text}`: unfinished escape")),
                            },
                            Some(c) => key.push(c),
                            None => return Err(format!("path `{text}`: unclosed quote")),
                        }
                    }
                    steps.push(Step::Key(key));
                    expect_key = false;
                }
                _ if expect_key => {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        if c == ']' || c == '"' {
                            return Err(format!("path `{text}`: unexpected `{c}` in a key"));
                        }
                        key.push(c);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err(format!("path `{text}`: empty key"));
                    }
                    steps.push(Step::Key(key));
                    expect_key = false;
                }
                _ => return Err(format!("path `{text}`: unexpected `{c}`")),
            }
        }
        if steps.is_empty() || expect_key {
            return Err(format!("path `{text}` is empty or ends with `.`"));
        }
        let attribute = attribute_name(&steps);
        Ok(Path {
            steps,
            text: text.to_owned(),
            attribute,
        })
    }

    /// The value at this path, if every step finds one (JSON `null` counts as absent).
    pub(crate) fn get<'j, 'a>(&self, root: &'j Json<'a>) -> Option<&'j Json<'a>> {
        let mut at = root;
        for step in &self.steps {
            at = match (step, at) {
                (Step::Key(key), Json::Object(entries)) => {
                    &entries.iter().find(|(name, _)| name == key)?.1
                }
                (Step::Index(index), Json::List(items)) => items.get(*index)?,
                (Step::Find { key, value }, Json::List(items)) => items.iter().find(|item| {
                    matches!(item, Json::Object(entries)
                        if entries.iter().any(|(name, v)| name == key
                            && matches!(v, Json::Str(text) if text == value)))
                })?,
                _ => return None,
            };
        }
        (!matches!(at, Json::Null)).then_some(at)
    }

    /// The attribute name of the value this path reads, when the path names only object
    /// members (the name a flattened record gives that value); `None` for paths through
    /// arrays, whose values stay inside their array's attribute.
    pub(crate) fn attribute_name(&self) -> Option<&str> {
        self.attribute.as_deref()
    }
}

fn attribute_name(steps: &[Step]) -> Option<String> {
    let mut name = String::new();
    for step in steps {
        let Step::Key(key) = step else { return None };
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(key);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Json<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn paths_read_members_indexes_and_filtered_elements() {
        let json = record(
            r#"{"a":{"b":1,"c.d":"x"},"ips":["1.2.3.4"],"target":[{"type":"User","id":"u"},{"type":"Token","id":"t"}],"n":null}"#,
        );
        let get = |path: &str| Path::parse(path).unwrap().get(&json).cloned();
        assert_eq!(get("a.b"), Some(Json::Int(1)));
        assert_eq!(get(r#"a."c.d""#), Some(Json::Str("x".into())));
        assert_eq!(get("ips[0]"), Some(Json::Str("1.2.3.4".into())));
        assert_eq!(get("ips[1]"), None);
        assert_eq!(get("target[type=Token].id"), Some(Json::Str("t".into())));
        assert_eq!(get("target[type=Group].id"), None);
        assert_eq!(get("n"), None, "null is absent");
        assert_eq!(get("a.b.c"), None, "through a number");
    }

    #[test]
    fn bad_paths_are_explained() {
        for bad in ["", "a.", ".a", "a[", "a[x]", r#"a."b"#, "a]"] {
            assert!(Path::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Path::parse(r#"user.extra."k.io/x""#)
                .unwrap()
                .attribute_name(),
            Some("user.extra.k.io/x")
        );
        assert_eq!(Path::parse("ips[0]").unwrap().attribute_name(), None);
    }
}
