//! Sigma's `condition`: selection names joined by `and`, `or`, `not` and parentheses,
//! and `1 of pattern*` / `all of pattern*` / `1 of them` / `all of them`, compiled to a
//! tree over selection indices.

use crate::yaml::Problem;

/// Deepest nesting of parentheses and `not` (the parser recurses on them).
const MAX_DEPTH: usize = 64;

/// A compiled condition; leaves are indices into the rule's selections.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Selection(usize),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    /// Evaluates the condition, asking `selection` for the leaves it needs.
    pub fn eval(&self, selection: &mut impl FnMut(usize) -> bool) -> bool {
        match self {
            Condition::Selection(at) => selection(*at),
            Condition::Not(inner) => !inner.eval(selection),
            Condition::And(all) => all.iter().all(|c| c.eval(selection)),
            Condition::Or(any) => any.iter().any(|c| c.eval(selection)),
        }
    }
}

/// Parses `text` (found on `line`) against the rule's selection `names`.
pub fn parse(text: &str, line: usize, names: &[String]) -> Result<Condition, Problem> {
    if text.contains('|') {
        return Err(Problem::new(
            line,
            "aggregations after `|` are not supported; write a correlation rule",
        ));
    }
    let tokens = tokenize(text);
    let mut parser = ConditionParser {
        tokens: &tokens,
        at: 0,
        names,
        line,
    };
    let condition = parser.or(0)?;
    match parser.tokens.get(parser.at) {
        None => Ok(condition),
        Some(token) => Err(parser.problem(format!("unexpected `{token}` in the condition"))),
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

struct ConditionParser<'a> {
    tokens: &'a [String],
    at: usize,
    names: &'a [String],
    line: usize,
}

impl ConditionParser<'_> {
    fn problem(&self, message: String) -> Problem {
        Problem::new(self.line, message)
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<&str> {
        let token = self.tokens.get(self.at).map(String::as_str);
        self.at += 1;
        token
    }

    fn or(&mut self, depth: usize) -> Result<Condition, Problem> {
        let mut any = vec![self.and(depth)?];
        while self.peek() == Some("or") {
            self.at += 1;
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Condition::Or(any)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Condition, Problem> {
        let mut all = vec![self.unary(depth)?];
        while self.peek() == Some("and") {
            self.at += 1;
            all.push(self.unary(depth)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Condition::And(all)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Condition, Problem> {
        if depth >= MAX_DEPTH {
            return Err(self.problem(format!("condition nested deeper than {MAX_DEPTH} levels")));
        }
        let token = match self.next() {
            Some(token) => token.to_owned(),
            None => return Err(self.problem("the condition ends too early".into())),
        };
        match token.as_str() {
            "not" => Ok(Condition::Not(Box::new(self.unary(depth + 1)?))),
            "(" => {
                let inner = self.or(depth + 1)?;
                match self.next() {
                    Some(")") => Ok(inner),
                    _ => Err(self.problem("a `(` in the condition is not closed".into())),
                }
            }
            "1" | "any" | "all" if self.peek() == Some("of") => {
                self.at += 1;
                let pattern = match self.next() {
                    Some(pattern) => pattern.to_owned(),
                    None => {
                        return Err(
                            self.problem(format!("`{token} of` needs a name pattern or `them`"))
                        )
                    }
                };
                let chosen = self.matching(&pattern)?;
                Ok(if token == "all" {
                    Condition::And(chosen)
                } else {
                    Condition::Or(chosen)
                })
            }
            "and" | "or" | ")" | "of" => {
                Err(self.problem(format!("unexpected `{token}` in the condition")))
            }
            name => match self.names.iter().position(|known| known == name) {
                Some(at) => Ok(Condition::Selection(at)),
                None => Err(self.problem(format!(
                    "the condition names `{name}`, which is no selection of this rule"
                ))),
            },
        }
    }

    /// The selections `pattern` (`them`, a name, or a prefix ending in `*`) names.
    fn matching(&self, pattern: &str) -> Result<Vec<Condition>, Problem> {
        let chosen: Vec<Condition> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, name)| match pattern {
                "them" => !name.starts_with('_'),
                _ => match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => *name == pattern,
                },
            })
            .map(|(at, _)| Condition::Selection(at))
            .collect();
        if chosen.is_empty() {
            return Err(self.problem(format!("`{pattern}` in the condition names no selection")));
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel_a", "sel_b", "filter"].map(String::from).to_vec()
    }

    fn eval(condition: &str, truth: [bool; 3]) -> bool {
        parse(condition, 1, &names())
            .unwrap()
            .eval(&mut |at| truth[at])
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        assert!(eval("sel_a or sel_b and filter", [true, false, false]));
        assert!(!eval("(sel_a or sel_b) and filter", [true, false, false]));
        assert!(eval("sel_a and not filter", [true, false, false]));
        assert!(!eval("sel_a and not filter", [true, false, true]));
        assert!(eval("not (sel_a and filter)", [true, false, false]));
        assert!(eval("not not sel_a", [true, false, false]));
    }

    #[test]
    fn of_forms_expand_over_matching_selections() {
        assert!(eval("1 of sel_*", [false, true, false]));
        assert!(!eval("1 of sel_*", [false, false, true]));
        assert!(!eval("all of sel_*", [true, false, true]));
        assert!(eval("all of sel_* and not filter", [true, true, false]));
        assert!(eval("all of them", [true, true, true]));
        assert!(!eval("all of them", [true, true, false]));
        assert!(eval("1 of them", [false, false, true]));
        assert!(eval("any of sel_*", [true, false, false]));
    }

    #[test]
    fn names_what_is_wrong() {
        let problem = |text: &str| parse(text, 7, &names()).unwrap_err();
        assert!(problem("sel_c").message.contains("`sel_c`"));
        assert_eq!(problem("sel_c").line, 7);
        assert!(problem("(sel_a").message.contains("not closed"));
        assert!(problem("sel_a and").message.contains("ends too early"));
        assert!(problem("1 of x*").message.contains("names no selection"));
        assert!(problem("sel_a sel_b")
            .message
            .contains("unexpected `sel_b`"));
        assert!(problem("sel_a | count() > 5")
            .message
            .contains("correlation"));
        let deep = format!("{}sel_a{}", "(".repeat(100), ")".repeat(100));
        assert!(problem(&deep).message.contains("nested deeper"));
    }
}
