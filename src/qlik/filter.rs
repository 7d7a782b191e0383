//! The SCIM-style (RFC 7644) `filter` language the Automations API uses in list queries:
//! `name eq "nightly" and (runMode eq "triggered" or runMode eq "webhook")`.
//!
//! The client builds filters with the constructors here and renders them with `Display`; the
//! emulator parses what it receives with [`Filter::parse`] and evaluates it with
//! [`Filter::matches`]. One grammar for both sides keeps them from drifting apart.
//!
//! One file over 500 lines on purpose: the grammar's types, parser, printer and evaluator,
//! and the table tests that keep them agreeing, belong together.

use std::fmt;

use serde_json::Value;

/// A comparison operator of the filter language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains (strings).
    Co,
    /// `sw`: starts with (strings).
    Sw,
    /// `ew`: ends with (strings).
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    const ALL: [(CompareOp, &'static str); 9] = [
        (CompareOp::Eq, "eq"),
        (CompareOp::Ne, "ne"),
        (CompareOp::Co, "co"),
        (CompareOp::Sw, "sw"),
        (CompareOp::Ew, "ew"),
        (CompareOp::Gt, "gt"),
        (CompareOp::Ge, "ge"),
        (CompareOp::Lt, "lt"),
        (CompareOp::Le, "le"),
    ];

    fn keyword(self) -> &'static str {
        CompareOp::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map(|(_, kw)| *kw)
            .unwrap_or("eq")
    }

    fn from_keyword(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .iter()
            .find(|(_, kw)| kw.eq_ignore_ascii_case(word))
            .map(|(op, _)| *op)
    }
}

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A double-quoted string.
    String(String),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl From<&str> for FilterValue {
    fn from(s: &str) -> Self {
        FilterValue::String(s.to_owned())
    }
}

impl From<String> for FilterValue {
    fn from(s: String) -> Self {
        FilterValue::String(s)
    }
}

impl From<bool> for FilterValue {
    fn from(b: bool) -> Self {
        FilterValue::Bool(b)
    }
}

impl From<i64> for FilterValue {
    fn from(n: i64) -> Self {
        FilterValue::Number(n as f64)
    }
}

impl fmt::Display for FilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterValue::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
            FilterValue::Number(n) => write!(f, "{n}"),
            FilterValue::Bool(b) => write!(f, "{b}"),
            FilterValue::Null => f.write_str("null"),
        }
    }
}

/// A parsed or built filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`
    Compare {
        /// The attribute name, e.g. `name`.
        attr: String,
        /// The operator.
        op: CompareOp,
        /// The literal compared against.
        value: FilterValue,
    },
    /// `attr pr`: the attribute is present and not null.
    Present(String),
    /// Both sides hold.
    And(Box<Filter>, Box<Filter>),
    /// Either side holds.
    Or(Box<Filter>, Box<Filter>),
    /// `not (expr)`
    Not(Box<Filter>),
}

/// Why a filter string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {message}")]
pub struct FilterParseError {
    /// Byte offset in the input where parsing failed.
    pub position: usize,
    /// What was expected.
    pub message: String,
}

impl Filter {
    /// `attr eq value`
    pub fn eq(attr: &str, value: impl Into<FilterValue>) -> Filter {
        Filter::compare(attr, CompareOp::Eq, value)
    }

    /// `attr op value`
    pub fn compare(attr: &str, op: CompareOp, value: impl Into<FilterValue>) -> Filter {
        Filter::Compare {
            attr: attr.to_owned(),
            op,
            value: value.into(),
        }
    }

    /// `self and other`
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }

    /// `self or other`
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }

    /// Every attribute name the expression mentions, in order of appearance.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::Compare { attr, .. } | Filter::Present(attr) => out.push(attr),
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.collect_attributes(out);
                b.collect_attributes(out);
            }
            Filter::Not(inner) => inner.collect_attributes(out),
        }
    }

    /// Parses a filter string.
    pub fn parse(input: &str) -> Result<Filter, FilterParseError> {
        let tokens = tokenize(input)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            len: input.len(),
        };
        let filter = parser.parse_or()?;
        if let Some((at, tok)) = parser.tokens.get(parser.pos) {
            return Err(FilterParseError {
                position: *at,
                message: format!("unexpected {tok:?} after a complete expression"),
            });
        }
        Ok(filter)
    }

    /// Evaluates the filter against a JSON object, reading attributes as top-level fields.
    ///
    /// Strings compare as strings (ISO-8601 timestamps and dates therefore order correctly),
    /// numbers as numbers; a comparison against a missing field is false except `ne`.
    pub fn matches(&self, object: &Value) -> bool {
        match self {
            Filter::Compare { attr, op, value } => compare(
                object.get(attr.as_str()).unwrap_or(&Value::Null),
                *op,
                value,
            ),
            Filter::Present(attr) => object.get(attr.as_str()).is_some_and(|v| !v.is_null()),
            Filter::And(a, b) => a.matches(object) && b.matches(object),
            Filter::Or(a, b) => a.matches(object) || b.matches(object),
            Filter::Not(inner) => !inner.matches(object),
        }
    }
}

fn compare(field: &Value, op: CompareOp, literal: &FilterValue) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (field, literal) {
        (Value::String(a), FilterValue::String(b)) => {
            match op {
                CompareOp::Co => return a.contains(b.as_str()),
                CompareOp::Sw => return a.starts_with(b.as_str()),
                CompareOp::Ew => return a.ends_with(b.as_str()),
                _ => {}
            }
            Some(a.as_str().cmp(b.as_str()))
        }
        (Value::Number(a), FilterValue::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Value::Bool(a), FilterValue::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, FilterValue::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (CompareOp::Ne, None) => true,
        (_, None) => false,
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        // co/sw/ew on non-strings never match.
        (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, Some(_)) => false,
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { attr, op, value } => write!(f, "{attr} {} {value}", op.keyword()),
            Filter::Present(attr) => write!(f, "{attr} pr"),
            Filter::And(a, b) => {
                write_operand(f, a, true)?;
                f.write_str(" and ")?;
                write_operand(f, b, true)
            }
            Filter::Or(a, b) => {
                write_operand(f, a, false)?;
                f.write_str(" or ")?;
                write_operand(f, b, false)
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
        }
    }
}

/// Writes a sub-expression, parenthesised where precedence would otherwise change its meaning
/// (an `or` inside an `and`).
fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, inside_and: bool) -> fmt::Result {
    if inside_and && matches!(operand, Filter::Or(..)) {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Number(f64),
    Open,
    Close,
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token)>, FilterParseError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            tokens.push((at, Token::Open));
        } else if c == ')' {
            chars.next();
            tokens.push((at, Token::Close));
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, escaped)) => s.push(escaped),
                        None => break,
                    },
                    other => s.push(other),
                }
            }
            if !closed {
                return Err(FilterParseError {
                    position: at,
                    message: "unterminated string literal".into(),
                });
            }
            tokens.push((at, Token::Str(s)));
        } else if c.is_ascii_digit() || c == '-' {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+') {
                    s.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            let n = s.parse::<f64>().map_err(|_| FilterParseError {
                position: at,
                message: format!("invalid number {s:?}"),
            })?;
            tokens.push((at, Token::Number(n)));
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '.' {
                    s.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push((at, Token::Word(s)));
        } else {
            return Err(FilterParseError {
                position: at,
                message: format!("unexpected character {c:?}"),
            });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn position(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.len, |(at, _)| *at)
    }

    fn error(&self, message: impl Into<String>) -> FilterParseError {
        FilterParseError {
            position: self.position(),
            message: message.into(),
        }
    }

    fn parse_or(&mut self) -> Result<Filter, FilterParseError> {
        let mut left = self.parse_and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.parse_and()?;
            left = left.or(right);
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, FilterParseError> {
        let mut left = self.parse_unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.parse_unary()?;
            left = left.and(right);
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterParseError> {
        if self.peek_word("not") {
            self.pos += 1;
            if !matches!(self.tokens.get(self.pos), Some((_, Token::Open))) {
                return Err(self.error("expected '(' after 'not'"));
            }
            return Ok(Filter::Not(Box::new(self.parse_primary()?)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Filter, FilterParseError> {
        match self.tokens.get(self.pos).cloned() {
            Some((_, Token::Open)) => {
                self.pos += 1;
                let inner = self.parse_or()?;
                match self.tokens.get(self.pos) {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error("expected ')'")),
                }
            }
            Some((_, Token::Word(attr))) => {
                self.pos += 1;
                let op_word = match self.tokens.get(self.pos) {
                    Some((_, Token::Word(w))) => w.clone(),
                    _ => return Err(self.error(format!("expected an operator after {attr:?}"))),
                };
                if op_word.eq_ignore_ascii_case("pr") {
                    self.pos += 1;
                    return Ok(Filter::Present(attr));
                }
                let op = CompareOp::from_keyword(&op_word)
                    .ok_or_else(|| self.error(format!("unknown operator {op_word:?}")))?;
                self.pos += 1;
                let value = match self.tokens.get(self.pos) {
                    Some((_, Token::Str(s))) => FilterValue::String(s.clone()),
                    Some((_, Token::Number(n))) => FilterValue::Number(*n),
                    Some((_, Token::Word(w))) if w == "true" => FilterValue::Bool(true),
                    Some((_, Token::Word(w))) if w == "false" => FilterValue::Bool(false),
                    Some((_, Token::Word(w))) if w == "null" => FilterValue::Null,
                    _ => {
                        return Err(self.error(format!(
                            "expected a value (a double-quoted string, number, true, false or null) after {attr:?} {op_word}"
                        )));
                    }
                };
                self.pos += 1;
                Ok(Filter::Compare { attr, op, value })
            }
            _ => Err(self.error("expected an attribute name or '('")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_simple_comparison() {
        assert_eq!(
            Filter::parse(r#"name eq "nightly""#).unwrap(),
            Filter::eq("name", "nightly")
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = Filter::parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        assert_eq!(
            f,
            Filter::eq("a", "1").or(Filter::eq("b", "2").and(Filter::eq("c", "3")))
        );
    }

    #[test]
    fn parentheses_group() {
        let f = Filter::parse(r#"(a eq "1" or b eq "2") and c eq "3""#).unwrap();
        assert_eq!(
            f,
            (Filter::eq("a", "1").or(Filter::eq("b", "2"))).and(Filter::eq("c", "3"))
        );
        assert_eq!(f.to_string(), r#"(a eq "1" or b eq "2") and c eq "3""#);
    }

    #[test]
    fn display_round_trips_through_parse() {
        let built = Filter::eq("name", r#"say "hi" \ there"#)
            .and(Filter::compare("date", CompareOp::Ge, "2026-11-01"))
            .or(Filter::Not(Box::new(Filter::Present("ownerId".into()))));
        let text = built.to_string();
        assert_eq!(Filter::parse(&text).unwrap(), built);
    }

    #[test]
    fn keywords_are_case_insensitive_and_values_typed() {
        let f = Filter::parse(r#"billable EQ true AND duration gt 10"#).unwrap();
        assert_eq!(
            f,
            Filter::eq("billable", true).and(Filter::compare("duration", CompareOp::Gt, 10))
        );
    }

    #[test]
    fn rejects_malformed_input_with_a_position() {
        for bad in [
            "",
            "name",
            "name eq",
            r#"name eq "x"#,
            r#"name xx "x""#,
            r#"(name eq "x""#,
            r#"name eq "x" extra"#,
            r#"name eq 'x'"#,
            "not name eq \"x\"",
        ] {
            let err = Filter::parse(bad).unwrap_err();
            assert!(err.position <= bad.len(), "{bad:?}: {err}");
        }
    }

    #[test]
    fn evaluates_against_json() {
        let obj = json!({"name": "nightly load", "runMode": "triggered", "duration": 12, "billable": true});
        let yes = [
            r#"name eq "nightly load""#,
            r#"name co "ly lo""#,
            r#"name sw "night""#,
            r#"name ew "load""#,
            r#"runMode eq "manual" or runMode eq "triggered""#,
            r#"duration ge 12 and duration lt 13"#,
            r#"billable eq true"#,
            r#"name pr"#,
            r#"spaceId ne "x""#,
            r#"not (runMode eq "manual")"#,
        ];
        let no = [
            r#"name eq "Nightly load""#,
            r#"duration gt 12"#,
            r#"spaceId eq "x""#,
            r#"spaceId pr"#,
            r#"runMode eq "triggered" and billable eq false"#,
        ];
        for f in yes {
            assert!(Filter::parse(f).unwrap().matches(&obj), "{f}");
        }
        for f in no {
            assert!(!Filter::parse(f).unwrap().matches(&obj), "{f}");
        }
    }

    #[test]
    fn lists_attributes() {
        let f = Filter::parse(r#"name eq "a" and (ownerId eq "u" or state pr)"#).unwrap();
        assert_eq!(f.attributes(), vec!["name", "ownerId", "state"]);
    }
}
