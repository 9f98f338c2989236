//! The System Log `filter` parameter: a SCIM filter expression, evaluated on LogEvent JSON.
//!
//! Okta supports every SCIM operator but `[ ]` on the System Log. Attribute paths are dotted
//! (`target.id`, `debugContext.debugData.requestUri`); on an array (`target`) a comparison holds
//! when it holds for any element, as SCIM specifies for multi-valued attributes.

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        path: Vec<String>,
        op: Op,
        value: Literal,
    },
    Present {
        path: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// Why a filter was refused, with Okta's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `E0000053`.
    #[error("Invalid filter '{filter}': {detail}")]
    Invalid { filter: String, detail: String },
    /// `E0000031`.
    #[error(
        "The supplied combination of operator and field is not currently supported. Operator: {op}, Field: {field}"
    )]
    Unsupported { op: String, field: String },
}

const OPERATORS: &str = "eq,co,sw,pr,gt,ge,lt,le";

/// Parses a System Log filter (where `published` is refused: it is what `since`/`until` are for).
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    parse_with(text, false)
}

/// Parses a legacy Events API filter, where `published` is allowed.
pub fn parse_legacy(text: &str) -> Result<Filter, FilterError> {
    parse_with(text, true)
}

fn parse_with(text: &str, allow_published: bool) -> Result<Filter, FilterError> {
    let mut p = Parser {
        text,
        pos: 0,
        allow_published,
    };
    let filter = p.or()?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.invalid(format!("Unexpected input at position {}", p.pos)));
    }
    Ok(filter)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    allow_published: bool,
}

impl Parser<'_> {
    fn invalid(&self, detail: String) -> FilterError {
        FilterError::Invalid {
            filter: self.text.to_owned(),
            detail,
        }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    /// The next bare word (attribute path, operator, keyword), without consuming it.
    fn peek_word(&self) -> &str {
        let rest = &self.text[self.pos..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"')
            .unwrap_or(rest.len());
        &rest[..end]
    }

    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        if self.peek_word().eq_ignore_ascii_case(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.term()?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, FilterError> {
        self.skip_ws();
        if self.text[self.pos..].starts_with('(') {
            self.pos += 1;
            let inner = self.or()?;
            self.skip_ws();
            if !self.text[self.pos..].starts_with(')') {
                return Err(self.invalid(format!("Expected ')' at position {}", self.pos)));
            }
            self.pos += 1;
            return Ok(inner);
        }
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.term()?)));
        }
        let path_text = self.peek_word().to_owned();
        if path_text.is_empty() || path_text.contains('[') {
            return Err(self.invalid(format!("Expected an attribute at position {}", self.pos)));
        }
        self.pos += path_text.len();
        let path: Vec<String> = path_text.split('.').map(str::to_owned).collect();
        if !self.allow_published && path.first().is_some_and(|a| a == "published") {
            return Err(self.invalid(
                "The published attribute is not supported in a filter; use since and until".into(),
            ));
        }
        self.skip_ws();
        let op_at = self.pos;
        let op_text = self.peek_word().to_owned();
        self.pos += op_text.len();
        let op = match op_text.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present { path }),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => {
                return Err(self.invalid(format!(
                    "Unrecognized attribute operator '{op_text}' at position {op_at}. Expected: {OPERATORS}"
                )));
            }
        };
        if op == Op::Co
            && matches!(
                path_text.as_str(),
                "debugContext.debugData.url" | "debugContext.debugData.requestUri"
            )
        {
            return Err(FilterError::Unsupported {
                op: op_text,
                field: path_text,
            });
        }
        let value = self.literal()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        if rest.starts_with('"') {
            // A JSON string literal: find its closing quote, honouring escapes.
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        let s: String = serde_json::from_str(&rest[..=i]).map_err(|e| {
                            self.invalid(format!("Invalid string at position {}: {e}", self.pos))
                        })?;
                        self.pos += i + 1;
                        return Ok(Literal::String(s));
                    }
                    _ => {}
                }
            }
            return Err(self.invalid(format!("Unterminated string at position {}", self.pos)));
        }
        let word = self.peek_word().to_owned();
        let value = match word.as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "null" => Literal::Null,
            w => match w.parse::<f64>() {
                Ok(n) => Literal::Number(n),
                Err(_) => {
                    return Err(self.invalid(format!("Expected a value at position {}", self.pos)));
                }
            },
        };
        self.pos += word.len();
        Ok(value)
    }
}

impl Filter {
    /// Every comparison in the filter: its path and operator (`None` for `pr`).
    pub fn comparisons(&self) -> Vec<(&[String], Option<Op>)> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut v = a.comparisons();
                v.extend(b.comparisons());
                v
            }
            Filter::Not(f) => f.comparisons(),
            Filter::Compare { path, op, .. } => vec![(path.as_slice(), Some(*op))],
            Filter::Present { path } => vec![(path.as_slice(), None)],
        }
    }

    /// Renames the first step of every path that starts with `from`.
    pub fn rename_root(&mut self, from: &str, to: &str) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.rename_root(from, to);
                b.rename_root(from, to);
            }
            Filter::Not(f) => f.rename_root(from, to),
            Filter::Compare { path, .. } | Filter::Present { path } => {
                if let Some(first) = path.first_mut()
                    && first == from
                {
                    *first = to.to_owned();
                }
            }
        }
    }

    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(event) && b.matches(event),
            Filter::Or(a, b) => a.matches(event) || b.matches(event),
            Filter::Not(f) => !f.matches(event),
            Filter::Present { path } => any_at(event, path, &|v| !v.is_null()),
            Filter::Compare { path, op, value } => {
                let hit = any_at(event, path, &|v| compare(v, *op, value));
                // `ne` holds when no value equals (including an absent attribute).
                if *op == Op::Ne {
                    !any_at(event, path, &|v| compare(v, Op::Eq, value))
                } else {
                    hit
                }
            }
        }
    }
}

/// Whether `test` holds for some value at `path`, descending into arrays at every step.
fn any_at(value: &Value, path: &[String], test: &dyn Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| any_at(v, path, test)),
        _ => match path.split_first() {
            None => test(value),
            Some((head, rest)) => value
                .get(head.as_str())
                .is_some_and(|v| any_at(v, rest, test)),
        },
    }
}

/// Case-insensitive ordering, without lowered copies for ASCII (event types, ids, logins): a
/// filtered query runs this on every event of the log.
fn cmp_ignoring_case(a: &str, e: &str) -> std::cmp::Ordering {
    if a.is_ascii() && e.is_ascii() {
        if a.len() == e.len() && a.eq_ignore_ascii_case(e) {
            return std::cmp::Ordering::Equal;
        }
        // Only reached when they differ; the first differing byte usually comes early.
        return a
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .cmp(e.bytes().map(|b| b.to_ascii_lowercase()));
    }
    a.to_lowercase().cmp(&e.to_lowercase())
}

fn compare(actual: &Value, op: Op, expected: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (Value::String(a), Literal::String(e)) => match op {
            // SCIM string comparison is case-insensitive for these operators.
            Op::Co => return a.to_lowercase().contains(&e.to_lowercase()),
            Op::Sw => return a.to_lowercase().starts_with(&e.to_lowercase()),
            Op::Ew => return a.to_lowercase().ends_with(&e.to_lowercase()),
            _ => cmp_ignoring_case(a, e),
        },
        (Value::Number(a), Literal::Number(e)) => match a.as_f64().and_then(|a| a.partial_cmp(e)) {
            Some(o) => o,
            None => return false,
        },
        (Value::Bool(a), Literal::Bool(e)) => a.cmp(e),
        (Value::Null, Literal::Null) => Ordering::Equal,
        _ => return false,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "eventType": "user.mfa.factor.activate",
            "actor": {"id": "00u1", "type": "User"},
            "target": [{"id": "00u2", "type": "User"}, {"id": "pae1", "type": "AuthenticatorEnrollment"}],
            "outcome": {"result": "SUCCESS"},
            "debugContext": {"debugData": {"requestUri": "/api/v1/users"}}
        })
    }

    fn holds(f: &str) -> bool {
        parse(f)
            .map(|f| f.matches(&event()))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    #[test]
    fn documented_filters_match() {
        assert!(holds(r#"eventType eq "user.mfa.factor.activate""#));
        assert!(holds(r#"eventType sw "user.mfa""#));
        assert!(holds(r#"target.id eq "pae1""#));
        assert!(holds(
            r#"actor.id eq "00u1" and outcome.result eq "SUCCESS""#
        ));
        assert!(holds(
            r#"(eventType eq "x" or eventType sw "user.mfa.factor") and target.type eq "User""#
        ));
        assert!(holds(
            r#"EVENTTYPE eq "x" or not (outcome.result eq "FAILURE")"#
        ));
        assert!(!holds(r#"eventType eq "user.session.start""#));
        assert!(!holds(
            r#"eventType eq "x" or eventType eq "y" and actor.id eq "00u1""#
        ));
        assert!(holds(r#"actor.id pr"#));
    }

    #[test]
    fn bad_filters_get_okta_s_messages() {
        let e = parse(r#"display_message eqq "Create okta user""#)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "Invalid filter 'display_message eqq \"Create okta user\"': Unrecognized attribute operator 'eqq' at position 16. Expected: eq,co,sw,pr,gt,ge,lt,le"
            )
        );
        assert!(matches!(
            parse(r#"debugContext.debugData.url co "x""#),
            Err(FilterError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(r#"published gt "2026-01-01""#),
            Err(FilterError::Invalid { .. })
        ));
        for bad in [
            "",
            "(eventType eq \"x\"",
            "eventType eq",
            "eventType eq \"x",
            "eventType eq \"x\" junk",
            "target[id eq \"x\"]",
        ] {
            assert!(
                matches!(parse(bad), Err(FilterError::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
