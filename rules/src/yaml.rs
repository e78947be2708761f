//! Rule files as trees of YAML nodes that know their line, built from saphyr's event
//! parser so every error can name the file and line it is about.
//!
//! A rule file is untrusted input: it is capped in size and nesting, and aliases are
//! refused (an alias expands to a copy of its anchor, and a few of them nested make a
//! "billion laughs" file that would fill memory).

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Largest rule file read, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Deepest nesting of sequences and mappings; Sigma rules need about six.
const MAX_DEPTH: usize = 32;

/// One YAML value with the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

/// The values a rule file is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written, and whether it was plain (unquoted): only plain scalars are
    /// numbers, booleans or null.
    Scalar {
        text: String,
        plain: bool,
    },
    Sequence(Vec<Node>),
    /// Entries in the order written; keys are scalars.
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub line: usize,
    pub text: String,
}

/// A problem in a rule file: the line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl Problem {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Problem {
            line,
            message: message.into(),
        }
    }
}

impl Node {
    /// The text of a scalar, or a problem naming `what` was expected.
    pub fn text(&self, what: &str) -> Result<&str, Problem> {
        match &self.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => Err(Problem::new(
                self.line,
                format!("{what} must be a single value"),
            )),
        }
    }

    /// Whether this is a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if text.is_empty() || text == "~" || text.eq_ignore_ascii_case("null"))
    }

    /// The entries of a mapping, or a problem naming `what` was expected.
    pub fn entries(&self, what: &str) -> Result<&[(Key, Node)], Problem> {
        match &self.value {
            Value::Mapping(entries) => Ok(entries),
            _ => Err(Problem::new(self.line, format!("{what} must be a mapping"))),
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Mapping(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A scalar or a sequence of scalars, as texts.
    pub fn texts(&self, what: &str) -> Result<Vec<&str>, Problem> {
        match &self.value {
            Value::Scalar { text, .. } => Ok(vec![text.as_str()]),
            Value::Sequence(items) => items.iter().map(|item| item.text(what)).collect(),
            Value::Mapping(_) => Err(Problem::new(
                self.line,
                format!("{what} must be a value or a list"),
            )),
        }
    }
}

/// Parses every document of `text` (documents are separated by `---`).
pub fn parse_documents(text: &str) -> Result<Vec<Node>, Problem> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Problem::new(
            1,
            format!(
                "file of {} bytes exceeds the limit of {MAX_FILE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let mut documents = Vec::new();
    // Open collections, innermost last; a mapping holds the key waiting for its value.
    let mut open: Vec<(Node, Option<Key>)> = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|error| {
            Problem::new(
                error.marker().line(),
                format!("not valid YAML: {}", error.info()),
            )
        })?;
        let line = span.start.line();
        let node = match event {
            Event::Alias(_) => {
                return Err(Problem::new(
                    line,
                    "YAML aliases (`*name`) are not supported in rules",
                ))
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if open.len() >= MAX_DEPTH {
                    return Err(Problem::new(
                        line,
                        format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let value = match event {
                    Event::SequenceStart(..) => Value::Sequence(Vec::new()),
                    _ => Value::Mapping(Vec::new()),
                };
                open.push((Node { line, value }, None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some((node, _)) => node,
                None => continue,
            },
            Event::Scalar(text, style, ..) => Node {
                line,
                value: Value::Scalar {
                    text: Cow::into_owned(text),
                    plain: style == ScalarStyle::Plain,
                },
            },
            _ => continue,
        };
        match open.last_mut() {
            None => documents.push(node),
            Some((parent, pending)) => match (&mut parent.value, pending.take()) {
                (Value::Sequence(items), _) => items.push(node),
                (Value::Mapping(entries), Some(key)) => {
                    if entries.iter().any(|(k, _)| k.text == key.text) {
                        return Err(Problem::new(
                            key.line,
                            format!("duplicate key `{}`", key.text),
                        ));
                    }
                    entries.push((key, node));
                }
                (Value::Mapping(_), None) => match node.value {
                    Value::Scalar { text, .. } => {
                        *pending = Some(Key {
                            line: node.line,
                            text,
                        })
                    }
                    _ => return Err(Problem::new(node.line, "mapping keys must be plain values")),
                },
                (Value::Scalar { .. }, _) => unreachable!("only collections are open"),
            },
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_documents_split() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n---\nc: {d: e}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        assert_eq!(b.line, 3);
        assert_eq!(b.texts("b").unwrap(), ["x", "y"]);
        match &docs[0].get("b").unwrap().value {
            Value::Sequence(items) => {
                assert_eq!(
                    items[1].value,
                    Value::Scalar {
                        text: "y".into(),
                        plain: false
                    }
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(docs[1].get("c").unwrap().get("d").unwrap().line, 6);
    }

    #[test]
    fn refuses_aliases_deep_nesting_duplicates_and_huge_files() {
        let alias = parse_documents("a: &x [1]\nb: *x\n").unwrap_err();
        assert_eq!(alias.line, 2);
        assert!(alias.message.contains("aliases"), "{alias:?}");
        let nested = |depth| format!("a: {}{}", "[".repeat(depth), "]".repeat(depth));
        let deep = parse_documents(&nested(40)).unwrap_err();
        assert!(deep.message.contains("nested deeper"), "{deep:?}");
        // Deeper still, the parser's own limit answers first: an error all the same.
        assert!(parse_documents(&nested(100_000)).is_err());
        let duplicate = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            (duplicate.line, duplicate.message.as_str()),
            (3, "duplicate key `a`")
        );
        let huge = "#".repeat(MAX_FILE_BYTES + 1);
        assert!(parse_documents(&huge)
            .unwrap_err()
            .message
            .contains("exceeds the limit"));
        let broken = parse_documents("a: [1\n").unwrap_err();
        assert!(broken.message.starts_with("not valid YAML"), "{broken:?}");
    }
}
