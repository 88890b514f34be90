//! The `?filter=` boolean expressions (hashicorp/go-bexpr as in Consul 1.5+), evaluated against
//! the JSON the endpoint returns.
//!
//! Supported: `==`, `!=`, `in`, `not in`, `contains`, `not contains`, `is empty`,
//! `is not empty`, `matches`, `not matches`, `and`, `or`, `not`, parentheses, quoted and
//! unquoted values, `.field` and `["key"]` selectors. Selectors are checked against the
//! endpoint's schema (`Selector "X" is not valid`) and syntax errors use go-bexpr's (pigeon's)
//! `line:col (offset): no match found, expected: ...` format.

use std::collections::BTreeSet;

use serde_json::Value;

/// What fields a filter may select.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Leaf,
    /// Any key, values of the inner shape.
    Map(Box<Shape>),
    Struct(Vec<(&'static str, Shape)>),
    List(Box<Shape>),
}

fn leaf() -> Shape {
    Shape::Leaf
}

fn strings() -> Shape {
    Shape::List(Box::new(Shape::Leaf))
}

fn string_map() -> Shape {
    Shape::Map(Box::new(Shape::Leaf))
}

fn service_address_map() -> Shape {
    Shape::Map(Box::new(Shape::Struct(vec![
        ("Address", leaf()),
        ("Port", leaf()),
    ])))
}

fn weights() -> Shape {
    Shape::Struct(vec![("Passing", leaf()), ("Warning", leaf())])
}

/// `api.AgentService` / `structs.NodeService`.
pub(crate) fn service_shape() -> Shape {
    Shape::Struct(vec![
        ("Kind", leaf()),
        ("ID", leaf()),
        ("Service", leaf()),
        ("Tags", strings()),
        ("Meta", string_map()),
        ("Port", leaf()),
        ("Address", leaf()),
        ("TaggedAddresses", service_address_map()),
        ("Weights", weights()),
        ("EnableTagOverride", leaf()),
    ])
}

/// `structs.HealthCheck`.
pub(crate) fn check_shape() -> Shape {
    Shape::Struct(vec![
        ("Node", leaf()),
        ("CheckID", leaf()),
        ("Name", leaf()),
        ("Status", leaf()),
        ("Notes", leaf()),
        ("Output", leaf()),
        ("ServiceID", leaf()),
        ("ServiceName", leaf()),
        ("ServiceTags", strings()),
        ("Type", leaf()),
    ])
}

/// `structs.CheckServiceNode` (health/service entries).
pub(crate) fn health_entry_shape() -> Shape {
    Shape::Struct(vec![
        (
            "Node",
            Shape::Struct(vec![
                ("ID", leaf()),
                ("Node", leaf()),
                ("Address", leaf()),
                ("Datacenter", leaf()),
                ("TaggedAddresses", string_map()),
                ("Meta", string_map()),
            ]),
        ),
        ("Service", service_shape()),
        ("Checks", Shape::List(Box::new(check_shape()))),
    ])
}

/// `structs.ServiceNode` (catalog/service entries).
pub(crate) fn catalog_entry_shape() -> Shape {
    Shape::Struct(vec![
        ("ID", leaf()),
        ("Node", leaf()),
        ("Address", leaf()),
        ("Datacenter", leaf()),
        ("TaggedAddresses", string_map()),
        ("NodeMeta", string_map()),
        ("ServiceKind", leaf()),
        ("ServiceID", leaf()),
        ("ServiceName", leaf()),
        ("ServiceTags", strings()),
        ("ServiceAddress", leaf()),
        ("ServiceTaggedAddresses", service_address_map()),
        ("ServiceWeights", weights()),
        ("ServiceMeta", string_map()),
        ("ServicePort", leaf()),
        ("ServiceEnableTagOverride", leaf()),
    ])
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Contains,
    NotContains,
    IsEmpty,
    IsNotEmpty,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: String,
    },
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    expr: Expr,
    regexes: Vec<(String, regex_lite::Regex)>,
}

/// A filter that could not be compiled; `Display` follows go-bexpr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FilterError(String);

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    far: usize,
    expected: BTreeSet<String>,
}

impl<'a> Parser<'a> {
    fn fail(&mut self, at: usize, what: &str) {
        if at > self.far {
            self.far = at;
            self.expected.clear();
        }
        if at == self.far {
            self.expected.insert(what.to_string());
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn lit(&mut self, word: &str) -> bool {
        if self.rest().starts_with(word) {
            self.pos += word.len();
            true
        } else {
            let quoted = format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""));
            self.fail(self.pos, &quoted);
            false
        }
    }

    fn class(&mut self, name: &str, pred: impl Fn(char) -> bool) -> bool {
        match self.rest().chars().next() {
            Some(c) if pred(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => {
                self.fail(self.pos, name);
                false
            }
        }
    }

    /// `_`: one or more whitespace characters.
    fn ws1(&mut self) -> bool {
        if !self.class("[ \\t\\r\\n]", |c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
            return false;
        }
        while self.rest().starts_with([' ', '\t', '\r', '\n']) {
            self.pos += 1;
        }
        // Record that more whitespace would also have been accepted here.
        self.fail(self.pos, "[ \\t\\r\\n]");
        true
    }

    fn ws0(&mut self) {
        self.ws1();
    }

    fn keyword(&mut self, words: &[&str]) -> bool {
        let start = self.pos;
        for w in words {
            if !self.ws1() || !self.lit(w) {
                self.pos = start;
                return false;
            }
        }
        true
    }

    fn identifier(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.class("[a-zA-Z]", |c| c.is_ascii_alphabetic()) {
            return None;
        }
        while self.class("[a-zA-Z0-9_]", |c| c.is_ascii_alphanumeric() || c == '_') {}
        Some(self.s[start..self.pos].to_string())
    }

    fn string_literal(&mut self) -> Option<String> {
        let start = self.pos;
        if self.lit("`") {
            let body_start = self.pos;
            while !self.rest().is_empty() && !self.rest().starts_with('`') {
                self.pos += self.rest().chars().next().map_or(1, char::len_utf8);
            }
            let body = self.s[body_start..self.pos].to_string();
            if self.lit("`") {
                return Some(body);
            }
            self.pos = start;
            return None;
        }
        if self.lit("\"") {
            let mut out = String::new();
            loop {
                let Some(c) = self.rest().chars().next() else {
                    self.fail(self.pos, "\"\\\"\"");
                    self.pos = start;
                    return None;
                };
                self.pos += c.len_utf8();
                match c {
                    '"' => return Some(out),
                    '\\' => {
                        let Some(e) = self.rest().chars().next() else {
                            self.pos = start;
                            return None;
                        };
                        self.pos += e.len_utf8();
                        out.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    }
                    c => out.push(c),
                }
            }
        }
        None
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        self.lit("-");
        if !self.lit("0") {
            if !self.class("[1-9]", |c| ('1'..='9').contains(&c)) {
                self.pos = start;
                return None;
            }
            while self.class("[0-9]", |c| c.is_ascii_digit()) {}
        }
        let frac_start = self.pos;
        if self.lit(".") {
            if !self.class("[0-9]", |c| c.is_ascii_digit()) {
                self.pos = frac_start;
            } else {
                while self.class("[0-9]", |c| c.is_ascii_digit()) {}
            }
        }
        Some(self.s[start..self.pos].to_string())
    }

    fn selector(&mut self) -> Option<Vec<String>> {
        let start = self.pos;
        let first = self.identifier()?;
        let mut parts = vec![first];
        loop {
            let here = self.pos;
            if self.lit(".") {
                match self.identifier() {
                    Some(id) => parts.push(id),
                    None => {
                        self.pos = here;
                        break;
                    }
                }
            } else if self.lit("[") {
                self.ws0();
                match self.string_literal() {
                    Some(key) => {
                        self.ws0();
                        if self.lit("]") {
                            parts.push(key);
                        } else {
                            self.pos = here;
                            break;
                        }
                    }
                    None => {
                        self.pos = here;
                        break;
                    }
                }
            } else {
                break;
            }
        }
        if parts.is_empty() {
            self.pos = start;
            return None;
        }
        Some(parts)
    }

    fn value(&mut self) -> Option<String> {
        if let Some(sel) = self.selector() {
            return Some(sel.join("."));
        }
        if let Some(n) = self.number() {
            return Some(n);
        }
        self.string_literal()
    }

    fn match_expr(&mut self) -> Option<Expr> {
        let start = self.pos;
        if let Some(selector) = self.selector() {
            let after_sel = self.pos;
            let ops: [(&[&str], Op, bool); 4] = [
                (&["is", "not", "empty"], Op::IsNotEmpty, false),
                (&["is", "empty"], Op::IsEmpty, false),
                (&["not", "contains"], Op::NotContains, true),
                (&["not", "matches"], Op::NotMatches, true),
            ];
            for (words, op, needs_value) in ops {
                self.pos = after_sel;
                if self.keyword(words) {
                    if !needs_value {
                        return Some(Expr::Match {
                            selector,
                            op,
                            value: String::new(),
                        });
                    }
                    if self.ws1()
                        && let Some(value) = self.value()
                    {
                        return Some(Expr::Match {
                            selector,
                            op,
                            value,
                        });
                    }
                }
            }
            for (sym, op) in [("==", Op::Eq), ("!=", Op::NotEq)] {
                self.pos = after_sel;
                self.ws0();
                if self.lit(sym) {
                    self.ws0();
                    if let Some(value) = self.value() {
                        return Some(Expr::Match {
                            selector: selector.clone(),
                            op,
                            value,
                        });
                    }
                }
            }
            for (word, op) in [("contains", Op::Contains), ("matches", Op::Matches)] {
                self.pos = after_sel;
                if self.keyword(&[word])
                    && self.ws1()
                    && let Some(value) = self.value()
                {
                    return Some(Expr::Match {
                        selector: selector.clone(),
                        op,
                        value,
                    });
                }
            }
        }
        self.pos = start;
        if let Some(value) = self.value() {
            let after_value = self.pos;
            for (words, op) in [(&["not", "in"][..], Op::NotIn), (&["in"][..], Op::In)] {
                self.pos = after_value;
                if self.keyword(words)
                    && self.ws1()
                    && let Some(selector) = self.selector()
                {
                    return Some(Expr::Match {
                        selector,
                        op,
                        value,
                    });
                }
            }
        }
        self.pos = start;
        None
    }

    fn paren_expr(&mut self) -> Option<Expr> {
        let start = self.pos;
        if self.lit("(") {
            self.ws0();
            if let Some(e) = self.or_expr() {
                self.ws0();
                if self.lit(")") {
                    return Some(e);
                }
            }
            self.pos = start;
        }
        self.match_expr()
    }

    fn not_expr(&mut self) -> Option<Expr> {
        let start = self.pos;
        if self.lit("not")
            && self.ws1()
            && let Some(e) = self.not_expr()
        {
            return Some(Expr::Not(Box::new(e)));
        }
        self.pos = start;
        self.paren_expr()
    }

    fn and_expr(&mut self) -> Option<Expr> {
        let left = self.not_expr()?;
        let here = self.pos;
        if self.keyword(&["and"])
            && self.ws1()
            && let Some(right) = self.and_expr()
        {
            return Some(Expr::And(Box::new(left), Box::new(right)));
        }
        self.pos = here;
        Some(left)
    }

    fn or_expr(&mut self) -> Option<Expr> {
        let left = self.and_expr()?;
        let here = self.pos;
        if self.keyword(&["or"])
            && self.ws1()
            && let Some(right) = self.or_expr()
        {
            return Some(Expr::Or(Box::new(left), Box::new(right)));
        }
        self.pos = here;
        Some(left)
    }

    fn input(&mut self) -> Result<Expr, FilterError> {
        self.ws0();
        let expr = self.or_expr();
        self.ws0();
        if let Some(expr) = expr {
            if self.pos == self.s.len() {
                return Ok(expr);
            }
            self.fail(self.pos, "EOF");
        }
        let before = &self.s[..self.far];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let expected: Vec<String> = self
            .expected
            .iter()
            .filter(|e| *e != "EOF")
            .cloned()
            .collect();
        let list = match expected.len() {
            0 => String::new(),
            1 => expected[0].clone(),
            n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
        };
        Err(FilterError(format!(
            "{line}:{col} ({}): no match found, expected: {list}",
            self.far
        )))
    }
}

fn validate_selector(shape: &Shape, selector: &[String]) -> bool {
    let mut shape = shape;
    for part in selector {
        while let Shape::List(inner) = shape {
            shape = inner;
        }
        shape = match shape {
            Shape::Struct(fields) => match fields.iter().find(|(n, _)| n == part) {
                Some((_, s)) => s,
                None => return false,
            },
            Shape::Map(inner) => inner,
            Shape::Leaf | Shape::List(_) => return false,
        };
    }
    true
}

fn collect<'v>(value: &'v Value, selector: &[String], out: &mut Vec<&'v Value>) {
    let Some((first, rest)) = selector.split_first() else {
        out.push(value);
        return;
    };
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, selector, out);
            }
        }
        Value::Object(map) => {
            if let Some(v) = map.get(first) {
                collect(v, rest, out);
            }
        }
        _ => {}
    }
}

fn scalar_eq(v: &Value, literal: &str) -> bool {
    match v {
        Value::String(s) => s == literal,
        Value::Number(n) => literal
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        Value::Bool(b) => literal.parse::<bool>().ok() == Some(*b),
        _ => false,
    }
}

fn contains(v: &Value, literal: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| scalar_eq(i, literal)),
        Value::Object(map) => map.contains_key(literal),
        Value::String(s) => s.contains(literal),
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl Filter {
    /// Compiles an expression for data of `shape`.
    pub(crate) fn compile(expression: &str, shape: &Shape) -> Result<Filter, FilterError> {
        let mut parser = Parser {
            s: expression,
            pos: 0,
            far: 0,
            expected: BTreeSet::new(),
        };
        let expr = parser.input()?;
        let mut regexes = Vec::new();
        check(&expr, shape, &mut regexes)?;
        Ok(Filter { expr, regexes })
    }

    /// Whether an item passes.
    pub(crate) fn matches(&self, item: &Value) -> bool {
        self.eval(&self.expr, item)
    }

    fn eval(&self, expr: &Expr, item: &Value) -> bool {
        match expr {
            Expr::And(a, b) => self.eval(a, item) && self.eval(b, item),
            Expr::Or(a, b) => self.eval(a, item) || self.eval(b, item),
            Expr::Not(e) => !self.eval(e, item),
            Expr::Match {
                selector,
                op,
                value,
            } => {
                let mut found = Vec::new();
                collect(item, selector, &mut found);
                let regex = || {
                    self.regexes
                        .iter()
                        .find(|(p, _)| p == value)
                        .map(|(_, r)| r)
                };
                match op {
                    Op::Eq => found.iter().any(|v| scalar_eq(v, value)),
                    Op::NotEq => !found.iter().any(|v| scalar_eq(v, value)),
                    Op::In | Op::Contains => found.iter().any(|v| contains(v, value)),
                    Op::NotIn | Op::NotContains => !found.iter().any(|v| contains(v, value)),
                    Op::IsEmpty => found.is_empty() || found.iter().all(|v| is_empty(v)),
                    Op::IsNotEmpty => found.iter().any(|v| !is_empty(v)),
                    Op::Matches => regex().is_some_and(|r| {
                        found
                            .iter()
                            .any(|v| v.as_str().is_some_and(|s| r.is_match(s)))
                    }),
                    Op::NotMatches => !regex().is_some_and(|r| {
                        found
                            .iter()
                            .any(|v| v.as_str().is_some_and(|s| r.is_match(s)))
                    }),
                }
            }
        }
    }
}

fn check(
    expr: &Expr,
    shape: &Shape,
    regexes: &mut Vec<(String, regex_lite::Regex)>,
) -> Result<(), FilterError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            check(a, shape, regexes)?;
            check(b, shape, regexes)
        }
        Expr::Not(e) => check(e, shape, regexes),
        Expr::Match {
            selector,
            op,
            value,
        } => {
            if !validate_selector(shape, selector) {
                return Err(FilterError(format!(
                    "Selector \"{}\" is not valid",
                    selector.join(".")
                )));
            }
            if matches!(op, Op::Matches | Op::NotMatches) {
                let re = regex_lite::Regex::new(value).map_err(|e| {
                    FilterError(format!(
                        "Failed to compile regular expression \"{value}\": {e}"
                    ))
                })?;
                regexes.push((value.clone(), re));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(addr: &str, version: &str, tags: &[&str], status: &str) -> Value {
        json!({"Node": {"Node": "n"}, "Service": {"Address": addr, "Meta": {"version": version}, "Tags": tags, "Port": 80},
               "Checks": [{"Status": "passing"}, {"Status": status}]})
    }

    #[test]
    fn evaluates_the_recorded_filters() {
        let shape = health_entry_shape();
        let e = entry("10.0.0.3", "2", &["b"], "critical");
        for (expr, expected) in [
            ("Service.Address == \"10.0.0.3\"", true),
            ("Service.Meta.version == \"2\"", true),
            ("a in Service.Tags", false),
            ("\"b\" in Service.Tags", true),
            ("Checks.Status == critical", true),
            ("Service.Port == 80 and not (Service.Tags is empty)", true),
            (
                "Service.Meta[\"version\"] != `2` or Service.Address matches \"^10\\\\.\"",
                true,
            ),
        ] {
            assert_eq!(
                Filter::compile(expr, &shape).unwrap().matches(&e),
                expected,
                "{expr}"
            );
        }
    }

    #[test]
    fn errors_read_like_bexpr() {
        let shape = health_entry_shape();
        assert_eq!(
            Filter::compile("Service.Nope == \"x\"", &shape)
                .unwrap_err()
                .to_string(),
            "Selector \"Service.Nope\" is not valid"
        );
        assert_eq!(
            Filter::compile("Service.Port ==", &shape)
                .unwrap_err()
                .to_string(),
            "1:16 (15): no match found, expected: \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]"
        );
    }
}
